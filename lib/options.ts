// Option validation and defaults; argument checks shared by Node, Socket and the UDP facade

import * as net from 'net'
import * as util from 'util'

import { codes, createError } from './errors'
import type { Congestion } from './native'

export interface NodeOptions {
  /**
   * Packets of buffering per connection: receive window and send buffer are bufferSize * mtu bytes (default
   * 1024, so 1 MB: LEDBAT, not the window, limits a transfer on links up to ~80 Mbit/s at 100 ms; utp-punch's 64
   * capped a 50 ms path at 10 Mbit/s). Toward loopback peers at most 64 packets count (RTTs are microseconds)
   */
  bufferSize?: number
  /** Payload bytes per packet, excluding the uTP header (default 1000) */
  mtu?: number
  /**
   * Payload bytes per packet toward peers on a loopback address (127.0.0.0/8, ::1), whose path MTU is 64 KiB:
   * larger packets cost far less CPU per byte. Their buffers are min(bufferSize, 64) * loopbackMtu. 0 uses `mtu`.
   * Default 16000, or `mtu` when only that is given
   */
  loopbackMtu?: number
  /**
   * Probe each path for larger packets than `mtu`, up to 1,448 bytes of payload (a 1,500-byte IP packet), with
   * separate probe datagrams that our peers answer (DPLPMTUD, RFC 8899; libutp peers ignore them and the size
   * stays at `mtu`). Default true, or false when `mtu` is given
   */
  probeMtu?: boolean
  /**
   * Milliseconds of peer silence after which an open connection emits 'timeout' (default 5000); after as long
   * again it fails with ETIMEDOUT unless the application ended or destroyed it. A connection attempt fails
   * with ETIMEDOUT after this long
   */
  timeout?: number
  /**
   * The least margin in milliseconds the retransmission timeout adds to the smoothed round trip, RTO = srtt +
   * max(4·rttvar, resend), so also its floor (default 100)
   */
  resend?: number
  /** Milliseconds of idle sending after which a keepalive goes out; 0 turns keepalives off (default 1000) */
  keepAlive?: number
  /** Connections open at once (default 32768) */
  maxConnections?: number
  /** Keep a connection writable after the peer ended its side, like net's allowHalfOpen (default false) */
  allowHalfOpen?: boolean
  /**
   * Always do the socket's I/O on a native thread (default false: a quiet node does it on the JavaScript thread's
   * event loop, with no thread hop, and moves to the native thread only while busy). True keeps ACKs and
   * retransmissions going while JavaScript is blocked for long stretches, at some cost in latency
   */
  ioThread?: boolean
  /**
   * Let one packet carry bytes of several writes (default false). By default, as in utp-punch, a packet holds
   * bytes of one write only and the peer's 'data' chunks end where writes ended, so a write shorter than a
   * packet arrives as one 'data' event (between two utp-punch-rs nodes; other uTP peers do not mark write ends).
   * True sends fewer packets for streams of many tiny writes
   */
  coalesceWrites?: boolean
  /**
   * The congestion controller of each connection (default 'ledbat'): 'ledbat' (LEDBAT, RFC 6817) is a background
   * transfer that keeps the queue it builds near 100 ms and yields to TCP and interactive traffic; 'cubic' (RFC
   * 9438, TCP's default) competes for its fair share as TCP does. socket.setCongestion() changes one connection
   */
  congestion?: Congestion
}

export type ResolvedOptions = Required<NodeOptions>

export const defaults: Readonly<ResolvedOptions> = Object.freeze({
  bufferSize: 1024,
  mtu: 1000,
  loopbackMtu: 16000,
  probeMtu: true,
  timeout: 5000,
  resend: 100,
  keepAlive: 1000,
  maxConnections: 32768,
  allowHalfOpen: false,
  ioThread: false,
  coalesceWrites: false,
  congestion: 'ledbat'
})

interface Range { min: number, max: number, zeroOk?: boolean }

const ranges: Record<Exclude<keyof NodeOptions, 'allowHalfOpen' | 'probeMtu' | 'ioThread' | 'coalesceWrites' | 'congestion'>, Range> = {
  bufferSize: { min: 2, max: 65536 },
  mtu: { min: 64, max: 65000 },
  loopbackMtu: { min: 64, max: 65000, zeroOk: true },
  timeout: { min: 100, max: 3600000 },
  resend: { min: 1, max: 60000 },
  keepAlive: { min: 100, max: 3600000, zeroOk: true },
  maxConnections: { min: 1, max: 1 << 20 }
}

/** The value received, as Node's own argument errors describe it (so ours read like dgram's and net's) */
function describe (value: unknown): string {
  if (value === null || value === undefined) return String(value)
  if (typeof value === 'function') return `function ${value.name}`
  if (typeof value === 'object') {
    const name = (value as object).constructor?.name
    return typeof name === 'string' ? `an instance of ${name}` : util.inspect(value, { depth: -1 })
  }
  // Long strings are cut to their first 25 characters
  const shown = typeof value === 'string' && value.length > 28 ? `${value.slice(0, 25)}...` : value
  return `type ${typeof value} (${util.inspect(shown)})`
}

export function invalidType (name: string, expected: string, value: unknown): Error {
  return createError(codes.ERR_INVALID_ARG_TYPE, `The "${name}" argument must be ${expected}. Received ${describe(value)}`, TypeError)
}

export function invalidValue (name: string, value: unknown, reason: string): Error {
  // As Node describes the value in its own ERR_INVALID_ARG_VALUE: inspected (a string in quotes), cut at 128
  let received = util.inspect(value)
  if (received.length > 128) received = `${received.slice(0, 128)}...`
  return createError(codes.ERR_INVALID_ARG_VALUE, `The argument '${name}' ${reason}. Received ${received}`, RangeError)
}

/** An integer in [min, max] (the option and argument form both use this) */
export function validateInteger (name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidValue(name, value, `must be an integer >= ${min} and <= ${max}`)
  }
  return value
}

export function validateOptions (options: unknown): ResolvedOptions {
  if (options === undefined || options === null) return { ...defaults }
  if (typeof options !== 'object') throw invalidType('options', 'of type object', options)
  const opts = options as Record<string, unknown>
  const out: ResolvedOptions = { ...defaults }
  for (const key of Object.keys(ranges) as Array<keyof typeof ranges>) {
    const value = opts[key]
    if (value === undefined) continue
    const r = ranges[key]
    if (r.zeroOk === true && value === 0) {
      out[key] = 0
      continue
    }
    if (typeof value !== 'number') throw invalidType(`options.${key}`, 'of type number', value)
    if (!Number.isInteger(value) || value < r.min || value > r.max) {
      const zero = r.zeroOk === true ? ' (or 0 to turn it off)' : ''
      throw invalidValue(`options.${key}`, value, `must be an integer >= ${r.min} and <= ${r.max}${zero}`)
    }
    out[key] = value
  }
  // An explicit mtu is a statement about packet size everywhere, unless loopbackMtu says otherwise
  if (opts.loopbackMtu === undefined && opts.mtu !== undefined) out.loopbackMtu = out.mtu
  if (opts.probeMtu !== undefined) {
    if (typeof opts.probeMtu !== 'boolean') throw invalidType('options.probeMtu', 'of type boolean', opts.probeMtu)
    out.probeMtu = opts.probeMtu
  } else if (opts.mtu !== undefined) {
    out.probeMtu = false
  }
  if (opts.allowHalfOpen !== undefined) {
    if (typeof opts.allowHalfOpen !== 'boolean') throw invalidType('options.allowHalfOpen', 'of type boolean', opts.allowHalfOpen)
    out.allowHalfOpen = opts.allowHalfOpen
  }
  for (const key of ['ioThread', 'coalesceWrites'] as const) {
    const value = opts[key]
    if (value === undefined) continue
    if (typeof value !== 'boolean') throw invalidType(`options.${key}`, 'of type boolean', value)
    out[key] = value
  }
  if (opts.congestion !== undefined) out.congestion = validateCongestion('options.congestion', opts.congestion)
  return out
}

/** 'ledbat' or 'cubic' */
export function validateCongestion (name: string, value: unknown): Congestion {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  if (value !== 'ledbat' && value !== 'cubic') throw invalidValue(name, value, "must be 'ledbat' or 'cubic'")
  return value
}

/**
 * A port number as dgram accepts it: an integer (or a string holding one) in 0..65535, or 1..65535 when
 * `allowZero` is false (a destination). Anything else is a RangeError with code ERR_SOCKET_BAD_PORT.
 */
export function validatePort (port: unknown, name = 'Port', allowZero = true): number {
  let n = NaN
  if (typeof port === 'number') n = port
  else if (typeof port === 'string' && /^\s*\d+\s*$/.test(port)) n = Number(port)
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) {
    throw createError(codes.ERR_SOCKET_BAD_PORT, `${name} should be ${allowZero ? '>= 0' : '> 0'} and < 65536. Received ${describe(port)}.`, RangeError)
  }
  return n
}

export function validateHost (host: unknown, name = 'host'): string {
  if (typeof host !== 'string') throw invalidType(name, 'of type string', host)
  if (host === '') throw invalidValue(name, host, 'must be a non-empty string')
  return host
}

/** '::ffff:1.2.3.4' becomes '1.2.3.4'; IPv6 is lower-cased; IPv6 zone ids are kept */
export function normalizeAddress (address: string): string {
  const lower = address.toLowerCase()
  if (lower.startsWith('::ffff:') && net.isIPv4(lower.slice(7))) return lower.slice(7)
  return net.isIPv6(lower) ? lower : address
}

export function familyOf (address: string): 'IPv4' | 'IPv6' {
  return net.isIPv6(address) ? 'IPv6' : 'IPv4'
}
