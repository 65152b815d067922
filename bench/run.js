'use strict'
// npm run bench [-- --quick] [--only=net,udx-native] [--scenario=bulk,pingpong] [--reps=N] [--out=FILE]
//
// Runs every (scenario, transport) pair in a fresh child process with a time limit, transports
// round-robin within each repetition so machine drift hits them alike, then prints medians, ratios
// and the targets. A full run with no filters also writes bench/RESULTS.md.

const { execFile } = require('child_process')
const fs = require('fs')
const path = require('path')

const scenarios = require('./scenarios')
const { machineInfo } = require('./machine')
const { renderReport } = require('./report')

function parseArgs (argv) {
  const args = { quick: false, only: null, scenario: null, reps: null, out: null }
  for (const arg of argv) {
    const [key, value] = arg.replace(/^--/, '').split('=')
    if (key === 'quick') args.quick = true
    else if (key === 'only') args.only = value.split(',')
    else if (key === 'scenario') args.scenario = value.split(',')
    else if (key === 'reps') args.reps = Number(value)
    else if (key === 'out') args.out = value
    else throw new Error(`unknown argument ${arg}`)
  }
  return args
}

/** One child run: resolves to { ok: true, result } or { ok: false, reason }, never rejects */
function runChild (transport, scenario, params) {
  return new Promise((resolve) => {
    const args = ['--expose-gc', path.join(__dirname, 'child.js'), transport, scenario.module, JSON.stringify(params)]
    execFile(process.execPath, args, { timeout: scenario.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '))
      if (!err && line) return resolve({ ok: true, result: JSON.parse(line.slice(7)) })
      let reason
      if (err && err.killed) reason = `timeout after ${scenario.timeoutMs / 1e3} s`
      else reason = (stderr.trim().split('\n').pop() || (err ? `exit ${err.code}` : 'no result')).slice(0, 80)
      resolve({ ok: false, reason })
    })
  })
}

function short (outcome) {
  if (!outcome.ok) return `failed: ${outcome.reason}`
  return Object.entries(outcome.result).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toPrecision(4) : v}`).join(' ')
}

/** The hand-written analysis of the targets a run misses (bench/GAPS.md) */
function gapsSection () {
  const file = path.join(__dirname, 'GAPS.md')
  return fs.existsSync(file) ? `\n${fs.readFileSync(file, 'utf8')}` : ''
}

/** The section bench:ledbat wrote into an existing report, kept when the report is rewritten */
function ledbatSection (file) {
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
  const at = old.indexOf('## LEDBAT')
  return at >= 0 ? `\n${old.slice(at)}` : ''
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'index.js'))) {
    throw new Error('dist/index.js is missing: run `npm install` (or `npm run build`) first')
  }
  const reps = args.reps ?? (args.quick ? 1 : 3)
  const selected = scenarios
    .filter((s) => !args.scenario || args.scenario.includes(s.id))
    .map((s) => {
      const params = args.quick ? s.quick : s.full
      const title = typeof s.title === 'function' ? s.title(params) : s.title
      return { ...s, title, params, transports: s.transports.filter((t) => !args.only || args.only.includes(t)) }
    })
    .filter((s) => s.transports.length > 0)

  // outcomes[scenarioId][transport] = [outcome per repetition]
  const outcomes = {}
  const started = Date.now()
  for (let rep = 0; rep < reps; rep++) {
    for (const scenario of selected) {
      // Rotate the order each repetition so no transport always runs first
      const order = scenario.transports.map((_, i, all) => all[(i + rep) % all.length])
      for (const transport of order) {
        const outcome = await runChild(transport, scenario, scenario.params)
        ;((outcomes[scenario.id] ??= {})[transport] ??= []).push(outcome)
        process.stderr.write(`[${rep + 1}/${reps}] ${scenario.id} ${transport}: ${short(outcome)}\n`)
      }
    }
  }

  const report = renderReport({
    machine: machineInfo(),
    mode: `${args.quick ? 'quick' : 'full'}, ${reps} repetition${reps === 1 ? '' : 's'}, ${((Date.now() - started) / 60e3).toFixed(1)} min`,
    scenarios: selected,
    outcomes,
    quick: args.quick
  })
  process.stdout.write(report.text)
  const filtered = args.quick || args.only || args.scenario || args.reps
  const out = args.out ?? (filtered ? null : path.join(__dirname, 'RESULTS.md'))
  if (out) {
    fs.writeFileSync(out, report.markdown + gapsSection() + ledbatSection(out))
    process.stderr.write(`wrote ${out}\n`)
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.message}\n`)
  process.exit(1)
})
