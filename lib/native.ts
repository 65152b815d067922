// Typed access to the generated napi loader (binding.js at the package root).
// The contract is docs/native-binding.md; nothing outside lib/ touches the native object.

import * as fs from 'fs'
import * as path from 'path'

export interface AddressInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
}

export interface NativeOptions {
  mtu: number
  bufferSize: number
  /** Payload toward loopback peers (buffers bufferSize * loopbackMtu); 0: mtu */
  loopbackMtu?: number
  timeout: number
  resend: number
  keepAlive: number
  maxConnections?: number
}

export interface NativeBatch {
  /** Flat triples: kind, handle, arg */
  events: Uint32Array
  /** Payloads of DATA and MESSAGE events, back to back in event order */
  data: Buffer
  /** Remote addresses referenced by INCOMING and MESSAGE events */
  peers: AddressInfo[]
}

export interface ConnectionStats {
  /** Smoothed round-trip time, microseconds */
  rtt: number
  rttVar: number
  rto: number
  /** Congestion window, bytes */
  cwnd: number
  inFlight: number
  peerWindow: number
  recvWindow: number
  /** Microseconds */
  queuingDelay: number
  /** Payload bytes per packet */
  mtu: number
  bytesSent: number
  bytesReceived: number
  packetsSent: number
  packetsReceived: number
  retransmits: number
  timeouts: number
  duplicates: number
}

export interface NodeStats {
  serverConnections: number
  clientConnections: number
  maxConnections: number
}

export interface NativeNode {
  bind(port: number, host: string): AddressInfo
  address(): AddressInfo | null
  listen(on: boolean): void
  connect(port: number, host: string): number
  write(handle: number, chunks: Buffer[]): boolean
  end(handle: number): void
  destroy(handle: number): void
  setReading(handle: number, reading: boolean): void
  /** Re-aim a connection at the peer's new address (its NAT rebound); false if gone or taken */
  migrate(handle: number, port: number, host: string): boolean
  sendRaw(data: Buffer, port: number, host: string, ttl?: number): void
  drain(): NativeBatch | null
  close(): void
  connectionStats(handle: number): ConnectionStats | null
  stats(): NodeStats
  ref(): void
  unref(): void
}

export type NativeNodeConstructor = new (options: NativeOptions, onWake: () => void) => NativeNode

/** Event kinds of a NativeBatch triple */
export const Kind = {
  CONNECTED: 1,
  INCOMING: 2,
  DATA: 3,
  END: 4,
  WRITABLE: 5,
  CLOSED: 6,
  MESSAGE: 7,
  NODE_CLOSED: 8,
  SOCKET_ERROR: 9
} as const

/** The `arg` of a CLOSED event */
export const CloseReason = {
  FINISHED: 0,
  RESET: 1,
  REFUSED: 2,
  TIMED_OUT: 3,
  ABORTED: 4
} as const

let cached: NativeNodeConstructor | null = null

/** The directory holding binding.js: the package root, found upward from this file (dist/lib or lib) */
function bindingPath (): string {
  let dir = __dirname
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'binding.js')
    if (fs.existsSync(candidate)) return candidate
    dir = path.dirname(dir)
  }
  return path.join(__dirname, '..', '..', 'binding.js')
}

/** The NativeNode class, loaded on first use so that requiring the package never fails */
export function loadNative (): NativeNodeConstructor {
  if (cached !== null) return cached
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const binding = require(bindingPath()) as { NativeNode?: NativeNodeConstructor }
  if (typeof binding.NativeNode !== 'function') {
    const err = new Error('utp-punch-rs: the native addon does not export NativeNode (rebuild it with `npm run build:native`)') as NodeJS.ErrnoException
    err.code = 'ERR_UTP_NATIVE_MISSING'
    throw err
  }
  cached = binding.NativeNode
  return cached
}
