'use strict'
// Raw UDP through Node's dgram: 1,400-byte datagrams, no reliability, no congestion control. Only the
// bulk scenario applies. The sender sends BURST datagrams, waits for their send callbacks and lets the
// event loop turn; the receiver checks each datagram's bytes and counts what arrived.

const dgram = require('dgram')

const { slice } = require('../lib/pattern')
const { start, stop } = require('../lib/measure')

const DATAGRAM = 1400
const BURST = 32
// The receiver stops waiting this long after the sender finished
const QUIET_MS = 200

async function bulk ({ bytes }) {
  const receiver = dgram.createSocket('udp4')
  const sender = dgram.createSocket('udp4')
  await new Promise((resolve) => receiver.bind(0, '127.0.0.1', resolve))
  await new Promise((resolve) => sender.bind(0, '127.0.0.1', resolve))
  const { port } = receiver.address()
  const count = Math.ceil(bytes / DATAGRAM)

  let received = 0
  let receivedBytes = 0
  let corrupt = 0
  let lastAt = 0n
  receiver.on('message', (msg) => {
    const seq = msg.readUInt32BE(0)
    // Bytes 4.. are the pattern at this datagram's stream offset
    if (!msg.subarray(4).equals(slice(seq * DATAGRAM + 4, msg.length - 4))) corrupt++
    received++
    receivedBytes += msg.length
    lastAt = process.hrtime.bigint()
  })

  const region = start()
  for (let next = 0; next < count;) {
    // A burst, then a turn of the event loop: dgram's send callbacks can complete without ever
    // reaching the poll phase, which would starve the receiver in this same process
    const sends = []
    for (const end = Math.min(count, next + BURST); next < end; next++) {
      const msg = Buffer.from(slice(next * DATAGRAM, Math.min(DATAGRAM, bytes - next * DATAGRAM)))
      msg.writeUInt32BE(next, 0)
      sends.push(new Promise((resolve, reject) => sender.send(msg, port, '127.0.0.1', (err) => (err ? reject(err) : resolve()))))
    }
    await Promise.all(sends)
    await new Promise(setImmediate)
  }
  // Wait until the receiver has been quiet for QUIET_MS
  while (process.hrtime.bigint() - (lastAt || region.t0) < BigInt(QUIET_MS * 1e6)) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const { seconds, cpuSeconds } = stop(region, lastAt || process.hrtime.bigint())
  sender.close()
  receiver.close()
  if (corrupt > 0) throw new Error(`${corrupt} corrupt datagrams`)
  return {
    mbps: receivedBytes / seconds / 1e6,
    cpuPerGB: cpuSeconds / (receivedBytes / 1e9),
    lossPct: 100 * (1 - received / count)
  }
}

module.exports = {
  name: 'dgram',
  package: null,
  internet: 'always 1,400-byte datagrams',
  bulk
}
