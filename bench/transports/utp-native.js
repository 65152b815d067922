'use strict'
// libutp through utp-native: a net-like server, and one client UDP socket carrying every connection.
// libutp only reports an incoming connection once its first data arrives; every scenario writes first.

const utp = require('utp-native')

async function createPair ({ serve }) {
  const server = utp.createServer(serve)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  const client = utp()
  return {
    connect: () => new Promise((resolve, reject) => {
      const socket = client.connect(port, '127.0.0.1')
      socket.once('error', reject)
      socket.once('connect', () => resolve(socket))
    })
  }
}

module.exports = {
  name: 'utp-native',
  package: 'utp-native',
  internet: 'default (libutp sizes its own packets)',
  createPair
}
