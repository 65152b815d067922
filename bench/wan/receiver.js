'use strict'
// The receiving end of one bench:wan transfer, started by run.js in the receiver's namespace:
//
//   node receiver.js TRANSPORT PORT BYTES SENDER_HOST
//
// Prints JSON lines: {"ready"} once listening, {"progress"} every second, {"done", "t"} when the BYTES-th
// byte arrived (t: wall clock, ms), then {"sha1", "stats"}: the hash of what arrived, computed after the
// timed part, and our connection's stats. Exits after the sender's end, or 3 s after done.

const crypto = require('crypto')
const { performance } = require('perf_hooks')

const { transports } = require('./transports')

const now = () => performance.timeOrigin + performance.now()
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`)

async function main () {
  const [name, port, bytes, peerHost] = process.argv.slice(2)
  const transport = transports[name]
  if (!transport) throw new Error(`unknown transport ${name}`)
  const total = Number(bytes)
  const chunks = []
  let received = 0
  let done = false
  let stream = null
  setInterval(() => emit({ progress: received, t: now() }), 1000).unref()
  await transport.listen(Number(port), peerHost, (s) => {
    if (stream) return // one transfer per receiver
    stream = s
    s.on('data', (chunk) => {
      if (done) return
      received += chunk.length
      chunks.push(chunk)
      if (received > total) fail(`received ${received} bytes, more than the ${total} sent`)
      if (received === total) finish()
    })
    s.on('end', () => {
      if (!done) fail(`stream ended after ${received} of ${total} bytes`)
      process.exit(0)
    })
    s.on('error', (err) => { if (!done) fail(`stream error after ${received} of ${total} bytes: ${err.message}`) })
  })
  emit({ ready: true })

  function finish () {
    done = true
    emit({ done: true, t: now(), bytes: received })
    const hash = crypto.createHash('sha1')
    for (const c of chunks) hash.update(c)
    chunks.length = 0
    emit({ sha1: hash.digest('hex'), stats: transport.stats(stream) })
    setTimeout(() => process.exit(0), 3000)
  }
}

function fail (message) {
  emit({ error: message })
  process.exit(1)
}

main().catch((err) => fail(err.message))
