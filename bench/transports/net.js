'use strict'
// Kernel TCP through Node's net module, Nagle off on both ends (as an RPC-style user would set it)

const net = require('net')

async function createPair ({ serve, internet }) {
  if (internet) throw new Error('n/a: net cannot cap segment size')
  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    serve(socket)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  return {
    connect: () => new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(socket))
      socket.setNoDelay(true)
      socket.once('error', reject)
    })
  }
}

module.exports = { name: 'net', package: null, internet: null, createPair }
