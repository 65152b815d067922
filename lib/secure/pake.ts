// Password-authenticated key exchange and key derivation for callers that agree on keys themselves
// (the rendezvous client runs its PAKE through the server, then secures the direct connection with the key)

import * as crypto from 'crypto'

import { asError, codes, createError } from '../errors'
import { loadSecure, type NativePake } from './native'

function toBytes (value: string | Buffer, name: string): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (Buffer.isBuffer(value)) return value
  throw createError(codes.ERR_INVALID_ARG_TYPE, `${name} must be a string or a Buffer`, TypeError)
}

/**
 * One side of symmetric SPAKE2 over Ed25519. Both peers call `Pake.start()` with the same password and
 * context, swap `message`s, and `finish()` gives both the same 32-byte secret when the passwords match
 * (unrelated secrets otherwise: confirm the key before trusting it, as secureSocket() does). Someone who
 * records the exchange cannot test password guesses offline; an active attacker gets one guess per run.
 */
export class Pake {
  readonly #native: NativePake
  /** The message to send to the peer (33 bytes) */
  readonly message: Buffer

  private constructor (native: NativePake) {
    this.#native = native
    this.message = native.message
  }

  /** Starts an exchange; `context` names the purpose and must be the same on both sides */
  static start (password: string | Buffer, context: string): Pake {
    const pw = toBytes(password, 'password')
    if (pw.length === 0) throw createError(codes.ERR_INVALID_ARG_VALUE, 'password must not be empty', RangeError)
    if (typeof context !== 'string') throw createError(codes.ERR_INVALID_ARG_TYPE, 'context must be a string', TypeError)
    const { NativePake } = loadSecure()
    try {
      return new Pake(new NativePake(pw, context))
    } catch (e) {
      throw asError(e)
    }
  }

  /** The 32-byte shared secret from the peer's message; once. Throws ERR_PAKE_MESSAGE for a malformed or reflected message */
  finish (peerMessage: Buffer): Buffer {
    if (!Buffer.isBuffer(peerMessage)) throw createError(codes.ERR_INVALID_ARG_TYPE, 'peerMessage must be a Buffer', TypeError)
    try {
      return this.#native.finish(peerMessage)
    } catch (e) {
      throw asError(e)
    }
  }
}

/**
 * A 32-byte key for `label` from a secret: HKDF-SHA256 with an empty salt, `label` as the info. Distinct
 * labels give independent keys, so one PAKE secret can serve several purposes
 */
export function deriveKey (secret: Buffer, label: string): Buffer {
  if (!Buffer.isBuffer(secret)) throw createError(codes.ERR_INVALID_ARG_TYPE, 'secret must be a Buffer', TypeError)
  if (typeof label !== 'string') throw createError(codes.ERR_INVALID_ARG_TYPE, 'label must be a string', TypeError)
  if (secret.length === 0) throw createError(codes.ERR_INVALID_ARG_VALUE, 'secret must not be empty', RangeError)
  return Buffer.from(crypto.hkdfSync('sha256', secret, Buffer.alloc(0), label, 32))
}
