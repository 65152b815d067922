'use strict'
// udx-native (holepunch): two UDP sockets. udx has no handshake: both ends of a stream are created
// with ids known in advance (hyperswarm exchanges them in its own handshake) and each is connected
// to the other, so "connect" here costs stream creation on both sides plus nothing on the wire.

const UDX = require('udx-native')

async function createPair ({ serve }) {
  const udx = new UDX()
  const serverSocket = udx.createSocket()
  const clientSocket = udx.createSocket()
  serverSocket.bind(0, '127.0.0.1')
  clientSocket.bind(0, '127.0.0.1')
  const serverPort = serverSocket.address().port
  const clientPort = clientSocket.address().port
  let nextId = 1
  return {
    connect: async () => {
      const clientId = nextId++
      const serverId = nextId++
      const client = udx.createStream(clientId)
      const server = udx.createStream(serverId)
      server.connect(serverSocket, clientId, clientPort, '127.0.0.1')
      client.connect(clientSocket, serverId, serverPort, '127.0.0.1')
      serve(server)
      return client
    }
  }
}

module.exports = {
  name: 'udx-native',
  package: 'udx-native',
  internet: 'default (udx packets are internet-sized already)',
  createPair
}
