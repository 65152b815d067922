// Node: one UDP socket that is a uTP server and client at once, plus hole punching (the utp-punch API).
// This is the transport layer: it imports nothing of STUN, rendezvous or the server; index.ts attaches
// node.stun(), node.natType() and node.rendezvous() from their own modules (see lib/transport.ts).
//
// The native side (a loop turn on this thread, or the driver thread while busy) batches everything that
// happened and wakes us once; _onWake drains the batches and walks the flat [kind, handle, arg] triples,
// dispatching to the Socket registered per handle.

import * as dns from 'dns'
import { EventEmitter } from 'events'
import * as net from 'net'
import { finished } from 'stream'

import { debug, debugEnabled, hostPort } from './debug'
import * as errorsModule from './errors'
import * as eventsModule from './events'
import type { AnyListener, NodeEvents } from './events'
import { asError, codes, createError, errnoError, notBound, notRunning, systemError, type UtpError } from './errors'
import * as nativeModule from './native'
import { CloseReason, Kind, loadNative, type AddressInfo, type NativeNode } from './native'
import * as optionsModule from './options'
import { familyOf, invalidType, normalizeAddress, validateHost, validateInteger, validateOptions, validatePort, type NodeOptions, type ResolvedOptions } from './options'
import { Puncher, type PunchTransport } from './punch'
import * as socketModule from './socket'
import { Socket, type SocketOwner } from './socket'
import * as statsModule from './stats'
import { Totals, type NativeEndpointCounters, type NodeStats } from './stats'
import type { Transport } from './transport'
import * as udpModule from './udp-facade'
import { UdpSocketFacade, type FacadeHost, type RemoteInfo } from './udp-facade'

type State = 'idle' | 'binding' | 'bound' | 'closing' | 'closed'
type BoundWaiter = (err: Error | null, native?: NativeNode) => void
type ConnectionListener = (socket: Socket) => void

const DEFAULT_HOST = '127.0.0.1'
/** Debug log names of CloseReason values */
/** Small batches are copied into these by drainInto (one set per thread: dispatch never re-enters a drain) */
const EVENT_WORDS = 3 * 512
const eventBytes = Buffer.allocUnsafeSlow(EVENT_WORDS * 4)
const eventWords = new Uint32Array(eventBytes.buffer, eventBytes.byteOffset, EVENT_WORDS)
const scratch = Buffer.allocUnsafeSlow(64 * 1024)
const NO_PEERS: AddressInfo[] = []

const CLOSE_REASONS = ['finished', 'reset by peer', 'refused', 'timed out', 'aborted']
let nextDebugId = 1
/** Binding '::' failed for want of IPv6: fall back to '0.0.0.0' */
const FAMILY_ERRORS = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EINVAL', 'EPROTONOSUPPORT'])

/**
 * A bind failure as dgram reports it: an OS error (EADDRINUSE, EACCES, ...) becomes a system error with errno,
 * syscall 'bind', address and port; anything else (a missing addon, a lookup error) is passed on as it is
 */
function bindError (err: UtpError, address: string, port: number): UtpError {
  if (!/^E[A-Z0-9]+$/.test(err.code) || err.syscall !== undefined) return err
  return systemError(err.code, 'bind', address, port)
}

function checkCallback (cb: unknown, name = 'callback'): void {
  if (cb !== undefined && cb !== null && typeof cb !== 'function') throw invalidType(name, 'of type function', cb)
}

/**
 * Typed events (see NodeEvents): a listener for a known event must take that event's arguments; other event
 * names take any listener, as with EventEmitter
 */
export interface Node {
  on<E extends keyof NodeEvents>(event: E, listener: (...args: NodeEvents[E]) => void): this
  on<E extends string | symbol>(event: Exclude<E, keyof NodeEvents>, listener: AnyListener): this
  once<E extends keyof NodeEvents>(event: E, listener: (...args: NodeEvents[E]) => void): this
  once<E extends string | symbol>(event: Exclude<E, keyof NodeEvents>, listener: AnyListener): this
  addListener<E extends keyof NodeEvents>(event: E, listener: (...args: NodeEvents[E]) => void): this
  addListener<E extends string | symbol>(event: Exclude<E, keyof NodeEvents>, listener: AnyListener): this
  prependListener<E extends keyof NodeEvents>(event: E, listener: (...args: NodeEvents[E]) => void): this
  prependListener<E extends string | symbol>(event: Exclude<E, keyof NodeEvents>, listener: AnyListener): this
  prependOnceListener<E extends keyof NodeEvents>(event: E, listener: (...args: NodeEvents[E]) => void): this
  prependOnceListener<E extends string | symbol>(event: Exclude<E, keyof NodeEvents>, listener: AnyListener): this
  off<E extends keyof NodeEvents>(event: E, listener: (...args: NodeEvents[E]) => void): this
  off<E extends string | symbol>(event: Exclude<E, keyof NodeEvents>, listener: AnyListener): this
  removeListener<E extends keyof NodeEvents>(event: E, listener: (...args: NodeEvents[E]) => void): this
  removeListener<E extends string | symbol>(event: Exclude<E, keyof NodeEvents>, listener: AnyListener): this
  emit<E extends keyof NodeEvents>(event: E, ...args: NodeEvents[E]): boolean
  emit<E extends string | symbol>(event: Exclude<E, keyof NodeEvents>, ...args: unknown[]): boolean
}

export class Node extends EventEmitter implements SocketOwner, PunchTransport, FacadeHost, Transport {
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
  /** When close() began: the native close gets what is left of the timeout, so the two waits share one */
  private _closeStarted = 0
  private _autoBindScheduled = false
  private _autoBindEmits = false
  /** The program called bind() or bindAsync(): from then on only its binds bind the node, never an automatic one */
  private _explicitBind = false
  private _listening = false
  /** listen() or listenAsync() was called: a second listen() throws */
  private _listenCalled = false
  /** Sockets of this node that have not emitted 'close' yet: the node's 'close' comes after theirs */
  private readonly _live = new Set<Socket>()
  private _closeEmitted = false
  /** @internal Names this node in debug lines */
  readonly _debugId = nextDebugId++
  private _opened = 0
  private readonly _closedTotals = new Totals()
  private _rawIn = 0
  private _rawInBytes = 0
  private _rawOut = 0
  private _rawOutBytes = 0
  /** The native endpoint's counters as the node closed */
  private _lastNativeStats: (nativeModule.NodeStats & NativeEndpointCounters) | null = null

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

  /**
   * Counters of the node: the bound address, connections open and made, uTP totals over every connection it
   * has had (open ones read now, closed ones as they ended), native endpoint counters and raw datagrams. One
   * native call per open connection: for a dashboard, not for every packet
   */
  stats (): NodeStats {
    const native = this._native
    const n = native === null ? this._lastNativeStats : native.stats() as nativeModule.NodeStats & NativeEndpointCounters
    const t = new Totals()
    t.add(this._closedTotals)
    if (native !== null) {
      for (const s of this._sockets.values()) {
        const c = native.connectionStats(s.id)
        if (c !== null) t.add(c)
      }
    }
    let address: AddressInfo | null = null
    try {
      address = this.address()
    } catch {}
    return {
      address,
      listening: this._listening && this._state === 'bound',
      serverConnections: native === null ? 0 : n?.serverConnections ?? 0,
      clientConnections: native === null ? 0 : n?.clientConnections ?? 0,
      maxConnections: n?.maxConnections ?? this._options.maxConnections,
      connectionsOpened: this._opened,
      bytesSent: t.bytesSent,
      bytesReceived: t.bytesReceived,
      packetsSent: t.packetsSent,
      packetsReceived: t.packetsReceived,
      retransmits: t.retransmits,
      timeouts: t.timeouts,
      unmatchedPackets: n?.unmatchedPackets ?? 0,
      resetsSent: n?.resetsSent ?? 0,
      refused: n?.refused ?? 0,
      unreachable: n?.unreachable ?? 0,
      pendingHandshakes: native === null ? 0 : n?.pendingHandshakes ?? 0,
      synsDropped: n?.synsDropped ?? 0,
      rawDatagramsReceived: this._rawIn,
      rawDatagramsDropped: n?.rawDatagramsDropped ?? 0,
      rawBytesReceived: this._rawInBytes,
      rawDatagramsSent: this._rawOut,
      rawBytesSent: this._rawOutBytes
    }
  }

  /** The dgram-like face of the node's UDP socket: send() raw datagrams, 'message' for non-uTP ones */
  getUdpSocket (): UdpSocketFacade {
    if (this._udp === null) this._udp = new UdpSocketFacade(this)
    return this._udp
  }

  /** close() was called: closing or closed */
  private _stopped (): boolean {
    return this._state === 'closing' || this._state === 'closed'
  }

  /**
   * The bound address. Throws as dgram does: EBADF (syscall 'getsockname') before the node is bound, as an
   * unbound dgram socket has no descriptor to ask; ERR_SOCKET_DGRAM_NOT_RUNNING once it is closed
   */
  address (): AddressInfo {
    const a = this._native?.address() ?? null
    if (a === null) throw this._stopped() ? notRunning() : notBound('getsockname')
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
    this._bind(port, host, true, (err, address) => {
      if (err !== null) {
        this.emit('error', err)
        return
      }
      this.emit('bound', address as AddressInfo)
      if (typeof cb === 'function') cb.call(this, address)
    })
    return this
  }

  /** Like bind() but resolves to the bound address (and rejects instead of emitting 'error') */
  bindAsync (port?: number | null, host?: string | null): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this._bind(port, host, true, (err, address) => {
        if (err !== null) {
          reject(err)
          return
        }
        this.emit('bound', address as AddressInfo)
        resolve(address as AddressInfo)
      })
    })
  }

  /**
   * Accept incoming connections once the node is bound. As in utp-punch, listen() does not bind by itself: the
   * program's bind() (before or after) decides the port, or the automatic bind of connect()/punch()/send()...
   * 'listening' is emitted and onListening called asynchronously, once bound. Throws ERR_SERVER_ALREADY_LISTEN
   * when called again (as utp-punch and net.Server), ERR_SOCKET_DGRAM_NOT_RUNNING after close().
   */
  listen (onListening?: () => void): this {
    checkCallback(onListening, 'onListening')
    if (this._stopped()) throw notRunning()
    if (this._listenCalled) throw createError(codes.ERR_SERVER_ALREADY_LISTEN, 'Listen method has been called more than once without closing.')
    this._listenCalled = true
    this._listen(true, false, (err, first) => {
      if (err !== null) return // the bind error was emitted as 'error' already
      if (first) this.emit('listening')
      if (typeof onListening === 'function') onListening.call(this)
    })
    return this
  }

  /**
   * Resolves once the node listens. Unlike listen(), it binds to a free port first when nothing binds the node in
   * the same tick (an awaited promise must not wait for a bind that may never come); calling it again, or after
   * listen(), just resolves once listening
   */
  listenAsync (): Promise<void> {
    return new Promise((resolve, reject) => {
      this._listenCalled = true
      this._listen(false, true, (err, first) => {
        if (err !== null) {
          reject(err)
          return
        }
        if (first) this.emit('listening')
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
    // Thrown at once, as utp-punch does; a punch under way when close() comes resolves false
    if (this._stopped()) throw notRunning()
    if (typeof host === 'function') {
      callback = host
      host = undefined
    }
    validateInteger('attempts', attempts, 1, 2 ** 31 - 1)
    const p = validatePort(port, 'Port', false)
    const h = host === undefined || host === null ? DEFAULT_HOST : validateHost(host)
    checkCallback(callback)
    return new Promise((resolve) => {
      if (debugEnabled) debug('node %d punch %s: %d probes', this._debugId, hostPort(h, p), attempts)
      const done = (success: boolean): void => {
        if (debugEnabled) debug('node %d punch %s: %s', this._debugId, hostPort(h, p), success ? 'both directions work' : 'failed')
        resolve(success)
        if (typeof callback === 'function') callback.call(this, success)
      }
      this._whenBound(true, (err) => {
        if (err !== null) process.nextTick(done, false)
        else this._puncher.punch(attempts, p, h, done)
      })
    })
  }

  /** punch() as a promise only: after close() it rejects with ERR_SOCKET_DGRAM_NOT_RUNNING instead of throwing */
  punchAsync (attempts: number, port: number, host?: string | null): Promise<boolean> {
    if (this._stopped()) return Promise.reject(notRunning())
    return this.punch(attempts, port, host)
  }

  /** @internal A new, unbound Node with this one's options (birthday probing's extra ports) */
  _sibling (): Node {
    return new Node(this._options)
  }

  /**
   * Graceful close: stop punching and accepting, end() every connection and let it flush, then close the
   * socket; 'close' follows once everything is shut and every socket of the node emitted its own 'close'
   * (connections still open after `timeout` ms are reset, and sockets still waiting for a bind or a lookup
   * are destroyed, all without an error). Calling it again is harmless: the callback runs once the node is closed.
   */
  close (onClose?: () => void): this {
    checkCallback(onClose, 'onClose')
    if (this._closeEmitted) {
      if (typeof onClose === 'function') process.nextTick(() => onClose.call(this))
      return this
    }
    if (typeof onClose === 'function') this.once('close', onClose)
    if (this._stopped()) return this
    const wasBound = this._state === 'bound'
    this._state = 'closing'
    this._closeStarted = Date.now()
    this._listening = false
    if (debugEnabled) debug('node %d closing: %d connections to end', this._debugId, this._sockets.size)
    this._puncher.cancelAll()
    // Never on the network: the node ends them as it ends the others, so they close without an error (taken out
    // of _connecting first, so that the bind waiters failed below leave them alone)
    for (const s of this._connecting) process.nextTick(() => s._onClosed(CloseReason.ABORTED))
    this._connecting.clear()
    this._flushBoundWaiters(notRunning())
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
      s._closingWithNode()
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

  /** `explicit`: the program's bind()/bindAsync(), not an automatic bind */
  private _bind (port: unknown, host: unknown, explicit: boolean, done: (err: UtpError | null, address?: AddressInfo) => void): void {
    if (this._stopped()) throw notRunning()
    if (this._state !== 'idle') throw createError(codes.ERR_SOCKET_ALREADY_BOUND, 'Socket is already bound')
    const p = port === undefined || port === null ? 0 : validatePort(port)
    const h = host === undefined || host === null ? undefined : validateHost(host)
    this._state = 'binding'
    if (explicit) this._explicitBind = true
    const finish = (err: UtpError | null, address?: AddressInfo): void => {
      if (this._state !== 'binding') return // closed meanwhile; close() told the waiters
      this._state = err === null ? 'bound' : 'idle'
      process.nextTick(() => {
        // Operations queued on the bind run before 'bound' listeners, as soon as the socket exists
        done(err, address)
      })
      // After the program's bind() was refused its address (by the OS, or its host lookup), what waits for the node
      // to be bound keeps waiting, for a bind() that succeeds or for close() (utp-punch's order: its listen() and
      // connect() wait for 'bound'). Other failures (no native addon) and failed automatic binds fail the waiters:
      // no later bind would do better
      const noBindCanWork = err !== null && err.syscall === undefined
      if (err === null || !explicit || noBindCanWork) this._flushBoundWaiters(err)
      // Nor do later operations wait for the program's next bind then: they bind, and fail, on their own
      if (explicit && noBindCanWork) this._explicitBind = false
    }
    const bindTo = (address: string, fallback: string | null): void => {
      if (this._state !== 'binding') return
      let native: NativeNode | null = null
      try {
        native = this._createNative()
        native.bind(p, address)
        this._native = native
        if (!this._refed) native.unref()
        const bound = this.address()
        if (debugEnabled) debug('node %d bound %s (%s)', this._debugId, hostPort(bound.address, bound.port), bound.family)
        finish(null, bound)
      } catch (e) {
        if (native !== null) this._discardNative(native)
        const err = asError(e)
        if (debugEnabled) debug('node %d bind %s failed: %s', this._debugId, hostPort(address, p), err.code)
        if (fallback !== null && FAMILY_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) {
          bindTo(fallback, null)
          return
        }
        finish(bindError(err, address, p))
      }
    }
    if (h === undefined) bindTo('::', '0.0.0.0')
    else if (net.isIP(h) !== 0) bindTo(h, null)
    else {
      dns.lookup(h, (err, address) => {
        if (err !== null) finish(asError(err))
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
      ioThread: o.ioThread,
      coalesceWrites: o.coalesceWrites,
      congestion: o.congestion,
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

  /**
   * Run fn once bound (synchronously if bound now). When idle and `auto`, bind to a free port first, unless the
   * program binds the node itself: in the same tick, or at all once one of its bind() calls failed
   */
  private _whenBound (emitErrors: boolean, fn: BoundWaiter, auto = true): void {
    switch (this._state) {
      case 'bound':
        fn(null, this._native as NativeNode)
        return
      case 'binding':
        this._boundWaiters.push(fn)
        return
      case 'idle':
        this._boundWaiters.push(fn)
        // A failed bind() of the program left the node idle: never pick a random port behind its back
        if (!auto || this._explicitBind) return
        // Bind to a free port on the next tick, so that a bind() right after (the order utp-punch allowed,
        // e.g. connect() then bind(port)) still chooses the port; the queued operations then run on that bind
        this._autoBindEmits ||= emitErrors
        if (!this._autoBindScheduled) {
          this._autoBindScheduled = true
          process.nextTick(() => {
            this._autoBindScheduled = false
            const emit = this._autoBindEmits
            this._autoBindEmits = false
            if (this._state !== 'idle' || this._explicitBind || this._boundWaiters.length === 0) return
            this._bind(0, undefined, false, (err, address) => {
              if (err === null) this.emit('bound', address as AddressInfo)
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

  /** `done(err, first)`: `first` is true for the call that turned listening on ('listening' is emitted once) */
  private _listen (emitErrors: boolean, auto: boolean, done: (err: Error | null, first: boolean) => void): void {
    if (this._stopped()) throw notRunning()
    this._whenBound(emitErrors, (err, native) => {
      let first = false
      if (err === null) {
        try {
          (native as NativeNode).listen(true)
          first = !this._listening
          this._listening = true
          if (debugEnabled && first) debug('node %d listening', this._debugId)
        } catch (e) {
          err = asError(e)
        }
      }
      const e = err
      process.nextTick(() => done(e, first))
    }, auto)
  }

  // ---- connections ----------------------------------------------------------------------------------------

  private _connect (port: unknown, host: unknown, onconnect: unknown, emitErrors: boolean): Socket {
    // Thrown at once, as utp-punch does (and as bind() and listen() do here)
    if (this._stopped()) throw notRunning()
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
      timeout: this._options.timeout,
      remoteAddress: net.isIP(h) !== 0 ? h : undefined,
      remotePort: p,
      connecting: true
    })
    if (typeof onconnect === 'function') socket.once('connect', () => onconnect.call(this, socket))
    this._track(socket)
    this._connecting.add(socket)
    const fail = (err: Error): void => {
      if (!this._connecting.delete(socket)) return // close() ended it already
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
        this._opened++
        if (debugEnabled) debug('node %d connection %d to %s opening', this._debugId, handle, hostPort(normalizeAddress(address), p))
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
        this._rawOut++
        this._rawOutBytes += data.length
      } catch (e) {
        err = asError(e)
      }
    }
    if (cb !== undefined) process.nextTick(cb, err)
  }

  /**
   * @internal The facade's send: bind if needed, resolve, send. `late`: the node closed while the send waited
   * for its bind or its lookup (the send was made while it ran)
   */
  _sendRaw (data: Buffer, port: number, host: string | undefined, ttl: number | undefined, cb: (err: Error | null, late?: boolean) => void): void {
    if (this._stopped()) {
      process.nextTick(cb, notRunning())
      return
    }
    // From here on an error is late once close() has come: the send was made while the node ran
    const fail = (err: Error): void => process.nextTick(cb, err, this._stopped())
    this._whenBound(true, (err) => {
      if (err !== null) {
        fail(err)
        return
      }
      this._resolve(host ?? this._loopback(), (err, address) => {
        if (err !== null || address === undefined) fail(err ?? notRunning())
        // close() came during the lookup: the send fails as one made after close() does (the native node
        // would still send while its connections finish, or throw its own code once closed)
        else if (this._stopped()) fail(notRunning())
        else this._sendRawTo(data, port, address, cb, ttl)
      })
    })
  }

  /**
   * @internal The native node a socket option of the facade goes to: null while not bound (the option then fails
   * with EBADF, as on dgram's unbound socket); ERR_SOCKET_DGRAM_NOT_RUNNING once the node is closed
   */
  _optionTarget (): NativeNode | null {
    if (this._state === 'closed') throw notRunning()
    return this._native
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
      // Connections still finishing get what is left of the timeout close() began: with the wait for the sockets'
      // pending writes before this, the whole close() stays within one timeout, as documented
      this._native?.close(Math.max(0, this._options.timeout - (Date.now() - this._closeStarted)))
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
    this._listening = false
    try {
      if (this._native !== null) this._lastNativeStats = this._native.stats()
    } catch {}
    this._native = null
    if (this._closeTimer !== null) clearTimeout(this._closeTimer)
    this._closeTimer = null
    this._puncher.cancelAll()
    this._flushBoundWaiters(notRunning())
    const sockets = [...this._sockets.values()]
    this._sockets.clear()
    for (const s of sockets) this._onSocketClosed(s, CloseReason.ABORTED)
    if (this._live.size === 0) {
      this._emitClose()
      return
    }
    // The sockets' 'end' and 'close' are under way (on the next ticks, or after the setImmediate of a timed-out
    // one): 'close' waits for them, as in utp-punch. A socket whose reader does not consume it would never close,
    // though, and the node must: stop waiting for those once everything under way had its turn. They end as
    // their reader reads (nothing is thrown away)
    setImmediate(() => {
      for (const s of this._live) if (!s.destroyed) this._live.delete(s)
      if (this._live.size === 0) this._emitClose()
    })
  }

  private _emitClose (): void {
    if (this._closeEmitted) return
    this._closeEmitted = true
    if (debugEnabled) debug('node %d closed', this._debugId)
    this._udp?.emit('close')
    this.emit('close')
  }

  /** Count a new socket until its 'close': the node's 'close' comes after it */
  private _track (s: Socket): void {
    this._live.add(s)
    s.once('close', () => {
      if (!this._live.delete(s) || this._live.size > 0 || this._state !== 'closed') return
      // After every listener of the socket's 'close'
      process.nextTick(() => this._emitClose())
    })
  }

  /** A connection ended natively: let its socket finish, keep its counters in the node's totals */
  private _onSocketClosed (s: Socket, reason: number): void {
    s._onClosed(reason)
    const last = s._finalStats()
    if (last !== null) this._closedTotals.add(last)
    if (debugEnabled) this._debugClosed(s, reason, last)
  }

  private _debugClosed (s: Socket, reason: number, last: nativeModule.ConnectionStats | null): void {
    const why = CLOSE_REASONS[reason] ?? `reason ${reason}`
    const path = s._getPath()
    const numbers = last === null
      ? 'no stats'
      : `rtt ${(last.rtt / 1000).toFixed(1)} ms, sent ${last.bytesSent} bytes in ${last.packetsSent} packets, ` +
        `received ${last.bytesReceived} bytes in ${last.packetsReceived} packets, ${last.retransmits} retransmits, ` +
        `${last.timeouts} timeouts, mtu ${last.mtu}`
    debug('node %d connection %d with %s closed: %s%s; %s', this._debugId, s.id, hostPort(s.remoteAddress, s.remotePort), why,
      path === undefined ? '' : ` (${path} path)`, numbers)
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
    for (let more = true; more;) {
      // Small batches arrive by copy into arrays kept for the purpose (no allocation either side)
      const got = native.drainInto(eventBytes, scratch)
      let r
      if (got > 0) {
        more = (got & 1) === 1
        r = this._dispatch(native, eventWords, got >>> 1, scratch, NO_PEERS, true)
      } else if (got === 0) break
      else {
        const batch = native.drain()
        if (batch === null) break
        r = this._dispatch(native, batch.events, batch.events.length, batch.data, batch.peers, false)
      }
      if (r.thrown && !thrown) {
        thrown = true
        first = r.error
      }
    }
    // A listener threw: finish the batch first so no connection misses its events, then surface it
    if (thrown) process.nextTick(() => { throw first })
  }

  /**
   * Hand `count` words of event triples to their sockets. `copy`: `data` is the shared scratch buffer, so
   * payloads are copied out (small by construction); otherwise the batch's own buffer is sliced.
   */
  private _dispatch (native: NativeNode, events: Uint32Array, count: number, data: Buffer,
    peers: AddressInfo[], copy: boolean): { thrown: boolean, error: unknown } {
    let offset = 0
    let thrown = false
    let error: unknown
    for (let i = 0; i + 2 < count; i += 3) {
      const kind = events[i]
      const handle = events[i + 1]
      const arg = events[i + 2]
      try {
        switch (kind) {
          case Kind.DATA: {
            const slice = data.subarray(offset, offset + arg)
            offset += arg
            this._sockets.get(handle)?._onData(copy ? Buffer.from(slice) : slice)
            break
          }
          case Kind.MESSAGE: {
            const slice = data.subarray(offset, offset + arg)
            const chunk = copy ? Buffer.from(slice) : slice
            offset += arg
            this._onMessage(chunk, peers[handle])
            break
          }
          case Kind.WRITABLE:
            this._sockets.get(handle)?._onWritable()
            break
          case Kind.TIMEOUT:
            this._sockets.get(handle)?._onPeerSilent()
            break
          case Kind.END:
            this._sockets.get(handle)?._onEnd()
            break
          case Kind.CONNECTED: {
            const s = this._sockets.get(handle)
            if (s !== undefined && !s.destroyed) {
              if (debugEnabled) debug('node %d connection %d to %s connected', this._debugId, handle, hostPort(s.remoteAddress, s.remotePort))
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
            if (s !== undefined) this._onSocketClosed(s, arg)
            break
          }
          case Kind.NODE_CLOSED:
            this._onNodeClosed()
            break
          case Kind.SOCKET_ERROR: {
            const err = errnoError(arg, 'recvmsg')
            if (debugEnabled) debug('node %d socket error %s: the node closes', this._debugId, err.code)
            this.emit('error', err)
            break
          }
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
      timeout: this._options.timeout,
      remoteAddress: peer.address,
      remotePort: peer.port,
      connecting: false
    })
    socket._attach(native, handle)
    this._track(socket)
    this._sockets.set(handle, socket)
    this._opened++
    if (debugEnabled) debug('node %d connection %d from %s accepted', this._debugId, handle, hostPort(socket.remoteAddress, peer.port))
    this.emit('connection', socket)
  }

  private _onMessage (msg: Buffer, peer: AddressInfo): void {
    this._rawIn++
    this._rawInBytes += msg.length
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
  export type ConnectionStats = statsModule.ConnectionStats
  export type Congestion = nativeModule.Congestion
  export type SocketStats = statsModule.SocketStats
  export type NodeStats = statsModule.NodeStats
  export type NodeEvents = eventsModule.NodeEvents
  export type SocketEvents = eventsModule.SocketEvents
  export type MigrateInfo = eventsModule.MigrateInfo
  export type RemoteInfo = udpModule.RemoteInfo
  export type SendCallback = udpModule.SendCallback
  export type UtpError = errorsModule.UtpError
  export const defaults = optionsModule.defaults
}
