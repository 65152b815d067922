// Typed access to the secure-stream classes of the native addon (crates/utp-node/src/secure.rs).
// Loaded on first use, through the same binding as the Node, so a missing addon gives the same clear error.

import { bindingPath, loadNative } from '../native'

/** One side of symmetric SPAKE2 */
export interface NativePake {
  readonly message: Buffer
  finish (peerMessage: Buffer): Buffer
}

/** The in-stream handshake of one side */
export interface NativeHandshake {
  readonly hello: Buffer
  readonly done: boolean
  /** Bytes read from the connection in; bytes to send now out (often empty) */
  read (chunk: Buffer): Buffer
  finish (): NativeRecordLayer
}

/** Both directions of an encrypted stream; keys never leave the native side */
export interface NativeRecordLayer {
  readonly peerClosed: boolean
  /** Bytes openInto() may write beyond the chunk's own length */
  readonly pending: number
  /** Records of all `chunks` into `out` (sealedLength() of their lengths); the bytes written */
  sealInto (chunks: Buffer[], out: Buffer): number
  sealClose (): Buffer
  /** Plaintext of the records `chunk` completes into `out` (pending + chunk.length); its length */
  openInto (chunk: Buffer, out: Buffer): number
  /**
   * Opens `chunk` where it lies when no record is pending: each record's plaintext stays in place and
   * `pieces` (the memory of a Uint32Array) gets (start, length) pairs of it; the number of pieces, or null
   * (use openInto)
   */
  openInPlace (chunk: Buffer, pieces: Buffer): number | null
  finish (): void
}

/** Most plaintext bytes in one record, what each record adds, its header (crates/utp-secure/src/record.rs) */
const MAX_RECORD_PLAINTEXT = 64 * 1024
const RECORD_OVERHEAD = 20

/** Bytes of records that carry `n` bytes of plaintext */
export function sealedLength (n: number): number {
  return n + Math.ceil(n / MAX_RECORD_PLAINTEXT) * RECORD_OVERHEAD
}

export interface SecureBinding {
  NativePake: new (password: Buffer, context: string) => NativePake
  NativeHandshake: new (initiator: boolean, key: Buffer | null, psk: Buffer | null) => NativeHandshake
}

let cached: SecureBinding | null = null

export function loadSecure (): SecureBinding {
  if (cached !== null) return cached
  loadNative() // throws ERR_UTP_NATIVE_MISSING with the whole story when the addon is not there
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const binding = require(bindingPath()) as Partial<SecureBinding>
  if (typeof binding.NativePake !== 'function' || typeof binding.NativeHandshake !== 'function') {
    const err = new Error('utp-punch-rs: the native addon has no secure-stream classes (rebuild it with `npm run build:native`)') as NodeJS.ErrnoException
    err.code = 'ERR_UTP_NATIVE_MISSING'
    throw err
  }
  cached = binding as SecureBinding
  return cached
}
