// `utp-punch-rs rendezvous`: runs a RendezvousServer with a flag for each of its options, and logs one line
// per event with an ISO timestamp (text, or JSON lines {ts, level, event, ...} with --json). The logs name
// keys (nameplates, public by design) and addresses, never a pairing secret: the server never sees one.

import * as net from 'net'

import { RendezvousServer, type RendezvousServerOptions } from '../lib/server/server'
import type { Rate } from '../lib/server/limits'
import { durationOption, parseArgs, portOption, stringOption, UsageError } from './args'
import { sizeOption } from './incoming'
import { hostPort } from '../lib/debug'

export const RENDEZVOUS_SPEC = {
  help: 'boolean',
  port: 'string',
  host: 'string',
  http: 'boolean',
  'http-host': 'string',
  'http-timeout': 'string',
  relay: 'boolean',
  'relay-rate': 'string',
  'relay-idle': 'string',
  'max-relays': 'string',
  'relays-per-prefix': 'string',
  'relay-budget': 'string',
  'registration-ttl': 'string',
  'max-registrations': 'string',
  'registrations-per-prefix': 'string',
  'registration-rate': 'string',
  'registration-rate-global': 'string',
  'burn-time': 'string',
  'max-message-size': 'string',
  'rate-limit': 'string',
  'unverified-rate': 'string',
  'start-delay': 'string',
  'mapping-check': 'boolean',
  'check-port': 'string',
  'mapping-wait': 'string',
  json: 'boolean'
} as const

/** The command's help, without the exit-status table the CLI appends to every command's */
export const RENDEZVOUS_HELP = `usage: utp-punch-rs rendezvous [--port 7000] [--host 0.0.0.0] [options] [--json]

Pairs peers that register under the same code and relays for those that cannot punch through.
UDP carries the protocol; GET /healthz, GET /stats (JSON) and GET /metrics (Prometheus text) answer over
HTTP (TCP) on the same port, on --http-host. The first line on stdout is "rendezvous server listening on
HOST:PORT" (--port 0 picks a free port); then one line per event (pairing, relay, NAT rebinding, burned
key), each starting with an ISO 8601 timestamp. SIGINT or SIGTERM stops the server (exit status 0).
Durations: 30s, 500ms, 2m (a bare number is seconds). Sizes: 1MB, 36GB. Rates: N/s or N/s:BURST.

  --port N                     UDP and TCP port (default 7000; 0: any free port)
  --host ADDR                  address to bind (default 0.0.0.0; :: for dual-stack)
  --no-http                    no HTTP side at all
  --http-host ADDR             address of the HTTP side (default 127.0.0.1: only this machine)
  --http-timeout DUR           HTTP header, request and idle timeout (default 5s)
  --no-relay                   never relay
  --relay-rate SIZE/s          relay bandwidth cap per pair of peers (default 1MB/s)
  --relay-idle DUR             close a relay unused for this long (default 60s)
  --max-relays N               relays at once (default 256)
  --relays-per-prefix N        relays at once per /24 or /64 (default 4)
  --relay-budget SIZE/DUR      bytes all relays may forward per window (default 36GB/1h)
  --registration-ttl DUR       forget a registration without keepalive after (default 60s)
  --max-registrations N        registrations at once (default 10000)
  --registrations-per-prefix N registrations at once per /24 or /64 (default 64)
  --registration-rate RATE     new registrations per /24 or /64 (default 10/s:40)
  --registration-rate-global RATE  new registrations in total (default 50/s:100)
  --burn-time DUR              how long a used key is refused (default 10m)
  --max-message-size N         larger datagrams are refused, bytes (default 1200)
  --rate-limit RATE            datagrams per verified source IP (default 20/s:40)
  --unverified-rate RATE       datagrams from unverified sources, all together (default 5000/s:10000)
  --start-delay DUR            least delay before paired peers probe (default 300ms)
  --no-mapping-check           do not measure NAT mappings with a second port
  --check-port N               the mapping-check port (default 0: any free port)
  --mapping-wait DUR           how long a pairing waits for mapping checks (default 1s)
  --json                       JSON lines instead: {"ts","level","event":"listening","address","port"},
                               then {"ts","level","event":"paired"|"relay"|"moved"|"burned",...}, and on
                               exit {"ts","level","event":"closed","stats"}

`

interface Io { stdout: NodeJS.WritableStream }

/** The server options the command line asks for; throws UsageError for a bad value */
export function rendezvousOptions (argv: readonly string[]): RendezvousServerOptions {
  const args = parseArgs(argv, RENDEZVOUS_SPEC)
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument ${args.positionals[0]}`)
  const o = args.options
  const ms = (name: keyof typeof RENDEZVOUS_SPEC): number | undefined => o[name] === undefined ? undefined : durationOption(o[name], name, 0)
  const rates = {
    perPrefix: rateOption(o['registration-rate'], 'registration-rate'),
    global: rateOption(o['registration-rate-global'], 'registration-rate-global')
  }
  const options: RendezvousServerOptions = {
    port: portOption(o.port, 'port', 7000),
    host: ipOption(o.host, 'host') ?? '0.0.0.0',
    http: o.http !== false,
    httpHost: ipOption(o['http-host'], 'http-host'),
    httpTimeoutMs: ms('http-timeout'),
    relay: o.relay !== false,
    relayRate: bytesPerSecondOption(o['relay-rate'], 'relay-rate'),
    relayIdleMs: ms('relay-idle'),
    maxRelays: countOption(o['max-relays'], 'max-relays'),
    relaysPerPrefix: countOption(o['relays-per-prefix'], 'relays-per-prefix'),
    relayBudget: budgetOption(o['relay-budget'], 'relay-budget'),
    registrationTtlMs: ms('registration-ttl'),
    maxRegistrations: countOption(o['max-registrations'], 'max-registrations'),
    registrationsPerPrefix: countOption(o['registrations-per-prefix'], 'registrations-per-prefix'),
    registrationRate: rates.perPrefix === undefined && rates.global === undefined
      ? undefined
      : { perPrefix: rates.perPrefix ?? { perSecond: 10, burst: 40 }, global: rates.global ?? { perSecond: 50, burst: 100 } },
    burnMs: ms('burn-time'),
    maxMessageSize: countOption(o['max-message-size'], 'max-message-size', 64),
    rateLimit: rateOption(o['rate-limit'], 'rate-limit'),
    unverifiedRate: rateOption(o['unverified-rate'], 'unverified-rate'),
    startDelayMs: ms('start-delay'),
    mappingCheck: o['mapping-check'] !== false,
    checkPort: portOption(o['check-port'], 'check-port', 0),
    mappingWaitMs: ms('mapping-wait')
  }
  for (const key of Object.keys(options) as Array<keyof RendezvousServerOptions>) if (options[key] === undefined) delete options[key]
  return options
}

function ipOption (value: string | boolean | undefined, name: string): string | undefined {
  const s = stringOption(value, name)
  if (s !== undefined && net.isIP(s) === 0) throw new UsageError(`--${name} must be an IP address, got ${s}`)
  return s
}

function countOption (value: string | boolean | undefined, name: string, min = 0): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`--${name} must be a whole number >= ${min}, got ${String(value)}`)
  return Number(value)
}

/** "1MB/s", "500kB/s", "1000000" (bytes per second) */
function bytesPerSecondOption (value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined
  const n = typeof value === 'string' ? sizeOrUndefined(value.replace(/\/s$/, ''), name) : undefined
  if (n === undefined || n < 1) throw new UsageError(`--${name} must be a positive rate such as 1MB/s, got ${String(value)}`)
  return n
}

/** "36GB/1h", "1GB/10m" */
function budgetOption (value: string | boolean | undefined, name: string): { bytes: number, windowMs: number } | undefined {
  if (value === undefined) return undefined
  const m = typeof value === 'string' ? /^([^/]+)\/(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value) : null
  const bytes = m === null ? undefined : sizeOrUndefined(m[1], name)
  if (m === null || bytes === undefined) throw new UsageError(`--${name} must be SIZE/DURATION such as 36GB/1h, got ${String(value)}`)
  const windowMs = m[3] === 'h' ? Number(m[2]) * 3_600_000 : durationOption(`${m[2]}${m[3] ?? ''}`, name, 0)
  if (windowMs < 1) throw new UsageError(`--${name}: the window must be at least 1 ms`)
  return { bytes, windowMs }
}

/** A size, or undefined when `text` is not one: the caller names the whole value in its own message */
function sizeOrUndefined (text: string, name: string): number | undefined {
  try {
    return sizeOption(text, name)
  } catch {
    return undefined
  }
}

/** "20/s", "20/s:40", "20" (per second; the burst defaults to twice the rate) */
function rateOption (value: string | boolean | undefined, name: string): Rate | undefined {
  if (value === undefined) return undefined
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)(?:\/s)?(?::(\d+))?$/.exec(value) : null
  if (m === null) throw new UsageError(`--${name} must be a rate such as 20/s or 20/s:40 (per second, with a burst), got ${String(value)}`)
  const perSecond = Number(m[1])
  const burst = m[2] === undefined ? Math.max(1, Math.ceil(perSecond * 2)) : Number(m[2])
  if (burst < 1) throw new UsageError(`--${name}: the burst must be at least 1`)
  return { perSecond, burst }
}

/** Runs the server until SIGINT or SIGTERM; resolves with the exit status */
export async function rendezvousCommand (argv: readonly string[], io: Io, help: () => number): Promise<number> {
  if (parseArgs(argv, RENDEZVOUS_SPEC).options.help === true) return help()
  const json = argv.includes('--json')
  let server: RendezvousServer
  try {
    server = new RendezvousServer(rendezvousOptions(argv))
  } catch (e) {
    // The library's own range checks (say --http-timeout below 100 ms) are usage errors here
    if (e instanceof RangeError || e instanceof TypeError) throw new UsageError(e.message)
    throw e
  }
  const log = (event: string, fields: Record<string, unknown>, text: string): void => {
    const ts = new Date().toISOString()
    io.stdout.write(json ? JSON.stringify({ ts, level: 'info', event, ...fields }) + '\n' : `${ts} ${text}\n`)
  }
  const { address, port } = await server.listen()
  // The first line is a contract scripts rely on: no timestamp before it in text mode
  if (json) io.stdout.write(JSON.stringify({ ts: new Date().toISOString(), level: 'info', event: 'listening', address, port }) + '\n')
  else io.stdout.write(`rendezvous server listening on ${hostPort(address, port)}\n`)
  server.on('paired', (p: { key: string, connect: { address: string, port: number }, accept: { address: string, port: number } }) => {
    log('paired', { key: p.key, connect: p.connect, accept: p.accept }, `paired ${hostPort(p.connect.address, p.connect.port)} (connects) with ${hostPort(p.accept.address, p.accept.port)} (key ${p.key})`)
  })
  server.on('relay', (r: { key: string, ports: number[] }) => log('relay', { key: r.key, ports: r.ports }, `relay allocated on ports ${r.ports.join(' and ')} (key ${r.key})`))
  server.on('moved', (m: { key: string, to: { address: string, port: number } }) => {
    log('moved', { key: m.key, to: m.to }, `a paired peer moved to ${hostPort(m.to.address, m.to.port)} (NAT rebinding): its peer was told`)
  })
  server.on('burned', (b: { key: string, reason: string }) => log('burned', { key: b.key, reason: b.reason }, `key ${b.key} burned (${b.reason})`))
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.removeListener('SIGINT', stop)
      process.removeListener('SIGTERM', stop)
      resolve()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  const stats = server.stats()
  await server.close()
  log('closed', { stats }, `closed after ${stats.uptimeSeconds} s: ${stats.pairings} pairings, ${stats.relays} relays`)
  return 0
}
