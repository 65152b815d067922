// Return routability without state (the idea of QUIC's Retry): before the server keeps anything for a
// source address, or sends it anything larger than what it sent, the source must echo a cookie that only
// a host receiving datagrams at that address can know. The cookie is a MAC of the address under a secret
// that never leaves the process, so checking it needs no table, and a flood of forged sources costs one
// HMAC each and leaves nothing behind.

import { createHmac, randomBytes, timingSafeEqual } from 'crypto'

import { COOKIE_HEX, VERSION } from '../rendezvous/protocol'
import { normalizeAddress } from '../options'

/** A cookie is valid in the 30 s bucket it was made in and the next one: 30..60 s of life */
export const COOKIE_BUCKET_MS = 30_000

export class CookieJar {
  private readonly _secret: Buffer

  constructor (secret: Buffer = randomBytes(32)) {
    this._secret = secret
  }

  /** The cookie for a source address, as the protocol defines it (16 bytes of HMAC-SHA256, hex) */
  mint (address: string, port: number, now = Date.now()): string {
    return this._mac(address, port, Math.floor(now / COOKIE_BUCKET_MS))
  }

  /** Whether `cookie` was minted for this source in the current or the previous time bucket */
  verify (cookie: string | undefined, address: string, port: number, now = Date.now()): boolean {
    if (cookie === undefined || cookie.length !== COOKIE_HEX) return false
    const given = Buffer.from(cookie, 'hex')
    // Not all hex digits: Buffer.from stops at the first bad one, and timingSafeEqual throws on a length mismatch
    if (given.length !== COOKIE_HEX / 2) return false
    const bucket = Math.floor(now / COOKIE_BUCKET_MS)
    // Both comparisons always run: the time taken says nothing about which bucket matched
    const current = timingSafeEqual(given, Buffer.from(this._mac(address, port, bucket), 'hex'))
    const previous = timingSafeEqual(given, Buffer.from(this._mac(address, port, bucket - 1), 'hex'))
    return current || previous
  }

  private _mac (address: string, port: number, bucket: number): string {
    return createHmac('sha256', this._secret)
      .update(`${VERSION}|${normalizeAddress(address)}|${port}|${bucket}`)
      .digest()
      .subarray(0, COOKIE_HEX / 2)
      .toString('hex')
  }
}
