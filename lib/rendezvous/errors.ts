// Errors rendezvous() rejects with; each carries `.code` like the rest of the package.

import { createError, type UtpError } from '../errors'
import { ERROR_CODE_MAX, ERROR_CODE_PATTERN, type Mapping } from './protocol'

export const rendezvousCodes = {
  /** Probing found no working path and no relay was allowed (or the relay failed) */
  ERR_PUNCH_FAILED: 'ERR_PUNCH_FAILED',
  /** timeoutMs passed: the server never answered, no peer came, or the connection never formed */
  ERR_RENDEZVOUS_TIMEOUT: 'ERR_RENDEZVOUS_TIMEOUT',
  /** The server never answered the registration within serverTimeoutMs (wrong address, down, or UDP blocked) */
  ERR_SERVER_UNREACHABLE: 'ERR_SERVER_UNREACHABLE',
  /** The server refused the registration (code in use, server full...); `.serverCode` says why */
  ERR_RENDEZVOUS_REFUSED: 'ERR_RENDEZVOUS_REFUSED',
  /**
   * The peer's code did not match ours (its confirm MAC was wrong): a wrong code, or someone tried to intercept
   * the pairing. Both sides fail with it and the server burns the code: make a new one
   */
  ERR_WRONG_CODE: 'ERR_WRONG_CODE',
  /**
   * The peer waiting under this code declared the same `side` ("send" and "send"): the server refused us before
   * pairing, and the peer keeps waiting for its real counterpart. `.side` is the side both declared
   */
  ERR_SAME_ROLE: 'ERR_SAME_ROLE',
  /** Pairing over the DHT: no DHT node answered (bootstrap nodes unreachable, or UDP blocked) */
  ERR_DHT_UNREACHABLE: 'ERR_DHT_UNREACHABLE',
  /** Pairing over the DHT: a pairing already used this code (codes are single-use): make a new one */
  ERR_CODE_BURNED: 'ERR_CODE_BURNED',
  /**
   * The peer gave up after the server paired us (its own timeout or failure, its signal, its node closed): the
   * server passed its `bye` on. `.peerCode` is the code it failed with
   */
  ERR_PEER_GAVE_UP: 'ERR_PEER_GAVE_UP',
  /** The signal aborted the rendezvous */
  ABORT_ERR: 'ABORT_ERR'
} as const

export interface RendezvousError extends UtpError {
  /** The server's error code, for ERR_RENDEZVOUS_REFUSED */
  serverCode?: string
  /** The side both peers declared, for ERR_SAME_ROLE */
  side?: string
  /** The candidates probed, for ERR_PUNCH_FAILED ("address:port (kind)") */
  candidates?: string[]
  /**
   * The code the peer failed with, when the server passed its word on: for ERR_PEER_GAVE_UP ("ABORT_ERR"...), and
   * for ERR_PUNCH_FAILED when the peer's attempt failed first ("ERR_PUNCH_FAILED")
   */
  peerCode?: string
}

export function rendezvousError (code: keyof typeof rendezvousCodes, message: string, extra: Partial<RendezvousError> = {}): RendezvousError {
  const err = createError(code, message) as RendezvousError
  if (code === 'ABORT_ERR') err.name = 'AbortError'
  return Object.assign(err, extra)
}

/** The code a failing side's bye reports (gaveUp): the error's own, or ERR_UNKNOWN for one without a code the wire takes */
export function gaveUpCode (err: Error): string {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && code.length <= ERROR_CODE_MAX && ERROR_CODE_PATTERN.test(code) ? code : 'ERR_UNKNOWN'
}

/** A NAT as the message of ERR_PUNCH_FAILED names it: its type if known, and its mapping as the server measured it */
export function natText (nat: string | undefined, mapping: Mapping | undefined): string | undefined {
  const m = mapping === undefined ? undefined : mapping === 'independent' ? 'endpoint-independent mapping' : 'endpoint-dependent (symmetric) mapping'
  if (nat === undefined) return m
  return m === undefined ? nat : `${nat}, ${m}`
}
