'use strict'
// Connection setup: open a new connection, write one byte as soon as the library says it is
// connected, and time until the echo arrives. One connection at a time; each is destroyed after.

const { quantile, median } = require('../lib/stats')
const { echo, bytesArriving } = require('../lib/streams')

const BYTE = Buffer.from([1])

async function run (transport, { count, warmup }) {
  const pair = await transport.createPair({ serve: echo })
  const times = []
  for (let i = 0; i < warmup + count; i++) {
    const t0 = process.hrtime.bigint()
    const client = await pair.connect()
    const back = bytesArriving(client, 1)
    client.write(BYTE)
    await back
    if (i >= warmup) times.push(Number(process.hrtime.bigint() - t0) / 1e3)
    client.on('error', () => {})
    client.destroy()
  }
  return { median: median(times), p99: quantile(times, 0.99) }
}

module.exports = { run }
