'use strict'
// The transports bench:wan compares, behind one small interface used by receiver.js and sender.js:
//
//   listen(port, peerHost, onStream)   receiver side; calls onStream(duplex) for the one transfer
//   connect(host, port)                sender side; returns a writable duplex
//   stats(duplex)                      our per-connection stats, or null for the others
//   available()                        null, or why this transport cannot run with the built package
//
// 'tcp-cubic' and 'tcp-bbr' are the same Node net code: run.js sets the congestion control on the
// namespaces' routes before the transfer (lab.sh tcp).

const { udxListen, udxConnect } = require('../lib/udx-pair')
const path = require('path')

// udx has no handshake: both ends use fixed stream ids, and the receiver needs the sender's port
const UDX_SENDER_PORT = 9301

function loadOurs () {
  return require(path.join(__dirname, '..', '..'))
}

/** Our Node with `congestion` set; null for the default (LEDBAT) when the option is unknown */
function ours (congestion) {
  /** Does this build know the option? An unknown mode must be rejected; an ignored option is not */
  function support () {
    const Node = loadOurs()
    let node
    try {
      node = new Node({ congestion: 'no-such-mode' })
    } catch {
      try {
        node = new Node({ congestion })
      } catch (err) {
        return { error: `new Node({ congestion: '${congestion}' }) throws: ${err.message}` }
      }
      return { options: { congestion } }
    } finally {
      node?.close?.()
    }
    // The option is ignored: the default is LEDBAT, so that transport still runs; cubic cannot
    if (congestion === 'ledbat') return { options: {} }
    return { error: `this build ignores the congestion option (new Node({ congestion: 'no-such-mode' }) does not throw), so '${congestion}' cannot be selected` }
  }
  let cached = null
  const options = () => {
    cached ??= support()
    if (cached.error) throw new Error(cached.error)
    return cached.options
  }
  return {
    available () {
      cached ??= support()
      return cached.error ?? null
    },
    listen (port, _peerHost, onStream) {
      const Node = loadOurs()
      const node = new Node(options(), onStream)
      return new Promise((resolve) => node.bind(port, '0.0.0.0', () => node.listen(resolve)))
    },
    connect (host, port) {
      const Node = loadOurs()
      const node = new Node(options())
      node.bind(0, '0.0.0.0')
      return node.connect(port, host)
    },
    stats (stream) {
      return stream.stats?.() ?? null
    }
  }
}

function tcp () {
  const net = require('net')
  return {
    available: () => null,
    listen (port, _peerHost, onStream) {
      const server = net.createServer(onStream)
      return new Promise((resolve) => server.listen(port, '0.0.0.0', resolve))
    },
    connect (host, port) {
      const socket = net.connect(port, host)
      socket.setNoDelay(true)
      return socket
    },
    stats: () => null
  }
}

const transports = {
  'ledbat': ours('ledbat'),
  'cubic': ours('cubic'),
  'tcp-cubic': tcp(),
  'tcp-bbr': tcp(),
  'utp-native': {
    available: () => null,
    listen (port, _peerHost, onStream) {
      const server = require('utp-native').createServer(onStream)
      return new Promise((resolve) => server.listen(port, '0.0.0.0', resolve))
    },
    connect (host, port) {
      return require('utp-native')().connect(port, host)
    },
    stats: () => null
  },
  'udx-native': {
    available: () => null,
    async listen (port, peerHost, onStream) {
      onStream(udxListen(port, peerHost, UDX_SENDER_PORT))
    },
    connect (host, port) {
      return udxConnect(host, port, UDX_SENDER_PORT)
    },
    stats: () => null
  }
}

/** Names as RESULTS.md shows them */
const labels = {
  'ledbat': 'utp-punch-rs (ledbat)',
  'cubic': 'utp-punch-rs (cubic)',
  'tcp-cubic': 'TCP cubic (Node net)',
  'tcp-bbr': 'TCP bbr (Node net)',
  'utp-native': 'utp-native (libutp)',
  'udx-native': 'udx-native'
}

module.exports = { transports, labels }
