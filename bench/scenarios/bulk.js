'use strict'
// Bulk transfer: `bytes` of pattern data client -> server in `writeSize` writes honouring
// backpressure, or half each way at once (`both`). Every byte is checked on arrival. The timed
// region runs from the first write to the last byte verified.

const { Verifier } = require('../lib/pattern')
const { start, stop } = require('../lib/measure')
const { sendPattern } = require('../lib/streams')

async function run (transport, { bytes, writeSize = 64 << 10, both = false, internet = false }) {
  if (transport.bulk) {
    // A datagram transport brings its own sender and receiver
    if (both) throw new Error('n/a: one way only')
    return transport.bulk({ bytes })
  }
  const perDirection = both ? bytes / 2 : bytes
  const upstream = new Verifier(perDirection)
  const downstream = both ? new Verifier(perDirection) : null
  // Rejects as soon as either end errors, even one that appears after the transfer started
  let fail
  const failed = new Promise((_resolve, reject) => { fail = reject })
  const watch = (stream, what) => stream.once('error', (err) => fail(new Error(`${what}: ${err.message}`)))
  const serve = (stream) => {
    watch(stream, 'server stream')
    stream.on('data', (chunk) => upstream.push(chunk))
    // A failed write also errors the stream, which watch() reports
    if (both) sendPattern(stream, perDirection, writeSize).catch(() => {})
  }
  const pair = await transport.createPair({ serve, internet })
  const client = await pair.connect()
  watch(client, 'client stream')
  if (downstream) client.on('data', (chunk) => downstream.push(chunk))
  else client.resume()

  const region = start()
  const sending = sendPattern(client, perDirection, writeSize)
  const arrived = [upstream.done, downstream?.done, sending]
  await Promise.race([Promise.all(arrived), failed])
  const finishedAt = [upstream, downstream].filter(Boolean).reduce((a, v) => (v.finishedAt > a ? v.finishedAt : a), 0n)
  const { seconds, cpuSeconds } = stop(region, finishedAt)
  return {
    mbps: bytes / seconds / 1e6,
    cpuPerGB: cpuSeconds / (bytes / 1e9),
    seconds
  }
}

module.exports = { run }
