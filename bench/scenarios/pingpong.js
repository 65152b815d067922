'use strict'
// Ping-pong: a 16-byte message, echoed by the server, `rounds` times in a row after `warmup`
// untimed rounds. Reports round-trip percentiles in microseconds.

const { quantile } = require('../lib/stats')
const { echo, bytesArriving } = require('../lib/streams')

const MESSAGE = Buffer.alloc(16, 0x5a)

async function run (transport, { rounds, warmup }) {
  const pair = await transport.createPair({ serve: echo })
  const client = await pair.connect()
  const rtts = []
  for (let i = 0; i < warmup + rounds; i++) {
    const t0 = process.hrtime.bigint()
    const back = bytesArriving(client, MESSAGE.length)
    client.write(MESSAGE)
    await back
    if (i >= warmup) rtts.push(Number(process.hrtime.bigint() - t0) / 1e3)
  }
  return { p50: quantile(rtts, 0.5), p99: quantile(rtts, 0.99) }
}

module.exports = { run }
