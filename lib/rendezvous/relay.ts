// A TURN-like relay allocation: two UDP ports on the server's host, one per peer of a pairing. Peer A
// talks to port A, peer B to port B; whatever A sends to port A leaves port B toward B, and vice versa.
// Each peer first sends relay-hello (with its token) to its own port, which teaches the relay that peer's
// address as seen from that port and opens the peer's NAT toward it. Everything else is forwarded raw
// (the peers' uTP datagrams), under one byte-rate cap for the allocation; excess datagrams are dropped,
// which uTP's congestion control reads as a bottleneck.

import { randomBytes } from 'crypto'
import * as dgram from 'dgram'

import { normalizeAddress } from '../options'
import { decode, encode, isDecodeError, isRendezvous } from './protocol'
import { TokenBucket } from './token-bucket'

export interface RelayOptions {
  /** Address the relay ports bind to (the server's own) */
  host: string
  type: 'udp4' | 'udp6'
  /** Bytes per second, both directions together */
  rate: number
  /** Called with the size of every forwarded datagram (the server's relayed-bytes counter) */
  onForward: (bytes: number) => void
}

interface Side {
  socket: dgram.Socket
  port: number
  token: string
  /** The peer's address as this port sees it; null until its relay-hello */
  peer: { address: string, port: number } | null
}

export class RelayAllocation {
  private readonly _sides: [Side, Side]
  private readonly _bucket: TokenBucket
  private _lastActive = Date.now()
  private _closed = false
  /** Datagrams dropped by the rate cap */
  dropped = 0

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
    const bindOne = (): Promise<Side> => new Promise((resolve, reject) => {
      const socket = dgram.createSocket({ type: opts.type, ipv6Only: false })
      socket.once('error', reject)
      socket.bind(0, opts.host, () => {
        socket.removeListener('error', reject)
        socket.on('error', () => { /* ICMP errors on a relay port concern one peer; the idle timer cleans up */ })
        resolve({ socket, port: socket.address().port, token: randomBytes(16).toString('hex'), peer: null })
      })
    })
    const sides = await Promise.allSettled([bindOne(), bindOne()])
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
    if (!this._bucket.take(msg.length)) {
      this.dropped++
      return
    }
    other.socket.send(msg, other.peer.port, other.peer.address)
    this._opts.onForward(msg.length)
  }

  private _onControl (i: 0 | 1, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const m = decode(msg)
    const me = this._sides[i]
    if (m === null || isDecodeError(m) || m.t !== 'relay-hello' || m.token !== me.token) return
    this._lastActive = Date.now()
    const wasReady = this.ready
    // A new address for a known token is a NAT rebinding: follow it
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
