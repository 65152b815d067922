// Node: one UDP socket that is a uTP server and client at once, plus hole punching (the utp-punch API).
//
// The native driver thread batches everything that happened and wakes us once; _onWake drains the
// batches and walks the flat [kind, handle, arg] triples, dispatching to the Socket registered per handle.

import * as dns from 'dns'
import { EventEmitter } from 'events'
import * as net from 'net'
import { finished } from 'stream'

import * as errorsModule from './errors'
import { asError, codes, createError, errnoError, notRunning } from './errors'
import * as nativeModule from './native'
import { CloseReason, Kind, loadNative, type AddressInfo, type NativeBatch, type NativeNode } from './native'
import * as optionsModule from './options'
import { familyOf, invalidType, normalizeAddress, validateHost, validateInteger, validateOptions, validatePort, type NodeOptions, type ResolvedOptions } from './options'
import { Puncher, type PunchTransport } from './punch'
import * as socketModule from './socket'
import { Socket, type SocketOwner } from './socket'
import * as rendezvousModule from './rendezvous'
import { rendezvous, type RendezvousOptions, type RendezvousResult } from './rendezvous'
import * as stunModule from './stun'
import { natBehavior, stunBinding, type NatBehaviorResult, type NatDiscoveryOptions, type StunAddress, type StunBindingOptions } from './stun'
import * as udpModule from './udp-facade'
import { UdpSocketFacade, type FacadeHost, type RemoteInfo } from './udp-facade'

type State = 'idle' | 'binding' | 'bound' | 'closing' | 'closed'
type BoundWaiter = (err: Error | null, native?: NativeNode) => void
type ConnectionListener = (socket: Socket) => void

const DEFAULT_HOST = '127.0.0.1'
/** Binding '::' failed for want of IPv6: fall back to '0.0.0.0' */
const FAMILY_ERRORS = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EINVAL', 'EPROTONOSUPPORT'])

function checkCallback (cb: unknown, name = 'callback'): void {
  if (cb !== undefined && cb !== null && typeof cb !== 'function') throw invalidType(name, 'of type function', cb)
}

export interface Node {
  on(event: 'bound', listener: (address: AddressInfo) => void): this
  on(event: 'listening', listener: () => void): this
  on(event: 'connection' | 'connect' | 'timeout', listener: (socket: Socket) => void): this
  on(event: 'close', listener: () => void): this
  on(event: 'error', listener: (err: Error) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once(event: 'bound', listener: (address: AddressInfo) => void): this
  once(event: 'listening', listener: () => void): this
  once(event: 'connection' | 'connect' | 'timeout', listener: (socket: Socket) => void): this
  once(event: 'close', listener: () => void): this
  once(event: 'error', listener: (err: Error) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}

export class Node extends EventEmitter implements SocketOwner, PunchTransport, FacadeHost {
  private readonly _options: ResolvedOptions
  private _state: State = 'idle'
  private _native: NativeNode | null = null
  /** Open connections by native handle (removed on CLOSED) */
  private readonly _sockets = new Map<number, Socket>()
  /** Outgoing sockets waiting for the bind or the host lookup */
  private readonly _connecting = new Set<Socket>()
  private _boundWaiters: BoundWaiter[] = []
  private readonly _puncher: Puncher
  private _udp: UdpSocketFacade | null = null
  private _refed = true
  private _nativeCloseCalled = false
  private _closeTimer: NodeJS.Timeout | null = null
  private _autoBindScheduled = false
  private _autoBindEmits = false

  /**
   * new Node([options], [onconnection]): options are validated here (TypeError/RangeError with .code);
   * onconnection is added as a 'connection' listener.
   */
  constructor (options?: NodeOptions | ConnectionListener | null, onconnection?: ConnectionListener) {
    super()
    if (typeof options === 'function') {
      onconnection = options
      options = undefined
    }
    this._options = validateOptions(options)
    checkCallback(onconnection, 'onconnection')
    if (onconnection !== undefined) this.on('connection', onconnection)
    this._puncher = new Puncher(this)
  }

  /** Connections this node can hold at once */
  get maxConnections (): number {
    return this._native?.stats().maxConnections ?? this._options.maxConnections
  }

  /** Open incoming connections */
  get serverConnections (): number {
    return this._native?.stats().serverConnections ?? 0
  }

  /** Open outgoing connections */
  get clientConnections (): number {
    return this._native?.stats().clientConnections ?? 0
  }

  /** The dgram-like face of the node's UDP socket: send() raw datagrams, 'message' for non-uTP ones */
  getUdpSocket (): UdpSocketFacade {
    if (this._udp === null) this._udp = new UdpSocketFacade(this)
    return this._udp
  }

  /** The bound address; throws ERR_SOCKET_DGRAM_NOT_RUNNING when not bound (like dgram) */
  address (): AddressInfo {
    const a = this._native?.address() ?? null
    if (a === null) throw notRunning()
    const address = normalizeAddress(a.address)
    return { address, family: a.family, port: a.port }
  }

  /**
   * bind([port][, host][, onBound]), or bind({ port, address }[, onBound]). Port 0 or omitted picks a free
   * port; host defaults to '::' (dual-stack), falling back to '0.0.0.0'. 'bound' is emitted (and onBound
   * called) asynchronously; a failure is emitted as 'error'. Throws if already bound or closed.
   */
  bind (port?: number | null, host?: string | null, onBound?: (address: AddressInfo) => void): this
  bind (port: number | null | undefined, onBound: (address: AddressInfo) => void): this
  bind (options: { port?: number, address?: string }, onBound?: (address: AddressInfo) => void): this
  bind (onBound: (address: AddressInfo) => void): this
  bind (a?: unknown, b?: unknown, c?: unknown): this {
    const args = [a, b, c]
    let cb: unknown
    for (let i = args.length - 1; i >= 0; i--) {
      if (typeof args[i] === 'function') {
        cb = args[i]
        args.length = i
        break
      }
    }
    let [port, host] = args
    if (port !== null && typeof port === 'object') {
      const o = port as { port?: unknown, address?: unknown }
      port = o.port
      host = o.address
    }
    checkCallback(cb, 'onBound')
    this._bind(port, host, (err, address) => {
      if (err !== null) {
        this.emit('error', err)
        return
      }
      this.emit('bound', address)
      if (typeof cb === 'function') cb.call(this, address)
    })
    return this
  }

  /** Like bind() but resolves to the bound address (and rejects instead of emitting 'error') */
  bindAsync (port?: number | null, host?: string | null): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this._bind(port, host, (err, address) => {
        if (err !== null) {
          reject(err)
          return
        }
        this.emit('bound', address)
        resolve(address as AddressInfo)
      })
    })
  }

  /**
   * Start (or keep) accepting incoming connections; binds to a free port first if not bound.
   * 'listening' is emitted and onListening called asynchronously.
   */
  listen (onListening?: () => void): this {
    checkCallback(onListening, 'onListening')
    this._listen(true, (err) => {
      if (err !== null) return // the bind error was emitted as 'error' already
      this.emit('listening')
      if (typeof onListening === 'function') onListening.call(this)
    })
    return this
  }

  listenAsync (): Promise<void> {
    return new Promise((resolve, reject) => {
      this._listen(false, (err) => {
        if (err !== null) {
          reject(err)
          return
        }
        this.emit('listening')
        resolve()
      })
    })
  }

  /**
   * Open a connection to a Node listening at host:port (host defaults to '127.0.0.1'; names are looked up).
   * Returns the Socket at once; writes before 'connect' are buffered. onconnect(socket) runs on 'connect'.
   * Binds to a free port first if not bound.
   */
  connect (port: number, host?: string | null, onconnect?: ConnectionListener): Socket
  connect (port: number, onconnect?: ConnectionListener): Socket
  connect (port: number, host?: unknown, onconnect?: unknown): Socket {
    return this._connect(port, host, onconnect, true)
  }

  /** Resolves with the connected Socket; rejects with its error (ECONNREFUSED, ETIMEDOUT, ...) */
  connectAsync (port: number, host?: string | null): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = this._connect(port, host, undefined, false)
      const onError = (err: Error): void => {
        socket.removeListener('connect', onConnect)
        socket.removeListener('close', onClose)
        reject(err)
      }
      const onClose = (): void => onError(createError(codes.ERR_SOCKET_CLOSED, 'Socket closed before it connected'))
      const onConnect = (): void => {
        socket.removeListener('error', onError)
        socket.removeListener('close', onClose)
        resolve(socket)
      }
      socket.once('connect', onConnect)
      socket.once('error', onError)
      socket.once('close', onClose)
    })
  }

  /**
   * Punch a hole toward host:port: send a probe now and every 500 ms, `attempts` probes in all. Success
   * (true) once the peer answered one of our probes, so the path works both ways; false when the attempts
   * run out or close() cancels. The callback gets the same boolean the returned promise resolves to.
   */
  punch (attempts: number, port: number, host?: string | null, callback?: (success: boolean) => void): Promise<boolean>
  punch (attempts: number, port: number, callback?: (success: boolean) => void): Promise<boolean>
  punch (attempts: number, port: number, host?: unknown, callback?: unknown): Promise<boolean> {
    if (typeof host === 'function') {
      callback = host
      host = undefined
    }
    validateInteger('attempts', attempts, 1, 2 ** 31 - 1)
    const p = validatePort(port, 'Port', false)
    const h = host === undefined || host === null ? DEFAULT_HOST : validateHost(host)
    checkCallback(callback)
    return new Promise((resolve) => {
      const done = (success: boolean): void => {
        resolve(success)
        if (typeof callback === 'function') callback.call(this, success)
      }
      if (this._state === 'closing' || this._state === 'closed') {
        process.nextTick(done, false)
        return
      }
      this._whenBound(true, (err) => {
        if (err !== null) process.nextTick(done, false)
        else this._puncher.punch(attempts, p, h, done)
      })
    })
  }

  punchAsync (attempts: number, port: number, host?: string | null): Promise<boolean> {
    return this.punch(attempts, port, host)
  }

  /**
   * This node's public address as a STUN server ('host:port') sees it, asked from the node's own socket,
   * so it is the mapping peers reach uTP through. Rejects with code ERR_STUN_TIMEOUT or ERR_STUN_ERROR_RESPONSE.
   */
  async stun (server: string, options?: StunBindingOptions): Promise<StunAddress> {
    return (await stunBinding(this, server, options)).mapped
  }

  /**
   * Meet a peer through a rendezvous server under a shared code and end up with a connected Socket,
   * whichever way works: LAN addresses, the public addresses punched from both sides, or the server's
   * relay. Symmetric: both peers make the same call. Rejects with ERR_PUNCH_FAILED (naming the NAT
   * types and candidates) when no path works and `relay` is false, or ERR_RENDEZVOUS_TIMEOUT.
   */
  rendezvous (options: RendezvousOptions): Promise<RendezvousResult> {
    return rendezvous(this, options)
  }

  /** @internal A new, unbound Node with this one's options (birthday probing's extra ports) */
  _sibling (): Node {
    return new Node(this._options)
  }

  /**
   * NAT behaviour discovery (RFC 5780: mapping and filtering) against a STUN server that offers
   * OTHER-ADDRESS and CHANGE-REQUEST, such as coturn; 'unknown' parts when the server does not.
   */
  natType (server: string, options?: NatDiscoveryOptions): Promise<NatBehaviorResult> {
    return natBehavior(this, server, options)
  }

  /**
   * Graceful close: stop punching and accepting, end() every connection and let it flush, then close the
   * socket; 'close' follows once everything is shut (connections still open after `timeout` ms are reset).
   * Calling it again is harmless: the callback runs once the node is closed.
   */
  close (onClose?: () => void): this {
    checkCallback(onClose, 'onClose')
    if (this._state === 'closed') {
      if (typeof onClose === 'function') process.nextTick(() => onClose.call(this))
      return this
    }
    if (typeof onClose === 'function') this.once('close', onClose)
    if (this._state === 'closing') return this
    const wasBound = this._state === 'bound'
    this._state = 'closing'
    this._puncher.cancelAll()
    this._flushBoundWaiters(notRunning())
    for (const s of this._connecting) process.nextTick(() => s._fail(notRunning()))
    this._connecting.clear()
    if (!wasBound || this._native === null) {
      process.nextTick(() => this._onNodeClosed())
      return this
    }
    this._native.listen(false)
    // Hand everything written so far to the native side before it sends FINs and closes
    let waiting = 0
    const one = (): void => {
      if (--waiting === 0) this._closeNative()
    }
    for (const s of this._sockets.values()) {
      if (s.destroyed || s.writableFinished) continue
      waiting++
      finished(s, { readable: false }, one)
      if (!s.writableEnded) s.end()
    }
    if (waiting === 0) {
      this._closeNative()
    } else {
      this._closeTimer = setTimeout(() => this._closeNative(), this._options.timeout)
      if (!this._refed) this._closeTimer.unref()
    }
    return this
  }

  closeAsync (): Promise<void> {
    return new Promise((resolve) => this.close(resolve))
  }

  /** Keep the event loop alive while bound (the default), like dgram */
  ref (): this {
    this._refed = true
    this._native?.ref()
    this._closeTimer?.ref()
    this._puncher.ref()
    return this
  }

  /** Let the process exit even though the node is bound */
  unref (): this {
    this._refed = false
    this._native?.unref()
    this._closeTimer?.unref()
    this._puncher.unref()
    return this
  }

  // ---- binding --------------------------------------------------------------------------------------------

  private _bind (port: unknown, host: unknown, done: (err: Error | null, address?: AddressInfo) => void): void {
    if (this._state === 'closing' || this._state === 'closed') throw notRunning()
    if (this._state !== 'idle') throw createError(codes.ERR_SOCKET_ALREADY_BOUND, 'Socket is already bound')
    const p = port === undefined || port === null ? 0 : validatePort(port)
    const h = host === undefined || host === null ? undefined : validateHost(host)
    this._state = 'binding'
    const finish = (err: Error | null, address?: AddressInfo): void => {
      if (this._state !== 'binding') return // closed meanwhile; close() told the waiters
      this._state = err === null ? 'bound' : 'idle'
      process.nextTick(() => {
        // Operations queued on the bind run before 'bound' listeners, as soon as the socket exists
        done(err, address)
      })
      this._flushBoundWaiters(err)
    }
    const bindTo = (address: string, fallback: string | null): void => {
      if (this._state !== 'binding') return
      let native: NativeNode | null = null
      try {
        native = this._createNative()
        native.bind(p, address)
        this._native = native
        if (!this._refed) native.unref()
        finish(null, this.address())
      } catch (e) {
        if (native !== null) this._discardNative(native)
        const err = asError(e)
        if (fallback !== null && FAMILY_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) {
          bindTo(fallback, null)
          return
        }
        finish(err)
      }
    }
    if (h === undefined) bindTo('::', '0.0.0.0')
    else if (net.isIP(h) !== 0) bindTo(h, null)
    else {
      dns.lookup(h, (err, address) => {
        if (err !== null) finish(err)
        else bindTo(address, null)
      })
    }
  }

  private _createNative (): NativeNode {
    const NativeNode = loadNative()
    const o = this._options
    const native: NativeNode = new NativeNode({
      mtu: o.mtu,
      bufferSize: o.bufferSize,
      loopbackMtu: o.loopbackMtu,
      probeMtu: o.probeMtu,
      timeout: o.timeout,
      resend: o.resend,
      keepAlive: o.keepAlive,
      maxConnections: o.maxConnections
    }, () => this._onWake(native))
    return native
  }

  /** A native node that failed to bind: close it and ignore whatever it still reports */
  private _discardNative (native: NativeNode): void {
    try {
      native.close()
    } catch {
      // nothing was running
    }
  }

  /** Run fn once bound (synchronously if bound now), binding to a free port first when idle */
  private _whenBound (emitErrors: boolean, fn: BoundWaiter): void {
    switch (this._state) {
      case 'bound':
        fn(null, this._native as NativeNode)
        return
      case 'binding':
        this._boundWaiters.push(fn)
        return
      case 'idle':
        // Bind to a free port on the next tick, so that a bind() right after (the order utp-punch allowed,
        // e.g. listen() then bind(port)) still chooses the port; the queued operations then run on that bind
        this._boundWaiters.push(fn)
        this._autoBindEmits ||= emitErrors
        if (!this._autoBindScheduled) {
          this._autoBindScheduled = true
          process.nextTick(() => {
            this._autoBindScheduled = false
            const emit = this._autoBindEmits
            this._autoBindEmits = false
            if (this._state !== 'idle' || this._boundWaiters.length === 0) return
            this._bind(0, undefined, (err, address) => {
              if (err === null) this.emit('bound', address)
              else if (emit) this.emit('error', err)
            })
          })
        }
        return
      default:
        fn(notRunning())
    }
  }

  private _flushBoundWaiters (err: Error | null): void {
    const waiters = this._boundWaiters
    this._boundWaiters = []
    for (const fn of waiters) {
      if (err === null) fn(null, this._native as NativeNode)
      else fn(err)
    }
  }

  private _listen (emitErrors: boolean, done: (err: Error | null) => void): void {
    if (this._state === 'closing' || this._state === 'closed') throw notRunning()
    this._whenBound(emitErrors, (err, native) => {
      if (err === null) {
        try {
          (native as NativeNode).listen(true)
        } catch (e) {
          err = asError(e)
        }
      }
      const e = err
      process.nextTick(() => done(e))
    })
  }

  // ---- connections ----------------------------------------------------------------------------------------

  private _connect (port: unknown, host: unknown, onconnect: unknown, emitErrors: boolean): Socket {
    if (typeof host === 'function') {
      onconnect = host
      host = undefined
    }
    const p = validatePort(port, 'Port', false)
    const h = host === undefined || host === null ? DEFAULT_HOST : validateHost(host)
    checkCallback(onconnect, 'onconnect')
    const socket = new Socket(this, {
      allowHalfOpen: this._options.allowHalfOpen,
      mtu: this._options.mtu,
      remoteAddress: net.isIP(h) !== 0 ? h : undefined,
      remotePort: p,
      connecting: true
    })
    if (typeof onconnect === 'function') socket.once('connect', () => onconnect.call(this, socket))
    if (this._state === 'closing' || this._state === 'closed') {
      process.nextTick(() => socket._fail(notRunning()))
      return socket
    }
    this._connecting.add(socket)
    const fail = (err: Error): void => {
      this._connecting.delete(socket)
      process.nextTick(() => socket._fail(err))
    }
    this._whenBound(emitErrors, (err) => {
      if (err !== null) {
        fail(err)
        return
      }
      this._resolve(h, (err, address) => {
        if (!this._connecting.has(socket)) return // the node closed meanwhile
        if (socket.destroyed) {
          this._connecting.delete(socket)
          return
        }
        const native = this._native
        if (err !== null || address === undefined || native === null) {
          fail(err ?? notRunning())
          return
        }
        let handle: number
        try {
          handle = native.connect(p, address)
        } catch (e) {
          fail(asError(e))
          return
        }
        this._connecting.delete(socket)
        this._sockets.set(handle, socket)
        socket._attach(native, handle, address)
      })
    })
    return socket
  }

  /** @internal IP literals pass through synchronously; names go through dns.lookup for the bound family */
  _resolve (host: string, cb: (err: Error | null, address?: string) => void): void {
    if (net.isIP(host) !== 0) {
      cb(null, host)
      return
    }
    const bound = this._native?.address() ?? null
    let family: 0 | 4 | 6 = 0
    if (bound !== null) family = bound.family === 'IPv4' ? 4 : bound.address === '::' ? 0 : 6
    dns.lookup(host, { family }, (err, address) => {
      if (err !== null) cb(err)
      else cb(null, address)
    })
  }

  /** @internal Send to a resolved address, reporting (never throwing) errors */
  _sendRawTo (data: Buffer, port: number, address: string, cb?: (err: Error | null) => void, ttl?: number): void {
    let err: Error | null = null
    const native = this._native
    if (native === null) err = notRunning()
    else {
      try {
        native.sendRaw(data, port, address, ttl)
      } catch (e) {
        err = asError(e)
      }
    }
    if (cb !== undefined) process.nextTick(cb, err)
  }

  /** @internal The facade's send: bind if needed, resolve, send */
  _sendRaw (data: Buffer, port: number, host: string | undefined, ttl: number | undefined, cb: (err: Error | null) => void): void {
    if (this._state === 'closing' || this._state === 'closed') {
      process.nextTick(cb, notRunning())
      return
    }
    this._whenBound(true, (err) => {
      if (err !== null) {
        process.nextTick(cb, err)
        return
      }
      this._resolve(host ?? this._loopback(), (err, address) => {
        if (err !== null || address === undefined) process.nextTick(cb, err ?? notRunning())
        else this._sendRawTo(data, port, address, cb, ttl)
      })
    })
  }

  /** dgram's default destination: the loopback address of the bound family */
  private _loopback (): string {
    const a = this._native?.address() ?? null
    return a !== null && a.family === 'IPv6' && a.address !== '::' ? '::1' : '127.0.0.1'
  }

  /** @internal */
  _isRefed (): boolean {
    return this._refed
  }

  /** @internal */
  _onSocketTimeout (socket: Socket): void {
    this.emit('timeout', socket)
  }

  // ---- closing --------------------------------------------------------------------------------------------

  private _closeNative (): void {
    if (this._nativeCloseCalled) return
    this._nativeCloseCalled = true
    if (this._closeTimer !== null) clearTimeout(this._closeTimer)
    this._closeTimer = null
    try {
      this._native?.close()
    } catch (e) {
      // The driver is gone; nothing will report NODE_CLOSED
      process.nextTick(() => {
        this.emit('error', asError(e))
        this._onNodeClosed()
      })
    }
  }

  private _onNodeClosed (): void {
    if (this._state === 'closed') return
    this._state = 'closed'
    this._native = null
    if (this._closeTimer !== null) clearTimeout(this._closeTimer)
    this._closeTimer = null
    this._puncher.cancelAll()
    this._flushBoundWaiters(notRunning())
    const sockets = [...this._sockets.values()]
    this._sockets.clear()
    for (const s of sockets) s._onClosed(CloseReason.ABORTED)
    this._udp?.emit('close')
    this.emit('close')
  }

  // ---- native events --------------------------------------------------------------------------------------

  private _onWake (native: NativeNode): void {
    if (native !== this._native) {
      // A discarded node (failed bind): just empty it
      try {
        while (native.drain() !== null);
      } catch {
        // closed
      }
      return
    }
    let thrown = false
    let first: unknown
    for (;;) {
      const batch = native.drain()
      if (batch === null) break
      const r = this._dispatch(native, batch)
      if (r.thrown && !thrown) {
        thrown = true
        first = r.error
      }
    }
    // A listener threw: finish the batch first so no connection misses its events, then surface it
    if (thrown) process.nextTick(() => { throw first })
  }

  private _dispatch (native: NativeNode, batch: NativeBatch): { thrown: boolean, error: unknown } {
    const { events, data, peers } = batch
    let offset = 0
    let thrown = false
    let error: unknown
    for (let i = 0; i + 2 < events.length; i += 3) {
      const kind = events[i]
      const handle = events[i + 1]
      const arg = events[i + 2]
      try {
        switch (kind) {
          case Kind.DATA: {
            const chunk = data.subarray(offset, offset + arg)
            offset += arg
            this._sockets.get(handle)?._onData(chunk)
            break
          }
          case Kind.MESSAGE: {
            const chunk = data.subarray(offset, offset + arg)
            offset += arg
            this._onMessage(chunk, peers[handle])
            break
          }
          case Kind.WRITABLE:
            this._sockets.get(handle)?._onWritable()
            break
          case Kind.END:
            this._sockets.get(handle)?._onEnd()
            break
          case Kind.CONNECTED: {
            const s = this._sockets.get(handle)
            if (s !== undefined && !s.destroyed) {
              s._onConnect()
              this.emit('connect', s)
            }
            break
          }
          case Kind.INCOMING:
            this._onIncoming(native, handle, peers[arg])
            break
          case Kind.CLOSED: {
            const s = this._sockets.get(handle)
            this._sockets.delete(handle)
            s?._onClosed(arg)
            break
          }
          case Kind.NODE_CLOSED:
            this._onNodeClosed()
            break
          case Kind.SOCKET_ERROR:
            this.emit('error', errnoError(arg, 'recvmsg'))
            break
        }
      } catch (e) {
        if (!thrown) {
          thrown = true
          error = e
        }
      }
    }
    return { thrown, error }
  }

  private _onIncoming (native: NativeNode, handle: number, peer: AddressInfo): void {
    const socket = new Socket(this, {
      allowHalfOpen: this._options.allowHalfOpen,
      mtu: this._options.mtu,
      remoteAddress: peer.address,
      remotePort: peer.port,
      connecting: false
    })
    socket._attach(native, handle)
    this._sockets.set(handle, socket)
    this.emit('connection', socket)
  }

  private _onMessage (msg: Buffer, peer: AddressInfo): void {
    this._puncher.onMessage(msg, peer.address, peer.port)
    if (this._udp !== null) {
      const address = normalizeAddress(peer.address)
      const rinfo: RemoteInfo = { address, family: familyOf(address), port: peer.port, size: msg.length }
      this._udp._onMessage(msg, rinfo)
    }
  }
}

const NodeClass = Node
type NodeInstance = Node

/* eslint-disable @typescript-eslint/no-namespace */
/** Everything the package exports hangs off the Node class, so `require('utp-punch-rs')` is the class itself */
export namespace Node {
  export const Node = NodeClass
  export type Node = NodeInstance
  export import Socket = socketModule.Socket
  export import UdpSocketFacade = udpModule.UdpSocketFacade
  export import errors = errorsModule
  export type NodeOptions = optionsModule.NodeOptions
  export type AddressInfo = nativeModule.AddressInfo
  export type ConnectionStats = nativeModule.ConnectionStats
  export type RemoteInfo = udpModule.RemoteInfo
  export type SendCallback = udpModule.SendCallback
  export type UtpError = errorsModule.UtpError
  export const defaults = optionsModule.defaults
  export import stun = stunModule
  export import RendezvousServer = rendezvousModule.RendezvousServer
  export type RendezvousOptions = rendezvousModule.RendezvousOptions
  export type RendezvousResult = rendezvousModule.RendezvousResult
  export type RendezvousServerOptions = rendezvousModule.RendezvousServerOptions
}
