// One uTP connection as a Duplex stream. The Node owns the native handle table and calls the `_onX`
// methods below while it walks a drained event batch; the stream methods call straight into the native node.

import { Duplex } from 'stream'

import { closeReasonError, asError } from './errors'
import type { AnyListener, SocketEvents } from './events'
import { CloseReason, type AddressInfo, type Congestion, type ConnectionStats, type NativeNode } from './native'
import { familyOf, normalizeAddress, validateCongestion, validateInteger } from './options'
import { socketStats, type RendezvousPath, type SocketStats } from './stats'

type Callback = (err?: Error | null) => void

/** What a Socket needs from the Node that made it */
export interface SocketOwner {
  address(): AddressInfo
  /** A connection timed out: the Node re-emits 'timeout' (utp-punch documents `node.on('timeout')`) */
  _onSocketTimeout(socket: Socket): void
}

export interface SocketInit {
  allowHalfOpen: boolean
  /** Payload bytes per packet, for getMtu() before a connection has stats */
  mtu: number
  /** The node's `timeout`: peer silence before 'timeout' until setTimeout() says otherwise */
  timeout: number
  remoteAddress?: string
  remotePort: number
  /** An outgoing connection: 'connect' follows once the handshake completes */
  connecting: boolean
}

/**
 * Typed events (see SocketEvents): a listener for a known event must take that event's arguments; other
 * event names take any listener, as with EventEmitter
 */
export interface Socket {
  on<E extends keyof SocketEvents>(event: E, listener: (...args: SocketEvents[E]) => void): this
  on<E extends string | symbol>(event: Exclude<E, keyof SocketEvents>, listener: AnyListener): this
  once<E extends keyof SocketEvents>(event: E, listener: (...args: SocketEvents[E]) => void): this
  once<E extends string | symbol>(event: Exclude<E, keyof SocketEvents>, listener: AnyListener): this
  addListener<E extends keyof SocketEvents>(event: E, listener: (...args: SocketEvents[E]) => void): this
  addListener<E extends string | symbol>(event: Exclude<E, keyof SocketEvents>, listener: AnyListener): this
  prependListener<E extends keyof SocketEvents>(event: E, listener: (...args: SocketEvents[E]) => void): this
  prependListener<E extends string | symbol>(event: Exclude<E, keyof SocketEvents>, listener: AnyListener): this
  prependOnceListener<E extends keyof SocketEvents>(event: E, listener: (...args: SocketEvents[E]) => void): this
  prependOnceListener<E extends string | symbol>(event: Exclude<E, keyof SocketEvents>, listener: AnyListener): this
  off<E extends keyof SocketEvents>(event: E, listener: (...args: SocketEvents[E]) => void): this
  off<E extends string | symbol>(event: Exclude<E, keyof SocketEvents>, listener: AnyListener): this
  removeListener<E extends keyof SocketEvents>(event: E, listener: (...args: SocketEvents[E]) => void): this
  removeListener<E extends string | symbol>(event: Exclude<E, keyof SocketEvents>, listener: AnyListener): this
  emit<E extends keyof SocketEvents>(event: E, ...args: SocketEvents[E]): boolean
  emit<E extends string | symbol>(event: Exclude<E, keyof SocketEvents>, ...args: unknown[]): boolean
}

export class Socket extends Duplex {
  /** The peer's address (IPv4-mapped IPv6 addresses are shown as IPv4); undefined until resolved */
  remoteAddress: string | undefined
  remotePort: number
  remoteFamily: 'IPv4' | 'IPv6' | undefined
  /** True from connect() until 'connect' (or failure) */
  connecting: boolean

  private readonly _owner: SocketOwner
  private readonly _mtu: number
  private _native: NativeNode | null = null
  private _handle = 0
  /** The native side reported CLOSED: the handle is gone */
  private _nativeClosed = false
  /** push(null) was called (END, or CLOSED without END) */
  private _eof = false
  /** DATA delivery is stopped natively because push() returned false */
  private _readStopped = false
  /** A write the native send buffer refused to take more after; finished by WRITABLE */
  private _writeCb: Callback | null = null
  /** Operations waiting for the handle (an outgoing connection still resolving its host) */
  private _pendingWrite: { chunks: Buffer[], cb: Callback } | null = null
  private _pendingFinal: Callback | null = null
  private _timeoutMs: number
  /** setMtu() before the connection existed natively: applied when it does */
  private _mtuSet: number | undefined = undefined
  /** setCongestion() before the connection existed natively: applied when it does */
  private _congestionSet: Congestion | undefined = undefined
  /** The node's close() ended this socket */
  private _nodeClosing = false
  /** resetAndDestroy(): abort with RESET instead of the FIN of destroy() */
  private _reset = false
  private readonly _defaultTimeout: number
  /** The native side reported the peer silent ('timeout' emitted) and no packet came since */
  private _silenceNoticed = false
  /** The native counters as they were when the connection closed */
  private _lastStats: ConnectionStats | null = null
  /** How rendezvous() made this connection */
  private _path: RendezvousPath | undefined = undefined

  /** @internal Sockets are made by Node (connect() and incoming connections) */
  constructor (owner: SocketOwner, init: SocketInit) {
    super({ allowHalfOpen: init.allowHalfOpen })
    this._owner = owner
    this._mtu = init.mtu
    this._timeoutMs = init.timeout
    this._defaultTimeout = init.timeout
    this.remotePort = init.remotePort
    this.remoteAddress = undefined
    this.remoteFamily = undefined
    this.connecting = init.connecting
    if (init.remoteAddress !== undefined) this._setRemote(init.remoteAddress)
  }

  /** The connection's handle in the native node (0 until the connection exists) */
  get id (): number {
    return this._handle
  }

  /**
   * The peer's address, as utp-punch's socket.address() returns it (its programs learn the peer this way);
   * `address` is '' while a host name is still being resolved. The local end is localAddress / localPort
   */
  address (): AddressInfo {
    return { address: this.remoteAddress ?? '', family: this.remoteFamily ?? 'IPv4', port: this.remotePort }
  }

  /** The local address: the Node's bound address (net.Socket#localAddress) */
  get localAddress (): string {
    return this._owner.address().address
  }

  /** The local port: the Node's bound port (net.Socket#localPort) */
  get localPort (): number {
    return this._owner.address().port
  }

  /** 'IPv4' or 'IPv6', of the local address (net.Socket#localFamily) */
  get localFamily (): 'IPv4' | 'IPv6' {
    return this._owner.address().family
  }

  /**
   * Emit 'timeout' when the peer has sent nothing at all (keepalives count) for `ms`, as utp-punch does; a live
   * peer's keepalives (every `keepAlive` ms) keep it quiet. 0 turns it off, and with it ETIMEDOUT for this open
   * connection. The default is the node's `timeout`
   */
  setTimeout (ms: number, callback?: () => void): this {
    validateInteger('msecs', ms, 0, 2 ** 31 - 1)
    if (callback !== undefined) {
      if (ms === 0) this.removeListener('timeout', callback)
      else this.once('timeout', callback)
    }
    this._timeoutMs = ms
    if (this._native !== null && !this._nativeClosed) this._native.setTimeout(this._handle, ms)
    return this
  }

  /** The peer silence in ms after which 'timeout' is emitted (0: never) */
  getTimeout (): number {
    return this._timeoutMs
  }

  /** Payload bytes per packet */
  getMtu (): number {
    return this.stats()?.mtu ?? this._mtuSet ?? this._mtu
  }

  /** Payload bytes per packet from now on (64-65000), as utp-punch's setMtu; ends the path MTU search */
  setMtu (mtu: number): this {
    validateInteger('mtu', mtu, 64, 65000)
    this._mtuSet = mtu
    if (this._native !== null && !this._nativeClosed) this._native.setMtu(this._handle, mtu)
    return this
  }

  /**
   * The congestion controller of this connection from now on: 'ledbat' (background, yields to other traffic) or
   * 'cubic' (foreground, competes as TCP does); the window it reached carries over. The default is the node's
   * `congestion`; stats().congestion tells which one runs
   */
  setCongestion (mode: Congestion): this {
    validateCongestion('mode', mode)
    this._congestionSet = mode
    if (this._native !== null && !this._nativeClosed) this._native.setCongestion(this._handle, mode)
    return this
  }

  /**
   * RTT, windows, counters, packet size and the rendezvous path (see SocketStats). Null before the connection
   * exists (an outgoing one still resolving its host or waiting for the bind); once the native connection
   * closed (its FINs acknowledged, which can be a moment after the stream's 'close', or it failed), the final
   * numbers with `open: false`. One synchronous native call: cheap enough to poll, not per packet
   */
  stats (): SocketStats | null {
    if (this._lastStats !== null) return socketStats(this._lastStats, this._path, false)
    if (this._native === null || this._nativeClosed) return null
    const s = this._native.connectionStats(this._handle)
    return s === null ? null : socketStats(s, this._path, true)
  }

  // ---- called by Node -----------------------------------------------------------------------------------

  /** @internal The native connection exists now; replay what waited for it */
  _attach (native: NativeNode, handle: number, remoteAddress?: string): void {
    this._native = native
    this._handle = handle
    if (remoteAddress !== undefined) this._setRemote(remoteAddress)
    if (this._timeoutMs !== this._defaultTimeout) native.setTimeout(handle, this._timeoutMs)
    if (this._mtuSet !== undefined) native.setMtu(handle, this._mtuSet)
    if (this._congestionSet !== undefined) native.setCongestion(handle, this._congestionSet)
    const w = this._pendingWrite
    this._pendingWrite = null
    if (w !== null) this._writeNative(w.chunks, w.cb)
    const f = this._pendingFinal
    this._pendingFinal = null
    if (f !== null) this._final(f)
  }

  /**
   * @internal The peer's NAT rebound to `address:port` (a rendezvous server said so): send there from now on
   * and take its packets from there. False when the connection is gone or the address is taken
   */
  _migrate (port: number, address: string): boolean {
    if (this._native === null || this._nativeClosed) return false
    if (!this._native.migrate(this._handle, port, address)) return false
    this._setRemote(address)
    this.remotePort = port
    return true
  }

  /** @internal rendezvous() made this connection over `path` */
  _setPath (path: RendezvousPath): void {
    this._path = path
  }

  /** @internal The path set by rendezvous() */
  _getPath (): RendezvousPath | undefined {
    return this._path
  }

  /** @internal The counters as the connection closed (null if it never existed natively) */
  _finalStats (): ConnectionStats | null {
    return this._lastStats
  }

  /** @internal */
  _setRemote (address: string): void {
    this.remoteAddress = normalizeAddress(address)
    this.remoteFamily = familyOf(this.remoteAddress)
  }

  /** @internal Outgoing handshake completed */
  _onConnect (): void {
    if (this.destroyed) return
    this.connecting = false
    this.emit('connect')
  }

  /** @internal A view of the batch's data buffer */
  _onData (chunk: Buffer): void {
    if (this.destroyed || this._eof) return
    if (!this.push(chunk)) this._stopReading()
  }

  /** @internal Peer sent FIN and all data before it was delivered */
  _onEnd (): void {
    if (this.destroyed || this._eof) return
    this._eof = true
    this.push(null)
  }

  /** @internal The native send buffer has room again */
  _onWritable (): void {
    const cb = this._writeCb
    this._writeCb = null
    if (cb !== null) cb()
  }

  /**
   * @internal The peer has been silent for `timeout` ms: 'timeout', as a notice (net, utp-punch). The
   * connection fails with ETIMEDOUT after as long again, unless the application ends or destroys it first
   */
  _onPeerSilent (): void {
    if (this.destroyed) return
    this._silenceNoticed = true
    this.emit('timeout')
    this._owner._onSocketTimeout(this)
  }

  /** @internal The node's close() is ending this socket: a timeout on the way is not an error */
  _closingWithNode (): void {
    this._nodeClosing = true
  }

  /** @internal The native connection is gone (its counters linger natively a little longer: keep them) */
  _onClosed (reason: number): void {
    if (this._native !== null && !this._nativeClosed) {
      try {
        this._lastStats = this._native.connectionStats(this._handle)
      } catch {
        // the native node is gone: no final numbers
      }
    }
    this._nativeClosed = true
    this._writeCb = null
    this.connecting = false
    if (this.destroyed) return
    if (reason === CloseReason.FINISHED) {
      // Both FINs exchanged. Let the stream end on its own (autoDestroy) once the reader consumed everything
      this._onEnd()
      return
    }
    if (reason === CloseReason.TIMED_OUT) {
      // The node's close() ended it: sockets it ends go without an error (docs/api.md, node.close()), their
      // readable side ended as utp-punch's are
      if (this._nodeClosing) {
        this._onEnd()
        // After 'end' had its turn: a reader that never consumed the stream would otherwise hold it open
        setImmediate(() => { if (!this.destroyed) this.destroy() })
        return
      }
      if (this._silenceNoticed) {
        // The program heard 'timeout' about this open connection and ended its side: it let the connection
        // go, so the end of the wait is a close, not an error (as in utp-punch). No 'end': the peer never
        // ended its stream
        if (this.writableEnded) {
          this.destroy()
          return
        }
      } else {
        // A connection attempt (or a wait for the peer's FIN) gets its notice now, then fails unless the
        // program destroys it in answer: nothing it wrote ever reached a peer
        this.emit('timeout')
        this._owner._onSocketTimeout(this)
        if (this.destroyed) return
      }
    }
    this.destroy(closeReasonError(reason, this.remoteAddress, this.remotePort) ?? undefined)
  }

  /** @internal The connection could not be made (host lookup, native connect, node closed) */
  _fail (err: Error): void {
    this.connecting = false
    this._nativeClosed = true
    if (!this.destroyed) this.destroy(err)
  }

  // ---- stream implementation ----------------------------------------------------------------------------

  override _read (): void {
    if (this._readStopped && this._native !== null && !this._nativeClosed) {
      this._readStopped = false
      this._native.setReading(this._handle, true)
    }
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, cb: Callback): void {
    this._writeNative([chunk], cb)
  }

  override _writev (chunks: Array<{ chunk: Buffer }>, cb: Callback): void {
    const buffers = new Array<Buffer>(chunks.length)
    for (let i = 0; i < chunks.length; i++) buffers[i] = chunks[i].chunk
    this._writeNative(buffers, cb)
  }

  override _final (cb: Callback): void {
    if (this._native === null) {
      this._pendingFinal = cb
      return
    }
    if (this._nativeClosed) {
      cb()
      return
    }
    try {
      this._native.end(this._handle)
    } catch (e) {
      cb(asError(e))
      return
    }
    cb()
  }

  override _destroy (err: Error | null, cb: Callback): void {
    this._pendingWrite = null
    this._pendingFinal = null
    this._writeCb = null
    // A clean end on both sides lets the native connection finish its FIN exchange as it is. Otherwise, as a TCP
    // socket's close(): a FIN after what was written, the peer sees a clean end, and what still arrives is
    // dropped; resetAndDestroy() sends RESET instead
    const graceful = err === null && this.writableFinished && this.readableEnded
    if (this._native !== null && !this._nativeClosed && (this._reset || !graceful)) {
      try {
        if (this._reset) this._native.destroy(this._handle)
        else this._native.release(this._handle)
      } catch {
        // already gone natively; CLOSED is on its way
      }
    }
    cb(err)
  }

  /** Destroy the socket and tell the peer with RESET (its socket fails with ECONNRESET), as net's resetAndDestroy() */
  resetAndDestroy (): this {
    this._reset = true
    return this.destroy()
  }

  /**
   * @internal Hands bytes to the native send buffer through `write` (a secure stream's sealing write), beside
   * this stream's own queue, which must be empty. Null when that cannot be done now (use write()); else whether
   * the send buffer has room, and when it has none `onWritable` runs once it has (never if the connection
   * closes first). Throws what `write` throws
   */
  _writeBeside (write: (native: NativeNode, handle: number) => boolean, onWritable: () => void): boolean | null {
    if (this._native === null || this._nativeClosed || this.destroyed || this.writableEnded ||
      this.writableLength > 0 || this.writableCorked > 0 || this._writeCb !== null) return null
    const more = write(this._native, this._handle)
    if (!more) this._writeCb = onWritable
    return more
  }

  private _writeNative (chunks: Buffer[], cb: Callback): void {
    if (this._native === null) {
      this._pendingWrite = { chunks, cb }
      return
    }
    let more: boolean
    try {
      more = this._native.write(this._handle, chunks)
    } catch (e) {
      cb(asError(e))
      return
    }
    if (more) cb()
    else this._writeCb = cb
  }

  private _stopReading (): void {
    if (this._readStopped || this._native === null || this._nativeClosed) return
    this._readStopped = true
    this._native.setReading(this._handle, false)
  }

}
