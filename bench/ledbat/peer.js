'use strict'
// One end of a uTP-style transfer across the lab, for each transport the experiment compares:
//
//   node peer.js receive TRANSPORT PORT [PEER_HOST]      print {"t","bytes"} every 0.5 s
//   node peer.js send TRANSPORT HOST PORT SECONDS        write as fast as the transport allows
//
// TRANSPORT: utp-punch-rs (default options), utp-punch-rs-64 (bufferSize 64: utp-punch's default window, which
// caps the queue it can build), utp-native (libutp), udx-native, utp-punch.

const path = require('path')
const { once } = require('events')

const { udxListen, udxConnect } = require('../lib/udx-pair')

// udx has no handshake: both ends use fixed ids and ports
const UDX_SENDER_PORT = 9101

const adapters = {
  'utp-punch-rs': ours({}),
  'utp-punch-rs-64': ours({ bufferSize: 64 }),
  'utp-punch': punchLike(() => require('utp-punch'), {}),
  'utp-native': {
    listen (port, onStream) {
      require('utp-native').createServer(onStream).listen(port, '0.0.0.0')
    },
    connect (host, port) {
      return require('utp-native')().connect(port, host)
    }
  },
  'udx-native': {
    listen (port, onStream, peerHost) {
      onStream(udxListen(port, peerHost, UDX_SENDER_PORT))
    },
    connect (host, port) {
      return udxConnect(host, port, UDX_SENDER_PORT)
    }
  }
}

function ours (options) {
  return punchLike(() => require(path.join(__dirname, '..', '..')), options)
}

/** utp-punch's API, which ours shares */
function punchLike (load, options) {
  return {
    listen (port, onStream) {
      const Node = load()
      const node = new Node(options, onStream)
      node.bind(port, '0.0.0.0', () => node.listen())
    },
    connect (host, port) {
      const Node = load()
      const node = new Node(options)
      node.bind(0, '0.0.0.0')
      return node.connect(port, host)
    }
  }
}

function receive (transport, port, peerHost) {
  let total = 0
  const report = () => process.stdout.write(`${JSON.stringify({ t: Date.now(), bytes: total })}\n`)
  setInterval(report, 500)
  adapters[transport].listen(Number(port), (stream) => {
    stream.on('data', (chunk) => { total += chunk.length })
    stream.on('error', () => {})
  }, peerHost)
}

async function send (transport, host, port, seconds) {
  const stream = adapters[transport].connect(host, Number(port))
  stream.on('error', (err) => {
    process.stderr.write(`${transport} sender: ${err.message}\n`)
    process.exit(1)
  })
  // BENCH_LEDBAT_STATS=1: our sender logs its congestion state every second (stderr)
  if (process.env.BENCH_LEDBAT_STATS && typeof stream.stats === 'function') {
    setInterval(() => {
      const s = stream.stats()
      if (s) process.stderr.write(`${JSON.stringify({ cwnd: s.cwnd, inFlight: s.inFlight, queuingDelayMs: s.queuingDelay / 1e3, rttMs: s.rtt / 1e3, retransmits: s.retransmits, timeouts: s.timeouts })}\n`)
    }, 1000).unref()
  }
  const chunk = Buffer.alloc(64 << 10, 0x5a)
  const end = Date.now() + Number(seconds) * 1000
  while (Date.now() < end) {
    if (!stream.write(chunk)) await once(stream, 'drain')
  }
  process.exit(0)
}

const [mode, transport, ...rest] = process.argv.slice(2)
if (!adapters[transport]) throw new Error(`unknown transport ${transport}`)
if (mode === 'receive') receive(transport, ...rest)
else send(transport, ...rest)
