'use strict'
// udx-native has no handshake: both ends name each other's stream id and the sender's port up front.
// One fixed pairing, shared by the namespace benches (bench/ledbat, bench/wan)

const SENDER_ID = 1
const RECEIVER_ID = 2

/** The receiving end on `port`, bound to the sender at `peerHost`:`senderPort` */
function udxListen (port, peerHost, senderPort) {
  const UDX = require('udx-native')
  const udx = new UDX()
  const socket = udx.createSocket()
  socket.bind(port, '0.0.0.0')
  const stream = udx.createStream(RECEIVER_ID)
  stream.connect(socket, SENDER_ID, senderPort, peerHost)
  return stream
}

/** The sending end, bound to `senderPort`, toward the receiver at `host`:`port` */
function udxConnect (host, port, senderPort) {
  const UDX = require('udx-native')
  const udx = new UDX()
  const socket = udx.createSocket()
  socket.bind(senderPort, '0.0.0.0')
  const stream = udx.createStream(SENDER_ID)
  stream.connect(socket, RECEIVER_ID, port, host)
  return stream
}

module.exports = { udxListen, udxConnect }
