// What Node#getUdpSocket() returns: a dgram-like view of the node's UDP socket. The socket itself lives in
// the native driver, so this facade sends raw datagrams through it and surfaces every non-uTP datagram.

import { EventEmitter } from 'events'

import { bufferSizeError, codes, createError, errnoError, notBound } from './errors'
import type { AddressInfo, NativeNode } from './native'
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
  /** Bind if needed, resolve `host`, send; errors go to cb (`late`: close() came while it waited to bind or resolve) */
  _sendRaw(data: Buffer, port: number, host: string | undefined, ttl: number | undefined, cb: (err: Error | null, late?: boolean) => void): void
  address(): AddressInfo
  /** The native node for a socket option: null while not bound; throws once closed */
  _optionTarget(): NativeNode | null
  ref(): unknown
  unref(): unknown
  close(cb?: () => void): unknown
}

type Message = string | NodeJS.ArrayBufferView | ReadonlyArray<string | NodeJS.ArrayBufferView>

/** An optional address argument as dgram's binding reads it: absent when undefined or null, else as a string */
function optionalAddress (a: unknown): string | undefined {
  return a === undefined || a === null ? undefined : String(a)
}

const MESSAGE_TYPES = 'of type string or an instance of Buffer, TypedArray, or DataView'

function toBuffer (msg: unknown): Buffer {
  if (typeof msg === 'string') return Buffer.from(msg)
  if (Buffer.isBuffer(msg)) return msg
  if (ArrayBuffer.isView(msg)) return Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength)
  if (Array.isArray(msg)) {
    // As dgram: a list holds strings and views only, and an error names the whole list
    if (!msg.every((m: unknown) => typeof m === 'string' || ArrayBuffer.isView(m))) throw invalidType('buffer list arguments', MESSAGE_TYPES, msg)
    return Buffer.concat(msg.map(toBuffer))
  }
  throw invalidType('buffer', MESSAGE_TYPES, msg)
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
   * callback(err, bytes); without a callback, errors are emitted as 'error', except that a datagram whose node
   * closed while it waited for the bind or its address lookup is dropped silently, as dgram drops it.
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
    this._host._sendRaw(data, p, (address as string | undefined) ?? undefined, this._ttl, (err, late) => {
      if (typeof cb === 'function') {
        if (err !== null) cb(err)
        else cb(null, size)
      } else if (err !== null && late !== true) {
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

  // ---- dgram's socket options, on the node's own socket (uTP traffic shares it, so they apply to that too) ----
  // Errors are dgram's: the OS error as `code` with errno and `syscall` named after the method, EBADF before the
  // node is bound, ERR_SOCKET_DGRAM_NOT_RUNNING once it is closed; argument types are checked first, as dgram does

  /** SO_BROADCAST: let datagrams go to broadcast addresses */
  setBroadcast (flag: boolean): void {
    this._option('setBroadcast', n => n.setBroadcast(Boolean(flag)))
  }

  /** Hops of multicast datagrams (0..255, else EINVAL); returns `ttl` */
  setMulticastTTL (ttl: number): number {
    if (typeof ttl !== 'number') throw invalidType('ttl', 'of type number', ttl)
    // dgram's binding takes an int32: 1.5 is 1, NaN is 0
    this._option('setMulticastTTL', n => n.setMulticastTTL(ttl | 0))
    return ttl
  }

  /** Whether our own multicast datagrams loop back to this host; returns `flag` */
  setMulticastLoopback (flag: boolean): boolean {
    this._option('setMulticastLoopback', n => n.setMulticastLoopback(Boolean(flag)))
    return flag
  }

  /** The interface multicast datagrams leave by: an IPv4 address, or '::%<interface>' on IPv6 */
  setMulticastInterface (interfaceAddress: string): void {
    const native = this._target()
    if (typeof interfaceAddress !== 'string') throw invalidType('interfaceAddress', 'of type string', interfaceAddress)
    this._answer('setMulticastInterface', native, n => n.setMulticastInterface(interfaceAddress))
  }

  /** Join a multicast group, on the interface of `interfaceAddress` (default: the system's choice) */
  addMembership (multicastAddress: string, interfaceAddress?: string): void {
    this._membership('addMembership', multicastAddress, interfaceAddress, true)
  }

  dropMembership (multicastAddress: string, interfaceAddress?: string): void {
    this._membership('dropMembership', multicastAddress, interfaceAddress, false)
  }

  /** Join a source-specific group: datagrams sent to `groupAddress` by `sourceAddress` only */
  addSourceSpecificMembership (sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this._sourceMembership('addSourceSpecificMembership', sourceAddress, groupAddress, interfaceAddress, true)
  }

  dropSourceSpecificMembership (sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this._sourceMembership('dropSourceSpecificMembership', sourceAddress, groupAddress, interfaceAddress, false)
  }

  /** SO_RCVBUF; the OS may cap it (Linux at net.core.rmem_max) and reports twice the size it keeps for itself */
  setRecvBufferSize (size: number): void {
    this._bufferSize(size, true)
  }

  getRecvBufferSize (): number {
    return this._bufferSize(0, true)
  }

  /** SO_SNDBUF, as setRecvBufferSize() */
  setSendBufferSize (size: number): void {
    this._bufferSize(size, false)
  }

  getSendBufferSize (): number {
    return this._bufferSize(0, false)
  }

  /**
   * Bytes of datagrams queued for sending: always 0. dgram counts the sends libuv still holds; here send() hands
   * the datagram to the kernel itself (once the node is bound and the host resolved, which dgram does not count
   * either), and the few the kernel refuses for want of buffer space wait in the native driver's queue, shared
   * with uTP packets, which is not exposed
   */
  getSendQueueSize (): number {
    return 0
  }

  /** Datagrams queued for sending: always 0, see getSendQueueSize() */
  getSendQueueCount (): number {
    return 0
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

  /** The native node of a socket option (null: not bound); throws ERR_SOCKET_DGRAM_NOT_RUNNING once closed */
  private _target (): NativeNode | null {
    return this._host._optionTarget()
  }

  /** A native option's answer as dgram reports it: 0 or a value, or a negative errno thrown as `syscall <CODE>` */
  private _answer (syscall: string, native: NativeNode | null, call: (n: NativeNode) => number): number {
    if (native === null) throw notBound(syscall)
    const r = call(native)
    if (r < 0) throw errnoError(-r, syscall)
    return r
  }

  private _option (syscall: string, call: (n: NativeNode) => number): number {
    return this._answer(syscall, this._target(), call)
  }

  private _membership (syscall: string, group: unknown, iface: unknown, join: boolean): void {
    const native = this._target()
    // dgram's check: any falsy group is missing
    if (group === undefined || group === null || group === '' || group === 0 || group === false) {
      throw createError(codes.ERR_MISSING_ARGS, 'The "multicastAddress" argument must be specified', TypeError)
    }
    this._answer(syscall, native, n => n.setMembership(String(group), optionalAddress(iface), join))
  }

  private _sourceMembership (syscall: string, source: unknown, group: unknown, iface: unknown, join: boolean): void {
    const native = this._target()
    if (typeof source !== 'string') throw invalidType('sourceAddress', 'of type string', source)
    if (typeof group !== 'string') throw invalidType('groupAddress', 'of type string', group)
    this._answer(syscall, native, n => n.setSourceMembership(source, group, optionalAddress(iface), join))
  }

  /** Get (size 0) or set a kernel buffer size, with dgram's checks and its ERR_SOCKET_BUFFER_SIZE */
  private _bufferSize (size: unknown, recv: boolean): number {
    if (typeof size !== 'number' || size >>> 0 !== size) {
      throw createError(codes.ERR_SOCKET_BAD_BUFFER_SIZE, 'Buffer size must be a positive integer', TypeError)
    }
    const syscall = recv ? 'uv_recv_buffer_size' : 'uv_send_buffer_size'
    const native = this._target()
    if (native === null) throw bufferSizeError('EBADF', syscall)
    const r = native.bufferSize(size, recv)
    if (r < 0) throw bufferSizeError(-r, syscall)
    return r
  }
}
