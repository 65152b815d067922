// Error codes and the helpers that make `Error`s carrying `.code` (plus errno fields where net/dgram have them)

import * as util from 'util'

import { CloseReason } from './native'

/**
 * The `code` values this package sets on the errors it throws and emits (plus the OS errno names that bind(),
 * send() and dns.lookup() pass through: EADDRINUSE, EACCES, EADDRNOTAVAIL, ENOTFOUND, ...). Rendezvous and STUN
 * add their own: see `RendezvousServer`'s module (rendezvousCodes) and `stun`. docs/api.md lists them all.
 */
export const codes = {
  /** An argument or option has the wrong type (a TypeError) */
  ERR_INVALID_ARG_TYPE: 'ERR_INVALID_ARG_TYPE',
  /** An argument or option is out of range or malformed (a RangeError) */
  ERR_INVALID_ARG_VALUE: 'ERR_INVALID_ARG_VALUE',
  /** Reserved for a number outside its allowed range (nothing throws it at present: ERR_INVALID_ARG_VALUE does) */
  ERR_OUT_OF_RANGE: 'ERR_OUT_OF_RANGE',
  /** A port that is not an integer in 0..65535 (1..65535 for a destination); a RangeError */
  ERR_SOCKET_BAD_PORT: 'ERR_SOCKET_BAD_PORT',
  /** bind() on a node that is bound already (thrown) */
  ERR_SOCKET_ALREADY_BOUND: 'ERR_SOCKET_ALREADY_BOUND',
  /** The node is closing or closed (bind, listen, connect, punch, send, address() after close()) */
  ERR_SOCKET_DGRAM_NOT_RUNNING: 'ERR_SOCKET_DGRAM_NOT_RUNNING',
  /** listen() on a node that listens already, or was told to (thrown, as net.Server's listen() twice) */
  ERR_SERVER_ALREADY_LISTEN: 'ERR_SERVER_ALREADY_LISTEN',
  /** A required argument is missing: the facade's addMembership()/dropMembership() without a group (a TypeError) */
  ERR_MISSING_ARGS: 'ERR_MISSING_ARGS',
  /** The facade's setRecvBufferSize()/setSendBufferSize() with a size that is not an integer in 0..2^32 - 1 (a TypeError) */
  ERR_SOCKET_BAD_BUFFER_SIZE: 'ERR_SOCKET_BAD_BUFFER_SIZE',
  /** The OS refused to get or set a buffer size of the facade (`info` holds its errno, code and syscall) */
  ERR_SOCKET_BUFFER_SIZE: 'ERR_SOCKET_BUFFER_SIZE',
  /** connectAsync(): the socket closed before it connected */
  ERR_SOCKET_CLOSED: 'ERR_SOCKET_CLOSED',
  /** write() after end() */
  ERR_STREAM_WRITE_AFTER_END: 'ERR_STREAM_WRITE_AFTER_END',
  /** The native addon could not be loaded: the prebuilt package for this platform is missing, or it failed to load */
  ERR_UTP_NATIVE_MISSING: 'ERR_UTP_NATIVE_MISSING',
  /** A native call failed with something that was not an Error (a bug: please report it) */
  ERR_UTP_NATIVE: 'ERR_UTP_NATIVE',
  /** The native node closed under a write or connect (the node's close() is under way) */
  ERR_UTP_CLOSED: 'ERR_UTP_CLOSED',
  /** connect() when the node already holds `maxConnections` connections (or no connection id is free) */
  ERR_UTP_TOO_MANY_CONNECTIONS: 'ERR_UTP_TOO_MANY_CONNECTIONS',
  /** The native side was used before bind (internal; the TypeScript layer binds first) */
  ERR_UTP_NOT_BOUND: 'ERR_UTP_NOT_BOUND',
  /** The native side was bound twice (internal; the TypeScript layer throws ERR_SOCKET_ALREADY_BOUND first) */
  ERR_UTP_ALREADY_BOUND: 'ERR_UTP_ALREADY_BOUND',
  /** bind() while Node.js tears the environment down (napi-rs's runtime is gone) */
  ERR_UTP_RUNTIME: 'ERR_UTP_RUNTIME',
  /** The peer sent RESET (it destroyed the connection, or it no longer knows it) */
  ECONNRESET: 'ECONNRESET',
  /** Nobody accepts connections there: the peer node is not listening, or it is full */
  ECONNREFUSED: 'ECONNREFUSED',
  /** The peer went silent for the node's `timeout` (while connecting, or with data or keepalives unanswered) */
  ETIMEDOUT: 'ETIMEDOUT',
  /** An address the socket cannot reach (an IPv6 peer from an IPv4-only bind) or a bad TTL */
  EINVAL: 'EINVAL',
  /** address() or a socket option of the facade before the node is bound (dgram's unbound socket says the same) */
  EBADF: 'EBADF',
  /** A raw datagram larger than 65,507 bytes */
  EMSGSIZE: 'EMSGSIZE'
} as const

export type ErrorCode = (typeof codes)[keyof typeof codes]

/** The errors this package throws and emits: an Error (TypeError, RangeError) with a `code` */
export interface UtpError extends Error {
  /** One of `codes`, a rendezvous or STUN code, or an OS errno name (EADDRINUSE, ENOTFOUND, ...) */
  code: string
  /** Connection errors (ECONNREFUSED, ECONNRESET, ETIMEDOUT): the errno as net reports it (negative on Unix) */
  errno?: number
  /** System errors: 'connect', 'read', 'bind', 'recvmsg', ... */
  syscall?: string
  /** The remote address, for connection errors */
  address?: string
  /** The remote port, for connection errors */
  port?: number
}

type ErrorClass = new (message: string) => Error

/** An Error (or TypeError/RangeError) with `.code` set */
export function createError (code: string, message: string, Ctor: ErrorClass = Error): UtpError {
  const err = new Ctor(message) as UtpError
  err.code = code
  return err
}

/** A net-style system error: `connect ECONNREFUSED 127.0.0.1:3000` with code, errno, syscall, address, port */
export function systemError (code: string, syscall: string, address?: string, port?: number): UtpError {
  const where = address === undefined ? '' : port === undefined ? ` ${address}` : ` ${address}:${port}`
  const err = createError(code, `${syscall} ${code}${where}`)
  for (const [n, [name]] of util.getSystemErrorMap()) {
    if (name === code) {
      err.errno = n
      break
    }
  }
  err.syscall = syscall
  if (address !== undefined) err.address = address
  if (port !== undefined) err.port = port
  return err
}

/** The name of an errno (either sign) as libuv spells it; EIO for one it does not know */
function errnoName (errno: number): string {
  // Node names an errno it does not know "Unknown system error -N" (and throws for 0): not a code
  try {
    const name = util.getSystemErrorName(-Math.abs(errno))
    return name.startsWith('E') ? name : 'EIO'
  } catch {
    return 'EIO'
  }
}

/** A fatal socket error reported by the native side as a positive errno */
export function errnoError (errno: number, syscall: string): UtpError {
  return systemError(errnoName(errno), syscall)
}

/** @internal What dgram throws where the socket is not bound: its closed fd, EBADF (`getsockname EBADF` for address()) */
export function notBound (syscall: string): UtpError {
  return systemError(codes.EBADF, syscall)
}

/**
 * @internal dgram's error for a buffer size the OS would not get or set (ERR_SOCKET_BUFFER_SIZE): the OS error
 * is in `info` ({ errno, code, message, syscall }) and in errno/syscall, as Node's SystemError has them.
 * `errno` is the number or, where there is no descriptor to ask (not bound), its name
 */
export function bufferSizeError (errno: number | string, syscall: string): UtpError {
  const code = typeof errno === 'string' ? errno : errnoName(errno)
  const os = systemError(code, syscall)
  const description = util.getSystemErrorMap().get(os.errno ?? 0)?.[1] ?? code
  const err = createError(codes.ERR_SOCKET_BUFFER_SIZE, `Could not get or set buffer size: ${syscall} returned ${code} (${description})`) as UtpError & { info?: unknown }
  err.errno = os.errno
  err.syscall = syscall
  err.info = { errno: os.errno, code, message: description, syscall }
  return err
}

/** @internal The error a connection is destroyed with for a CLOSED reason (null: close quietly) */
export function closeReasonError (reason: number, address: string | undefined, port: number | undefined): UtpError | null {
  switch (reason) {
    case CloseReason.RESET: return systemError(codes.ECONNRESET, 'read', address, port)
    case CloseReason.REFUSED: return systemError(codes.ECONNREFUSED, 'connect', address, port)
    case CloseReason.TIMED_OUT: return systemError(codes.ETIMEDOUT, 'read', address, port)
    default: return null
  }
}

/** @internal Errors thrown by the native side already carry `.code`; anything else is wrapped */
export function asError (e: unknown): UtpError {
  if (e instanceof Error) return e as UtpError
  return createError('ERR_UTP_NATIVE', String(e))
}

/** @internal */
export function notRunning (): UtpError {
  return createError(codes.ERR_SOCKET_DGRAM_NOT_RUNNING, 'Not running')
}
