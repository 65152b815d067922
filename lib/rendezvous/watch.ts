// After rendezvous(): keep the registration while the socket lives, and follow the peer when its NAT rebinds.
//
// A NAT that reboots or drops its state maps our flows to a new public port. Both peers then go quiet: the
// peer's packets die at our NAT's old port, ours at the peer's NAT, which filters a port it never sent to.
// Neither can repair that alone, but the server can see it: when the connection goes quiet we send a
// keepalive at once, the server notices our registration speaking from a new address and tells the peer
// (`peer-moved`), and the peer re-aims its connection there (Endpoint::migrate) and probes the new address,
// which opens its own NAT toward it. Our side needs nothing: the peer's address did not change. On the relay
// path a quiet connection re-sends relay-hello, which the relay follows to our new address the same way.
//
// Limits: the peer can follow an endpoint-independent mapping only (an endpoint-dependent NAT shows the
// server a different port than the peer would see), and the whole repair must fit in the Node's `timeout`
// (5 s by default): quiet for quietMs, then one round trip to the server and one to the peer.

import type { Socket } from '../socket'
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
  pair: string
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
const MOVE_PROBES = 3

export class ConnectionWatch {
  private readonly _timers: NodeJS.Timeout[] = []
  private _lastReceived = -1
  private _lastChange = Date.now()
  private _lastNudge = 0
  private _seq = -1
  private _closed = false

  constructor (private readonly _o: WatchOptions) {
    this._timers.push(setInterval(() => this._keepalive(), _o.keepaliveMs))
    this._timers.push(setInterval(() => this._sample(), SAMPLE_MS))
    for (const t of this._timers) t.unref()
    _o.socket.once('close', () => this.close())
  }

  /** A message from the server (or the relay) on the registered node's socket */
  handle (m: Message, from: Endpoint): void {
    if (this._closed) return
    const o = this._o
    switch (m.t) {
      case 'peer-moved': {
        if (m.nonce !== o.nonce || endpointKey(from) !== endpointKey(o.server)) return
        o.wire.send({ t: 'peer-moved-ack', nonce: o.nonce, seq: m.seq }, o.server)
        if (m.seq <= this._seq) return // a repeat
        this._seq = m.seq
        if (o.relay !== null) return // the relay follows the peer itself
        this._follow(m.public)
        return
      }
      case 'error':
        // The server forgot us (restarted, or our keepalives were lost for a minute): nothing to repair
        // with any more, but the connection itself is fine
        if (m.nonce === o.nonce && m.code === 'ERR_NOT_REGISTERED') this._stopKeepalives()
    }
  }

  close (): void {
    if (this._closed) return
    this._closed = true
    for (const t of this._timers) clearInterval(t)
    this._timers.length = 0
    // Free the code on the server (best effort: otherwise the registration expires)
    this._o.wire.send({ t: 'bye', nonce: this._o.nonce }, this._o.server)
    this._o.wire.close()
  }

  private _follow (to: Endpoint): void {
    const o = this._o
    if (!o.followable) return
    const from = o.socket.remoteAddress === undefined ? null : { address: o.socket.remoteAddress, port: o.socket.remotePort }
    if (from !== null && endpointKey(from) === endpointKey(to)) return
    if (!o.socket._migrate(to.port, to.address)) return
    // Our NAT filters the new address until we send to it: the migrated connection's ACK does, these too
    for (let i = 0; i < MOVE_PROBES; i++) o.sendFromSocketNode({ t: 'probe', pair: o.pair, nonce: probeNonce(), mac: '0'.repeat(32) /* v2 bridge: the client helper computes the MAC */ }, to)
    o.socket.emit('migrate', { address: to.address, port: to.port, from })
  }

  private _keepalive (): void {
    if (this._closed) return
    this._o.wire.send({ t: 'keepalive', nonce: this._o.nonce }, this._o.server)
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
