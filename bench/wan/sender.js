'use strict'
// The sending end of one bench:wan transfer, started by run.js in the sender's namespace:
//
//   node sender.js TRANSPORT HOST PORT BYTES
//
// Sends BYTES of bench/lib/pattern.js's pseudo-random stream in 64 KiB writes, waiting for 'drain'
// whenever write() returns false, then ends the stream. Prints JSON lines: {"sha1"} of those bytes
// (computed before the timed part), {"start", "t"} just before connecting (wall clock, ms), {"stats"}
// every second for our transports, {"written"} once end() was called, and {"final"} stats on SIGTERM,
// which is how run.js stops it once the receiver has everything.

const crypto = require('crypto')
const { once } = require('events')
const { performance } = require('perf_hooks')

const { slice } = require('../lib/pattern')
const { transports } = require('./transports')

const CHUNK = 64 << 10
const now = () => performance.timeOrigin + performance.now()
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`)

async function main () {
  const [name, host, port, bytes] = process.argv.slice(2)
  const transport = transports[name]
  if (!transport) throw new Error(`unknown transport ${name}`)
  const total = Number(bytes)
  const hash = crypto.createHash('sha1')
  for (let at = 0; at < total; at += CHUNK) hash.update(slice(at, Math.min(CHUNK, total - at)))
  emit({ sha1: hash.digest('hex') })

  emit({ start: true, t: now() })
  const stream = transport.connect(host, Number(port))
  stream.on('error', (err) => fail(`stream error: ${err.message}`))
  const stats = () => transport.stats(stream)
  process.on('SIGTERM', () => {
    emit({ final: stats(), t: now() })
    process.exit(0)
  })
  if (typeof stream.stats === 'function') {
    setInterval(() => emit({ stats: stats(), t: now() }), 1000).unref()
  }
  for (let at = 0; at < total; at += CHUNK) {
    if (!stream.write(slice(at, Math.min(CHUNK, total - at)))) await once(stream, 'drain')
  }
  stream.end()
  emit({ written: true, t: now() })
  // Stay until run.js stops us: ending the process now could cut off what is still unacknowledged
  setInterval(() => {}, 1 << 30)
}

function fail (message) {
  emit({ error: message, t: now() })
  process.exit(1)
}

main().catch((err) => fail(err.message))
