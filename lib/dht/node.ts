// DhtNode: one node of the BitTorrent Mainline DHT (BEP 5) that stores and fetches BEP 44 mutable items.
// rendezvous({ dht }) (lib/rendezvous/client.ts, lib/dht/meeting.ts) uses it to meet a peer without a server
// of ours; tests and private networks run their own nodes with it (`server: true`, bootstrapped from one another).
//
// It has a UDP socket of its own, separate from the uTP Node's: the DHT is only the meeting point.

import { createError, codes } from '../errors'
import { loadDht, nativeDhtError, type NativeDht, type NativeDhtInfo } from './native'

/** The routers BitTorrent clients join the Mainline DHT through */
export const DEFAULT_DHT_BOOTSTRAP: readonly string[] = Object.freeze([
  'router.bittorrent.com:6881',
  'dht.transmissionbt.com:6881',
  'dht.libtorrent.org:25401',
  'relay.pkarr.org:6881'
])

/** BEP 44's limits: a value of at most 1000 bytes, a salt of at most 64 */
export const MAX_DHT_VALUE = 1000
export const MAX_DHT_SALT = 64

export interface DhtNodeOptions {
  /** Nodes to join through, "host:port" (IPv4 or a name). Default DEFAULT_DHT_BOOTSTRAP; [] starts a new network */
  bootstrap?: readonly string[]
  /** IPv4 address to bind. Default 0.0.0.0 */
  host?: string
  /** UDP port. Default: any free port */
  port?: number
  /**
   * Answer queries and store items for others from the start. Only for a node others can reach (a test
   * network, a public host): a node behind a NAT becomes a server by itself once it sees it is reachable.
   * Default false
   */
  server?: boolean
  /** How long one query to one node may take, ms. Default: adapted to the round trips seen */
  requestTimeoutMs?: number
}

export interface DhtItem {
  value: Buffer
  seq: number
}

export interface DhtGetResult {
  /** The item with the highest seq of those whose signature verified; undefined when none was found */
  item: DhtItem | undefined
  /** Nodes asked, nodes that answered, and answers carrying an item that failed verification (forged) */
  queried: number
  responded: number
  invalidValues: number
}

export type DhtInfo = NativeDhtInfo

/** The ed25519 public key (32 bytes) of a 32-byte seed: the key the seed's holder publishes under */
export function dhtPublicKey (seed: Buffer): Buffer {
  checkBuffer('seed', seed, 32, 32)
  return loadDht().dhtPublicKey(seed)
}

export class DhtNode {
  private _native: NativeDht | null

  private constructor (native: NativeDht) {
    this._native = native
  }

  /**
   * Bind a node and start joining the DHT; resolves once its socket is bound. Bootstrap names that do not
   * resolve are skipped; when none does, rejects with ERR_DHT_BOOTSTRAP
   */
  static async open (opts: DhtNodeOptions = {}): Promise<DhtNode> {
    const bootstrap = opts.bootstrap ?? DEFAULT_DHT_BOOTSTRAP
    if (!Array.isArray(bootstrap) || !bootstrap.every(b => typeof b === 'string')) {
      throw createError(codes.ERR_INVALID_ARG_TYPE, 'bootstrap must be an array of "host:port" strings', TypeError)
    }
    if (opts.port !== undefined && !(Number.isInteger(opts.port) && opts.port >= 0 && opts.port <= 65535)) {
      throw createError(codes.ERR_SOCKET_BAD_PORT, `DHT port must be an integer in 0..65535, got ${String(opts.port)}`, RangeError)
    }
    if (opts.requestTimeoutMs !== undefined && !(Number.isInteger(opts.requestTimeoutMs) && opts.requestTimeoutMs > 0)) {
      throw createError(codes.ERR_INVALID_ARG_VALUE, 'requestTimeoutMs must be a positive integer', RangeError)
    }
    const native = await loadDht().NativeDht.open({
      bootstrap: [...bootstrap],
      host: opts.host,
      port: opts.port,
      server: opts.server === true,
      requestTimeoutMs: opts.requestTimeoutMs
    }).catch((e: unknown) => { throw nativeDhtError(e) })
    return new DhtNode(native)
  }

  /** Whether joining found any node (waits for the first lookup to end) */
  async bootstrapped (): Promise<boolean> {
    return await this._call(n => n.bootstrapped())
  }

  async info (): Promise<DhtInfo> {
    return await this._call(n => n.info())
  }

  /** Nodes of the routing table, as { address, port } */
  async nodes (): Promise<Array<{ address: string, port: number }>> {
    const list = await this._call(n => n.nodes())
    return list.map(s => {
      const i = s.lastIndexOf(':')
      return { address: s.slice(0, i), port: Number(s.slice(i + 1)) }
    })
  }

  /**
   * Sign `value` with the key of `seed` (32 bytes) and store it under that key and `salt` at the nodes
   * closest to them. `cas`: only replace the stored item if its seq is this one. Resolves to the number of
   * nodes that stored it; rejects with ERR_DHT_NO_NODES (no node known), ERR_DHT_PUT_FAILED (none stored
   * it) or ERR_DHT_CONFLICT (the DHT holds another version: read it and try again)
   */
  async put (seed: Buffer, salt: Buffer, value: Buffer, opts: { seq: number, cas?: number }): Promise<number> {
    checkBuffer('seed', seed, 32, 32)
    checkBuffer('salt', salt, 0, MAX_DHT_SALT)
    checkBuffer('value', value, 0, MAX_DHT_VALUE)
    checkSeq('seq', opts.seq)
    if (opts.cas !== undefined) checkSeq('cas', opts.cas)
    return await this._call(n => n.putMutable(seed, salt, value, opts.seq, opts.cas ?? null))
  }

  /** The most recent item under (publicKey, salt), optionally only one with seq above `moreRecentThan` */
  async get (publicKey: Buffer, salt: Buffer, opts: { moreRecentThan?: number } = {}): Promise<DhtGetResult> {
    checkBuffer('publicKey', publicKey, 32, 32)
    checkBuffer('salt', salt, 0, MAX_DHT_SALT)
    if (opts.moreRecentThan !== undefined) checkSeq('moreRecentThan', opts.moreRecentThan)
    const r = await this._call(n => n.getMutable(publicKey, salt, opts.moreRecentThan ?? null))
    return { item: r.item, queried: r.queried, responded: r.responded, invalidValues: r.invalidValues }
  }

  get closed (): boolean {
    return this._native === null
  }

  /** Stop the node (idempotent); calls in flight reject with ERR_DHT_CLOSED or finish with what they had */
  close (): void {
    this._native?.close()
    this._native = null
  }

  private async _call<T> (fn: (n: NativeDht) => Promise<T>): Promise<T> {
    if (this._native === null) throw createError('ERR_DHT_CLOSED', 'the DHT node is closed')
    try {
      return await fn(this._native)
    } catch (e) {
      throw nativeDhtError(e)
    }
  }
}

function checkBuffer (name: string, b: unknown, min: number, max: number): void {
  if (!Buffer.isBuffer(b)) throw createError(codes.ERR_INVALID_ARG_TYPE, `${name} must be a Buffer`, TypeError)
  if (b.length < min || b.length > max) {
    const want = min === max ? `${min} bytes` : `${min}..${max} bytes`
    throw createError(codes.ERR_INVALID_ARG_VALUE, `${name} must be ${want}, got ${b.length}`, RangeError)
  }
}

function checkSeq (name: string, n: unknown): void {
  // isSafeInteger is false for anything not a number
  if (!Number.isSafeInteger(n) || (n as number) < 0) {
    throw createError(codes.ERR_INVALID_ARG_VALUE, `${name} must be a non-negative safe integer, got ${String(n)}`, RangeError)
  }
}
