// The harness of test/dropin.test.ts: the two packages behind one loose interface, a per-run context that
// tracks every node and socket a scenario makes (and tears them down), and event recorders that turn what a
// program sees into plain, comparable data.
import * as dgram from 'dgram'
import type { EventEmitter } from 'events'
import type { Duplex } from 'stream'

import { requireFromRoot, utp } from './utp'

/** A socket as a program written for utp-punch uses it (both packages' sockets are Duplex streams) */
export interface DSocket extends Duplex {
  setTimeout (ms: number): unknown
  getTimeout (): number
  getMtu (): number
  setMtu?: (mtu: number) => unknown
  address (): unknown
  id?: unknown
}

export interface DAddress {
  address: string
  family: string
  port: number
}

/** A Node as a program written for utp-punch uses it */
export interface DNode extends EventEmitter {
  readonly maxConnections: number
  readonly serverConnections: number
  readonly clientConnections: number
  bind (...args: unknown[]): unknown
  listen (onListening?: () => void): unknown
  connect (...args: unknown[]): DSocket
  punch (...args: unknown[]): unknown
  close (onClose?: () => void): unknown
  address (): DAddress
  getUdpSocket (): EventEmitter & { send (...args: unknown[]): void }
}

export type NodeCtor = new (options?: unknown, onconnection?: (socket: DSocket) => void) => DNode

export interface Pkg {
  name: 'utp-punch' | 'utp-punch-rs'
  Node: NodeCtor
}

/** Both packages as a program loads them: `const Node = require(...)` is the class */
export const original: Pkg = { name: 'utp-punch', Node: requireFromRoot('utp-punch') as NodeCtor }
export const ours: Pkg = { name: 'utp-punch-rs', Node: utp as unknown as NodeCtor }

/** One observed event, normalized: ['data', 5], ['error', 'ECONNRESET'], ['connect'], ['> destroy()'] (a marker) */
export type Entry = Array<string | number | boolean | null>

interface Timed {
  at: number
  entry: Entry
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** A free UDP port on 127.0.0.1 (bound and released) */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4')
    s.once('error', reject)
    s.bind(0, '127.0.0.1', () => {
      const port = s.address().port
      s.close(() => resolve(port))
    })
  })
}

function isStream (x: unknown): boolean {
  return typeof x === 'object' && x !== null && typeof (x as { pipe?: unknown }).pipe === 'function'
}

/** An error as a program compares it: its code, or its message when it has none */
export function errorCode (e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code
    return typeof code === 'string' ? code : `(no code) ${e.message}`
  }
  return `(not an Error) ${String(e)}`
}

/** What a call did: ['returns', what] or ['throws', class, code] */
export function attempt (fn: () => unknown): Entry {
  try {
    const v = fn()
    return ['returns', describeValue(v)]
  } catch (e) {
    return ['throws', e instanceof Error ? e.constructor.name : typeof e, e instanceof Error ? ((e as NodeJS.ErrnoException).code ?? null) : null]
  }
}

/** undefined, 'socket', 'node', 'promise', or the primitive itself */
export function describeValue (v: unknown): string | number | boolean | null {
  if (v === undefined) return 'undefined'
  if (v === null) return null
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return v
  if (v instanceof Promise) return 'promise'
  if (isStream(v)) return 'socket'
  if (typeof (v as { connect?: unknown }).connect === 'function' && typeof (v as { listen?: unknown }).listen === 'function') return 'node'
  return typeof v
}

const SOCKET_EVENTS = ['connect', 'data', 'end', 'finish', 'drain', 'timeout', 'error', 'close']
const NODE_EVENTS = ['bound', 'listening', 'connection', 'connect', 'timeout', 'error', 'close']

/**
 * One run of a scenario against one package. Every node made through it and every socket those nodes make or
 * accept is recorded from its creation and torn down by cleanup().
 */
export class Run {
  readonly t0 = Date.now()
  private readonly _nodes: DNode[] = []
  private readonly _nodeClosed = new Set<DNode>()
  private readonly _sockets: DSocket[] = []
  private readonly _logs = new Map<EventEmitter, Timed[]>()
  private readonly _pending: Array<Promise<unknown>> = []
  private readonly _closers: Array<() => Promise<void>> = []

  constructor (readonly pkg: Pkg) {}

  get isOriginal (): boolean {
    return this.pkg === original
  }

  /** Milliseconds since the run started */
  now (): number {
    return Date.now() - this.t0
  }

  /** new Node(options, onconnection), recorded; its sockets are recorded before any listener of the scenario runs */
  node (options?: unknown, onconnection?: (socket: DSocket) => void): DNode {
    const node = options === undefined && onconnection === undefined
      ? new this.pkg.Node()
      : onconnection === undefined ? new this.pkg.Node(options) : new this.pkg.Node(options, onconnection)
    this._nodes.push(node)
    const log: Timed[] = []
    this._logs.set(node, log)
    node.prependListener('connection', (s: DSocket) => this.track(s))
    node.on('close', () => this._nodeClosed.add(node))
    for (const ev of NODE_EVENTS) {
      node.on(ev, (...args: unknown[]) => {
        const entry: Entry = [ev]
        if (ev === 'error') entry.push(errorCode(args[0]))
        else if (args.length > 0) entry.push(isStream(args[0]) ? 'socket' : typeof args[0] === 'object' ? 'address' : describeValue(args[0]))
        log.push({ at: this.now(), entry })
      })
    }
    // Record the sockets connect() returns before the scenario sees them
    const connect = node.connect.bind(node)
    node.connect = (...args: unknown[]): DSocket => this.track(connect(...args))
    return node
  }

  /** A node bound to 127.0.0.1 on a free port (and listening when asked); resolves once bound */
  async bound (options?: unknown, onconnection?: (socket: DSocket) => void, listen = false): Promise<DNode> {
    const node = this.node(options, onconnection)
    const ready = new Promise<void>((resolve, reject) => {
      node.once(listen ? 'listening' : 'bound', () => resolve())
      node.once('error', reject)
    })
    node.bind(0, '127.0.0.1')
    if (listen) node.listen()
    await ready
    return node
  }

  /** A listening server and a bound client node, both on 127.0.0.1 */
  async pair (options?: unknown, onconnection?: (socket: DSocket) => void): Promise<{ server: DNode, client: DNode, port: number }> {
    const server = await this.bound(options, onconnection, true)
    const client = await this.bound(options)
    return { server, client, port: server.address().port }
  }

  /**
   * A connected pair of sockets: client.connect(port) and the server's accepted socket, both recorded. The
   * scenario's `onServerSocket` runs in the 'connection' event (before anything arrives)
   */
  async connected (options?: unknown, onServerSocket?: (s: DSocket) => void, viaPort?: (port: number) => Promise<number>): Promise<{ server: DNode, client: DNode, c: DSocket, s: DSocket }> {
    let accepted: (s: DSocket) => void = () => {}
    const got = new Promise<DSocket>(resolve => { accepted = resolve })
    const { server, client, port } = await this.pair(options, (s) => {
      onServerSocket?.(s)
      accepted(s)
    })
    const target = viaPort === undefined ? port : await viaPort(port)
    const c = client.connect(target, '127.0.0.1')
    const ok = await this.waitFor(() => this.names(c).includes('connect'), 3000)
    if (!ok) throw new Error(`${this.pkg.name}: no connection`)
    const s = await Promise.race([got, sleep(3000).then(() => { throw new Error(`${this.pkg.name}: no incoming connection`) })])
    return { server, client, c, s }
  }

  /** Record a socket's events from now on (idempotent); also reads it, as a program with 'data' listeners does */
  track (socket: DSocket): DSocket {
    if (this._logs.has(socket)) return socket
    this._sockets.push(socket)
    const log: Timed[] = []
    this._logs.set(socket, log)
    for (const ev of SOCKET_EVENTS) {
      socket.on(ev, (...args: unknown[]) => {
        const entry: Entry = [ev]
        if (ev === 'data') entry.push((args[0] as Buffer | string).length)
        else if (ev === 'error') entry.push(errorCode(args[0]))
        else if (args.length > 0) entry.push(isStream(args[0]) ? 'socket' : describeValue(args[0]))
        log.push({ at: this.now(), entry })
      })
    }
    return socket
  }

  /** Put a marker (what the program did) into an emitter's event log */
  mark (emitter: EventEmitter, what: string): void {
    this._logs.get(emitter)?.push({ at: this.now(), entry: [`> ${what}`] })
  }

  /** The normalized event log of a node or socket */
  events (emitter: EventEmitter): Entry[] {
    return (this._logs.get(emitter) ?? []).map(t => t.entry)
  }

  /** Event names only */
  names (emitter: EventEmitter): string[] {
    return this.events(emitter).map(e => String(e[0]))
  }

  /** Milliseconds (since `since`, default the run's start) of the first `event` of an emitter, or null */
  when (emitter: EventEmitter, event: string, since = 0): number | null {
    const t = (this._logs.get(emitter) ?? []).find(x => x.entry[0] === event)
    return t === undefined ? null : t.at - since
  }

  /** Every event of an emitter as 'name args@ms' (ms since `since`), for messages */
  timeline (emitter: EventEmitter, since = 0): string[] {
    return (this._logs.get(emitter) ?? []).map(t => `${t.entry.join(' ')}@${t.at - since}`)
  }

  /**
   * utp-punch's connect() registers the connection (and starts its timers) before it sends the SYN, so a connect()
   * that throws (a bad port) leaves a connection behind whose timers retransmit through the same throwing send()
   * every 100 ms: an uncaught exception. Destroy such leftovers (reaching into utp-punch's internals on purpose)
   */
  reapLeaks (node: DNode): void {
    if (!this.isOriginal) return
    const maps = node as unknown as { _clientConnections?: Map<string, DSocket>, _serverConnections?: Map<string, DSocket> | null }
    for (const m of [maps._clientConnections, maps._serverConnections]) {
      for (const s of m?.values() ?? []) {
        if (this._logs.has(s)) continue
        this.track(s)
        s.destroy()
      }
    }
  }

  /** Sizes of the 'data' events of a socket */
  dataSizes (socket: DSocket): number[] {
    return this.events(socket).filter(e => e[0] === 'data').map(e => e[1] as number)
  }

  bytes (socket: DSocket): number {
    return this.dataSizes(socket).reduce((a, b) => a + b, 0)
  }

  /** Poll until `pred` holds or `ms` pass; whether it held */
  async waitFor (pred: () => boolean, ms: number): Promise<boolean> {
    const end = Date.now() + ms
    while (!pred()) {
      if (Date.now() >= end) return false
      await sleep(10)
    }
    return true
  }

  /** Wait until every given socket emitted 'close' (bounded) */
  closed (sockets: DSocket[], ms: number): Promise<boolean> {
    return this.waitFor(() => sockets.every(s => this.names(s).includes('close')), ms)
  }

  /** Something the cleanup must wait for first (utp-punch's punch timers send on the node's socket) */
  pending (p: Promise<unknown>): void {
    this._pending.push(p)
  }

  /** Something else to close at cleanup (relays) */
  onCleanup (fn: () => Promise<void>): void {
    this._closers.push(fn)
  }

  /** Destroy every socket, close every node (bounded), then the extras */
  async cleanup (): Promise<void> {
    await Promise.race([Promise.allSettled(this._pending), sleep(15_000)])
    // Every socket gets an 'error' listener first: destroying one makes its peer fail in utp-punch-rs
    for (const s of this._sockets) s.on('error', () => {})
    for (const n of this._nodes) {
      n.on('error', () => {})
      this.reapLeaks(n)
    }
    for (const s of this._sockets) {
      try {
        s.destroy()
      } catch {}
    }
    await sleep(20)
    await Promise.all(this._nodes.map(async (n) => {
      if (this._nodeClosed.has(n)) return
      const done = new Promise<void>(resolve => n.once('close', () => resolve()))
      try {
        n.close()
      } catch {}
      await Promise.race([done, sleep(3000)])
    }))
    for (const fn of this._closers.splice(0)) await fn()
  }
}
