'use strict'
// npm run bench:ledbat [-- --only=utp-punch-rs,utp-native] [--phase=SECONDS]
//
// The bottleneck experiment of /work/shared/research/ledbat-lab.md, as root: three namespaces with a
// 20 Mbit/s, 300 ms tbf queue on the router (lab.sh). A ping every 100 ms measures queueing delay.
// Phases: idle; cubic TCP alone; then for each transport, the transport alone and the transport
// started together with cubic TCP. Each phase is judged over its last three quarters. Results go to
// stdout and to the "LEDBAT" section of bench/RESULTS.md.

const { spawn, execFileSync } = require('child_process')
const path = require('path')

const { replaceSection } = require('../lib/sections')
const { median } = require('../lib/stats')
const { sleep } = require('../lib/measure')

const PREFIX = `upr-b${process.pid}`
const NS = { snd: `${PREFIX}-snd`, rtr: `${PREFIX}-rtr`, rcv: `${PREFIX}-rcv` }
const RECEIVER = '10.77.2.2'
const SENDER = '10.77.1.1'
const TCP_PORT = 9000
const UTP_PORT = 9100
const TRANSPORTS = ['utp-punch-rs', 'utp-punch-rs-64', 'utp-native', 'udx-native', 'utp-punch']
const SECTION = '## LEDBAT bottleneck (npm run bench:ledbat)'

const children = new Set()

function inNs (ns, cmd, args) {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.on('exit', () => children.delete(child))
  child.stderr.on('data', (d) => process.stderr.write(`  [${path.basename(args[0] || cmd)}] ${d}`))
  return child
}

/** Collect {"t","bytes"} lines a receiver prints */
function samples (child) {
  const out = []
  let rest = ''
  child.stdout.on('data', (d) => {
    const lines = (rest + d).split('\n')
    rest = lines.pop()
    for (const l of lines) if (l.startsWith('{')) out.push(JSON.parse(l))
  })
  return out
}

function stop (child) {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}

/** Mbit/s between two epoch-ms times from cumulative byte samples */
function goodput (series, from, to) {
  const a = series.filter((s) => s.t <= from).pop() ?? series.find((s) => s.t >= from)
  const b = series.filter((s) => s.t <= to).pop()
  if (!a || !b || b.t <= a.t) return 0
  return ((b.bytes - a.bytes) * 8) / ((b.t - a.t) / 1e3) / 1e6
}

function startPing () {
  const child = inNs(NS.snd, 'ping', ['-D', '-n', '-i', '0.1', RECEIVER])
  const rtts = []
  let rest = ''
  child.stdout.on('data', (d) => {
    const lines = (rest + d).split('\n')
    rest = lines.pop()
    for (const l of lines) {
      const m = /^\[(\d+\.\d+)\].*time=([\d.]+) ms/.exec(l)
      if (m) rtts.push({ t: Number(m[1]) * 1e3, ms: Number(m[2]) })
    }
  })
  return rtts
}

/** Run one phase of `seconds` with the given flows; returns the judged window's measurements */
async function phase (seconds, flows, rtts) {
  const receivers = []
  for (const f of flows) {
    const rx = f === 'tcp'
      ? inNs(NS.rcv, 'python3', [path.join(__dirname, 'tcp.py'), 'receive', String(TCP_PORT)])
      : inNs(NS.rcv, process.execPath, [path.join(__dirname, 'peer.js'), 'receive', f, String(UTP_PORT), SENDER])
    receivers.push({ flow: f, child: rx, series: samples(rx) })
  }
  await sleep(500)
  const start = Date.now()
  const senders = flows.map((f) => f === 'tcp'
    ? inNs(NS.snd, 'python3', [path.join(__dirname, 'tcp.py'), 'send', RECEIVER, String(TCP_PORT), String(seconds)])
    : inNs(NS.snd, process.execPath, [path.join(__dirname, 'peer.js'), 'send', f, RECEIVER, String(UTP_PORT), String(seconds)]))
  await sleep(seconds * 1000)
  const end = Date.now()
  const from = start + seconds * 250
  for (const c of [...senders, ...receivers.map((r) => r.child)]) stop(c)
  await sleep(1000) // let the queue drain before the next phase
  const delays = rtts.filter((r) => r.t >= from && r.t <= end).map((r) => r.ms)
  const result = { rttMs: median(delays) }
  for (const r of receivers) result[r.flow] = goodput(r.series, from, end)
  return result
}

function fmt (v, digits = 1) {
  return Number.isFinite(v) ? v.toFixed(digits) : '–'
}

function render (rows, tcpAlone, baseMs, seconds) {
  const lines = [
    SECTION,
    '',
    `- Date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}; ${seconds} s phases, each judged over its last ${seconds * 0.75} s`,
    '- Topology: sender and receiver namespaces joined through a router namespace whose egress toward',
    '  the receiver is `tbf rate 20mbit burst 15k latency 300ms`; offloads off; ping every 100 ms',
    `  measures the path's delay (idle: ${fmt(baseMs, 2)} ms). Competing flow: Python TCP sender with`,
    '  `TCP_CONGESTION` cubic. Transports run with default options unless the name says otherwise',
    '  (utp-punch-rs-64: `bufferSize: 64`, utp-punch\'s default, whose 64 KB window caps the queue it',
    '  can build at about 26 ms at 20 Mbit/s, so the window, not LEDBAT, sets its delay).',
    '- Pass rule: ledbat-lab.md\'s (alone, added delay 50–150 ms and goodput ≥ 70 % of TCP alone; beside',
    '  TCP, TCP gets ≥ 80 % of the total) with issue 4\'s bar for yielding: TCP keeps ≥ 95 % of its',
    '  goodput alone.',
    '',
    '| transport | alone: added delay (median ms) | alone: Mbit/s | beside TCP: transport Mbit/s | beside TCP: TCP Mbit/s | TCP share of total | TCP keeps (vs alone) | pass |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    `| cubic TCP alone | ${fmt(tcpAlone.rttMs - baseMs)} | ${fmt(tcpAlone.tcp)} | – | – | – | – | – |`
  ]
  for (const r of rows) {
    const added = r.alone.rttMs - baseMs
    const share = r.both.tcp / (r.both.tcp + r.both.utp)
    const keeps = r.both.tcp / tcpAlone.tcp
    const pass = added >= 50 && added <= 150 && r.alone.utp >= 0.7 * tcpAlone.tcp && share >= 0.8 && keeps >= 0.95
    lines.push(`| ${r.transport} | ${fmt(added)} | ${fmt(r.alone.utp)} | ${fmt(r.both.utp)} | ${fmt(r.both.tcp)} | ${fmt(100 * share)} % | ${fmt(100 * keeps)} % | ${pass ? 'PASS' : 'FAIL'} |`)
  }
  return lines.join('\n') + '\n'
}

/** Replace (or add) the LEDBAT section of RESULTS.md, keeping the others (the WAN section follows it) */
function writeSection (text) {
  const file = path.join(__dirname, '..', 'RESULTS.md')
  replaceSection(file, SECTION, text)
  process.stderr.write(`wrote ${file}\n`)
}

function cleanup () {
  for (const c of children) stop(c)
  try {
    execFileSync(path.join(__dirname, 'lab.sh'), ['down', PREFIX])
  } catch {}
}

async function main () {
  const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')))
  const transports = args.only ? args.only.split(',') : TRANSPORTS
  const seconds = Number(args.phase ?? 20)
  if (process.getuid() !== 0) throw new Error('needs root (network namespaces)')
  for (const tool of ['ip', 'tc', 'ping', 'ethtool', 'python3']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`])
    } catch {
      throw new Error(`${tool} is missing (Debian: apt-get install iproute2 iputils-ping ethtool python3)`)
    }
  }
  execFileSync(path.join(__dirname, 'lab.sh'), ['up', PREFIX], { stdio: 'inherit' })
  const rtts = startPing()
  await sleep(5000)
  const baseMs = median(rtts.map((r) => r.ms))
  process.stderr.write(`idle RTT ${fmt(baseMs, 3)} ms\n`)
  const tcpAlone = await phase(seconds, ['tcp'], rtts)
  process.stderr.write(`tcp alone: ${JSON.stringify(tcpAlone)}\n`)
  const rows = []
  for (const transport of transports) {
    const a = await phase(seconds, [transport], rtts)
    const b = await phase(seconds, ['tcp', transport], rtts)
    const row = { transport, alone: { rttMs: a.rttMs, utp: a[transport] }, both: { tcp: b.tcp, utp: b[transport] } }
    process.stderr.write(`${transport}: ${JSON.stringify(row)}\n`)
    rows.push(row)
  }
  const text = render(rows, tcpAlone, baseMs, seconds)
  process.stdout.write(text)
  if (!args.only) writeSection(text)
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    cleanup()
    process.exit(130)
  })
}

main()
  .catch((err) => {
    process.stderr.write(`bench:ledbat: ${err.message}\n`)
    process.exitCode = 1
  })
  .finally(cleanup)
