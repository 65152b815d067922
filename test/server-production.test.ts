// The rendezvous server as operators run it: the deploy/ recipes (systemd unit, Dockerfile) carry flags the
// real CLI parser accepts, the server started with such flags answers /healthz and /metrics in valid
// Prometheus text whose counters move, its --json logs are JSON lines with timestamps, and bad flag values
// are usage errors (exit status 2).
import type { ChildProcess } from 'child_process'
import { spawnSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type * as CommandModule from '../bin/rendezvous-command'
import { finish, start, BIN, type Run } from './helpers/cli'
import { pairUp } from './helpers/rendezvous-peer'
import { requireFromRoot, root } from './helpers/utp'

const { rendezvousOptions } = requireFromRoot('./dist/bin/rendezvous-command.js') as typeof CommandModule

const UNIT = path.join(root, 'deploy', 'utp-punch-rs-rendezvous.service')
const DOCKERFILE = path.join(root, 'deploy', 'Dockerfile')

/** The unit file as sections of key → values (a key may repeat) */
function parseUnit (text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[([A-Za-z]+)\]$/.exec(line)
    if (header !== null) {
      current = new Map()
      sections.set(header[1], current)
      continue
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line)
    if (kv === null || current === undefined) throw new Error(`not a unit file line: ${raw}`)
    current.set(kv[1], [...(current.get(kv[1]) ?? []), kv[2]])
  }
  return sections
}

function execStartArgs (): string[] {
  const service = parseUnit(fs.readFileSync(UNIT, 'utf8')).get('Service')
  const exec = service?.get('ExecStart')?.[0]
  if (exec === undefined) throw new Error('no ExecStart')
  const [binary, command, ...args] = exec.split(/\s+/)
  expect([path.basename(binary), command]).toEqual(['utp-punch-rs', 'rendezvous'])
  return args
}

function dockerCmdArgs (): string[] {
  const cmd = /^CMD (\[.*\])$/m.exec(fs.readFileSync(DOCKERFILE, 'utf8'))
  if (cmd === null) throw new Error('no CMD in the Dockerfile')
  const [binary, command, ...args] = JSON.parse(cmd[1]) as string[]
  expect([binary, command]).toEqual(['utp-punch-rs', 'rendezvous'])
  return args
}

interface Sample { name: string, labels: string, value: number }

/** Prometheus text exposition, line by line; throws on anything the format does not allow */
function parsePrometheus (text: string): { types: Map<string, string>, samples: Sample[] } {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  expect(text.endsWith('\n')).toBe(true)
  for (const line of text.slice(0, -1).split('\n')) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type !== null) {
      expect(types.has(type[1]), `second TYPE for ${type[1]}`).toBe(false)
      types.set(type[1], type[2])
      continue
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S/.test(line)) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$/.exec(line)
    if (sample === null) throw new Error(`not a Prometheus line: ${JSON.stringify(line)}`)
    const name = sample[1]
    const kind = types.get(name)
    if (kind === undefined) throw new Error(`sample ${name} has no TYPE before it`)
    if (kind === 'counter') expect(name).toMatch(/_total$/)
    else expect(name).not.toMatch(/_total$/)
    samples.push({ name, labels: sample[2] ?? '', value: Number(sample[3]) })
  }
  return { types, samples }
}

function value (samples: Sample[], name: string): number {
  const s = samples.find(x => x.name === name && x.labels === '')
  if (s === undefined) throw new Error(`no sample ${name}`)
  return s.value
}

async function get (port: number, url: string): Promise<{ status: number, type: string, body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${url}`, { signal: AbortSignal.timeout(5000) })
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() }
}

describe('deploy recipes', () => {
  it('the systemd unit parses, has the hardening keys, and passes systemd-analyze verify where present', () => {
    const unit = parseUnit(fs.readFileSync(UNIT, 'utf8'))
    const service = unit.get('Service')
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install'])
    for (const [key, want] of [['DynamicUser', 'yes'], ['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['PrivateTmp', 'yes'],
      ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'], ['Restart', 'on-failure']] as const) {
      expect(service?.get(key), key).toEqual([want])
    }
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target'])
    const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' })
    if (analyze.error !== undefined) return // no systemd here: the parse above is the check
    // The unit names the installed binary; verify a copy that names this tree's (the same program)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-unit-'))
    try {
      const copy = path.join(dir, path.basename(UNIT))
      fs.writeFileSync(copy, fs.readFileSync(UNIT, 'utf8').replace('/usr/local/bin/utp-punch-rs', BIN))
      const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', timeout: 30_000 })
      const complaints = `${r.stdout}${r.stderr}`.split('\n').filter(l => l.includes(path.basename(UNIT)))
      expect(complaints).toEqual([])
      expect(r.status).toBe(0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 40_000)

  it('ExecStart and the Dockerfile CMD use flags the real CLI parser accepts', () => {
    const unitOptions = rendezvousOptions(execStartArgs())
    expect(unitOptions).toMatchObject({ port: 7000, host: '0.0.0.0', httpHost: '127.0.0.1', relayRate: 1e6, maxRelays: 256, relayBudget: { bytes: 36e9, windowMs: 3_600_000 } })
    const dockerOptions = rendezvousOptions(dockerCmdArgs())
    expect(dockerOptions).toMatchObject({ port: 7000, httpHost: '0.0.0.0', registrationRate: { perPrefix: { perSecond: 10, burst: 40 } }, rateLimit: { perSecond: 20, burst: 40 } })
    expect(fs.readFileSync(DOCKERFILE, 'utf8')).toMatch(/^FROM node:20-slim$/m)
    expect(fs.readFileSync(DOCKERFILE, 'utf8')).toMatch(/^USER (?!root)\S+$/m)
    expect(fs.readFileSync(DOCKERFILE, 'utf8')).toMatch(/^EXPOSE 7000\/udp 7000\/tcp$/m)
  })
})

describe('rendezvous server started by the CLI', () => {
  let server: ChildProcess
  let exit: Promise<Run>
  let port = 0
  let out = ''

  beforeAll(async () => {
    // The unit's flags, on loopback and a free port
    const args = execStartArgs().map(a => a === '0.0.0.0' ? '127.0.0.1' : a)
    args[args.indexOf('--port') + 1] = '0'
    server = start(['rendezvous', ...args, '--burn-time', '2m', '--relay-idle', '30s', '--max-registrations', '100'])
    exit = finish(server, 60_000)
    server.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    const deadline = Date.now() + 15_000
    while (!out.includes('\n') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    port = (JSON.parse(out.slice(0, out.indexOf('\n'))) as { port: number }).port
  }, 20_000)

  afterAll(async () => {
    server?.kill('SIGTERM')
    await exit
  })

  it('answers /healthz, and /metrics in Prometheus text whose pairing counter moves after one pairing', async () => {
    expect(await get(port, '/healthz')).toMatchObject({ status: 200, body: 'ok' })
    const before = await get(port, '/metrics')
    expect(before.status).toBe(200)
    expect(before.type).toMatch(/^text\/plain; version=0\.0\.4/)
    const b = parsePrometheus(before.body)
    for (const name of ['pairings_total', 'registrations', 'relays', 'relayed_bytes_total', 'rate_limited_datagrams_total', 'retries_total', 'burned_keys', 'uptime_seconds', 'refusals_total']) {
      expect(b.types.has(`utp_punch_rendezvous_${name}`), name).toBe(true)
    }
    const { a, b: peer } = await pairUp({ address: '127.0.0.1', port }, 'n:4711')
    try {
      const after = parsePrometheus((await get(port, '/metrics')).body)
      expect(value(after.samples, 'utp_punch_rendezvous_pairings_total')).toBe(value(b.samples, 'utp_punch_rendezvous_pairings_total') + 1)
      expect(value(after.samples, 'utp_punch_rendezvous_registrations')).toBe(2)
      expect(value(after.samples, 'utp_punch_rendezvous_retries_total')).toBeGreaterThan(value(b.samples, 'utp_punch_rendezvous_retries_total'))
    } finally {
      a.close()
      peer.close()
    }
  }, 20_000)

  it('logs JSON lines with an ISO timestamp, level and event, the pairing among them', async () => {
    const deadline = Date.now() + 5000
    while (!out.includes('"paired"') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    const lines = out.trim().split('\n').map(l => JSON.parse(l) as { ts: string, level: string, event: string })
    for (const l of lines) {
      expect(new Date(l.ts).toISOString()).toBe(l.ts)
      expect(l.level).toBe('info')
    }
    expect(lines.map(l => l.event)).toEqual(['listening', 'paired'])
  }, 10_000)
})

describe('bad flag values', () => {
  it('exit 2 with a message naming the flag', async () => {
    for (const [flag, bad] of [['--max-relays', 'many'], ['--relay-rate', 'fast'], ['--relay-budget', '36GB'], ['--registration-rate', '10/h'], ['--burn-time', 'soon'], ['--http-host', 'localhost'], ['--check-port', '70000'], ['--http-timeout', '50ms']]) {
      const r = await finish(start(['rendezvous', '--port', '0', '--host', '127.0.0.1', flag, bad]), 15_000)
      expect(r.code, `${flag} ${bad}`).toBe(2)
      expect(r.stderr).toMatch(new RegExp(`${flag}|${flag.slice(2).replace(/-(\w)/g, (_m: string, c: string) => c.toUpperCase())}`))
    }
  }, 60_000)
})
