'use strict'
// This library: two Nodes (one listening) on 127.0.0.1, default options unless internet-size packets
// are asked for

const path = require('path')

const Node = require(path.join(__dirname, '..', '..'))

// A 20-byte uTP header plus 1,380 payload bytes: 1,400-byte datagrams, the same as dgram's
const INTERNET_MTU = 1380

async function createPair ({ serve, internet }) {
  const options = internet ? { mtu: INTERNET_MTU } : {}
  const server = new Node(options, serve)
  await server.bindAsync(0, '127.0.0.1')
  await new Promise((resolve) => server.listen(resolve))
  const { port } = server.address()
  const client = new Node(options)
  await client.bindAsync(0, '127.0.0.1')
  return {
    connect: () => new Promise((resolve, reject) => {
      const socket = client.connect(port, '127.0.0.1')
      socket.once('error', reject)
      socket.once('connect', () => resolve(socket))
    })
  }
}

module.exports = {
  name: 'utp-punch-rs',
  package: 'utp-punch-rs',
  internet: `mtu: ${INTERNET_MTU} (1,400-byte datagrams)`,
  createPair
}
