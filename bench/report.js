'use strict'
// Turns the runs' outcomes into markdown: medians, ratios to TCP and udx-native, the issue's targets
// for utp-punch-rs, every repetition, and the machine they ran on

const { median } = require('./lib/stats')

const COLUMNS = ['utp-punch-rs', 'utp-punch-rs-encrypted', 'net', 'udx-native', 'utp-native', 'utp-punch', 'dgram']
const OURS = 'utp-punch-rs'

// The targets of issues 4 and 12: ours (utp-punch-rs unless `ours` says which) ÷ reference, compared with a bound
const TARGETS = [
  { what: 'bulk throughput', scenario: 'bulk', key: 'mbps', vs: 'net', op: '>=', bound: 1.0 },
  { what: 'bulk throughput', scenario: 'bulk', key: 'mbps', vs: 'udx-native', op: '>=', bound: 5 },
  { what: 'bulk throughput, ~1,400 B packets', scenario: 'bulk-1400', key: 'mbps', vs: 'udx-native', op: '>=', bound: 3 },
  { what: 'CPU per GB (bulk)', scenario: 'bulk', key: 'cpuPerGB', vs: 'udx-native', op: '<=', bound: 0.5 },
  { what: 'ping-pong RTT p50', scenario: 'pingpong', key: 'p50', vs: 'udx-native', op: '<=', bound: 1.2 },
  { what: 'ping-pong RTT p99', scenario: 'pingpong', key: 'p99', vs: 'net', op: '<=', bound: 1.0 },
  { what: 'connect to first echo (median)', scenario: 'connect', key: 'median', vs: 'net', op: '<=', bound: 1.0 },
  // issue 12: what encryption (secureSocket) may cost, against the plain streams in the same run
  { what: 'encrypted bulk throughput', scenario: 'bulk', key: 'mbps', ours: 'utp-punch-rs-encrypted', vs: 'utp-punch-rs', op: '>=', bound: 0.85 },
  { what: 'encrypted bulk throughput, both ways', scenario: 'bulk-both', key: 'mbps', ours: 'utp-punch-rs-encrypted', vs: 'utp-punch-rs', op: '>=', bound: 0.85 }
]

function fmt (value, metric) {
  const v = value * (metric.scale ?? 1)
  return v.toLocaleString('en-US', { minimumFractionDigits: metric.digits, maximumFractionDigits: metric.digits })
}

/** a ÷ b, or NaN when b is not a positive number (memory deltas can be negative noise) */
function div (a, b) {
  return b > 0 ? a / b : NaN
}

function ratio (r) {
  if (!Number.isFinite(r) || r < 0) return '–'
  return `${r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2)}×`
}

/** Median of one metric over a transport's successful repetitions, or NaN */
function medianOf (outcomes, key) {
  const values = (outcomes ?? []).filter((o) => o.ok && typeof o.result[key] === 'number').map((o) => o.result[key])
  return median(values)
}

function cell (outcomes, metric) {
  if (!outcomes) return '–'
  const failed = outcomes.filter((o) => !o.ok)
  if (failed.length === outcomes.length) return `failed: ${failed[0].reason}`
  const m = medianOf(outcomes, metric.key)
  if (Number.isNaN(m)) return '–'
  return fmt(m, metric) + (failed.length ? ` (${failed.length}/${outcomes.length} failed: ${failed[0].reason})` : '')
}

function table (header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map((_, i) => (i < 2 ? '---' : '---:'))), ...rows.map(line)].join('\n')
}

/** Rows of (scenario, metric) that have a value for some transport */
function metricRows (scenarios, outcomes) {
  const rows = []
  for (const s of scenarios) {
    for (const metric of s.metrics) {
      const present = Object.values(outcomes[s.id] ?? {}).some((os) => os.some((o) => o.ok && metric.key in o.result))
      const anyFailed = Object.values(outcomes[s.id] ?? {}).some((os) => os.every((o) => !o.ok))
      if (present || (anyFailed && metric === s.metrics[0])) rows.push({ s, metric })
    }
  }
  return rows
}

function resultsTable (scenarios, outcomes, columns) {
  const rows = metricRows(scenarios, outcomes).map(({ s, metric }) => [s.title, metric.label, ...columns.map((t) => cell(outcomes[s.id]?.[t], metric))])
  return table(['scenario', 'metric', ...columns], rows)
}

function ratioTable (scenarios, outcomes, columns) {
  const rows = []
  for (const { s, metric } of metricRows(scenarios, outcomes)) {
    if (metric.key === 'lossPct') continue
    const tcp = medianOf(outcomes[s.id]?.net, metric.key)
    const udx = medianOf(outcomes[s.id]?.['udx-native'], metric.key)
    rows.push([s.title, metric.label, ...columns.map((t) => {
      const v = medianOf(outcomes[s.id]?.[t], metric.key)
      if (Number.isNaN(v)) return '–'
      return `${ratio(div(v, tcp))} / ${ratio(div(v, udx))}`
    })])
  }
  return table(['scenario', 'metric', ...columns], rows)
}

function targetTable (outcomes) {
  const rows = TARGETS.map((t) => {
    const ours = medianOf(outcomes[t.scenario]?.[t.ours ?? OURS], t.key)
    const ref = medianOf(outcomes[t.scenario]?.[t.vs], t.key)
    const r = div(ours, ref)
    let verdict = 'not measured'
    if (Number.isFinite(r)) verdict = (t.op === '>=' ? r >= t.bound : r <= t.bound) ? 'PASS' : 'FAIL'
    return [t.ours ? `${t.what} (${t.ours})` : t.what, `vs ${t.vs}`, `${t.op} ${t.bound}×`, ratio(r), verdict]
  })
  return table(['target (utp-punch-rs)', 'compared with', 'required', 'measured', 'result'], rows)
}

function repetitionsTable (scenarios, outcomes, columns) {
  const rows = metricRows(scenarios, outcomes).map(({ s, metric }) => [s.title, metric.label, ...columns.map((t) => {
    const os = outcomes[s.id]?.[t]
    if (!os) return '–'
    return os.map((o) => (!o.ok ? 'failed' : typeof o.result[metric.key] === 'number' ? fmt(o.result[metric.key], metric) : '–')).join(', ')
  })])
  return table(['scenario', 'metric', ...columns], rows)
}

function renderReport ({ machine, mode, scenarios, outcomes, quick }) {
  const columns = COLUMNS.filter((t) => scenarios.some((s) => outcomes[s.id]?.[t]))
  const counts = scenarios.filter((s) => s.module === 'many').map((s) => `${s.title}: ${s.transports.join(', ')}`)
  const tables = [
    `## Results (medians; ${mode})`,
    '',
    resultsTable(scenarios, outcomes, columns),
    '',
    '"–": not run for that transport (net cannot cap its segment size; dgram only does one-way bulk;',
    `the 10,000-connection row runs only the transports that cope with that count). ${counts.join('; ')}.`,
    'Many-connection memory is per connection with both ends (client and server) in the process.',
    '',
    '## Ratios: × TCP (net) / × udx-native',
    '',
    'Each transport\'s median divided by net\'s and by udx-native\'s in the same row. For MB/s higher is',
    'better; for CPU, latency, time and memory lower is better.',
    '',
    ratioTable(scenarios, outcomes, columns),
    '',
    '## Targets (issues 4 and 12)',
    '',
    targetTable(outcomes),
    ''
  ].join('\n')
  const versions = columns.map((t) => `${t} ${machine.versions[t]}`).join(', ')
  const header = [
    '# Benchmark results',
    '',
    `Generated by \`npm run bench${quick ? ' -- --quick' : ''}\` (bench/run.js); see bench/README.md for what each scenario does.`,
    '',
    `- Date: ${machine.date}`,
    `- Machine: ${machine.cpu}, nproc ${machine.nproc}, ${machine.memoryGiB} GiB, ${machine.kernel}`,
    `- Node: ${machine.node}`,
    `- Versions: ${versions}`,
    `- Run: ${mode}; each (scenario, transport) in a fresh child process, transports round-robin`,
    '  within each repetition; client and server in one process on 127.0.0.1',
    ''
  ].join('\n')
  const appendix = [
    '## All repetitions',
    '',
    repetitionsTable(scenarios, outcomes, columns),
    ''
  ].join('\n')
  return { text: `${header}\n${tables}`, markdown: `${header}\n${tables}\n${appendix}` }
}

module.exports = { renderReport }
