// RendezvousServer: the "third party" of hole punching. Peers register from their uTP socket under a shared
// code; the server pairs two registrations, tells each the other's candidates (the public address it
// observed plus the LAN addresses the peer reported), who connects, and when to start probing. On request it
// allocates a relay (relay.ts) for peers that cannot punch through. /healthz and /stats answer over HTTP on
// the same port number. See protocol.ts for the wire format.

import * as dgram from 'dgram'
import { EventEmitter } from 'events'
import type * as http from 'http'
import * as net from 'net'

import { normalizeAddress } from '../options'
import { createHttpServer } from './http'
import { decode, encode, isDecodeError, MAX_MESSAGE_SIZE, type Endpoint, type Message, type RegisterMsg } from './protocol'
import { Registry, type Pairing, type Registration } from './registry'
import { RelayAllocation } from './relay'
import { TokenBucket } from './token-bucket'

export interface RendezvousServerOptions {
  /** Port for both UDP (rendezvous) and TCP (HTTP); 0 picks a free one. Default 7000 */
  port?: number
  /**
   * Address to bind; default '0.0.0.0' ('::' for dual-stack). On a host with several addresses bind the
   * public one: replies (and relayed datagrams) must leave from the address peers sent to, or their NATs
   * drop them, and a wildcard socket lets the kernel's routing pick the source address
   */
  host?: string
  /** Answer GET /healthz and GET /stats over TCP on the same port. Default true */
  http?: boolean
  /** Offer relays to peers that cannot punch. Default true */
  relay?: boolean
  /** Relay bandwidth cap per allocation, bytes per second (both directions together). Default 1,000,000 */
  relayRate?: number
  /** A relay allocation nobody used for this long is closed, ms. Default 60,000 */
  relayIdleMs?: number
  /** Relay allocations at once. Default 256 */
  maxRelays?: number
  /** A registration without keepalive for this long is forgotten, ms. Default 60,000 */
  registrationTtlMs?: number
  /** Registrations at once. Default 10,000 */
  maxRegistrations?: number
  /** Larger datagrams are refused, bytes. Default 1,200 */
  maxMessageSize?: number
  /** Per source IP: messages per second and burst. Default 20/s, burst 40 */
  rateLimit?: { perSecond: number, burst: number }
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
  /** Of those, datagrams dropped by the per-source rate limit */
  rateLimited: number
  /** Relay allocations made since start */
  relays: number
  activeRegistrations: number
  activePairings: number
  /** Registrations dropped for lack of keepalives */
  expired: number
  /** Paired peers told that the other's public address moved (NAT rebinding) */
  moves: number
  uptimeSeconds: number
}

export interface PairedInfo { code: string, connect: Endpoint, accept: Endpoint }

const PEER_RESEND_MS = 500
const PEER_RESENDS = 6
const MOVED_RESEND_MS = 300
const MOVED_RESENDS = 10

export class RendezvousServer extends EventEmitter {
  private readonly _o: Required<Omit<RendezvousServerOptions, 'rewriteCandidates'>> & Pick<RendezvousServerOptions, 'rewriteCandidates'>
  private _udp: dgram.Socket | null = null
  private _check: dgram.Socket | null = null
  private _http: http.Server | null = null
  private readonly _registry = new Registry()
  private readonly _buckets = new Map<string, TokenBucket>()
  private readonly _relays = new Set<RelayAllocation>()
  private _relaysPending = 0
  private _sweeper: NodeJS.Timeout | null = null
  private readonly _started = Date.now()
  private readonly _counters = { registrations: 0, pairings: 0, relayedBytes: 0, errors: 0, rateLimited: 0, relays: 0, expired: 0, moves: 0 }

  constructor (options: RendezvousServerOptions = {}) {
    super()
    const positive = (name: string, v: number | undefined, dflt: number, min = 1): number => {
      if (v === undefined) return dflt
      if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new RangeError(`${name} must be a number >= ${min}, got ${String(v)}`)
      return v
    }
    this._o = {
      port: positive('port', options.port, 7000, 0),
      host: options.host ?? '0.0.0.0',
      http: options.http ?? true,
      relay: options.relay ?? true,
      relayRate: positive('relayRate', options.relayRate, 1_000_000),
      relayIdleMs: positive('relayIdleMs', options.relayIdleMs, 60_000),
      maxRelays: positive('maxRelays', options.maxRelays, 256, 0),
      registrationTtlMs: positive('registrationTtlMs', options.registrationTtlMs, 60_000),
      maxRegistrations: positive('maxRegistrations', options.maxRegistrations, 10_000, 0),
      maxMessageSize: positive('maxMessageSize', options.maxMessageSize, MAX_MESSAGE_SIZE, 64),
      rateLimit: options.rateLimit ?? { perSecond: 20, burst: 40 },
      startDelayMs: positive('startDelayMs', options.startDelayMs, 300, 0),
      mappingCheck: options.mappingCheck ?? true,
      checkPort: positive('checkPort', options.checkPort, 0, 0),
      mappingWaitMs: positive('mappingWaitMs', options.mappingWaitMs, 1000, 0),
      rewriteCandidates: options.rewriteCandidates
    }
    if (this._o.port > 65535 || !Number.isInteger(this._o.port)) throw new RangeError(`port must be an integer in 0..65535, got ${this._o.port}`)
    if (net.isIP(this._o.host) === 0) throw new TypeError(`host must be an IP address, got ${JSON.stringify(this._o.host)}`)
  }

  /** Bind UDP (and TCP for HTTP) on the configured port; resolves with the bound address */
  async listen (): Promise<{ address: string, port: number }> {
    if (this._udp !== null) throw new Error('RendezvousServer is already listening')
    // With port 0 the UDP port is chosen first; TCP may find it taken, so try a few ports
    for (let attempt = 0; ; attempt++) {
      const udp = await this._bindUdp(this._o.port)
      const port = udp.address().port
      if (!this._o.http) {
        this._udp = udp
        break
      }
      try {
        this._http = await this._listenHttp(port)
        this._udp = udp
        break
      } catch (e) {
        udp.close()
        if (this._o.port !== 0 || attempt >= 4 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e
      }
    }
    this._udp.on('message', (msg, rinfo) => {
      // No datagram may take the server down (e.g. source port 0 makes dgram's send throw)
      try {
        this._onMessage(msg, rinfo)
      } catch {
        this._counters.errors++
      }
    })
    if (this._o.mappingCheck) {
      try {
        this._check = await this._bindUdp(this._o.checkPort)
      } catch (e) {
        await this.close()
        throw e
      }
      this._check.on('message', (msg, rinfo) => {
        try {
          this._onCheck(msg, rinfo)
        } catch {
          this._counters.errors++
        }
      })
    }
    const sweepMs = Math.max(50, Math.min(5000, this._o.registrationTtlMs / 4, this._o.relayIdleMs / 4))
    this._sweeper = setInterval(() => this._sweep(), sweepMs)
    const a = this.address()
    this.emit('listening', a)
    return a
  }

  address (): { address: string, port: number } {
    if (this._udp === null) throw new Error('RendezvousServer is not listening')
    const a = this._udp.address()
    return { address: a.address, port: a.port }
  }

  stats (): RendezvousStats {
    return {
      ...this._counters,
      activeRelays: this._relays.size,
      activeRegistrations: this._registry.size,
      activePairings: this._registry.pairingCount,
      uptimeSeconds: Math.round((Date.now() - this._started) / 1000)
    }
  }

  /** Stop everything: the UDP socket, HTTP, every relay and timer */
  async close (): Promise<void> {
    if (this._sweeper !== null) clearInterval(this._sweeper)
    this._sweeper = null
    this._registry.clear()
    for (const r of this._relays) r.close()
    this._relays.clear()
    const udp = this._udp
    const check = this._check
    const httpServer = this._http
    this._udp = null
    this._check = null
    this._http = null
    await Promise.all([
      udp === null ? undefined : new Promise<void>(resolve => udp.close(() => resolve())),
      check === null ? undefined : new Promise<void>(resolve => check.close(() => resolve())),
      httpServer === null ? undefined : new Promise<void>(resolve => {
        httpServer.close(() => resolve())
        httpServer.closeAllConnections()
      })
    ])
  }

  // ---- binding --------------------------------------------------------------------------------------------

  private _bindUdp (port: number): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const udp = dgram.createSocket({ type: net.isIPv6(this._o.host) ? 'udp6' : 'udp4', ipv6Only: false })
      udp.once('error', reject)
      udp.bind(port, this._o.host, () => {
        udp.removeListener('error', reject)
        // ICMP errors from one client must not stop the server
        udp.on('error', () => { this._counters.errors++ })
        resolve(udp)
      })
    })
  }

  private _listenHttp (port: number): Promise<http.Server> {
    return new Promise((resolve, reject) => {
      const server = createHttpServer(() => this.stats())
      server.once('error', reject)
      server.listen(port, this._o.host, () => {
        server.removeListener('error', reject)
        server.on('error', () => { this._counters.errors++ })
        resolve(server)
      })
    })
  }

  // ---- datagrams ------------------------------------------------------------------------------------------

  private _send (msg: Message, to: { address: string, port: number }): void {
    this._udp?.send(encode(msg), to.port, to.address)
  }

  private _error (to: { address: string, port: number }, code: string, message: string, nonce?: string): void {
    this._counters.errors++
    this._send(nonce === undefined ? { t: 'error', code, message } : { t: 'error', code, message, nonce }, to)
  }

  private _onMessage (msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const from = { address: rinfo.address, port: rinfo.port }
    if (!this._allow(normalizeAddress(rinfo.address))) {
      // Dropped silently: answering a flood would be an amplifier
      this._counters.errors++
      this._counters.rateLimited++
      return
    }
    if (msg.length > this._o.maxMessageSize) {
      this._error(from, 'ERR_TOO_LARGE', `message of ${msg.length} bytes exceeds ${this._o.maxMessageSize}`)
      return
    }
    const m = decode(msg)
    if (m === null) {
      // Not our protocol at all: no reply, so spoofed junk cannot turn us into a reflector
      this._counters.errors++
      return
    }
    if (isDecodeError(m)) {
      this._error(from, m.error, m.message)
      return
    }
    switch (m.t) {
      case 'register':
        this._onRegister(m, rinfo)
        return
      case 'keepalive': {
        const reg = this._known(m.nonce, from)
        if (reg === null) return
        if (m.rtt !== undefined) reg.rtt = m.rtt
        this._send({ t: 'keepalive-ack', nonce: reg.nonce, observed: reg.observed }, reg.reply)
        return
      }
      case 'peer-ack': {
        const reg = this._known(m.nonce, from)
        if (reg?.pairing == null) return
        reg.pairing.acked[reg.pairing.peers.indexOf(reg)] = true
        return
      }
      case 'peer-moved-ack': {
        const reg = this._known(m.nonce, from)
        if (reg !== null && m.seq === reg.movedSeq) reg.movedTimer = stop(reg.movedTimer)
        return
      }
      case 'relay-request': {
        const reg = this._known(m.nonce, from)
        if (reg !== null) this._onRelayRequest(reg)
        return
      }
      case 'bye': {
        const reg = this._registry.byNonce.get(m.nonce)
        if (reg !== undefined) this._registry.remove(reg)
        return
      }
      default:
        this._error(from, 'ERR_UNEXPECTED', `a server does not take "${m.t}" messages`)
    }
  }

  private _allow (ip: string): boolean {
    let bucket = this._buckets.get(ip)
    if (bucket === undefined) {
      bucket = new TokenBucket(this._o.rateLimit.perSecond, this._o.rateLimit.burst)
      this._buckets.set(ip, bucket)
    }
    return bucket.take()
  }

  /** The registration a message refers to, refreshed (its NAT mapping may have moved); null after an error reply */
  private _known (nonce: string, from: { address: string, port: number }): Registration | null {
    const reg = this._registry.byNonce.get(nonce)
    if (reg === undefined) {
      this._error(from, 'ERR_NOT_REGISTERED', 'no such registration (expired?): register again', nonce)
      return null
    }
    this._touch(reg, from)
    return reg
  }

  private _touch (reg: Registration, from: { address: string, port: number }): void {
    reg.lastSeen = Date.now()
    reg.reply = from
    const observed = { address: normalizeAddress(from.address), port: from.port }
    const moved = observed.address !== reg.observed.address || observed.port !== reg.observed.port
    reg.observed = observed
    if (moved && reg.pairing !== null) this._onMoved(reg, reg.pairing)
  }

  /** A paired peer's public address changed (its NAT rebound): tell the other peer, until it acknowledges */
  private _onMoved (reg: Registration, p: Pairing): void {
    const other = p.peers[1 - p.peers.indexOf(reg)]
    if (this._registry.byNonce.get(other.nonce) !== other) return
    this._counters.moves++
    const seq = ++other.movedSeq
    other.movedTimer = stop(other.movedTimer)
    const send = (): void => this._send({ t: 'peer-moved', nonce: other.nonce, public: reg.observed, seq }, other.reply)
    send()
    let resends = 0
    other.movedTimer = setInterval(() => {
      if (++resends > MOVED_RESENDS || this._registry.byNonce.get(other.nonce) !== other) other.movedTimer = stop(other.movedTimer)
      else send()
    }, MOVED_RESEND_MS)
    this.emit('moved', { code: p.code, from: reg.nonce, to: reg.observed })
  }

  /** A mapping check on the second port: the source port there vs the one the main port saw */
  private _onCheck (msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const from = { address: rinfo.address, port: rinfo.port }
    if (!this._allow(normalizeAddress(rinfo.address))) {
      this._counters.errors++
      this._counters.rateLimited++
      return
    }
    const m = msg.length > this._o.maxMessageSize ? null : decode(msg)
    if (m === null || isDecodeError(m) || m.t !== 'check') {
      // This port only takes checks; anything else is dropped without a reply
      this._counters.errors++
      return
    }
    const reg = this._registry.byNonce.get(m.nonce)
    const reply = (r: Message): void => { this._check?.send(encode(r), from.port, from.address) }
    if (reg === undefined) {
      this._counters.errors++
      reply({ t: 'error', code: 'ERR_NOT_REGISTERED', message: 'no such registration (expired?): register again', nonce: m.nonce })
      return
    }
    const seen = { address: normalizeAddress(rinfo.address), port: rinfo.port }
    reg.mapping = seen.address === reg.observed.address && seen.port === reg.observed.port ? 'independent' : 'dependent'
    reply({ t: 'check-ack', nonce: reg.nonce, observed: seen })
    const p = reg.pairing
    if (p !== null && !p.announced && p.peers.every(r => r.mapping !== undefined)) this._announce(p)
  }

  private _onRegister (m: RegisterMsg, rinfo: dgram.RemoteInfo): void {
    const from = { address: rinfo.address, port: rinfo.port }
    const existing = this._registry.byNonce.get(m.nonce)
    if (existing !== undefined) {
      // A repeat (our reply was lost, or a retry crossed it): same registration
      if (existing.code !== m.key) {
        this._error(from, 'ERR_NONCE_IN_USE', 'nonce already registered under another code', m.nonce)
        return
      }
      this._touch(existing, from)
      this._registered(existing)
      return
    }
    if (this._registry.size >= this._o.maxRegistrations) {
      this._error(from, 'ERR_FULL', 'too many registrations, try again later', m.nonce)
      return
    }
    if (this._registry.codeInUse(m.key)) {
      this._error(from, 'ERR_CODE_IN_USE', 'two peers are already paired under this code', m.nonce)
      return
    }
    const reg: Registration = {
      nonce: m.nonce,
      code: m.key,
      pake: m.pake,
      reply: from,
      observed: { address: normalizeAddress(rinfo.address), port: rinfo.port },
      lan: m.lan.map(e => ({ address: normalizeAddress(e.address), port: e.port })),
      relay: m.relay,
      rtt: m.rtt ?? 0,
      lastSeen: Date.now(),
      pairing: null,
      movedSeq: 0,
      movedTimer: null
    }
    if (m.nat !== undefined) reg.nat = m.nat
    this._counters.registrations++
    const pairing = this._registry.add(reg, this._o.relay)
    this._registered(reg)
    if (pairing !== null) this._onPaired(pairing)
  }

  private _registered (reg: Registration): void {
    const msg: Message = { t: 'registered', nonce: reg.nonce, observed: reg.observed, expiresInMs: this._o.registrationTtlMs }
    if (this._check !== null) msg.checkPort = this._check.address().port
    this._send(msg, reg.reply)
  }

  private _onPaired (p: Pairing): void {
    this._counters.pairings++
    this.emit('paired', { code: p.code, connect: p.peers[0].observed, accept: p.peers[1].observed } satisfies PairedInfo)
    // Peers choose their strategy by both mappings: give the checks (sent right after `registered`) a moment
    if (this._check === null || p.peers.every(r => r.mapping !== undefined)) this._announce(p)
    else p.announceTimer = setTimeout(() => this._announce(p), this._o.mappingWaitMs)
  }

  /** Tell both peers about each other, repeating until each acknowledges */
  private _announce (p: Pairing): void {
    if (p.announced) return
    p.announced = true
    p.announceTimer = stop(p.announceTimer)
    if (p.live < 2) return // a peer left while we waited
    const [a, b] = p.peers
    p.startAt = Date.now() + Math.max(this._o.startDelayMs, 2 * Math.max(a.rtt, b.rtt))
    this._sendPeer(p, 0)
    this._sendPeer(p, 1)
    let resends = 0
    p.resendTimer = setInterval(() => {
      for (const i of [0, 1] as const) {
        if (!p.acked[i] && this._registry.byNonce.get(p.peers[i].nonce) === p.peers[i]) this._sendPeer(p, i)
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
    this._send(msg, me.reply)
  }

  // ---- relays ---------------------------------------------------------------------------------------------

  private _onRelayRequest (reg: Registration): void {
    const p = reg.pairing
    if (p === null) {
      this._error(reg.reply, 'ERR_NOT_PAIRED', 'no peer yet: a relay needs a pairing', reg.nonce)
      return
    }
    if (!p.relayAllowed) {
      this._error(reg.reply, 'ERR_RELAY_UNAVAILABLE', this._o.relay ? 'a peer opted out of relaying' : 'this server does not relay', reg.nonce)
      return
    }
    if (p.relay instanceof RelayAllocation) {
      if (p.relay.closed) p.relay = null // expired; allocate afresh below
      else {
        this._announceRelay(p, p.relay)
        return
      }
    }
    if (p.relay !== null) return // being allocated: both peers hear when it is ready
    if (this._relays.size + this._relaysPending >= this._o.maxRelays) {
      this._error(reg.reply, 'ERR_RELAY_FULL', 'no relay capacity left, try again later', reg.nonce)
      return
    }
    this._relaysPending++
    const host = this._o.host
    const allocating = RelayAllocation.open({
      host,
      type: net.isIPv6(host) ? 'udp6' : 'udp4',
      rate: this._o.relayRate,
      onForward: (n) => { this._counters.relayedBytes += n }
    }).catch(() => null)
    p.relay = allocating
    void allocating.then((relay) => {
      this._relaysPending--
      if (relay === null || this._udp === null) {
        relay?.close()
        p.relay = null
        this._error(reg.reply, 'ERR_RELAY_UNAVAILABLE', 'could not allocate relay ports', reg.nonce)
        return
      }
      p.relay = relay
      this._relays.add(relay)
      this._counters.relays++
      this.emit('relay', { code: p.code, ports: [relay.side(0).port, relay.side(1).port] })
      this._announceRelay(p, relay)
    })
  }

  /** Tell both peers (those still registered) their relay port and token */
  private _announceRelay (p: Pairing, relay: RelayAllocation): void {
    p.peers.forEach((peer, i) => {
      if (this._registry.byNonce.get(peer.nonce) !== peer) return
      const side = relay.side(i as 0 | 1)
      this._send({ t: 'relay-allocated', nonce: peer.nonce, port: side.port, token: side.token }, peer.reply)
    })
  }

  // ---- expiry ---------------------------------------------------------------------------------------------

  private _sweep (): void {
    const now = Date.now()
    this._counters.expired += this._registry.expire(now, this._o.registrationTtlMs).length
    for (const r of this._relays) {
      if (r.idleFor(now) > this._o.relayIdleMs) {
        r.close()
        this._relays.delete(r)
      }
    }
    for (const [ip, bucket] of this._buckets) {
      if (bucket.isFull(now)) this._buckets.delete(ip)
    }
  }
}

function stop (t: NodeJS.Timeout | null): null {
  if (t !== null) clearTimeout(t)
  return null
}
