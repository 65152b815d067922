// An encrypted, authenticated stream over a connected uTP Socket: secureSocket() runs the in-stream handshake
// (crates/utp-secure/src/handshake.rs) and resolves with a SecureSocket, a Duplex that behaves like the Socket
// for its users while every byte on the wire is an AES-256-GCM record. Keys stay in the native record layer;
// data crosses into it once per write batch and once per chunk read, never per packet.

import { Duplex } from 'stream'

import { asError, codes, createError } from '../errors'
import type { AnyListener } from '../events'
import type { AddressInfo } from '../native'
import type { Socket } from '../socket'
import type { SocketStats } from '../stats'
import { secureCodes } from './errors'
import { loadSecure, sealedLength, type NativeHandshake, type NativeRecordLayer } from './native'

type Callback = (err?: Error | null) => void

/** How long secureSocket() waits for the peer's half of the handshake by default, ms */
export const defaultHandshakeTimeout = 10_000

/** Which end of the handshake this side is: the side that connected is usually the initiator. The two must differ */
export type SecureRole = 'initiator' | 'responder'

/**
 * What the two sides share: `key`, 32 bytes agreed earlier (a PAKE through a rendezvous server, or deriveKey()
 * of such a secret), or `psk`, a pre-shared secret of any strength that the handshake runs SPAKE2 with, so a
 * recording of the connection allows no offline guessing of it
 */
export type SecureOptions = { role: SecureRole, key: Buffer } | { role: SecureRole, psk: string | Buffer }

const EMPTY = Buffer.alloc(0)

/** Pieces of plaintext one in-place open reports (a read of 256 KiB, one peer writev, holds 4) */
const PIECES = 32
/** Writes a SecureSocket buffers before write() returns false: batches of several writes per seal */
const WRITE_HIGH_WATER_MARK = 256 * 1024

/** Errors of a socket we let go of: it is closing and nobody is left to tell */
function ignore (): void {}

/**
 * Secures a connected (or connecting) Socket: both sides call it, one as 'initiator' and one as 'responder',
 * with the same key or psk, before either reads or writes the socket. Resolves with the SecureSocket once
 * both sides proved the same key. Rejects, and closes the socket, with ERR_WRONG_CODE when the peer holds
 * another key or psk (both sides see it), ERR_NOT_SECURE when the peer is not running this handshake,
 * ERR_HANDSHAKE_TIMEOUT after `timeoutMs` without the peer's half, ERR_HANDSHAKE_CLOSED when the connection
 * ends first, or the socket's own error
 */
export function secureSocket (socket: Socket, options: SecureOptions, timeoutMs = defaultHandshakeTimeout): Promise<SecureSocket> {
  const handshake = startHandshake(options)
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2 ** 31 - 1) {
    throw createError(codes.ERR_INVALID_ARG_VALUE, `timeoutMs must be a positive integer, got ${String(timeoutMs)}`, RangeError)
  }
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      cleanup()
      // destroy() sends a FIN after what was written: the peer still reads our confirmation and fails the same way
      socket.on('error', ignore)
      socket.destroy()
      reject(err)
    }
    const onData = (chunk: Buffer): void => {
      let reply: Buffer
      try {
        reply = handshake.read(chunk)
      } catch (e) {
        fail(asError(e))
        return
      }
      if (reply.length > 0) socket.write(reply)
      if (!handshake.done) return
      cleanup()
      socket.pause()
      try {
        resolve(new SecureSocket(socket, handshake.finish()))
      } catch (e) {
        fail(asError(e))
      }
    }
    const onEnd = (): void => fail(createError(secureCodes.ERR_HANDSHAKE_CLOSED, 'the peer closed the connection during the encryption handshake'))
    const onError = (err: Error): void => fail(err)
    const timer = setTimeout(() => {
      fail(createError(secureCodes.ERR_HANDSHAKE_TIMEOUT, `the peer did not complete the encryption handshake within ${timeoutMs} ms`))
    }, timeoutMs)
    const cleanup = (): void => {
      clearTimeout(timer)
      socket.removeListener('data', onData)
      socket.removeListener('end', onEnd)
      socket.removeListener('close', onEnd)
      socket.removeListener('error', onError)
    }
    if (socket.destroyed || socket.readableEnded || socket.writableEnded) {
      clearTimeout(timer)
      reject(createError(secureCodes.ERR_HANDSHAKE_CLOSED, 'the socket is closed or ending: secure it before using it'))
      return
    }
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('close', onEnd)
    socket.on('error', onError)
    socket.write(handshake.hello)
  })
}

function startHandshake (options: SecureOptions): NativeHandshake {
  if (typeof options !== 'object' || options === null) {
    throw createError(codes.ERR_INVALID_ARG_TYPE, 'options must be { role, key } or { role, psk }', TypeError)
  }
  const { role } = options
  if (role !== 'initiator' && role !== 'responder') {
    throw createError(codes.ERR_INVALID_ARG_VALUE, `options.role must be 'initiator' or 'responder', got ${String(role)}`, RangeError)
  }
  const key = 'key' in options ? options.key : undefined
  const psk = 'psk' in options ? options.psk : undefined
  if ((key === undefined) === (psk === undefined)) {
    throw createError(codes.ERR_INVALID_ARG_VALUE, 'pass exactly one of options.key and options.psk', TypeError)
  }
  let keyBytes: Buffer | null = null
  let pskBytes: Buffer | null = null
  if (key !== undefined) {
    if (!Buffer.isBuffer(key)) throw createError(codes.ERR_INVALID_ARG_TYPE, 'options.key must be a Buffer', TypeError)
    if (key.length !== 32) throw createError(codes.ERR_INVALID_ARG_VALUE, `options.key must be 32 bytes, got ${key.length}`, RangeError)
    keyBytes = key
  } else {
    if (typeof psk === 'string') pskBytes = Buffer.from(psk, 'utf8')
    else if (Buffer.isBuffer(psk)) pskBytes = psk
    else throw createError(codes.ERR_INVALID_ARG_TYPE, 'options.psk must be a string or a Buffer', TypeError)
    if (pskBytes.length === 0) throw createError(codes.ERR_INVALID_ARG_VALUE, 'options.psk must not be empty', RangeError)
  }
  const { NativeHandshake } = loadSecure()
  try {
    return new NativeHandshake(role === 'initiator', keyBytes, pskBytes)
  } catch (e) {
    throw asError(e)
  }
}

/**
 * An encrypted stream over a uTP Socket, made by secureSocket(). Reads, writes, backpressure, end() and
 * half-close, destroy(), setTimeout() and 'timeout' work as on the Socket. A record that fails authentication
 * (tampering, replay, reordering) or an end without the peer's authenticated close destroys it with ERR_DECRYPT.
 * `socket` is the uTP connection underneath: read stats from it, never read or write it directly
 */
export class SecureSocket extends Duplex {
  /** Always true: lets code that takes either kind of socket tell this one apart */
  readonly encrypted = true
  /** The uTP connection underneath (for stats(), setMtu(), setCongestion(); never read or write it) */
  readonly socket: Socket
  readonly #layer: NativeRecordLayer
  /** push() returned false and _read() has not asked for more since: hold the inner socket */
  #readerFull = false
  /** Where openInPlace() reports the plaintext pieces of a read (start, length pairs), and a view to read them */
  readonly #piecesMemory = Buffer.alloc(8 * PIECES)
  readonly #pieces = new Uint32Array(this.#piecesMemory.buffer, this.#piecesMemory.byteOffset, 2 * PIECES)
  /** A write waiting for room in the send buffer (the inner socket's 'drain', or #onWritable) */
  #writeCb: Callback | null = null
  /** The native send buffer has room again after a sealed write filled it */
  readonly #onWritable = (): void => this.#drained()
  /** Someone else ended the inner socket (its node's close()): a cut-short read is then ours, not an attack */
  #endedLocally = false
  /** What this stream listens to on the inner socket (added in the constructor, removed in _destroy) */
  readonly #inner: Record<string, AnyListener> = {
    data: (chunk: Buffer): void => this.#ingest(chunk),
    end: (): void => this.#innerEnded(),
    error: (err: Error): void => { this.destroy(err) },
    close: (): void => this.#innerClosed(),
    drain: (): void => this.#drained(),
    timeout: (): void => { this.emit('timeout') }
  }

  /** @internal Made by secureSocket() once the handshake succeeded */
  constructor (socket: Socket, layer: NativeRecordLayer) {
    super({
      allowHalfOpen: socket.allowHalfOpen,
      readableHighWaterMark: socket.readableHighWaterMark,
      writableHighWaterMark: Math.max(socket.writableHighWaterMark, WRITE_HIGH_WATER_MARK)
    })
    this.socket = socket
    this.#layer = layer
    // Records need both directions to end on their own terms: the close record goes before the FIN, so the
    // inner socket must not end its side by itself when the peer's FIN arrives (this stream decides that)
    socket.allowHalfOpen = true
    // Whoever ends the inner socket (the node's close() ends every socket) ends this stream instead, so the
    // close record goes out before the FIN and the peer sees a clean end. Removed again in _destroy
    socket.end = ((...args: unknown[]): Socket => {
      const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined
      if (cb !== undefined) this.once('finish', cb)
      this.#endedLocally = true
      if (!this.writableEnded) this.end()
      return socket
    }) as Socket['end']
    for (const [event, listener] of Object.entries(this.#inner)) socket.on(event, listener)
    // records that arrived in the same read as the peer's confirmation; then wait for the first _read()
    this.#readerFull = true
    this.#ingest(EMPTY)
  }

  get remoteAddress (): string | undefined {
    return this.socket.remoteAddress
  }

  get remotePort (): number {
    return this.socket.remotePort
  }

  get remoteFamily (): 'IPv4' | 'IPv6' | undefined {
    return this.socket.remoteFamily
  }

  get localAddress (): string {
    return this.socket.localAddress
  }

  get localPort (): number {
    return this.socket.localPort
  }

  /** The peer's address, as Socket#address() */
  address (): AddressInfo {
    return this.socket.address()
  }

  /** The inner socket's counters (bytes include the records' 20 bytes of overhead per 64 KiB and the handshake) */
  stats (): SocketStats | null {
    return this.socket.stats()
  }

  /** As Socket#setTimeout(): 'timeout' when the peer has been silent for `ms` (0: never) */
  setTimeout (ms: number, callback?: () => void): this {
    this.socket.setTimeout(ms)
    if (callback !== undefined) {
      if (ms === 0) this.removeListener('timeout', callback)
      else this.once('timeout', callback)
    }
    return this
  }

  getTimeout (): number {
    return this.socket.getTimeout()
  }

  // ---- reading --------------------------------------------------------------------------------------------

  #ingest (chunk: Buffer): void {
    if (this.destroyed) return
    let count: number | null
    let opened = EMPTY
    try {
      count = this.#layer.openInPlace(chunk, this.#piecesMemory)
      if (count === null) {
        // A record began in an earlier read: its bytes and this chunk's go to a new buffer
        const out = Buffer.allocUnsafe(this.#layer.pending + chunk.length)
        opened = out.subarray(0, this.#layer.openInto(chunk, out))
      }
    } catch (e) {
      this.destroy(asError(e))
      return
    }
    let more = true
    if (count === null) {
      if (opened.length > 0) more = this.push(opened)
    } else {
      // Each record's plaintext where it was decrypted: a push per record costs less than moving them together
      const pieces = this.#pieces
      for (let i = 0; i < count; i++) {
        const start = pieces[2 * i]
        more = this.push(chunk.subarray(start, start + pieces[2 * i + 1]))
      }
    }
    if (!more) {
      this.#readerFull = true
      this.socket.pause()
    }
  }

  #innerEnded (): void {
    if (this.destroyed) return
    try {
      this.#layer.finish()
    } catch (e) {
      this.destroy(this.#endedLocally ? undefined : asError(e))
      return
    }
    this.push(null)
  }

  #innerClosed (): void {
    if (this.destroyed) return
    if (!this.readableEnded && !this.#layer.peerClosed) {
      if (this.#endedLocally) this.destroy()
      else this.destroy(createError(secureCodes.ERR_DECRYPT, 'the connection closed without the peer\'s authenticated end'))
      return
    }
    // ended cleanly: let the readable side finish on its own; a pending write can no longer complete
    const cb = this.#writeCb
    this.#writeCb = null
    if (cb !== null) cb(createError(codes.ERR_SOCKET_CLOSED, 'the connection closed before the write was sent'))
  }

  override _read (): void {
    if (this.#readerFull) {
      this.#readerFull = false
      this.socket.resume()
    }
  }

  // ---- writing --------------------------------------------------------------------------------------------

  override _write (chunk: Buffer, _encoding: BufferEncoding, cb: Callback): void {
    this.#send([chunk], cb)
  }

  override _writev (chunks: Array<{ chunk: Buffer }>, cb: Callback): void {
    const buffers = new Array<Buffer>(chunks.length)
    for (let i = 0; i < chunks.length; i++) buffers[i] = chunks[i].chunk
    this.#send(buffers, cb)
  }

  #send (buffers: Buffer[], cb: Callback): void {
    const layer = this.#layer
    let more: boolean | null
    try {
      // Sealed in the native send buffer, where a plain write copies its bytes: no copy of our own, one call
      more = this.socket._writeBeside((native, handle) => native.writeSealed(handle, layer, buffers), this.#onWritable)
      if (more === null) {
        // Something still waits in the inner socket (the handshake's last message): records queue behind it
        let size = 0
        for (const b of buffers) size += sealedLength(b.length)
        const records = Buffer.allocUnsafe(size)
        layer.sealInto(buffers, records)
        this.#writeRecords(records, cb)
        return
      }
    } catch (e) {
      cb(asError(e))
      return
    }
    if (more) cb()
    else this.#writeCb = cb
  }

  #writeRecords (records: Buffer, cb: Callback): void {
    if (this.socket.write(records)) cb()
    else this.#writeCb = cb
  }

  #drained (): void {
    const cb = this.#writeCb
    this.#writeCb = null
    if (cb !== null) cb()
  }

  override _final (cb: Callback): void {
    let close: Buffer
    try {
      close = this.#layer.sealClose()
    } catch (e) {
      cb(asError(e))
      return
    }
    Reflect.deleteProperty(this.socket, 'end') // the Socket's own end() again
    this.socket.end(close, () => cb())
  }

  override _destroy (err: Error | null, cb: Callback): void {
    const s = this.socket
    for (const [event, listener] of Object.entries(this.#inner)) s.removeListener(event, listener)
    this.#writeCb = null
    Reflect.deleteProperty(s, 'end')
    // Socket#destroy() lets a clean end both ways finish its FIN exchange, and otherwise sends a FIN after what
    // was written, so an ERR_DECRYPT here never takes from the peer what we already sent
    s.on('error', ignore)
    if (!s.destroyed) s.destroy()
    cb(err)
  }
}
