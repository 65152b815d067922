// Error codes and the helpers that make `Error`s carrying `.code` (plus errno fields where net/dgram have them)

import * as util from 'util'

import { CloseReason } from './native'

export const codes = {
  ERR_INVALID_ARG_TYPE: 'ERR_INVALID_ARG_TYPE',
  ERR_INVALID_ARG_VALUE: 'ERR_INVALID_ARG_VALUE',
  ERR_OUT_OF_RANGE: 'ERR_OUT_OF_RANGE',
  ERR_SOCKET_BAD_PORT: 'ERR_SOCKET_BAD_PORT',
  ERR_SOCKET_ALREADY_BOUND: 'ERR_SOCKET_ALREADY_BOUND',
  ERR_SOCKET_DGRAM_NOT_RUNNING: 'ERR_SOCKET_DGRAM_NOT_RUNNING',
  ERR_SOCKET_CLOSED: 'ERR_SOCKET_CLOSED',
  ERR_UTP_NATIVE_MISSING: 'ERR_UTP_NATIVE_MISSING',
  ECONNRESET: 'ECONNRESET',
  ECONNREFUSED: 'ECONNREFUSED',
  ETIMEDOUT: 'ETIMEDOUT'
} as const

export type ErrorCode = (typeof codes)[keyof typeof codes]

export interface UtpError extends Error {
  code: string
  errno?: number
  syscall?: string
  address?: string
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
  const errno = (util as unknown as { getSystemErrorMap?: () => Map<number, [string, string]> }).getSystemErrorMap?.()
  if (errno !== undefined) {
    for (const [n, [name]] of errno) {
      if (name === code) {
        err.errno = n
        break
      }
    }
  }
  err.syscall = syscall
  if (address !== undefined) err.address = address
  if (port !== undefined) err.port = port
  return err
}

/** A fatal socket error reported by the native side as a positive errno */
export function errnoError (errno: number, syscall: string): UtpError {
  let name: string
  try {
    name = util.getSystemErrorName(-Math.abs(errno))
  } catch {
    name = 'EIO'
  }
  return systemError(name, syscall)
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
