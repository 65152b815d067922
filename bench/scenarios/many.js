'use strict'
// Many concurrent connections: open `count` connections (at most `window` handshakes in flight),
// each writes a 16-byte message and waits for its echo, and all stay open. Reports the wall time
// until every echo arrived, then, after the connections sat idle for `idleMs` and a full GC, the
// memory growth per connection. Both ends live in this process, so "per connection" covers a
// client end plus a server end. RSS includes native (Rust, C) allocations; heap + external is
// what V8 accounts for; their difference is mostly the native side.

const { echo, bytesArriving } = require('../lib/streams')
const { sleep } = require('../lib/measure')

const MESSAGE = Buffer.alloc(16, 0x33)

function snapshot () {
  globalThis.gc?.()
  const m = process.memoryUsage()
  return { rss: m.rss, js: m.heapUsed + m.external }
}

async function run (transport, { count, window = 64, idleMs = 1000 }) {
  const pair = await transport.createPair({ serve: echo })
  // One connection first, so lazily created machinery is not charged to the count
  const first = await pair.connect()
  const firstEcho = bytesArriving(first, MESSAGE.length)
  first.write(MESSAGE)
  await firstEcho
  const before = snapshot()

  const clients = []
  const t0 = process.hrtime.bigint()
  let next = 0
  const worker = async () => {
    while (next < count) {
      next++
      const client = await pair.connect()
      clients.push(client)
      const back = bytesArriving(client, MESSAGE.length)
      client.write(MESSAGE)
      await back
    }
  }
  await Promise.all(Array.from({ length: Math.min(window, count) }, worker))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9

  await sleep(idleMs)
  const after = snapshot()
  return {
    count,
    seconds,
    rssPerConn: (after.rss - before.rss) / count,
    jsPerConn: (after.js - before.js) / count
  }
}

module.exports = { run }
