// What Node#getUdpSocket() returns: a dgram-like view of the node's UDP socket. The socket itself lives in
// the native driver, so this facade sends raw datagrams through it and surfaces every non-uTP datagram.

import { EventEmitter } from 'events'

import type { AddressInfo } from './native'
import { invalidType, validateInteger, validatePort } from './options'

export interface RemoteInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
  size: number
}

export type SendCallback = (err: Error | null, bytes?: number) => void

/** What the facade needs from its node */
export interface FacadeHost {
  /** Bind if needed, resolve `host`, send; errors go to cb */
  _sendRaw(data: Buffer, port: number, host: string | undefined, ttl: number | undefined, cb: (err: Error | null) => void): void
  address(): AddressInfo
  ref(): unknown
  unref(): unknown
  close(cb?: () => void): unknown
}

type Message = string | NodeJS.ArrayBufferView | ReadonlyArray<string | NodeJS.ArrayBufferView>

function toBuffer (msg: unknown, name = 'buffer'): Buffer {
  if (typeof msg === 'string') return Buffer.from(msg)
  if (Buffer.isBuffer(msg)) return msg
  if (ArrayBuffer.isView(msg)) return Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength)
  if (Array.isArray(msg)) return Buffer.concat(msg.map((m: unknown) => toBuffer(m, name)))
  throw invalidType(name, 'of type string or an instance of Buffer, TypedArray, or DataView', msg)
}

export class UdpSocketFacade extends EventEmitter {
  private readonly _host: FacadeHost
  private _ttl: number | undefined = undefined

  /** @internal */
  constructor (host: FacadeHost) {
    super()
    this._host = host
  }

  /**
   * dgram-style send:
   *   send(msg, port[, address][, callback])
   *   send(msg, offset, length, port[, address][, callback])
   * `address` defaults to the loopback address of the bound family; host names are looked up.
   * callback(err, bytes); without a callback, errors are emitted as 'error'.
   */
  send (msg: Message, port: number, address?: string, callback?: SendCallback): void
  send (msg: Message, port: number, callback?: SendCallback): void
  send (msg: Message, offset: number, length: number, port: number, address?: string, callback?: SendCallback): void
  send (msg: Message, offset: number, length: number, port: number, callback?: SendCallback): void
  send (msg: unknown, a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown): void {
    let data: Buffer
    let port: unknown
    let address: unknown
    let callback: unknown
    if (d !== undefined || (c !== undefined && c !== null && typeof c !== 'function')) {
      // msg, offset, length, port, [address], [callback]
      const whole = toBuffer(msg)
      const offset = validateInteger('offset', a, 0, whole.length)
      const length = validateInteger('length', b, 0, whole.length - offset)
      data = whole.subarray(offset, offset + length)
      port = c
      address = d
      callback = e
    } else {
      data = toBuffer(msg)
      port = a
      address = b
      callback = c
    }
    if (typeof address === 'function') {
      callback = address
      address = undefined
    }
    if (address !== undefined && address !== null && typeof address !== 'string') throw invalidType('address', 'of type string', address)
    if (callback !== undefined && callback !== null && typeof callback !== 'function') throw invalidType('callback', 'of type function', callback)
    const p = validatePort(port, 'Port', false)
    const cb = callback as SendCallback | undefined
    const size = data.length
    this._host._sendRaw(data, p, (address as string | undefined) ?? undefined, this._ttl, (err) => {
      if (typeof cb === 'function') {
        if (err !== null) cb(err)
        else cb(null, size)
      } else if (err !== null) {
        this.emit('error', err)
      }
    })
  }

  address (): AddressInfo {
    return this._host.address()
  }

  /** TTL for datagrams sent through this facade from now on (1..255), e.g. low-TTL punch probes */
  setTTL (ttl: number): number {
    this._ttl = validateInteger('ttl', ttl, 1, 255)
    return ttl
  }

  ref (): this {
    this._host.ref()
    return this
  }

  unref (): this {
    this._host.unref()
    return this
  }

  /** Closes the whole node (the socket is shared with every uTP connection) */
  close (callback?: () => void): this {
    this._host.close(callback)
    return this
  }

  /** @internal */
  _onMessage (msg: Buffer, rinfo: RemoteInfo): void {
    this.emit('message', msg, rinfo)
  }
}
