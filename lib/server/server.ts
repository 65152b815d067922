// RendezvousServer: the "third party" of hole punching, a deployable of its own (it imports only the wire
// format, lib/rendezvous/protocol.ts, and the package's small helpers). Peers register from their uTP socket
// under a key (a nameplate, never the code); the server pairs two registrations, hands each the other's
// SPAKE2 message and candidates (the public address it observed plus the LAN addresses the peer reported),
// who connects, and when to start probing, and forwards their key-confirmation MACs. On request it
// allocates a relay (relay.ts) for peers that cannot punch through. /healthz and /stats answer over HTTP on
// the same port number, on loopback by default. See protocol.ts for the wire format.
//
// What strangers cannot do, and why:
// - Make the server keep state or send more than they sent, from a forged source: state-creating requests
//   need a cookie for their source address (cookie.ts), and every reply to an unverified source is at most
//   the size of its request (else dropped).
// - Starve someone by forging their address: unverified datagrams draw on their own global budget; the
//   per-IP limit is charged only for verified ones (a valid cookie, or a registration's own address).
// - Fill the tables or the relays from one network: quotas per /24 or /64 prefix, plus a global rate of new
//   registrations that bounds nameplate guessing.
// - Take over a registration with a sniffed nonce: it moves only to an address that proved itself with a
//   cookie, bye and pake-failed count only from its current address, and relay hellos only from its IP.
// - Reuse a key: it pairs once, and is burned (ERR_CODE_BURNED) when the pairing ends or a PAKE fails.

import { EventEmitter } from 'events'
import type * as http from 'http'

import { normalizeAddress } from '../options'
import { decode, encode, isDecodeError, isRendezvous, type Endpoint, type Message, type RegisterMsg } from '../rendezvous/protocol'
import { CookieJar } from './cookie'
import { createHttpServer } from './http'
import { BucketMap, ByteBudget, prefixOf, PrefixCounter } from './limits'
import { resolveServerOptions, type RendezvousServerOptions, type ResolvedServerOptions } from './options'
import { Registry, type Pairing, type Registration } from './registry'
import { RelayAllocation } from './relay'
import { bindAll, closeAll, localAddresses, type LocalSocket } from './sockets'
import { TokenBucket } from './token-bucket'

export type { RendezvousServerOptions } from './options'

export interface RendezvousStats {
  /** Registrations accepted since start */
  registrations: number
  /** Pairings made since start */
  pairings: number
  /** Bytes forwarded by relays since start */
  relayedBytes: number
  /** Relay allocations open now */
  activeRelays: number
  /** Error replies sent (malformed, oversized, refused...) plus datagrams dropped (not ours, rate-limited) */
  errors: number
  /** Of those, verified datagrams dropped by the per-source rate limit */
  rateLimited: number
  /** Unverified datagrams dropped by their global budget */
  unverifiedDropped: number
  /** `retry` replies sent (a request came without a valid cookie for its source) */
  retries: number
  /** Requests refused by a quota (per prefix, or the global rate of new registrations): ERR_RATE_LIMITED */
  quotaRefused: number
  /** Relay allocations made since start */
  relays: number
  activeRegistrations: number
  activePairings: number
  /** Keys refused now because they were used (ERR_CODE_BURNED) */
  burnedKeys: number
  /** pake-failed reports received */
  pakeFailures: number
  /** Registrations dropped for lack of keepalives */
  expired: number
  /** Paired peers told that the other's public address moved (NAT rebinding) */
  moves: number
  /** Peers that gave up while paired, before a connection (a bye with gaveUp): their peer is told with peer-gone */
  gaveUp: number
  /** Error replies sent since start, by error code (ERR_RATE_LIMITED, ERR_CODE_BURNED, ERR_TOO_LARGE...) */
  refusals: Record<string, number>
  uptimeSeconds: number
}

export interface PairedInfo { key: string, connect: Endpoint, accept: Endpoint }

/** What a peer whose paired peer gave up may still send: each is answered with peer-gone */
const ANSWERED_WITH_PEER_GONE = new Set<string>(['confirm', 'relay-request', 'keepalive'])
const PEER_RESEND_MS = 500
const PEER_RESENDS = 6
const CONFIRM_RESEND_MS = 500
const CONFIRM_RESENDS = 10
const MOVED_RESEND_MS = 300
const MOVED_RESENDS = 10
const BIND_ATTEMPTS = 5

/** Requests that create or change state: without a valid cookie (or from elsewhere) they only get `retry` */
const NEEDS_COOKIE = new Set(['register', 'keepalive', 'relay-request'])

interface From { address: string, port: number }

export class RendezvousServer extends EventEmitter {
  private readonly _o: ResolvedServerOptions
  private _main: LocalSocket[] = []
  private _checks: LocalSocket[] = []
  private _port = 0
  private _http: http.Server | null = null
  private readonly _registry: Registry
  private readonly _cookies = new CookieJar()
  private readonly _verified: BucketMap
  private readonly _unverified: TokenBucket
  private readonly _newPerPrefix: BucketMap
  private readonly _newGlobal: TokenBucket
  private readonly _relays = new Map<RelayAllocation, string>()
  private readonly _relaysPerPrefix: PrefixCounter
  private readonly _budget: ByteBudget
  private _relaysPending = 0
  private _sweeper: NodeJS.Timeout | null = null
  private readonly _started = Date.now()
  private readonly _counters = {
    registrations: 0,
    pairings: 0,
    relayedBytes: 0,
    errors: 0,
    rateLimited: 0,
    unverifiedDropped: 0,
    retries: 0,
    quotaRefused: 0,
    relays: 0,
    pakeFailures: 0,
    expired: 0,
    moves: 0,
    gaveUp: 0
  }

  private readonly _refusals = new Map<string, number>()

  constructor (options: RendezvousServerOptions = {}) {
    super()
    const o = this._o = resolveServerOptions(options)
    this._registry = new Registry({ burnMs: o.burnMs, maxPerPrefix: o.registrationsPerPrefix, onPairingEnd: (p) => this._onPairingEnd(p) })
    this._verified = new BucketMap(o.rateLimit)
    this._unverified = new TokenBucket(o.unverifiedRate.perSecond, o.unverifiedRate.burst)
    this._newPerPrefix = new BucketMap(o.registrationRate.perPrefix)
    this._newGlobal = new TokenBucket(o.registrationRate.global.perSecond, o.registrationRate.global.burst)
    this._relaysPerPrefix = new PrefixCounter(o.relaysPerPrefix)
    this._budget = new ByteBudget(o.relayBudget.bytes, o.relayBudget.windowMs)
  }

  /** Bind UDP (and TCP for HTTP) on the configured port; resolves with the bound address */
  async listen (): Promise<{ address: string, port: number }> {
    if (this._main.length > 0) throw new Error('RendezvousServer is already listening')
    const addresses = localAddresses(this._o.host)
    const onError = (): void => { this._counters.errors++ }
    // With port 0 the UDP port is chosen first; another address or TCP may find it taken, so try a few ports
    for (let attempt = 1; ; attempt++) {
      try {
        const main = await bindAll(addresses, this._o.port, onError)
        const port = main[0].socket.address().port
        try {
          if (this._o.http) this._http = await this._listenHttp(port)
        } catch (e) {
          await closeAll(main)
          throw e
        }
        this._main = main
        this._port = port
        break
      } catch (e) {
        if (this._o.port !== 0 || attempt >= BIND_ATTEMPTS || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e
      }
    }
    for (const via of this._main) via.socket.on('message', (msg, rinfo) => this._guard(() => this._onMessage(msg, rinfo, via)))
    if (this._o.mappingCheck) {
      try {
        this._checks = await bindAll(addresses, this._o.checkPort, onError)
      } catch (e) {
        await this.close()
        throw e
      }
      for (const via of this._checks) via.socket.on('message', (msg, rinfo) => this._guard(() => this._onCheck(msg, rinfo, via)))
    }
    const sweepMs = Math.max(50, Math.min(5000, this._o.registrationTtlMs / 4, this._o.relayIdleMs / 4))
    this._sweeper = setInterval(() => this._sweep(), sweepMs)
    const a = this.address()
    this.emit('listening', a)
    return a
  }

  address (): { address: string, port: number } {
    if (this._main.length === 0) throw new Error('RendezvousServer is not listening')
    return { address: this._o.host, port: this._port }
  }

  stats (): RendezvousStats {
    return {
      ...this._counters,
      activeRelays: this._relays.size,
      activeRegistrations: this._registry.size,
      activePairings: this._registry.pairingCount,
      burnedKeys: this._registry.burnedCount,
      refusals: Object.fromEntries(this._refusals),
      uptimeSeconds: Math.round((Date.now() - this._started) / 1000)
    }
  }

  /** Stop everything: the UDP sockets, HTTP, every relay and timer */
  async close (): Promise<void> {
    if (this._sweeper !== null) clearInterval(this._sweeper)
    this._sweeper = null
    this._registry.clear()
    for (const r of this._relays.keys()) r.close()
    this._relays.clear()
    const sockets = [...this._main, ...this._checks]
    const httpServer = this._http
    this._main = []
    this._checks = []
    this._http = null
    await Promise.all([
      closeAll(sockets),
      httpServer === null ? undefined : new Promise<void>(resolve => {
        httpServer.close(() => resolve())
        httpServer.closeAllConnections()
      })
    ])
  }

  private _listenHttp (port: number): Promise<http.Server> {
    return new Promise((resolve, reject) => {
      const server = createHttpServer(() => this.stats(), this._o.httpTimeoutMs)
      server.once('error', reject)
      server.listen(port, this._o.httpHost, () => {
        server.removeListener('error', reject)
        server.on('error', () => { this._counters.errors++ })
        resolve(server)
      })
    })
  }

  /** No datagram may take the server down (e.g. source port 0 makes dgram's send throw) */
  private _guard (handle: () => void): void {
    try {
      handle()
    } catch {
      this._counters.errors++
    }
  }

  // ---- sending --------------------------------------------------------------------------------------------

  private _send (msg: Message, to: From, via: LocalSocket): void {
    via.socket.send(encode(msg), to.port, to.address)
  }

  /** An error to a verified source (a registration's address, or one that showed a valid cookie) */
  private _error (to: From, via: LocalSocket, code: string, message: string, nonce?: string): void {
    this._counters.errors++
    this._countRefusal(code)
    this._send(nonce === undefined ? { t: 'error', code, message } : { t: 'error', code, message, nonce }, to, via)
  }

  private _countRefusal (code: string): void {
    this._refusals.set(code, (this._refusals.get(code) ?? 0) + 1)
  }

  /** A reply to an unverified source: sent only when it is no larger than the request, so never an amplifier */
  private _replySmall (msg: Message, to: From, via: LocalSocket, requestSize: number): boolean {
    const buf = encode(msg)
    if (buf.length > requestSize) return false
    via.socket.send(buf, to.port, to.address)
    return true
  }

  private _retry (to: From, via: LocalSocket, requestSize: number): void {
    if (this._replySmall({ t: 'retry', cookie: this._cookies.mint(to.address, to.port) }, to, via, requestSize)) this._counters.retries++
    else this._counters.errors++
  }

  // ---- datagrams ------------------------------------------------------------------------------------------

  private _onMessage (buf: Buffer, rinfo: { address: string, port: number }, via: LocalSocket): void {
    const from = { address: rinfo.address, port: rinfo.port }
    if (!isRendezvous(buf)) {
      // Not our protocol at all: no reply, so spoofed junk cannot turn us into a reflector
      this._counters.errors++
      return
    }
    const m = buf.length > this._o.maxMessageSize ? null : decode(buf)
    if (m === null || isDecodeError(m)) {
      if (!this._unverifiedToken()) return
      const error = m === null
        ? { code: 'ERR_TOO_LARGE', message: `message of ${buf.length} bytes exceeds ${this._o.maxMessageSize}` }
        : { code: m.error, message: m.message }
      this._counters.errors++
      if (this._replySmall({ t: 'error', ...error }, from, via, buf.length)) this._countRefusal(error.code)
      return
    }
    const nonce = (m as { nonce?: string }).nonce
    const reg = nonce === undefined ? undefined : this._registry.byNonce.get(nonce)
    const atHome = reg !== undefined && reg.reply.address === from.address && reg.reply.port === from.port
    const cookieOk = 'cookie' in m && this._cookies.verify(m.cookie, from.address, from.port)
    if (!atHome && !cookieOk) {
      this._onUnverified(m, from, via, buf.length)
      return
    }
    if (!this._verified.take(normalizeAddress(from.address))) {
      // Dropped silently: answering a flood would be an amplifier
      this._counters.errors++
      this._counters.rateLimited++
      return
    }
    if (m.t === 'register') {
      this._onRegister(m, from, via, reg)
      return
    }
    if (reg === undefined) {
      // Only cookie-carrying types get here without a registration: the source is verified, so say so
      this._error(from, via, 'ERR_NOT_REGISTERED', 'no such registration (expired?): register again', nonce)
      return
    }
    // A valid cookie from a new address is the NAT rebinding: the registration follows it
    if (!atHome) this._move(reg, from, via)
    reg.lastSeen = Date.now()
    this._onKnown(m, reg)
  }

  private _unverifiedToken (): boolean {
    if (this._unverified.take()) return true
    this._counters.errors++
    this._counters.unverifiedDropped++
    return false
  }

  /** A source that proved nothing: the cheap path, a `retry` or an error no larger than the request */
  private _onUnverified (m: Message, from: From, via: LocalSocket, size: number): void {
    if (!this._unverifiedToken()) return
    if (NEEDS_COOKIE.has(m.t)) {
      this._retry(from, via, size)
      return
    }
    this._counters.errors++
    if (!isClientToServer(m) && this._replySmall({ t: 'error', code: 'ERR_UNEXPECTED', message: `a server does not take "${m.t}" messages` }, from, via, size)) this._countRefusal('ERR_UNEXPECTED')
    // peer-ack, confirm, bye... from anywhere but the registration's address: ignored, without a word
  }

  /** A message about a registration, from its own address (or one it just moved to with a cookie) */
  private _onKnown (m: Message, reg: Registration): void {
    const p = reg.pairing
    const i = p === null ? 0 : p.peers.indexOf(reg) as 0 | 1
    // The peer gave up and this one has not heard (the first peer-gone was lost): it still confirms, asks for a relay
    // or, not yet told of its peer, keeps its registration alive. (The one that gave up is no longer registered.)
    if (p !== null && p.gaveUp !== null && ANSWERED_WITH_PEER_GONE.has(m.t)) {
      this._peerGone(reg, p.gaveUp)
      return
    }
    switch (m.t) {
      case 'keepalive':
        if (m.rtt !== undefined) reg.rtt = m.rtt
        this._send({ t: 'keepalive-ack', nonce: reg.nonce, observed: reg.observed }, reg.reply, reg.via)
        return
      case 'peer-ack':
        if (p !== null) p.acked[i] = true
        return
      case 'confirm':
        if (p !== null && p.announced && !p.ended) this._onConfirm(p, i, m.mac)
        return
      case 'peer-confirm-ack':
        if (p !== null) {
          p.confirmAcked[i] = true
          p.confirmTimers[i] = stop(p.confirmTimers[i])
        }
        return
      case 'pake-failed':
        this._onPakeFailed(reg)
        return
      case 'peer-moved-ack':
        if (m.seq === reg.movedSeq) reg.movedTimer = stop(reg.movedTimer)
        return
      case 'relay-request':
        this._onRelayRequest(reg)
        return
      case 'bye':
        if (m.gaveUp !== undefined && p !== null && !p.ended) {
          // The peer learns it at once, instead of from its own timeouts (or never, if it was not yet told of us). A
          // pairing not ended still has both registrations (either one leaving ends it)
          this._counters.gaveUp++
          p.gaveUp = m.gaveUp
          this._peerGone(p.peers[1 - i], m.gaveUp)
        }
        this._registry.remove(reg)
        return
      default:
        this._error(reg.reply, reg.via, 'ERR_UNEXPECTED', `a server does not take "${m.t}" messages`)
    }
  }

  /** Tell `reg` that its paired peer gave up with `code` */
  private _peerGone (reg: Registration, code: string): void {
    this._send({ t: 'peer-gone', nonce: reg.nonce, code }, reg.reply, reg.via)
  }

  /** The registration's source address changed, and the new one proved itself with a cookie */
  private _move (reg: Registration, from: From, via: LocalSocket): void {
    const observed = { address: normalizeAddress(from.address), port: from.port }
    const ipChanged = observed.address !== reg.observed.address
    reg.reply = from
    reg.via = via
    reg.observed = observed
    if (ipChanged) this._registry.rehome(reg, prefixOf(observed.address))
    const p = reg.pairing
    if (p === null || p.ended) return
    const i = p.peers.indexOf(reg) as 0 | 1
    if (ipChanged && p.relay instanceof RelayAllocation) p.relay.allow(i, observed.address)
    this._onMoved(reg, p)
  }

  /** A paired peer's public address changed (its NAT rebound): tell the other peer, until it acknowledges */
  private _onMoved (reg: Registration, p: Pairing): void {
    const other = p.peers[1 - p.peers.indexOf(reg)]
    if (this._registry.byNonce.get(other.nonce) !== other) return
    this._counters.moves++
    const seq = ++other.movedSeq
    other.movedTimer = stop(other.movedTimer)
    const send = (): void => this._send({ t: 'peer-moved', nonce: other.nonce, public: reg.observed, seq }, other.reply, other.via)
    send()
    let resends = 0
    other.movedTimer = setInterval(() => {
      if (++resends > MOVED_RESENDS || this._registry.byNonce.get(other.nonce) !== other) other.movedTimer = stop(other.movedTimer)
      else send()
    }, MOVED_RESEND_MS)
    this.emit('moved', { key: p.key, from: reg.nonce, to: reg.observed })
  }

  /** A mapping check on the second port: the source port there vs the one the main port saw */
  private _onCheck (buf: Buffer, rinfo: { address: string, port: number }, via: LocalSocket): void {
    const from = { address: rinfo.address, port: rinfo.port }
    const m = buf.length > this._o.maxMessageSize ? null : decode(buf)
    if (m === null || isDecodeError(m) || m.t !== 'check') {
      // This port only takes checks; anything else is dropped without a reply
      this._counters.errors++
      return
    }
    // The check port sees another mapping than the main port, so only a cookie can verify the source here
    if (!this._cookies.verify(m.cookie, from.address, from.port)) {
      if (this._unverifiedToken()) this._retry(from, via, buf.length)
      return
    }
    if (!this._verified.take(normalizeAddress(from.address))) {
      this._counters.errors++
      this._counters.rateLimited++
      return
    }
    const reg = this._registry.byNonce.get(m.nonce)
    if (reg === undefined || reg.observed.address !== normalizeAddress(from.address)) {
      // Another IP cannot vouch for a registration's NAT
      this._error(from, via, 'ERR_NOT_REGISTERED', 'no such registration (expired?): register again', m.nonce)
      return
    }
    const seen = { address: normalizeAddress(from.address), port: from.port }
    reg.mapping = seen.port === reg.observed.port ? 'independent' : 'dependent'
    this._send({ t: 'check-ack', nonce: reg.nonce, observed: seen }, from, via)
    const p = reg.pairing
    if (p !== null && !p.announced && p.peers.every(r => r.mapping !== undefined)) this._announce(p)
  }

  private _onRegister (m: RegisterMsg, from: From, via: LocalSocket, existing: Registration | undefined): void {
    if (existing !== undefined) {
      // A repeat (our reply was lost, or a retry crossed it): same registration
      if (existing.key !== m.key) {
        this._error(from, via, 'ERR_NONCE_IN_USE', 'nonce already registered under another key', m.nonce)
        return
      }
      if (existing.reply.address !== from.address || existing.reply.port !== from.port) this._move(existing, from, via)
      existing.lastSeen = Date.now()
      this._registered(existing)
      return
    }
    const observed = { address: normalizeAddress(from.address), port: from.port }
    const prefix = prefixOf(observed.address)
    const refuse = (code: string, message: string): void => this._error(from, via, code, message, m.nonce)
    if (this._registry.size >= this._o.maxRegistrations) return refuse('ERR_FULL', 'too many registrations, try again later')
    if (this._registry.refusal(m.key) !== null) return refuse('ERR_CODE_BURNED', 'this code was already used: make a new one')
    if (this._registry.prefixFull(prefix) || !this._newPerPrefix.take(prefix) || !this._newGlobal.take()) {
      this._counters.quotaRefused++
      return refuse('ERR_RATE_LIMITED', 'too many registrations from this network or in total, try again later')
    }
    // Two senders (or two receivers) under one code would pair, spend the code, and only then find out. The one
    // waiting keeps waiting for its real peer; the newcomer (unless it is that same client restarted, which
    // replaces it) learns at once. Checked after the quotas, so asking which nameplates have someone waiting
    // costs what registering does.
    const waiting = this._registry.waiting(m.key)
    if (waiting !== undefined && m.side !== undefined && waiting.side === m.side &&
        (waiting.reply.address !== from.address || waiting.reply.port !== from.port)) {
      return refuse('ERR_SAME_ROLE', `the peer waiting under this code is also a "${m.side}" side`)
    }
    const reg: Registration = {
      nonce: m.nonce,
      key: m.key,
      pake: m.pake,
      reply: from,
      via,
      observed,
      prefix,
      lan: m.lan.map(e => ({ address: normalizeAddress(e.address), port: e.port })),
      relay: m.relay && this._o.relay,
      rtt: m.rtt ?? 0,
      lastSeen: Date.now(),
      pairing: null,
      movedSeq: 0,
      movedTimer: null
    }
    if (m.nat !== undefined) reg.nat = m.nat
    if (m.side !== undefined) reg.side = m.side
    this._counters.registrations++
    const pairing = this._registry.add(reg)
    this._registered(reg)
    if (pairing !== null) this._onPaired(pairing)
  }

  private _registered (reg: Registration): void {
    const msg: Message = { t: 'registered', nonce: reg.nonce, observed: reg.observed, expiresInMs: this._o.registrationTtlMs }
    if (this._checks.length > 0) msg.checkPort = this._checks[0].socket.address().port
    this._send(msg, reg.reply, reg.via)
  }

  // ---- pairing --------------------------------------------------------------------------------------------

  private _onPaired (p: Pairing): void {
    this._counters.pairings++
    this.emit('paired', { key: p.key, connect: p.peers[0].observed, accept: p.peers[1].observed } satisfies PairedInfo)
    // Peers choose their strategy by both mappings: give the checks (sent right after `registered`) a moment.
    // The peer that just registered cannot have been checked yet (a check names a registration), so with
    // checks on there is always something to wait for; _onCheck announces as soon as both are in.
    if (this._checks.length === 0) this._announce(p)
    else p.announceTimer = setTimeout(() => this._announce(p), this._o.mappingWaitMs)
  }

  /** Tell both peers about each other, repeating until each acknowledges */
  private _announce (p: Pairing): void {
    if (p.announced || p.ended) return
    p.announced = true
    p.announceTimer = stop(p.announceTimer)
    const [a, b] = p.peers
    p.startAt = Date.now() + Math.max(this._o.startDelayMs, 2 * Math.max(a.rtt, b.rtt))
    this._sendPeer(p, 0)
    this._sendPeer(p, 1)
    let resends = 0
    p.resendTimer = setInterval(() => {
      for (const i of [0, 1] as const) {
        if (!p.acked[i]) this._sendPeer(p, i)
      }
      if (++resends >= PEER_RESENDS || (p.acked[0] && p.acked[1])) p.resendTimer = stop(p.resendTimer)
    }, PEER_RESEND_MS)
  }

  private _sendPeer (p: Pairing, i: 0 | 1): void {
    const me = p.peers[i]
    const other = p.peers[1 - i]
    const role = i === 0 ? 'connect' : 'accept'
    let candidates = { public: other.observed, lan: other.lan }
    if (this._o.rewriteCandidates !== undefined) candidates = this._o.rewriteCandidates(candidates, role)
    // Both should start at p.startAt; our message reaches this peer about half its RTT from now
    const startInMs = Math.max(0, Math.round(p.startAt - Date.now() - me.rtt / 2))
    const msg: Message = { t: 'peer', nonce: me.nonce, pair: p.id, role, startInMs, public: candidates.public, lan: candidates.lan, relay: p.relayAllowed, pake: other.pake }
    if (other.nat !== undefined) msg.peerNat = other.nat
    if (me.mapping !== undefined) msg.mapping = me.mapping
    if (other.mapping !== undefined) msg.peerMapping = other.mapping
    this._send(msg, me.reply, me.via)
  }

  /** Peer i's key confirmation: keep the first MAC it sent and repeat it to the other peer until acknowledged */
  private _onConfirm (p: Pairing, i: 0 | 1, mac: string): void {
    p.confirm[i] ??= mac
    const to = (1 - i) as 0 | 1
    if (p.confirmAcked[to] || p.confirmTimers[to] !== null) return
    const other = p.peers[to]
    const send = (): void => this._send({ t: 'peer-confirm', nonce: other.nonce, mac: p.confirm[i] as string }, other.reply, other.via)
    send()
    let resends = 0
    p.confirmTimers[to] = setInterval(() => {
      if (++resends > CONFIRM_RESENDS || p.ended) p.confirmTimers[to] = stop(p.confirmTimers[to])
      else send()
    }, CONFIRM_RESEND_MS)
  }

  /** A peer saw a wrong confirm MAC: a wrong code, or a stranger in the middle. Burn the key, drop both */
  private _onPakeFailed (reg: Registration): void {
    this._counters.pakeFailures++
    this._registry.burn(reg.key)
    const peers = reg.pairing?.peers ?? [reg]
    for (const r of peers) this._registry.remove(r)
    this.emit('burned', { key: reg.key, reason: 'pake-failed' })
  }

  /** The pairing is over (a peer left, expired or reported a failed PAKE): free everything it held */
  private _onPairingEnd (p: Pairing): void {
    p.resendTimer = stop(p.resendTimer)
    p.announceTimer = stop(p.announceTimer)
    p.confirmTimers = [stop(p.confirmTimers[0]), stop(p.confirmTimers[1])]
    if (p.relay instanceof RelayAllocation) this._closeRelay(p.relay)
    // A relay still binding is closed when it resolves (see _onRelayRequest)
  }

  // ---- relays ---------------------------------------------------------------------------------------------

  private _onRelayRequest (reg: Registration): void {
    const p = reg.pairing
    const refuse = (code: string, message: string): void => this._error(reg.reply, reg.via, code, message, reg.nonce)
    if (p === null || !p.announced || p.ended) return refuse('ERR_NOT_PAIRED', 'no peer yet: a relay needs a pairing')
    if (!p.relayAllowed) return refuse('ERR_RELAY_UNAVAILABLE', this._o.relay ? 'a peer opted out of relaying' : 'this server does not relay')
    if (p.relay instanceof RelayAllocation) {
      if (!p.relay.closed) return this._announceRelay(p, p.relay)
      p.relay = null // idle too long; allocate afresh below
    }
    if (p.relay !== null) return // being allocated: both peers hear when it is ready
    if (this._budget.spent()) return refuse('ERR_RELAY_BUDGET', 'the server\'s relay budget is spent, try again later')
    if (this._relays.size + this._relaysPending >= this._o.maxRelays) return refuse('ERR_RELAY_FULL', 'no relay capacity left, try again later')
    if (this._relaysPerPrefix.full(reg.prefix)) {
      this._counters.quotaRefused++
      return refuse('ERR_RATE_LIMITED', 'too many relays for this network, try again later')
    }
    this._relaysPending++
    this._relaysPerPrefix.add(reg.prefix)
    const [a, b] = p.peers
    const allocating = RelayAllocation.open({
      hosts: [a.via.address, b.via.address],
      peerIps: [a.observed.address, b.observed.address],
      rate: this._o.relayRate,
      budget: this._budget,
      onForward: (n) => { this._counters.relayedBytes += n }
    }).catch(() => null)
    p.relay = allocating
    void allocating.then((relay) => {
      this._relaysPending--
      // close() ends every pairing, so a server closed meanwhile is seen here as p.ended
      if (relay === null || p.ended) {
        relay?.close()
        this._relaysPerPrefix.remove(reg.prefix)
        p.relay = null
        if (relay === null) refuse('ERR_RELAY_UNAVAILABLE', 'could not allocate relay ports')
        return
      }
      p.relay = relay
      this._relays.set(relay, reg.prefix)
      this._counters.relays++
      this.emit('relay', { key: p.key, ports: [relay.side(0).port, relay.side(1).port] })
      this._announceRelay(p, relay)
    })
  }

  /** Tell both peers (those still registered) their relay port and token */
  private _announceRelay (p: Pairing, relay: RelayAllocation): void {
    p.peers.forEach((peer, i) => {
      if (this._registry.byNonce.get(peer.nonce) !== peer) return
      const side = relay.side(i as 0 | 1)
      this._send({ t: 'relay-allocated', nonce: peer.nonce, port: side.port, token: side.token }, peer.reply, peer.via)
    })
  }

  private _closeRelay (relay: RelayAllocation): void {
    relay.close()
    const prefix = this._relays.get(relay)
    if (prefix === undefined) return
    this._relays.delete(relay)
    this._relaysPerPrefix.remove(prefix)
  }

  // ---- expiry ---------------------------------------------------------------------------------------------

  private _sweep (): void {
    const now = Date.now()
    this._counters.expired += this._registry.expire(now, this._o.registrationTtlMs).length
    for (const r of [...this._relays.keys()]) {
      if (r.idleFor(now) > this._o.relayIdleMs) this._closeRelay(r)
    }
    this._verified.sweep(now)
    this._newPerPrefix.sweep(now)
  }
}

/** Types a client sends to a server (anything else arriving here is a confused or hostile sender) */
function isClientToServer (m: Message): boolean {
  return ['register', 'keepalive', 'peer-ack', 'confirm', 'peer-confirm-ack', 'pake-failed', 'relay-request', 'bye', 'check', 'peer-moved-ack'].includes(m.t)
}

function stop (t: NodeJS.Timeout | null): null {
  if (t !== null) clearTimeout(t)
  return null
}
