// RendezvousServer's options: what each means, its default, and the checks that turn bad values into clear
// errors before anything binds.

import * as net from 'net'

import { MAX_MESSAGE_SIZE, type Endpoint } from '../rendezvous/protocol'
import type { Rate } from './limits'

export interface RendezvousServerOptions {
  /** Port for both UDP (rendezvous) and TCP (HTTP); 0 picks a free one. Default 7000 */
  port?: number
  /**
   * Address to bind; default '0.0.0.0' ('::' for IPv4 and IPv6). A wildcard binds one UDP socket per local
   * address found at listen() (so each reply leaves from the address its request arrived at, which NATs
   * require); addresses added later need a restart
   */
  host?: string
  /** Answer GET /healthz and GET /stats over TCP on the same port. Default true */
  http?: boolean
  /** Address the HTTP side binds to. Default '127.0.0.1' ('::1' when host is an IPv6 address) */
  httpHost?: string
  /** HTTP header, request and idle timeout, ms. Default 5,000 */
  httpTimeoutMs?: number
  /** Offer relays to peers that cannot punch. Default true */
  relay?: boolean
  /** Relay bandwidth cap per allocation, bytes per second (both directions together). Default 1,000,000 */
  relayRate?: number
  /** A relay allocation nobody used for this long is closed, ms (it also closes when its pairing ends). Default 60,000 */
  relayIdleMs?: number
  /** Relay allocations at once. Default 256 */
  maxRelays?: number
  /** Relay allocations at once for pairings whose requesting peer is in one /24 (IPv4) or /64 (IPv6). Default 4 */
  relaysPerPrefix?: number
  /**
   * Bytes all relays together may forward per window. When spent, relays drop datagrams and new relay
   * requests get ERR_RELAY_BUDGET until the window turns. Default 36 GB per hour (10 MB/s on average)
   */
  relayBudget?: { bytes: number, windowMs: number }
  /** A registration without keepalive for this long is forgotten, ms. Default 60,000 */
  registrationTtlMs?: number
  /** Registrations at once. Default 10,000 */
  maxRegistrations?: number
  /** Registrations at once from one /24 (IPv4) or /64 (IPv6). Default 64 */
  registrationsPerPrefix?: number
  /**
   * New registrations accepted per /24 or /64 prefix, and in total (the total bounds how fast anyone can
   * try nameplates). Beyond either: ERR_RATE_LIMITED. Default 10/s burst 40 per prefix (a carrier NAT puts many households in one /24), 50/s burst 100 in total
   */
  registrationRate?: { perPrefix: Rate, global: Rate }
  /** How long a used key (its pairing ended, or a PAKE failed on it) is refused, ms. Default 600,000 */
  burnMs?: number
  /** Larger datagrams are refused, bytes. Default 1,200 */
  maxMessageSize?: number
  /**
   * Per source IP, for datagrams from verified sources only (a valid cookie, or a registration's own
   * address): messages per second and burst. Default 20/s, burst 40
   */
  rateLimit?: Rate
  /**
   * All datagrams from unverified sources together (they only ever get a `retry` or an error no larger
   * than themselves): per second and burst. Default 5,000/s, burst 10,000
   */
  unverifiedRate?: Rate
  /** Least delay before paired peers start probing, ms (raised to 2 × the larger RTT). Default 300 */
  startDelayMs?: number
  /**
   * Measure each peer's NAT mapping (endpoint-independent or not) with a second UDP port: peers send `check`
   * there and the server compares the two source ports it saw. Peers use it to choose birthday probing.
   * Default true
   */
  mappingCheck?: boolean
  /** The second port for mapping checks; 0 picks a free one (peers learn it from `registered`). Default 0 */
  checkPort?: number
  /** How long a new pairing waits for both peers' mapping checks before announcing without them, ms. Default 1,000 */
  mappingWaitMs?: number
  /**
   * Tests and diagnostics: rewrite the candidates a peer is told about (role is the receiving peer's), e.g.
   * to advertise unreachable ones and force a punch failure
   */
  rewriteCandidates?: (c: { public: Endpoint, lan: Endpoint[] }, role: 'connect' | 'accept') => { public: Endpoint, lan: Endpoint[] }
}

export type ResolvedServerOptions = Required<Omit<RendezvousServerOptions, 'rewriteCandidates'>> & Pick<RendezvousServerOptions, 'rewriteCandidates'>

export function resolveServerOptions (options: RendezvousServerOptions): ResolvedServerOptions {
  const host = options.host ?? '0.0.0.0'
  const o: ResolvedServerOptions = {
    port: number('port', options.port, 7000, 0),
    host,
    http: options.http ?? true,
    httpHost: options.httpHost ?? (net.isIPv6(host) && host !== '::' ? '::1' : '127.0.0.1'),
    httpTimeoutMs: number('httpTimeoutMs', options.httpTimeoutMs, 5000, 100),
    relay: options.relay ?? true,
    relayRate: number('relayRate', options.relayRate, 1_000_000),
    relayIdleMs: number('relayIdleMs', options.relayIdleMs, 60_000),
    maxRelays: number('maxRelays', options.maxRelays, 256, 0),
    relaysPerPrefix: number('relaysPerPrefix', options.relaysPerPrefix, 4, 0),
    relayBudget: {
      bytes: number('relayBudget.bytes', options.relayBudget?.bytes, 36e9, 0),
      windowMs: number('relayBudget.windowMs', options.relayBudget?.windowMs, 3_600_000)
    },
    registrationTtlMs: number('registrationTtlMs', options.registrationTtlMs, 60_000),
    maxRegistrations: number('maxRegistrations', options.maxRegistrations, 10_000, 0),
    registrationsPerPrefix: number('registrationsPerPrefix', options.registrationsPerPrefix, 64, 0),
    registrationRate: {
      perPrefix: rate('registrationRate.perPrefix', options.registrationRate?.perPrefix, { perSecond: 10, burst: 40 }),
      global: rate('registrationRate.global', options.registrationRate?.global, { perSecond: 50, burst: 100 })
    },
    burnMs: number('burnMs', options.burnMs, 600_000, 0),
    maxMessageSize: number('maxMessageSize', options.maxMessageSize, MAX_MESSAGE_SIZE, 64),
    rateLimit: rate('rateLimit', options.rateLimit, { perSecond: 20, burst: 40 }),
    unverifiedRate: rate('unverifiedRate', options.unverifiedRate, { perSecond: 5000, burst: 10_000 }),
    startDelayMs: number('startDelayMs', options.startDelayMs, 300, 0),
    mappingCheck: options.mappingCheck ?? true,
    checkPort: number('checkPort', options.checkPort, 0, 0),
    mappingWaitMs: number('mappingWaitMs', options.mappingWaitMs, 1000, 0),
    rewriteCandidates: options.rewriteCandidates
  }
  for (const [name, port] of [['port', o.port], ['checkPort', o.checkPort]] as const) {
    if (port > 65535 || !Number.isInteger(port)) throw new RangeError(`${name} must be an integer in 0..65535, got ${port}`)
  }
  if (net.isIP(o.host) === 0) throw new TypeError(`host must be an IP address, got ${JSON.stringify(o.host)}`)
  if (net.isIP(o.httpHost) === 0) throw new TypeError(`httpHost must be an IP address, got ${JSON.stringify(o.httpHost)}`)
  return o
}

function number (name: string, v: number | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt
  // Number.isFinite is false for anything that is not a number (no coercion), so it checks the type too
  if (!Number.isFinite(v) || v < min) throw new RangeError(`${name} must be a number >= ${min}, got ${String(v)}`)
  return v
}

function rate (name: string, v: Rate | undefined, dflt: Rate): Rate {
  if (v === undefined) return dflt
  if (v === null || typeof v !== 'object') throw new TypeError(`${name} must be { perSecond, burst }, got ${String(v)}`)
  return { perSecond: number(`${name}.perSecond`, v.perSecond, dflt.perSecond, 0), burst: number(`${name}.burst`, v.burst, dflt.burst) }
}
