'use strict'
// npm run bench:wan [-- --profile=NAME,..] [--transport=NAME,..] [--reps=N] [--limit=S] [--trace] [--out=FILE]
//
// Transfers a file across emulated WAN paths on real kernel paths, as root: three namespaces (lab.sh),
// a 20 Mbit/s tbf bottleneck on the router, and the NAT lab's NFQUEUE shim (test/natlab/impair.py) on
// the router impairing each direction as the profile says. Every transport moves the same bytes on
// every profile, N repetitions (3), transport order rotating; a transfer that errs, delivers the wrong
// bytes or has not finished within the time limit counts as a failure (0 Mbit/s), never as a gap.
// The medians and the targets' ratios go to stdout and, on a run without --profile/--transport, to the
// "WAN" section of bench/RESULTS.md (the rest of the file is kept). See bench/README.md.

const { spawn, execFileSync } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const readline = require('readline')

const { median } = require('../lib/stats')
const { replaceSection } = require('../lib/sections')
const { transports, labels } = require('./transports')

const PREFIX = `wan${process.pid}`
const NS = { snd: `${PREFIX}-snd`, rtr: `${PREFIX}-rtr`, rcv: `${PREFIX}-rcv` }
const SENDER = '10.78.1.1'
const RECEIVER = '10.78.2.2'
const LAB = path.join(__dirname, 'lab.sh')
const IMPAIR = path.join(__dirname, '..', '..', 'test', 'natlab', 'impair.py')
const SECTION = '## WAN (npm run bench:wan)'
const MB = 1e6

// Each profile's spec applies to both directions (impair.py: one NFQUEUE per direction). All share the
// bottleneck: tbf 20 Mbit/s with a 300 ms queue toward the receiver. `bytes`: a few seconds to ~30 s.
const PROFILES = [
  { id: '20mbit', title: '50 ms RTT, 20 Mbit/s', spec: 'delay=25', lossy: false, bytes: 16 * MB },
  { id: 'loss0.1', title: '100 ms RTT, 0.1 % loss', spec: 'delay=50,loss=0.1', lossy: true, bytes: 10 * MB },
  { id: 'loss1', title: '100 ms RTT, 1 % loss', spec: 'delay=50,loss=1', lossy: true, bytes: 4 * MB },
  { id: 'jitter', title: '40 ± 10 ms each way, 2 % loss, 5 % reordering', spec: 'delay=40,jitter=10,fifo=1,loss=2,reorder=5', lossy: true, bytes: 3 * MB },
  { id: 'rtt600', title: '600 ms RTT, 20 Mbit/s', spec: 'delay=300', lossy: false, bytes: 16 * MB }
]
const RATE_MBIT = 20
const QUEUE_MS = 300
const TRANSPORTS = ['ledbat', 'cubic', 'tcp-cubic', 'tcp-bbr', 'utp-native', 'udx-native']
const PORTS = { 'ledbat': 9100, 'cubic': 9150, 'tcp-cubic': 9000, 'tcp-bbr': 9050, 'utp-native': 9200, 'udx-native': 9300 }

// The targets: [numerator, denominator, bar, which profiles]
const TARGETS = [
  { num: 'ledbat', den: 'utp-native', bar: 1.0, on: () => true, where: 'every profile' },
  { num: 'ledbat', den: 'tcp-cubic', bar: 0.9, on: (p) => !p.lossy, where: 'loss-free profiles' },
  { num: 'cubic', den: 'tcp-cubic', bar: 1.0, on: () => true, where: 'every profile' },
  { num: 'cubic', den: 'tcp-bbr', bar: 0.8, on: (p) => p.lossy, where: 'lossy profiles' }
]

const children = new Set()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const log = (line) => process.stderr.write(`${line}\n`)

function inNs (ns, cmd, args) {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  // 'close', not 'exit': every line the child printed has been read by then
  child.exited = new Promise((resolve) => child.on('close', (code, signal) => {
    children.delete(child)
    resolve({ code, signal })
  }))
  child.stderrText = ''
  child.stderr.on('data', (d) => { child.stderrText = (child.stderrText + d).slice(-2000) })
  return child
}

/** Calls onLine(obj) for every JSON line the child prints */
function jsonLines (child, onLine) {
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.startsWith('{')) return
    try {
      onLine(JSON.parse(line))
    } catch {}
  })
}

function stop (child, signal = 'SIGKILL') {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal)
}

function lab (...args) {
  execFileSync(LAB, [args[0], PREFIX, ...args.slice(1).map(String)], { stdio: ['ignore', 'inherit', 'inherit'] })
}

function nsOutput (ns, cmd, args) {
  try {
    return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    return ''
  }
}

/** The sender namespace's TCP RetransSegs counter */
function tcpRetransSegs () {
  const lines = nsOutput(NS.snd, 'cat', ['/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Tcp:'))
  if (lines.length < 2) return NaN
  const keys = lines[0].split(/\s+/)
  const values = lines[1].split(/\s+/)
  return Number(values[keys.indexOf('RetransSegs')])
}

/** The congestion control the kernel uses for our TCP connection, from ss -ti in the sender namespace */
function tcpInfo () {
  const text = nsOutput(NS.snd, 'ss', ['-tin', 'dst', RECEIVER])
  const m = /\b(cubic|bbr|reno)\b.*?\brtt:([\d.]+)\/.*?\bcwnd:(\d+)/s.exec(text)
  return m ? { cc: m[1], rttMs: Number(m[2]), cwnd: Number(m[3]) } : null
}

/** impair.py bound to both directions with the profile's spec; resolves once the queues are bound */
async function startShim (spec, seed) {
  const child = inNs(NS.rtr, 'python3', [IMPAIR, '--queue', `0=${spec}`, '--queue', `1=${spec}`, '--seed', String(seed)])
  const lines = []
  readline.createInterface({ input: child.stdout }).on('line', (l) => lines.push(l))
  const deadline = Date.now() + 10e3
  while (!lines.some((l) => l.startsWith('impair: bound'))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      stop(child)
      throw new Error(`impair.py did not start: ${child.stderrText || lines.join(' ')}`)
    }
    await sleep(20)
  }
  return { child, lines }
}

/** Stops the shim; returns its per-direction counts {fwd: {seen, dropped, reordered}, rev: ...} */
async function stopShim (shim) {
  stop(shim.child, 'SIGTERM')
  await Promise.race([shim.child.exited, sleep(3000)])
  stop(shim.child)
  const line = shim.lines.find((l) => l.startsWith('impair: stats')) ?? ''
  const counts = {}
  for (const [key, queue] of [['fwd', 0], ['rev', 1]]) {
    const m = new RegExp(`${queue}: \\{([^}]*)\\}`).exec(line)
    if (m) counts[key] = Object.fromEntries([...m[1].matchAll(/'(\w+)': (\d+)/g)].map((x) => [x[1], Number(x[2])]))
  }
  return counts
}

/** Median idle RTT in ms through the profile's shim and queue */
async function pingRtt () {
  const out = nsOutput(NS.snd, 'ping', ['-n', '-q', '-c', '10', '-i', '0.2', RECEIVER])
  const m = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(out)
  return m ? { min: Number(m[1]), avg: Number(m[2]), max: Number(m[3]) } : null
}

/** One transfer: resolves {ok, seconds, mbps, error, ...} and never rejects for a transport's failure */
async function transfer (profile, name, rep, opts, seq) {
  const bytes = profile.bytes
  const port = PORTS[name] + (seq % 40)
  const tcp = name.startsWith('tcp-') ? name.slice(4) : null
  if (tcp) lab('tcp', tcp)
  const shim = await startShim(profile.spec, 1000 * rep + PROFILES.indexOf(profile))
  const result = { ok: false, name, rep, bytes, trace: [] }
  const retransBefore = tcp ? tcpRetransSegs() : NaN
  const rx = inNs(NS.rcv, process.execPath, [path.join(__dirname, 'receiver.js'), name, String(port), String(bytes), SENDER])
  const rxState = { progress: 0 }
  let settle
  const settled = new Promise((resolve) => { settle = resolve })
  const failWith = (error) => {
    if (!result.error && !rxState.done) result.error = error
    settle()
  }
  jsonLines(rx, (m) => {
    if (m.ready) rxState.ready = true
    if (m.progress !== undefined) rxState.progress = m.progress
    if (m.done) {
      rxState.done = m
      rxState.progress = m.bytes
    }
    if (m.sha1) {
      rxState.sha1 = m.sha1
      result.receiverStats = m.stats
      settle()
    }
    if (m.error) failWith(`receiver: ${m.error}`)
  })
  rx.exited.then(({ code, signal }) => failWith(`receiver exited (${signal ?? code}) after ${rxState.progress} bytes: ${rx.stderrText.trim().split('\n').pop() ?? ''}`))
  const readyBy = Date.now() + 10e3
  while (!rxState.ready && !result.error && Date.now() < readyBy) await sleep(20)
  let tx = null
  if (rxState.ready) {
    tx = inNs(NS.snd, process.execPath, [path.join(__dirname, 'sender.js'), name, RECEIVER, String(port), String(bytes)])
    const txState = {}
    jsonLines(tx, (m) => {
      if (m.sha1) txState.sha1 = m.sha1
      if (m.start) result.start = m.t
      if (m.stats !== undefined) {
        result.trace.push({ t: m.t, stats: m.stats, received: rxState.progress })
        if (opts.trace) log(`    ${traceLine(m.t - result.start, m.stats, rxState.progress)}`)
      }
      if (m.final !== undefined) result.senderStats = m.final
      if (m.error) failWith(`sender: ${m.error}`)
    })
    tx.exited.then(({ code, signal }) => {
      if (!rxState.done) failWith(`sender exited (${signal ?? code}): ${tx.stderrText.trim().split('\n').pop() ?? ''}`)
    })
    result.txState = txState
    const timer = setTimeout(() => failWith(`time limit: ${opts.limit} s, ${(rxState.progress / MB).toFixed(2)} of ${(bytes / MB).toFixed(2)} MB arrived`), opts.limit * 1000)
    if (tcp) {
      setTimeout(() => { result.tcpInfo ??= tcpInfo() }, 1500)
    }
    await settled
    clearTimeout(timer)
    if (tcp) result.tcpInfo ??= tcpInfo()
  } else if (!result.error) {
    result.error = `receiver not ready after 10 s: ${rx.stderrText.trim()}`
  }
  // The sender prints its final stats on SIGTERM
  if (tx) {
    stop(tx, 'SIGTERM')
    await Promise.race([tx.exited, sleep(3000)])
    stop(tx)
  }
  stop(rx)
  await rx.exited
  result.shim = await stopShim(shim)
  if (tcp) result.tcpRetransmits = tcpRetransSegs() - retransBefore
  if (rxState.done && !result.error) {
    if (rxState.sha1 !== result.txState?.sha1) {
      result.error = `checksum mismatch: sent ${result.txState?.sha1}, received ${rxState.sha1}`
    } else if (tcp && result.tcpInfo && result.tcpInfo.cc !== tcp) {
      result.error = `the kernel used ${result.tcpInfo.cc}, not ${tcp}`
    } else {
      result.ok = true
      result.seconds = (rxState.done.t - result.start) / 1e3
      result.mbps = (bytes * 8) / result.seconds / 1e6
    }
  }
  result.received = rxState.progress
  delete result.txState
  return result
}

function fmt (v, digits = 1) {
  return Number.isFinite(v) ? v.toFixed(digits) : '–'
}

function traceLine (ms, s, received) {
  if (!s) return `${fmt(ms / 1e3)} s: no stats yet, received ${fmt(received / MB, 2)} MB`
  return `${fmt(ms / 1e3)} s: received ${fmt(received / MB, 2)} MB, rtt ${fmt(s.rtt / 1e3, 0)} ms, rto ${fmt(s.rto / 1e3, 0)} ms, ` +
    `cwnd ${fmt(s.cwnd / 1e3, 0)} kB, inFlight ${fmt(s.inFlight / 1e3, 0)} kB, peerWindow ${fmt(s.peerWindow / 1e3, 0)} kB, ` +
    `qdelay ${fmt(s.queuingDelay / 1e3, 0)} ms, mtu ${s.mtu}, retransmits ${s.retransmits}, timeouts ${s.timeouts}` +
    (s.congestion !== undefined ? `, congestion ${s.congestion}` : '')
}

/** One line about a finished transfer for the console and the report */
function summary (r) {
  const head = r.ok ? `${fmt(r.bytes / MB, 0)} MB in ${fmt(r.seconds, 2)} s = ${fmt(r.mbps, 2)} Mbit/s` : `FAILED: ${r.error}`
  const extra = []
  const s = r.senderStats ?? r.trace.at(-1)?.stats
  if (s) {
    const maxCwnd = Math.max(s.cwnd, ...r.trace.map((x) => x.stats?.cwnd ?? 0))
    extra.push(`sender: rtt ${fmt(s.rtt / 1e3, 0)} ms, cwnd ${fmt(s.cwnd / 1e3, 0)} kB (max ${fmt(maxCwnd / 1e3, 0)} kB), mtu ${s.mtu}, retransmits ${s.retransmits}, timeouts ${s.timeouts}, ` +
      `sent ${fmt(s.bytesSent / MB, 2)} MB` + (s.congestion !== undefined ? `, congestion ${s.congestion}` : ''))
  }
  if (r.receiverStats) extra.push(`receiver: duplicates ${r.receiverStats.duplicates}`)
  if (r.tcpInfo) extra.push(`kernel: ${r.tcpInfo.cc}, retransmitted segments ${r.tcpRetransmits}`)
  const f = r.shim?.fwd
  if (f && f.seen) extra.push(`shim toward receiver: ${f.seen} packets, ${fmt((100 * f.dropped) / f.seen, 2)} % dropped, ${fmt((100 * f.reordered) / f.seen, 2)} % reordered`)
  return extra.length ? `${head} (${extra.join('; ')})` : head
}

/** Median Mbit/s of a cell, failures counted as 0 */
function cellMedian (cell) {
  return median(cell.runs.map((r) => (r.ok ? r.mbps : 0)))
}

function cellText (cell) {
  if (cell.unavailable) return 'unavailable'
  if (!cell.runs.length) return '–'
  const ok = cell.runs.filter((r) => r.ok).length
  const m = cellMedian(cell)
  const n = cell.runs.length + cell.skipped
  if (m === 0) return `**FAILED** (${ok}/${n} ok)`
  return ok === n ? fmt(m, 2) : `${fmt(m, 2)} (${ok}/${n} ok)`
}

function render (ctx) {
  const { profiles, names, cells, opts, minutes, pings, unavailable } = ctx
  const cell = (p, t) => cells.get(`${p.id}/${t}`)
  const lines = [
    SECTION,
    '',
    `- Date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}; ${opts.reps} repetition${opts.reps === 1 ? '' : 's'} per cell, transport order rotating; run time ${fmt(minutes)} min; ` +
      `Node ${process.version}, kernel ${os.release()}, utp-native ${pkgVersion('utp-native')}, udx-native ${pkgVersion('udx-native')}.`,
    `- Lab (bench/wan/lab.sh): namespaces sender — router — receiver; the router's egress toward the receiver is \`tbf rate ${RATE_MBIT}mbit latency ${QUEUE_MS}ms\`` +
      ' (the bottleneck, on every profile); the NAT lab\'s NFQUEUE shim (test/natlab/impair.py) on the router applies the profile\'s delay, jitter, loss and' +
      ' reordering to each direction (RTTs are round trips: 50 ms RTT is 25 ms each way; loss and reordering hit data and ACKs alike). Offloads off.',
    '- TCP: Node `net` (Nagle off); congestion control set per namespace on the routes (`congctl lock cubic|bbr`: the sysctl is EPERM for cubic inside a namespace here),' +
      ' checked with `ss -ti` during each transfer; `tcp_rmem`/`tcp_wmem` max 32 MiB in both end namespaces, so TCP\'s windows never limit it (600 ms at 20 Mbit/s + 300 ms queue ≈ 2.3 MB).',
    '- Ours: default options, `congestion` as named (`new Node({ congestion })`). udx-native: fixed stream ids, no handshake. utp-native: defaults.',
    `- A transfer is timed from the sender's connect call to the receiver's last byte; bytes are counted and SHA-1 checked after the timed part. A transfer that errs, delivers wrong bytes or misses the ${opts.limit} s limit is a failure and counts as 0 Mbit/s in the median.`,
    '',
    `### Goodput, Mbit/s (median of ${opts.reps})`,
    '',
    `| transport | ${profiles.map((p) => `${p.id}: ${p.title}`).join(' | ')} |`,
    `| --- | ${profiles.map(() => '---:').join(' | ')} |`,
    `| *file size* | ${profiles.map((p) => `*${fmt(p.bytes / MB, 0)} MB*`).join(' | ')} |`,
    `| *ping RTT, idle (min/avg/max ms)* | ${profiles.map((p) => pings.get(p.id) ? `*${fmt(pings.get(p.id).min, 0)}/${fmt(pings.get(p.id).avg, 0)}/${fmt(pings.get(p.id).max, 0)}*` : '–').join(' | ')} |`
  ]
  for (const t of names) lines.push(`| ${labels[t]} | ${profiles.map((p) => cellText(cell(p, t))).join(' | ')} |`)
  for (const [t, why] of unavailable) lines.push('', `${labels[t]}: unavailable: ${why}.`)

  lines.push('', '### Targets (ratios of this run\'s medians)', '', '| target | profile | ratio | bar | result |', '| --- | --- | ---: | ---: | --- |')
  for (const target of TARGETS) {
    for (const p of profiles.filter(target.on)) {
      const a = cell(p, target.num)
      const b = cell(p, target.den)
      let ratio = '–'
      let verdict = 'not run'
      if (a?.unavailable || b?.unavailable) {
        verdict = `n/a: ${labels[a?.unavailable ? target.num : target.den]} unavailable`
      } else if (a?.runs.length && b?.runs.length) {
        const x = cellMedian(a)
        const y = cellMedian(b)
        if (y === 0) {
          ratio = x === 0 ? '0 / 0' : '∞'
          verdict = x === 0 ? 'FAIL (both failed)' : 'PASS (the reference failed)'
        } else {
          ratio = fmt(x / y, 2)
          verdict = x / y >= target.bar ? 'PASS' : 'FAIL'
        }
      }
      lines.push(`| ${labels[target.num]} ÷ ${labels[target.den]} (${target.where}) | ${p.id} | ${ratio} | ≥ ${fmt(target.bar, 1)} | ${verdict} |`)
    }
  }

  lines.push('', '### Every transfer', '')
  for (const p of profiles) {
    lines.push(`- **${p.id}** (${p.title}; shim spec each way \`${p.spec}\`)`)
    for (const t of names) {
      const c = cell(p, t)
      if (!c || c.unavailable || !c.runs.length) continue
      lines.push(`  - ${labels[t]}:`)
      for (const r of c.runs) lines.push(`    - rep ${r.rep}: ${summary(r)}`)
      if (c.skipped) lines.push(`    - ${c.skipped} repetition(s) skipped: most had failed already, so the median is a failure`)
    }
  }
  return lines.join('\n') + '\n'
}

function pkgVersion (name) {
  try {
    return require(`${name}/package.json`).version
  } catch {
    return '?'
  }
}

function parseArgs (argv) {
  const opts = { reps: 3, limit: 120, trace: false, profile: null, transport: null, out: null, partial: false }
  for (const a of argv) {
    const [key, value] = a.replace(/^--/, '').split('=')
    if (key === 'trace') opts.trace = true
    else if (key === 'reps' || key === 'limit') {
      opts[key] = Number(value)
      opts.partial = true
    } else if (key === 'profile' || key === 'transport') {
      opts[key] = value.split(',')
      opts.partial = true
    } else if (key === 'out') opts.out = value
    else if (key === 'help') {
      process.stdout.write(`npm run bench:wan -- [--profile=${PROFILES.map((p) => p.id).join(',')}] [--transport=${TRANSPORTS.join(',')}]\n` +
        '                      [--reps=N] [--limit=SECONDS] [--trace] [--out=FILE]\n')
      process.exit(0)
    } else throw new Error(`unknown argument ${a} (--help)`)
  }
  if (!(opts.reps >= 1) || !(opts.limit > 0)) throw new Error('--reps and --limit want positive numbers')
  for (const p of opts.profile ?? []) if (!PROFILES.some((x) => x.id === p)) throw new Error(`unknown profile ${p} (${PROFILES.map((x) => x.id).join(', ')})`)
  for (const t of opts.transport ?? []) if (!TRANSPORTS.includes(t)) throw new Error(`unknown transport ${t} (${TRANSPORTS.join(', ')})`)
  return opts
}

/** Namespaces left by a run that was killed outright (its pid is gone) */
function removeStaleLabs () {
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  for (const m of list.matchAll(/^wan(\d+)-(snd|rtr|rcv)\b/gm)) {
    let alive = true
    try {
      process.kill(Number(m[1]), 0)
    } catch (err) {
      alive = err.code !== 'ESRCH'
    }
    if (!alive) execFileSync('ip', ['netns', 'del', `wan${m[1]}-${m[2]}`])
  }
}

function cleanup () {
  for (const c of children) stop(c)
  try {
    execFileSync(LAB, ['down', PREFIX])
  } catch {}
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  if (process.getuid() !== 0) throw new Error('needs root (network namespaces)')
  for (const tool of ['ip', 'tc', 'ss', 'ping', 'ethtool', 'iptables', 'python3']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      throw new Error(`${tool} is missing (Debian: apt-get install iproute2 iputils-ping ethtool iptables python3)`)
    }
  }
  if (!fs.existsSync(path.join(__dirname, '..', '..', 'dist', 'index.js'))) throw new Error('dist/index.js is missing: npm run build first')
  const started = Date.now()
  const profiles = PROFILES.filter((p) => !opts.profile || opts.profile.includes(p.id))
  const names = TRANSPORTS.filter((t) => !opts.transport || opts.transport.includes(t))
  const unavailable = new Map()
  for (const t of names) {
    const why = transports[t].available()
    if (why) {
      unavailable.set(t, why)
      log(`${labels[t]}: UNAVAILABLE: ${why}`)
    }
  }
  removeStaleLabs()
  lab('up')
  lab('shape', RATE_MBIT, QUEUE_MS)
  const cells = new Map()
  const pings = new Map()
  let seq = 0
  for (const p of profiles) {
    const shim = await startShim(p.spec, 1)
    pings.set(p.id, await pingRtt())
    await stopShim(shim)
    const ping = pings.get(p.id)
    log(`== ${p.id}: ${p.title}, ${fmt(p.bytes / MB, 0)} MB; ping RTT min/avg/max ${ping ? `${fmt(ping.min)}/${fmt(ping.avg)}/${fmt(ping.max)}` : '?'} ms`)
    for (const t of names) cells.set(`${p.id}/${t}`, { runs: [], skipped: 0, unavailable: unavailable.has(t) })
    for (let rep = 1; rep <= opts.reps; rep++) {
      const order = names.map((_, i) => names[(i + rep - 1) % names.length])
      for (const t of order) {
        const cell = cells.get(`${p.id}/${t}`)
        if (cell.unavailable) continue
        // Once more than half the repetitions failed, the median is a failure whatever the rest do
        if (cell.runs.filter((r) => !r.ok).length > opts.reps / 2) {
          cell.skipped++
          continue
        }
        const r = await transfer(p, t, rep, opts, seq++)
        cell.runs.push(r)
        log(`  ${t} rep ${rep}: ${summary(r)}`)
        if (!r.ok && !opts.trace) for (const x of r.trace.slice(-15)) log(`    ${traceLine(x.t - r.start, x.stats, x.received)}`)
        await sleep(1000) // the queue and the shim drain before the next transfer
      }
    }
  }
  const minutes = (Date.now() - started) / 60e3
  const text = render({ profiles, names, cells, opts, minutes, pings, unavailable })
  process.stdout.write(`\n${text}`)
  // Only the full default run replaces the WAN section of RESULTS.md; others write to --out if given
  const out = opts.out ?? (opts.partial ? null : path.join(__dirname, '..', 'RESULTS.md'))
  if (out) {
    replaceSection(out, SECTION, text)
    log(`wrote the WAN section of ${out}`)
  }
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    cleanup()
    process.exit(130)
  })
}

main()
  .catch((err) => {
    log(`bench:wan: ${err.stack}`)
    process.exitCode = 1
  })
  .finally(cleanup)
