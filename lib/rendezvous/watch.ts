// After rendezvous(): keep the registration while the socket lives, and follow the peer when its NAT rebinds.
//
// A NAT that reboots or drops its state maps our flows to a new public port. Both peers then go quiet: the
// peer's packets die at our NAT's old port, ours at the peer's NAT, which filters a port it never sent to.
// Neither can repair that alone, but the server can see it: when the connection goes quiet we send a
// keepalive at once, the server notices our registration speaking from a new address (proven by a cookie
// for it) and tells the peer (`peer-moved`). The peer does not take the server's word for it: it validates
// the path first, sending probes with fresh nonces (MACs under the pairing's probe key) to the new address,
// which also opens its own NAT toward it, and re-aims its connection there (Endpoint::migrate) only when a
// valid probe-ack comes back from exactly that address. Our side answers those probes; its connection needs
// nothing else, the peer's address did not change. On the relay path a quiet connection re-sends
// relay-hello, which the relay follows to our new address the same way.
//
// A peer-moved's seq must lie above the last one followed and less than 2^20 above it, and it counts only
// once its path validated: a forged one (even with a huge seq) cannot block the moves that follow.
//
// Limits: the peer can follow an endpoint-independent mapping only (an endpoint-dependent NAT shows the
// server a different port than the peer would see), and the whole repair must fit in the Node's `timeout`
// (5 s by default): quiet for quietMs, then one round trip to the server and two to the peer.

import type { Socket } from '../socket'
import type { PeerAuth } from './auth'
import { nonce as probeNonce } from './prober'
import { endpointKey, type Endpoint, type Message } from './protocol'
import type { Wire } from './wire'

export interface WatchOptions {
  /** The rendezvous' socket */
  socket: Socket
  /** The registered node's wire (its socket's mapping is the one the server sees) */
  wire: Wire
  server: Endpoint
  nonce: string
  /** Signs path-validation probes and acks, checks the peer's */
  auth: PeerAuth
  /** The server's cookie for our address, if we have one (keepalives from a new address need one) */
  cookie: () => string | undefined
  /** A retry from the server: remember its cookie */
  setCookie: (cookie: string) => void
  keepaliveMs: number
  /** The connection counts as quiet after this long without a packet from the peer */
  quietMs: number
  /** Whether the peer's moves can be followed (its NAT maps every destination to one port) */
  followable: boolean
  /** On the relay path: our relay port and hello token */
  relay: { port: number, token: string } | null
  /** Send a message from the socket's own node (to open our NAT toward the peer's new address) */
  sendFromSocketNode: (m: Message, to: Endpoint) => void
}

/** How often the connection's receive counter is sampled */
const SAMPLE_MS = 250
/** While quiet, how often to nudge the server (and the relay) */
const NUDGE_MS = 1000
/** Path validation: probes to the peer's new address every VALIDATE_MS, at most VALIDATE_TRIES */
const VALIDATE_MS = 250
const VALIDATE_TRIES = 12
/** After the socket closed on the relay path, how long the relay stays for the last packets */
const RELAY_LINGER_MS = 2000
/** At most one request repeated per retry this often */
export const RETRY_MIN_MS = 100
/** A peer-moved seq is followed only if it is above the last one and below last + SEQ_WINDOW */
export const SEQ_WINDOW = 2 ** 20
/** Moves validated at once (each a different address); more are dropped until one ends */
const MAX_VALIDATIONS = 4

interface Validation {
  to: Endpoint
  seq: number
  nonces: Set<string>
  timer: NodeJS.Timeout
}

export class ConnectionWatch {
  private readonly _timers: NodeJS.Timeout[] = []
  private _lastReceived = -1
  private _lastChange = Date.now()
  private _lastNudge = 0
  /** The seq of the last move followed (the server counts from 1) */
  private _seq = 0
  private _closed = false
  private _lastRetry = 0
  private readonly _validations = new Map<string, Validation>()
  /** Moves announced by the server whose path never validated (forged, or the peer gone) */
  rejectedMoves = 0

  constructor (private readonly _o: WatchOptions) {
    this._timers.push(setInterval(() => this._keepalive(), _o.keepaliveMs))
    this._timers.push(setInterval(() => this._sample(), SAMPLE_MS))
    for (const t of this._timers) t.unref()
    _o.socket.once('close', () => this.close())
  }

  /** A message on the registered node's socket: from the server, or (path validation) from the peer */
  handle (m: Message, from: Endpoint): void {
    if (this._closed) return
    const o = this._o
    const fromServer = endpointKey(from) === endpointKey(o.server)
    switch (m.t) {
      case 'peer-moved': {
        if (m.nonce !== o.nonce || !fromServer) return
        o.wire.send({ t: 'peer-moved-ack', nonce: o.nonce, seq: m.seq }, o.server)
        if (m.seq <= this._seq || m.seq >= this._seq + SEQ_WINDOW) return // a repeat, or no seq the server could send
        if (o.relay !== null) {
          this._seq = m.seq // the relay follows the peer itself
          return
        }
        this._validate(m.public, m.seq)
        return
      }
      case 'probe':
        // The peer validating our new address after our NAT rebound
        if (o.auth.verify(m)) o.sendFromSocketNode(o.auth.ack(m.nonce), from)
        return
      case 'probe-ack': {
        const v = this._validations.get(endpointKey(from))
        if (v === undefined || !v.nonces.has(m.nonce) || !o.auth.verify(m)) return
        this._endValidation(v, true)
        if (v.seq > this._seq) {
          this._seq = v.seq
          this._follow(v.to)
        }
        return
      }
      case 'retry':
        // Our keepalive came from a new address (our NAT rebound): repeat it with the cookie for that address
        if (!fromServer || Date.now() - this._lastRetry < RETRY_MIN_MS) return // forged retries cannot make us loop
        this._lastRetry = Date.now()
        o.setCookie(m.cookie)
        this._keepalive()
        return
      case 'error':
        // The server forgot us (restarted, or our keepalives were lost for a minute): nothing to repair
        // with any more, but the connection itself is fine
        if (fromServer && m.nonce === o.nonce && m.code === 'ERR_NOT_REGISTERED') this._stopKeepalives()
    }
  }

  close (): void {
    if (this._closed) return
    this._closed = true
    for (const t of this._timers) clearInterval(t)
    this._timers.length = 0
    for (const v of [...this._validations.values()]) this._endValidation(v, false)
    // Free the registration on the server (best effort: otherwise it expires). On the relay path `bye` frees
    // the relay too, so it waits a moment: the connection's last packets (the peer's FIN, its ACK) still cross
    const bye = (): void => {
      this._o.wire.send({ t: 'bye', nonce: this._o.nonce }, this._o.server)
      this._o.wire.close()
    }
    if (this._o.relay === null) bye()
    else setTimeout(bye, RELAY_LINGER_MS).unref()
  }

  /** Probe the peer's announced address; the connection follows only if the peer answers from there */
  private _validate (to: Endpoint, seq: number): void {
    const o = this._o
    if (!o.followable) return
    const key = endpointKey(to)
    const from = o.socket.remoteAddress === undefined ? null : { address: o.socket.remoteAddress, port: o.socket.remotePort }
    if (from !== null && endpointKey(from) === key) {
      this._seq = seq // already there
      return
    }
    const running = this._validations.get(key)
    if (running !== undefined) {
      running.seq = Math.max(running.seq, seq)
      return
    }
    if (this._validations.size >= MAX_VALIDATIONS) return
    let tries = 0
    const v: Validation = {
      to,
      seq,
      nonces: new Set(),
      timer: setInterval(() => {
        if (++tries > VALIDATE_TRIES) this._endValidation(v, false)
        else this._probe(v)
      }, VALIDATE_MS)
    }
    v.timer.unref()
    this._validations.set(key, v)
    this._probe(v)
  }

  /** One validation probe, fresh nonce; it also opens our NAT toward the new address */
  private _probe (v: Validation): void {
    const nonce = probeNonce()
    v.nonces.add(nonce)
    this._o.sendFromSocketNode(this._o.auth.probe(nonce), v.to)
  }

  private _endValidation (v: Validation, ok: boolean): void {
    clearInterval(v.timer)
    this._validations.delete(endpointKey(v.to))
    if (!ok) this.rejectedMoves++
  }

  private _follow (to: Endpoint): void {
    const o = this._o
    const from = o.socket.remoteAddress === undefined ? null : { address: o.socket.remoteAddress, port: o.socket.remotePort }
    if (from !== null && endpointKey(from) === endpointKey(to)) return
    if (!o.socket._migrate(to.port, to.address)) return
    o.socket.emit('migrate', { address: to.address, port: to.port, from })
  }

  private _keepalive (): void {
    if (this._closed) return
    const cookie = this._o.cookie()
    this._o.wire.send({ t: 'keepalive', nonce: this._o.nonce, ...(cookie === undefined ? {} : { cookie }) }, this._o.server)
  }

  private _stopKeepalives (): void {
    for (const t of this._timers) clearInterval(t)
    this._timers.length = 0
  }

  /** Quiet for quietMs: show the server (and the relay) where we are now, once a second while it lasts */
  private _sample (): void {
    const s = this._o.socket.stats()
    if (s === null) return
    const now = Date.now()
    if (s.packetsReceived !== this._lastReceived) {
      this._lastReceived = s.packetsReceived
      this._lastChange = now
      return
    }
    if (now - this._lastChange < this._o.quietMs || now - this._lastNudge < NUDGE_MS) return
    this._lastNudge = now
    this._keepalive()
    const relay = this._o.relay
    if (relay !== null) this._o.wire.send({ t: 'relay-hello', token: relay.token }, { address: this._o.server.address, port: relay.port })
  }
}
