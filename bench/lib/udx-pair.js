'use strict'
// udx-native has no handshake: both ends name each other's stream id and the sender's port up front.
// One fixed pairing, shared by the namespace benches (bench/ledbat, bench/wan)

const SENDER_ID = 1
const RECEIVER_ID = 2

/** A udx stream `ownId` bound to `localPort`, talking to stream `peerId` at `host`:`port` */
function udxStream (localPort, ownId, peerId, port, host) {
  const UDX = require('udx-native')
  const udx = new UDX()
  const socket = udx.createSocket()
  socket.bind(localPort, '0.0.0.0')
  const stream = udx.createStream(ownId)
  stream.connect(socket, peerId, port, host)
  return stream
}

/** The receiving end on `port`, bound to the sender at `peerHost`:`senderPort` */
function udxListen (port, peerHost, senderPort) {
  return udxStream(port, RECEIVER_ID, SENDER_ID, senderPort, peerHost)
}

/** The sending end, bound to `senderPort`, toward the receiver at `host`:`port` */
function udxConnect (host, port, senderPort) {
  return udxStream(senderPort, SENDER_ID, RECEIVER_ID, port, host)
}

module.exports = { udxListen, udxConnect }
