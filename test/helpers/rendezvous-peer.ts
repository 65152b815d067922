// A bare rendezvous client on a plain dgram socket, for server tests: it speaks the wire format of the built
// tree and nothing more (no PAKE, no punching), answers `retry` by repeating the request with the cookie, and
// keeps every message it receives. Its register also carries the v1 field `code` (= the key), which a v2
// server ignores, so the same attack test can run against the v1 server of main to measure "before".

import * as dgram from 'dgram'

import type * as ProtocolModule from '../../lib/rendezvous/protocol'
import { requireFromRoot, sleep } from './utp'

export const protocol = requireFromRoot('./dist/lib/rendezvous/protocol.js') as typeof ProtocolModule
export type Msg = ProtocolModule.Message

/** A placeholder SPAKE2 message and MACs: the server only checks their shape */
export const PAKE = Buffer.alloc(32, 7).toString('base64')
export const CONFIRM_MAC = '6b'.repeat(32)

/** A datagram of the built protocol version whose body is `text`, JSON or not */
export function rawDatagram (text: string): Buffer {
  return Buffer.concat([protocol.MAGIC, Buffer.from([protocol.VERSION]), Buffer.from(text, 'utf8')])
}

/** Encode any object as a datagram of the built protocol version (extra fields allowed) */
export function datagram (body: object): Buffer {
  return rawDatagram(JSON.stringify(body))
}

export function registerBody (key: string, nonce: string, extra: object = {}): Record<string, unknown> {
  return { t: 'register', key, code: key, pake: PAKE, nonce, lan: [], relay: true, ...extra }
}

let nonces = 0
/** A fresh 16-hex-digit nonce, unique in this process */
export function freshNonce (): string {
  return (0x10000000 + process.pid * 4096 + ++nonces).toString(16).padStart(16, 'f').slice(-16)
}

export class RendezvousPeer {
  readonly inbox: Msg[] = []
  /** Bytes received (every datagram, ours or not) */
  bytesIn = 0
  cookie: string | undefined
  private _last: Record<string, unknown> | null = null
  private _lastPort = 0
  private readonly _waiters = new Set<() => void>()

  private constructor (readonly socket: dgram.Socket, readonly server: { address: string, port: number }) {
    socket.on('message', (buf) => {
      this.bytesIn += buf.length
      const m = protocol.decode(buf)
      if (m === null || protocol.isDecodeError(m)) return
      this.inbox.push(m)
      if (m.t === 'retry') {
        this.cookie = m.cookie
        // The request that drew the retry goes again at once, now with the cookie
        if (this._last !== null) this._send({ ...this._last, cookie: m.cookie }, this._lastPort)
      }
      for (const w of this._waiters) w()
    })
  }

  static async open (server: { address: string, port: number }, host = '127.0.0.1', port = 0): Promise<RendezvousPeer> {
    const socket = dgram.createSocket('udp4')
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(port, host, () => resolve())
    })
    socket.on('error', () => {})
    return new RendezvousPeer(socket, server)
  }

  get address (): { address: string, port: number } {
    const a = this.socket.address()
    return { address: a.address, port: a.port }
  }

  /** Send a request; `retry` answers make it go again with the cookie (and the cookie is kept for later) */
  send (body: Record<string, unknown>, port = this.server.port): void {
    this._last = body
    this._lastPort = port
    this._send(this.cookie === undefined ? body : { ...body, cookie: this.cookie }, port)
  }

  raw (buf: Buffer, port = this.server.port, address = this.server.address): void {
    this.socket.send(buf, port, address)
  }

  /** The first message (already received or arriving within timeoutMs) that `match` accepts, or null */
  async wait (match: (m: Msg) => boolean, timeoutMs = 1000, from = 0): Promise<Msg | null> {
    const found = (): Msg | undefined => this.inbox.slice(from).find(match)
    const now = found()
    if (now !== undefined) return now
    return await new Promise(resolve => {
      const check = (): void => {
        const m = found()
        if (m === undefined) return
        done(m)
      }
      const timer = setTimeout(() => done(null), timeoutMs)
      const done = (m: Msg | null): void => {
        clearTimeout(timer)
        this._waiters.delete(check)
        resolve(m)
      }
      this._waiters.add(check)
    })
  }

  /** Send and wait for the reply that matches (a retry in between is handled) */
  async request (body: Record<string, unknown>, match: (m: Msg) => boolean, timeoutMs = 1000, port = this.server.port): Promise<Msg | null> {
    const from = this.inbox.length
    this.send(body, port)
    return await this.wait(match, timeoutMs, from)
  }

  /** Register under `key`; resolves with `registered`, an error, or null on timeout */
  async register (key: string, nonce: string, extra: object = {}, timeoutMs = 1000): Promise<Msg | null> {
    return await this.request(registerBody(key, nonce, extra), m => (m.t === 'registered' || m.t === 'error') && m.nonce === nonce, timeoutMs)
  }

  /** Messages of one type received so far */
  all<T extends Msg['t']> (t: T): Array<Extract<Msg, { t: T }>> {
    return this.inbox.filter(m => m.t === t) as Array<Extract<Msg, { t: T }>>
  }

  close (): void {
    try {
      this.socket.close()
    } catch {
      // already closed
    }
  }

  private _send (body: object, port: number): void {
    this.socket.send(datagram(body), port, this.server.address)
  }
}

/** Two peers registered under one key (A first: 'connect'); resolves once both got `peer` */
export async function pairUp (server: { address: string, port: number }, key: string, hosts: [string, string] = ['127.0.0.1', '127.0.0.1']): Promise<{ a: RendezvousPeer, b: RendezvousPeer, na: string, nb: string }> {
  const a = await RendezvousPeer.open(server, hosts[0])
  const b = await RendezvousPeer.open(server, hosts[1])
  const na = freshNonce()
  const nb = freshNonce()
  const ra = await a.register(key, na)
  await sleep(10)
  const rb = await b.register(key, nb)
  if (ra?.t !== 'registered' || rb?.t !== 'registered') throw new Error(`registration failed: ${JSON.stringify([ra, rb])}`)
  const [pa, pb] = await Promise.all([a.wait(m => m.t === 'peer', 3000), b.wait(m => m.t === 'peer', 3000)])
  if (pa === null || pb === null) throw new Error('no peer message')
  a.send({ t: 'peer-ack', nonce: na })
  b.send({ t: 'peer-ack', nonce: nb })
  return { a, b, na, nb }
}
