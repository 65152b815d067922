'use strict'
// utp-punch, the pure-JavaScript package this library replaces: same Node API as ours

const UtpPunchNode = require('utp-punch')

// utp-punch's mtu also excludes its 20-byte header
const INTERNET_MTU = 1380

async function createPair ({ serve, internet }) {
  const options = internet ? { mtu: INTERNET_MTU } : {}
  const server = new UtpPunchNode(options, serve)
  await new Promise((resolve) => server.bind(0, '127.0.0.1', resolve))
  await new Promise((resolve) => server.listen(resolve))
  const { port } = server.address()
  const client = new UtpPunchNode(options)
  await new Promise((resolve) => client.bind(0, '127.0.0.1', resolve))
  return {
    connect: () => new Promise((resolve, reject) => {
      const socket = client.connect(port, '127.0.0.1', () => resolve(socket))
      socket.once('error', reject)
    })
  }
}

module.exports = {
  name: 'utp-punch',
  package: 'utp-punch',
  internet: `mtu: ${INTERNET_MTU} (1,400-byte datagrams)`,
  createPair
}
