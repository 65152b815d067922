// The server's quotas. One attacker usually owns a whole block of addresses (a /24 behind a provider, a
// /64 on any IPv6 link), so quotas count per address prefix, not per address; a global limit on top
// bounds what many prefixes together can do (e.g. guess nameplates). Forged datagrams never reach these
// counters: the server charges them only after the source proved it receives at its address.

import * as net from 'net'

import { normalizeAddress } from '../options'
import { TokenBucket } from './token-bucket'

export interface Rate { perSecond: number, burst: number }

/** The block an address belongs to for quotas: its /24 (IPv4) or /64 (IPv6) */
export function prefixOf (address: string): string {
  const a = normalizeAddress(address)
  if (net.isIPv4(a)) return a.split('.').slice(0, 3).join('.') + '.0/24'
  const groups = expandIPv6(a)
  return groups.slice(0, 4).join(':') + '::/64'
}

/** An IPv6 literal as its 8 groups (no zone), so "::1" and "0:0::1" fall in the same prefix */
function expandIPv6 (address: string): string[] {
  const [head, tail = ''] = address.split('%')[0].split('::')
  const left = head === '' ? [] : head.split(':')
  const right = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : []
  const missing = 8 - left.length - right.length
  return [...left, ...Array<string>(Math.max(0, missing)).fill('0'), ...right].map(g => g.replace(/^0+(?=.)/, '').toLowerCase())
}

/** Token buckets by key, created on demand and forgotten when full again (nothing to remember) */
export class BucketMap {
  private readonly _buckets = new Map<string, TokenBucket>()

  constructor (private readonly _rate: Rate) {}

  take (key: string, n = 1, now = Date.now()): boolean {
    let bucket = this._buckets.get(key)
    if (bucket === undefined) {
      bucket = new TokenBucket(this._rate.perSecond, this._rate.burst, now)
      this._buckets.set(key, bucket)
    }
    return bucket.take(n, now)
  }

  sweep (now = Date.now()): void {
    for (const [key, bucket] of this._buckets) {
      if (bucket.isFull(now)) this._buckets.delete(key)
    }
  }

  get size (): number {
    return this._buckets.size
  }
}

/** Live things (registrations, relays) per prefix, against a cap */
export class PrefixCounter {
  private readonly _counts = new Map<string, number>()

  constructor (private readonly _cap: number) {}

  full (prefix: string): boolean {
    return (this._counts.get(prefix) ?? 0) >= this._cap
  }

  add (prefix: string): void {
    this._counts.set(prefix, (this._counts.get(prefix) ?? 0) + 1)
  }

  remove (prefix: string): void {
    const n = (this._counts.get(prefix) ?? 0) - 1
    if (n <= 0) this._counts.delete(prefix)
    else this._counts.set(prefix, n)
  }

  /** Prefixes with something live: a prefix whose last registration left is forgotten */
  get size (): number {
    return this._counts.size
  }
}

/**
 * Bytes all relays together may forward per window (a fixed window: simple to state and to check).
 * When spent, relays drop what they would forward and new allocations are refused until the window turns.
 */
export class ByteBudget {
  private _used = 0
  private _windowStart: number

  constructor (readonly bytes: number, readonly windowMs: number, now = Date.now()) {
    this._windowStart = now
  }

  /** Take n bytes if the window has them */
  take (n: number, now = Date.now()): boolean {
    this._roll(now)
    if (this._used + n > this.bytes) return false
    this._used += n
    return true
  }

  spent (now = Date.now()): boolean {
    this._roll(now)
    return this._used >= this.bytes
  }

  private _roll (now: number): void {
    if (now - this._windowStart < this.windowMs) return
    this._windowStart = now
    this._used = 0
  }
}
