// A TURN-like relay allocation: two UDP ports on the server's host, one per peer of a pairing. Peer A
// talks to port A, peer B to port B; whatever A sends to port A leaves port B toward B, and vice versa.
// Each peer first sends relay-hello (with its token) to its own port, which teaches the relay that peer's
// address as seen from that port and opens the peer's NAT toward it. Everything else is forwarded raw
// (the peers' uTP datagrams), under one byte-rate cap for the allocation and the server's global byte
// budget; excess datagrams are dropped, which uTP's congestion control reads as a bottleneck.
//
// Who may use a port: a hello counts only from the IP address of the registration the side belongs to
// (ports may differ: the NAT maps the relay port separately), so a stolen token is useless from elsewhere;
// the server updates that IP when the registration moves with a valid cookie. Raw datagrams are forwarded
// only from the learned address of one side to the learned address of the other.

import { randomBytes } from 'crypto'
import type * as dgram from 'dgram'

import { normalizeAddress } from '../options'
import { decode, encode, isDecodeError, isRendezvous } from '../rendezvous/protocol'
import type { ByteBudget } from './limits'
import { bindUdp } from './sockets'
import { TokenBucket } from './token-bucket'

export interface RelayOptions {
  /** The local address each side binds to: the one its peer reached the server at */
  hosts: [string, string]
  /** The IP each side's hello must come from: its registration's public IP */
  peerIps: [string, string]
  /** Bytes per second, both directions together */
  rate: number
  /** All relays' bytes together */
  budget: ByteBudget
  /** Called with the size of every forwarded datagram (the server's relayed-bytes counter) */
  onForward: (bytes: number) => void
}

interface Side {
  socket: dgram.Socket
  port: number
  token: string
  /** Normalised IP a hello must come from */
  ip: string
  /** The peer's address as this port sees it; null until its relay-hello */
  peer: { address: string, port: number } | null
}

export class RelayAllocation {
  private readonly _sides: [Side, Side]
  private readonly _bucket: TokenBucket
  private _lastActive = Date.now()
  private _closed = false
  /** Datagrams dropped by the rate cap or the budget */
  dropped = 0
  /** Hellos refused: wrong token, or the right token from an address that is not the registration's */
  refused = 0

  private constructor (sides: [Side, Side], private readonly _opts: RelayOptions) {
    this._sides = sides
    // Half a second of burst (at least 128 KiB) lets a uTP window through without drops
    this._bucket = new TokenBucket(_opts.rate, Math.max(_opts.rate / 2, 128 * 1024))
    sides.forEach((side, i) => side.socket.on('message', (msg, rinfo) => {
      try {
        this._onMessage(i as 0 | 1, msg, rinfo)
      } catch {
        // A datagram dgram cannot answer (source port 0...): drop it
      }
    }))
  }

  /** Bind both ports; rejects if either cannot be bound */
  static async open (opts: RelayOptions): Promise<RelayAllocation> {
    const bindOne = async (i: 0 | 1): Promise<Side> => {
      // ICMP errors on a relay port concern one peer; the pairing's end or the idle timer cleans up
      const socket = await bindUdp(opts.hosts[i], 0, () => {})
      return { socket, port: socket.address().port, token: randomBytes(16).toString('hex'), ip: normalizeAddress(opts.peerIps[i]), peer: null }
    }
    const sides = await Promise.allSettled([bindOne(0), bindOne(1)])
    const ok = sides.flatMap(s => s.status === 'fulfilled' ? [s.value] : [])
    if (ok.length < 2) {
      for (const s of ok) s.socket.close()
      throw (sides.find(s => s.status === 'rejected') as PromiseRejectedResult).reason
    }
    return new RelayAllocation([ok[0], ok[1]], opts)
  }

  /** Port and hello token for side 0 (the 'connect' peer) or 1 (the 'accept' peer) */
  side (i: 0 | 1): { port: number, token: string } {
    return { port: this._sides[i].port, token: this._sides[i].token }
  }

  /** The registration of side i moved to another IP (proven by a cookie): hellos must come from there now */
  allow (i: 0 | 1, ip: string): void {
    this._sides[i].ip = normalizeAddress(ip)
  }

  /** Both peers said hello: forwarding works both ways */
  get ready (): boolean {
    return this._sides[0].peer !== null && this._sides[1].peer !== null
  }

  idleFor (now = Date.now()): number {
    return now - this._lastActive
  }

  get closed (): boolean {
    return this._closed
  }

  close (): void {
    if (this._closed) return
    this._closed = true
    for (const s of this._sides) s.socket.close()
  }

  private _onMessage (i: 0 | 1, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const me = this._sides[i]
    if (isRendezvous(msg)) {
      this._onControl(i, msg, rinfo)
      return
    }
    // Raw traffic only from the peer this port belongs to, and only once the other side is known
    const other = this._sides[1 - i]
    if (me.peer === null || me.peer.port !== rinfo.port || me.peer.address !== rinfo.address || other.peer === null) return
    this._lastActive = Date.now()
    if (!this._bucket.take(msg.length) || !this._opts.budget.take(msg.length)) {
      this.dropped++
      return
    }
    other.socket.send(msg, other.peer.port, other.peer.address)
    this._opts.onForward(msg.length)
  }

  private _onControl (i: 0 | 1, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const m = decode(msg)
    const me = this._sides[i]
    if (m === null || isDecodeError(m) || m.t !== 'relay-hello') return
    if (m.token !== me.token || normalizeAddress(rinfo.address) !== me.ip) {
      this.refused++
      return
    }
    this._lastActive = Date.now()
    const wasReady = this.ready
    // A new port on the registration's IP is a NAT rebinding: follow it
    me.peer = { address: rinfo.address, port: rinfo.port }
    this._hello(i)
    if (!wasReady && this.ready) this._hello((1 - i) as 0 | 1) // tell the side that was waiting
  }

  private _hello (i: 0 | 1): void {
    const side = this._sides[i]
    if (side.peer === null) return
    side.socket.send(encode({ t: 'relay-hello-ack', token: side.token, ready: this.ready }), side.peer.port, side.peer.address)
  }

  /** For logs: the peers' addresses as the relay sees them */
  describe (): string {
    return this._sides.map(s => s.peer === null ? '?' : `${normalizeAddress(s.peer.address)}:${s.peer.port}`).join(' <-> ')
  }
}
