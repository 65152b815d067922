'use strict'
// This library with every stream secured (Node.secureSocket, psk mode): the same pair of Nodes as
// utp-punch-rs.js, so the report can put the cost of encryption next to the plain numbers

const path = require('path')

const Node = require(path.join(__dirname, '..', '..'))
const plain = require('./utp-punch-rs')

const PSK = 'bench secret'

async function createPair ({ serve, internet }) {
  const pair = await plain.createPair({
    internet,
    serve: (socket) => {
      Node.secureSocket(socket, { role: 'responder', psk: PSK }).then(serve, (err) => socket.destroy(err))
    }
  })
  return {
    connect: async () => Node.secureSocket(await pair.connect(), { role: 'initiator', psk: PSK })
  }
}

module.exports = {
  name: 'utp-punch-rs (encrypted)',
  package: 'utp-punch-rs',
  internet: plain.internet,
  createPair
}
