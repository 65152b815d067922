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
  /** Payload toward loopback peers (buffers min(bufferSize, 64) * loopbackMtu, at least 2 packets); 0: mtu */
  loopbackMtu?: number
  /** Probe paths for payloads above mtu, up to 1,448 bytes (DPLPMTUD) */
  probeMtu?: boolean
  /** Always do I/O on the native driver thread, never on the JS thread's event loop */
  ioThread?: boolean
  /** Let one packet carry several writes (default: one write per packet, so short writes arrive as written) */
  coalesceWrites?: boolean
  timeout: number
  resend: number
  keepAlive: number
  maxConnections?: number
  /** Congestion controller of every connection until setCongestion (default 'ledbat') */
  congestion?: Congestion
}

/** A congestion controller: 'ledbat' yields to other traffic (background), 'cubic' competes as TCP does */
export type Congestion = 'ledbat' | 'cubic'

export interface NativeBatch {
  /** Flat triples: kind, handle, arg */
  events: Uint32Array
  /** Payloads of DATA and MESSAGE events, back to back in event order */
  data: Buffer
  /** Remote addresses referenced by INCOMING and MESSAGE events */
  peers: AddressInfo[]
}

/** One connection's counters and estimates, as the native core keeps them (times in microseconds) */
export interface ConnectionStats {
  /** Smoothed round-trip time, µs (0 before the first sample) */
  rtt: number
  /** Round-trip time variation, µs */
  rttVar: number
  /** Current retransmission timeout, µs (at least the node's `resend` option) */
  rto: number
  /** Congestion window, bytes */
  cwnd: number
  /** Payload bytes sent and not yet acknowledged */
  inFlight: number
  /** Receive window the peer last advertised, bytes */
  peerWindow: number
  /** Receive window we advertise, bytes (shrinks while the socket is not read) */
  recvWindow: number
  /** Estimated queuing delay toward the peer (LEDBAT's one-way delay above its base), µs */
  queuingDelay: number
  /** Payload bytes per packet (the node's `mtu`, or `loopbackMtu` toward a loopback peer) */
  mtu: number
  /** Payload bytes sent, retransmissions included */
  bytesSent: number
  /** Payload bytes received in order (what the stream delivered or will deliver) */
  bytesReceived: number
  /** uTP packets (datagrams) sent: data, ACKs, keepalives, SYN/FIN/RESET */
  packetsSent: number
  /** uTP packets (datagrams) received for this connection */
  packetsReceived: number
  /** Packets sent again after loss (duplicate ACKs, SACK holes) or a timeout */
  retransmits: number
  /** Retransmission timer expiries */
  timeouts: number
  /** Data packets received that we already had */
  duplicates: number
  /** Congestion window cuts: one per flight with loss, one per series of retransmission timeouts */
  congestionEvents: number
  /** Retransmission timeouts found spurious afterwards (the original packet's ACK came) and undone */
  spuriousTimeouts: number
  /** Times large packets stopped getting through and the packet size fell back to `mtu` (black holes) */
  blackHoles: number
  /** The congestion controller the connection runs (the node's `congestion`, or setCongestion()'s) */
  congestion: Congestion
}

export interface NodeStats {
  serverConnections: number
  clientConnections: number
  maxConnections: number
  /** Non-SYN uTP packets that matched no connection */
  unmatchedPackets: number
  /** RESETs sent in answer to unknown packets */
  resetsSent: number
  /** Incoming connections refused (not listening, or maxConnections reached) */
  refused: number
  /** ICMP destination-unreachable reports for datagrams the node sent (Linux) */
  unreachable: number
  /** Non-uTP datagrams dropped while JavaScript had not taken the earlier ones (a bounded queue) */
  rawDatagramsDropped: number
  /** Incoming connections whose handshake the peer has not confirmed yet */
  pendingHandshakes: number
  /** SYNs dropped unanswered: too many pending handshakes, in all or from their address */
  synsDropped: number
}

export interface NativeNode {
  bind(port: number, host: string): AddressInfo
  address(): AddressInfo | null
  listen(on: boolean): void
  connect(port: number, host: string): number
  write(handle: number, chunks: Buffer[]): boolean
  /**
   * Seals `chunks` with a secure stream's record layer straight into the send buffer, as one write. The layer
   * is opaque here (lib/secure/native.ts types it): the transport knows nothing of the secure layer above it
   */
  writeSealed(handle: number, layer: object, chunks: Buffer[]): boolean
  end(handle: number): void
  /** Let go of a connection: FIN after what was written, incoming data discarded, only CLOSED follows */
  release(handle: number): void
  /** Payload bytes per packet of this connection from now on */
  setMtu(handle: number, mtu: number): void
  /** Peer silence before TIMEOUT, ms; 0: never (and no ETIMEDOUT once open) */
  setTimeout(handle: number, ms: number): void
  /** The connection's congestion controller from now on; the window it reached carries over */
  setCongestion(handle: number, mode: Congestion): void
  destroy(handle: number): void
  setReading(handle: number, reading: boolean): void
  /** Re-aim a connection at the peer's new address (its NAT rebound); false if gone or taken */
  migrate(handle: number, port: number, host: string): boolean
  sendRaw(data: Buffer, port: number, host: string, ttl?: number): void
  /**
   * Take the batch by copy: event triples into `events` (u32, native byte order), DATA and MESSAGE bytes
   * into `data`. Returns 2 × the u32 count written + 1 if another batch waits already; 0 if nothing
   * happened; -1 if `drain()` must take the batch.
   */
  drainInto(events: Buffer, data: Buffer): number
  drain(): NativeBatch | null
  /** Graceful close; connections still open after `withinMs` (default: the node's timeout) are reset */
  close(withinMs?: number): void
  connectionStats(handle: number): ConnectionStats | null
  stats(): NodeStats
  ref(): void
  unref(): void
  // Socket options of the UDP facade (crates/utp-node/src/sockopt.rs): each answers as libuv does, 0 (or a
  // size) on success and a negative errno on failure (-EBADF when not bound); they throw ENOTSUP where the
  // socket's fd is not reachable (not Unix)
  setBroadcast(on: boolean): number
  /** 0..255, else -EINVAL */
  setMulticastTTL(ttl: number): number
  setMulticastLoopback(on: boolean): number
  /** An IPv4 address, or an IPv6 one whose zone names the interface ('::%eth0') */
  setMulticastInterface(address: string): number
  /** Join (join true) or leave a group on the interface of `iface` (null: the system's choice) */
  setMembership(group: string, iface: string | null | undefined, join: boolean): number
  setSourceMembership(source: string, group: string, iface: string | null | undefined, join: boolean): number
  /** SO_RCVBUF (recv true) or SO_SNDBUF: size 0 reads it, any other size (up to 2^31 - 1) sets it and answers 0 */
  bufferSize(size: number, recv: boolean): number
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
  SOCKET_ERROR: 9,
  TIMEOUT: 10
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

/** The platforms a prebuilt binary package is published for (napi.targets in package.json) */
export const prebuiltPlatforms = [
  'linux-x64-gnu',
  'linux-x64-musl',
  'linux-arm64-gnu',
  'linux-arm64-musl',
  'darwin-x64',
  'darwin-arm64',
  'win32-x64-msvc'
] as const

/** Linux only: does this process run on musl libc? (glibc reports its version in the process report) */
function isMusl (): boolean {
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    if (report?.header?.glibcVersionRuntime !== undefined) return false
  } catch {
    // no report: look at ldd below
  }
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    return false
  }
}

/**
 * The napi-rs platform id of this process, as in the binary names `utp-punch-rs.<id>.node` and the
 * packages `utp-punch-rs-<id>`: linux-x64-gnu, linux-arm64-musl, darwin-arm64, win32-x64-msvc, ...
 */
export function nativePlatform (): string {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** The generated loader, binding.js at the package root (upward from dist/lib or lib) */
export function bindingPath (): string {
  let dir = __dirname
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'binding.js')
    if (fs.existsSync(candidate)) return candidate
    dir = path.dirname(dir)
  }
  return path.join(__dirname, '..', '..', 'binding.js')
}

/** Every message in an error and its `cause` chain (binding.js chains one error per place it looked) */
function causeMessages (e: unknown): string[] {
  const out: string[] = []
  for (let c = e, i = 0; c !== undefined && c !== null && i < 32; c = (c as { cause?: unknown }).cause, i++) {
    out.push(c instanceof Error ? c.message : String(c))
  }
  return out
}

/**
 * The error users see when the addon cannot be loaded: which binary was looked for where, and the two
 * ways out (the prebuilt package, or a build from source). `code` is ERR_UTP_NATIVE_MISSING either way.
 */
function missingNativeError (cause: unknown, root: string): Error {
  const id = nativePlatform()
  const pkg = `utp-punch-rs-${id}`
  const file = `utp-punch-rs.${id}.node`
  let version = ''
  try {
    version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? ''
  } catch {
    // the version is only a hint in the message
  }
  const libc = process.platform === 'linux' ? `, ${id.endsWith('-musl') ? 'musl' : 'glibc'}` : ''
  const where = `${process.platform} ${process.arch}${libc}`
  const fromSource = fs.existsSync(path.join(root, 'Cargo.toml'))
    ? `build it from source: run \`npm run build\` in ${root} (needs Rust's cargo: https://rustup.rs)`
    : 'build it from source: this installed copy has no Rust sources, so clone the utp-punch-rs repository, run ' +
      '`npm install` there (it runs `npm run build`, which needs Rust\'s cargo: https://rustup.rs) and install that directory instead'
  // Not-found errors say "Cannot find module"; anything else means a binary was there but would not load
  const failures = causeMessages(cause).filter((m) => !m.startsWith('Cannot find module') && !m.startsWith('Cannot find native binding'))
  let message: string
  if (failures.length > 0) {
    message = `utp-punch-rs: the native addon for ${id} (${where}) was found but failed to load: ${failures[0]}\n` +
      `Reinstall utp-punch-rs so that npm fetches ${pkg}${version === '' ? '' : `@${version}`} again, or ${fromSource}.`
  } else if ((prebuiltPlatforms as readonly string[]).includes(id)) {
    message = `utp-punch-rs: no native addon for ${id} (${where}). Looked for ${path.join(root, file)} and for the package ${pkg}; neither is installed.\n` +
      `Install the prebuilt binary: \`npm install ${pkg}${version === '' ? '' : `@${version}`}\`. npm leaves it out when optional dependencies ` +
      'are omitted (--omit=optional, --no-optional) and when a package-lock.json made on another platform lacks it ' +
      '(https://github.com/npm/cli/issues/4828: delete node_modules and package-lock.json and run `npm install` again).\n' +
      `Or ${fromSource}.`
  } else {
    message = `utp-punch-rs: no prebuilt native addon is published for ${id} (${where}); prebuilt ones exist for ${prebuiltPlatforms.join(', ')}. ` +
      `Looked for ${path.join(root, file)} and for the package ${pkg}.\n` +
      `To use utp-punch-rs here, ${fromSource}.`
  }
  const err = new Error(message, { cause }) as NodeJS.ErrnoException & { platform?: string, packageName?: string }
  err.code = 'ERR_UTP_NATIVE_MISSING'
  err.platform = id
  err.packageName = pkg
  return err
}

/** The NativeNode class, loaded on first use so that requiring the package never fails */
export function loadNative (): NativeNodeConstructor {
  if (cached !== null) return cached
  const file = bindingPath()
  let binding: { NativeNode?: NativeNodeConstructor }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require(file) as { NativeNode?: NativeNodeConstructor }
  } catch (e) {
    throw missingNativeError(e, path.dirname(file))
  }
  if (typeof binding.NativeNode !== 'function') {
    const err = new Error('utp-punch-rs: the native addon does not export NativeNode (rebuild it with `npm run build:native`)') as NodeJS.ErrnoException
    err.code = 'ERR_UTP_NATIVE_MISSING'
    throw err
  }
  cached = binding.NativeNode
  return cached
}
