'use strict'
// The scenarios the bench runs, in order: which module, parameters for full and --quick runs, which
// transports take part, how long one run may take, and the metrics each result reports. A title may
// be a function of the parameters in force.

const MiB = 1 << 20

const STREAMS = ['utp-punch-rs', 'net', 'udx-native', 'utp-native', 'utp-punch']
// utp-punch-rs with secureSocket(): its bulk rows give the cost of encryption (issue 12)
const ENCRYPTED = 'utp-punch-rs-encrypted'

const bulkMetrics = [
  { key: 'mbps', label: 'MB/s', better: 'higher', digits: 0 },
  { key: 'cpuPerGB', label: 'CPU s/GB', better: 'lower', digits: 1 },
  // dgram only: datagrams that never arrived
  { key: 'lossPct', label: 'loss %', better: 'lower', digits: 1 }
]

const manyMetrics = [
  { key: 'seconds', label: 'wall ms', better: 'lower', scale: 1e3, digits: 0 },
  { key: 'rssPerConn', label: 'RSS KiB/conn', better: 'lower', scale: 1 / 1024, digits: 1 },
  { key: 'jsPerConn', label: 'heap+external KiB/conn', better: 'lower', scale: 1 / 1024, digits: 1 }
]

module.exports = [
  {
    id: 'bulk',
    title: 'bulk one way, 64 KiB writes',
    module: 'bulk',
    full: { bytes: 256 * MiB },
    quick: { bytes: 16 * MiB },
    transports: [...STREAMS, ENCRYPTED, 'dgram'],
    timeoutMs: 180e3,
    metrics: bulkMetrics
  },
  {
    id: 'bulk-both',
    title: 'bulk both ways at once (aggregate)',
    module: 'bulk',
    full: { bytes: 256 * MiB, both: true },
    quick: { bytes: 16 * MiB, both: true },
    transports: [...STREAMS, ENCRYPTED],
    timeoutMs: 180e3,
    metrics: bulkMetrics
  },
  {
    id: 'bulk-1400',
    title: 'bulk one way, ~1,400-byte packets',
    module: 'bulk',
    full: { bytes: 256 * MiB, internet: true },
    quick: { bytes: 16 * MiB, internet: true },
    transports: ['utp-punch-rs', 'udx-native', 'utp-native', 'utp-punch'],
    timeoutMs: 180e3,
    metrics: bulkMetrics
  },
  {
    id: 'pingpong',
    title: 'ping-pong, 16-byte messages',
    module: 'pingpong',
    full: { rounds: 5000, warmup: 500 },
    quick: { rounds: 500, warmup: 50 },
    transports: STREAMS,
    timeoutMs: 60e3,
    metrics: [
      { key: 'p50', label: 'RTT p50 µs', better: 'lower', digits: 0 },
      { key: 'p99', label: 'RTT p99 µs', better: 'lower', digits: 0 }
    ]
  },
  {
    id: 'connect',
    title: 'connect to first echo',
    module: 'connect',
    full: { count: 200, warmup: 20 },
    quick: { count: 20, warmup: 5 },
    transports: STREAMS,
    timeoutMs: 60e3,
    metrics: [
      { key: 'median', label: 'median µs', better: 'lower', digits: 0 },
      { key: 'p99', label: 'p99 µs', better: 'lower', digits: 0 }
    ]
  },
  {
    id: 'many-1k',
    title: (p) => `${p.count.toLocaleString('en-US')} concurrent connections`,
    module: 'many',
    full: { count: 1000 },
    quick: { count: 200 },
    transports: STREAMS,
    timeoutMs: 120e3,
    metrics: manyMetrics
  },
  {
    // net would need 20,000 descriptors (ulimit here: 20,000) and libutp times out handshakes at this count
    id: 'many-10k',
    title: (p) => `${p.count.toLocaleString('en-US')} concurrent connections`,
    module: 'many',
    full: { count: 10000 },
    quick: { count: 1000 },
    transports: ['utp-punch-rs', 'udx-native'],
    timeoutMs: 180e3,
    metrics: manyMetrics
  }
]
