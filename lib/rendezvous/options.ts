// rendezvous() options: what callers may set, and the validated form with defaults filled in.

import { DhtNode } from '../dht/node'
import { parseHostPort, SIDE_PATTERN } from './protocol'

export interface RendezvousOptions {
  /** The rendezvous server, 'host:port' (or '[v6]:port'). Give this or `dht` */
  server?: string
  /**
   * Meet on the BitTorrent Mainline DHT instead of a server of ours (docs/dht.md): `true` joins through the public
   * bootstrap nodes, `{ bootstrap }` through others ("host:port"), `{ node }` through a DhtNode you opened (it
   * stays open). Both peers publish a sealed card under keys only holders of the code can compute, read the
   * other's, and punch. No relay, unless `relay` names a rendezvous server (both peers must name the same): when
   * no direct path works, both go there and use its relay; without one, ERR_PUNCH_FAILED says so
   */
  dht?: true | { bootstrap?: string[], node?: DhtNode, relay?: string }
  /**
   * The pairing code both peers use. Best as `<nameplate>-<secret>` ("4127-purple-sausage-tiger"): the server
   * sees only the nameplate, and the secret never leaves this process. Any other string works too, but the
   * server sees a hash of it, which it could attack offline if the code is guessable
   */
  code: string
  /**
   * What this peer does in the pairing, as a short lowercase token ("send", "receive"). When both peers give one
   * and they are equal, the server refuses the second with ERR_SAME_ROLE before any pairing, and the first keeps
   * waiting: two senders that used one code learn it at once, and the code stays usable. The server sees it.
   * Default: none (no check)
   */
  side?: string
  /** Fall back to the server's relay when no direct path works. Default true */
  relay?: boolean
  /** Give up (ERR_RENDEZVOUS_TIMEOUT) after this long, waiting for the peer included, ms. Default 60,000 */
  timeoutMs?: number
  /** Try the peer's LAN addresses before its public one. Default true */
  lanFirst?: boolean
  signal?: AbortSignal
  /** Keepalive to the server while registered (refreshes the registration and our NAT mapping), ms. Default 15,000 */
  keepaliveMs?: number
  /** How long to probe before falling back to the relay, ms. Default 5,000 (15,000 over the DHT, where the peers learn of each other seconds apart) */
  punchTimeoutMs?: number
  /** Probe interval, ms. Default 200 */
  probeIntervalMs?: number
  /** TTL of the first probe to each public candidate (0: normal TTL). Default 3 */
  lowTtl?: number
  /**
   * accept side: after probing, how long to wait for the peer's connection when we heard its probes, ms.
   * Should exceed the connect side's Node `timeout`. Default 6,000
   */
  acceptGraceMs?: number
  /** Report our LAN addresses to the peer. Default true */
  shareLan?: boolean
  /** Our NAT type if known (e.g. from STUN); passed to the peer and named in punch failures */
  nat?: string
  /** Skip probing and go straight to the relay (tests, or networks known to block punching) */
  forceRelay?: boolean
  /**
   * Birthday probing when one NAT maps endpoint-independently and the other does not (the server measures
   * both): the hard side opens `birthdayPorts` extra ports, the easy side probes `birthdayProbes` random
   * ports of the hard side's IP. Default true
   */
  birthday?: boolean
  /** Hard side: extra ports (each a Node of its own) to open. Default 256 */
  birthdayPorts?: number
  /** Easy side: random ports to probe. Default 2,048 */
  birthdayProbes?: number
  /** Easy side: probes per second. Default 1,000 */
  birthdayRate?: number
  /**
   * Stay registered while the socket lives (keepalives every keepaliveMs, `bye` when it closes) and follow
   * the peer when its NAT rebinds to a new public port: the server tells us, the socket re-aims there and
   * emits 'migrate' ({ address, port, from }). Default true. A relayed connection stays registered (and, when
   * quiet, tells the server and the relay where it is) even with false: the server's relay lasts only as long
   * as the pairing's registrations
   */
  followMoves?: boolean
  /** With followMoves, or on the relay path: after this long without a packet from the peer, tell the server (and the relay) where we are, ms. Default 2,000 */
  quietMs?: number
  /**
   * Once paired, how long to wait for the peer's proof that it holds the same code (its confirm), ms; then
   * ERR_RENDEZVOUS_TIMEOUT. Default 10,000
   */
  confirmTimeoutMs?: number
  /**
   * Encrypt and authenticate the stream with the key both peers derived from the code (the result's socket is
   * then a SecureSocket). false gives the plain uTP socket: the pairing is still authenticated by the code (a
   * peer without it fails with ERR_WRONG_CODE, and nobody else can steer the connection), but the bytes travel
   * in clear and a relay or anyone on the path can read or alter them. Default true
   */
  encrypt?: boolean
  /**
   * Give up with ERR_SERVER_UNREACHABLE when the server has not answered the registration at all (it is
   * re-sent every 500 ms) after this long, ms, instead of waiting out timeoutMs. Default 5,000
   */
  serverTimeoutMs?: number
  /**
   * Called at each step of the meeting, for status lines ("registered, waiting for the peer"): see
   * RendezvousStatus. Called synchronously from the rendezvous; an exception it throws is ignored
   */
  onStatus?: (status: RendezvousStatus) => void
}

/**
 * A step of rendezvous(), in order. Over the DHT, 'joining-dht' (the DHT node looks for nodes) and 'published' (our
 * card is on the DHT, with the address DHT nodes saw our socket at; waiting for the peer's) take the place of
 * the first two. Through a server: 'registering' (the server's name resolved, the registration goes out),
 * 'registered' (the server answered; waiting for the peer), 'paired' (the server found the peer; proving the
 * code to each other), 'punching' (code confirmed; probing the candidates, `candidates` as "address:port
 * (kind)"), 'relay' (no direct path or relay forced; moving to the server's relay, `reason` says why).
 * The promise settles after the last of them
 */
export type RendezvousStatus =
  | { state: 'registering', server: string }
  | { state: 'joining-dht' }
  | { state: 'published', observed?: { address: string, port: number }, mapping?: 'independent' | 'dependent' }
  | { state: 'registered', observed: { address: string, port: number } }
  | { state: 'paired', role: 'connect' | 'accept' }
  | { state: 'punching', candidates: string[] }
  | { state: 'relay', reason: string }

/** The options with defaults applied */
export interface ResolvedOptions {
  /** Exactly one of server and dht is set */
  server: { host: string, port: number } | null
  dht: { bootstrap: string[] | undefined, node: DhtNode | undefined, relay: string | undefined } | null
  code: string
  relay: boolean
  timeoutMs: number
  lanFirst: boolean
  signal: AbortSignal | undefined
  keepaliveMs: number
  punchTimeoutMs: number
  probeIntervalMs: number
  lowTtl: number
  acceptGraceMs: number
  shareLan: boolean
  nat: string | undefined
  forceRelay: boolean
  birthday: boolean
  birthdayPorts: number
  birthdayProbes: number
  birthdayRate: number
  followMoves: boolean
  quietMs: number
  confirmTimeoutMs: number
  encrypt: boolean
  side: string | undefined
  serverTimeoutMs: number
  onStatus: ((status: RendezvousStatus) => void) | undefined
}

/** Validate (TypeError/RangeError on bad values) and fill in defaults */
export function resolveOptions (o: RendezvousOptions): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw new TypeError('rendezvous options must be an object')
  if ((o.server === undefined) === (o.dht === undefined)) throw new TypeError('give exactly one of options.server (a "host:port" string) and options.dht')
  if (o.server !== undefined && typeof o.server !== 'string') throw new TypeError('options.server must be a "host:port" string')
  const dht = resolveDht(o.dht)
  if (typeof o.code !== 'string' || o.code.length === 0 || o.code.length > 128) throw new TypeError('options.code must be a string of 1..128 characters')
  if (o.encrypt !== undefined && typeof o.encrypt !== 'boolean') throw new TypeError('options.encrypt must be a boolean')
  if (o.side !== undefined && (typeof o.side !== 'string' || !SIDE_PATTERN.test(o.side))) {
    throw new TypeError(`options.side must be a lowercase token of 1..16 characters such as "send", got ${JSON.stringify(o.side)}`)
  }
  if (o.onStatus !== undefined && typeof o.onStatus !== 'function') throw new TypeError('options.onStatus must be a function')
  const num = (name: keyof RendezvousOptions, dflt: number, min: number): number => {
    const v = o[name]
    if (v === undefined) return dflt
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new RangeError(`options.${name} must be a number >= ${min}, got ${String(v)}`)
    return v
  }
  const lowTtl = num('lowTtl', 3, 0)
  if (lowTtl > 255 || !Number.isInteger(lowTtl)) throw new RangeError(`options.lowTtl must be an integer in 0..255, got ${lowTtl}`)
  const birthdayPorts = num('birthdayPorts', 256, 1)
  const birthdayProbes = num('birthdayProbes', 2048, 1)
  if (birthdayPorts > 4096 || !Number.isInteger(birthdayPorts)) throw new RangeError(`options.birthdayPorts must be an integer in 1..4096, got ${birthdayPorts}`)
  if (birthdayProbes > 64512 || !Number.isInteger(birthdayProbes)) throw new RangeError(`options.birthdayProbes must be an integer in 1..64512, got ${birthdayProbes}`)
  return {
    server: o.server === undefined ? null : parseHostPort(o.server),
    dht,
    code: o.code,
    relay: o.relay ?? true,
    timeoutMs: num('timeoutMs', 60_000, 1),
    lanFirst: o.lanFirst ?? true,
    signal: o.signal,
    keepaliveMs: num('keepaliveMs', 15_000, 100),
    punchTimeoutMs: num('punchTimeoutMs', dht === null ? 5000 : 15_000, 1),
    probeIntervalMs: num('probeIntervalMs', 200, 10),
    lowTtl,
    acceptGraceMs: num('acceptGraceMs', 6000, 0),
    shareLan: o.shareLan ?? true,
    nat: o.nat,
    forceRelay: o.forceRelay ?? false,
    birthday: o.birthday ?? true,
    birthdayPorts,
    birthdayProbes,
    birthdayRate: Math.min(num('birthdayRate', 1000, 1), 100_000),
    followMoves: o.followMoves ?? true,
    quietMs: num('quietMs', 2000, 100),
    confirmTimeoutMs: num('confirmTimeoutMs', 10_000, 1),
    encrypt: o.encrypt ?? true,
    side: o.side,
    serverTimeoutMs: num('serverTimeoutMs', 5000, 1),
    onStatus: o.onStatus
  }
}

function resolveDht (d: RendezvousOptions['dht']): ResolvedOptions['dht'] {
  if (d === undefined) return null
  if (d === true) return { bootstrap: undefined, node: undefined, relay: undefined }
  if (d === null || typeof d !== 'object') throw new TypeError('options.dht must be true or { bootstrap } or { node }')
  if (d.bootstrap !== undefined && (!Array.isArray(d.bootstrap) || !d.bootstrap.every(b => typeof b === 'string'))) {
    throw new TypeError('options.dht.bootstrap must be an array of "host:port" strings')
  }
  if (d.node !== undefined && !(d.node instanceof DhtNode)) throw new TypeError('options.dht.node must be a DhtNode')
  if (d.relay !== undefined) {
    if (typeof d.relay !== 'string') throw new TypeError('options.dht.relay must be a "host:port" string')
    parseHostPort(d.relay) // throws on a malformed one now, not when punching has failed
  }
  return { bootstrap: d.bootstrap, node: d.node, relay: d.relay }
}
