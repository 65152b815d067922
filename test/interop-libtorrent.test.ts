// Wire compatibility with libtorrent-rasterbar, the uTP of real BitTorrent clients (qBittorrent, Deluge, ...),
// through its Python binding (test/libtorrent/lt_peer.py): BitTorrent transfers both ways over uTP on
// loopback, every piece checked against the torrent's SHA-1, closes from either side, and what actually
// travels between the two (a tapping relay). Node options stay at their defaults: they must work with it.
import { spawn, type ChildProcessWithoutNullStreams } from 'child_process'
import { randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import * as readline from 'readline'
import { afterEach, describe, expect, it } from 'vitest'

import {
  BLOCK_SIZE, downloadTorrent, makeTorrent, MessageId, newPeerId, newProgress, newSeedProgress, PeerWire, seedTorrent,
  sha256Hex, type DownloadOptions, type DownloadProgress, type SeedProgress, type Torrent
} from './helpers/bittorrent'
import { boundedLoss, createRelay, type Relay } from './helpers/relay'
import { cleanupNodes, closed, listeningNode, makeNode, sleep, type Node, type NodeOptions, type Socket, type UtpError } from './helpers/utp'

const MiB = 1024 * 1024
const PIECE_LENGTH = 256 * 1024
const LT_PEER = path.join(__dirname, 'libtorrent', 'lt_peer.py')
// A transfer of a few MiB takes well under a second when it works; a stall fails well before vitest's timeout
const TRANSFER_DEADLINE = 30_000
const CLOSE_DEADLINE = 15_000
const CASE_TIMEOUT = 60_000
// libtorrent reads every datagram into a 1,500-byte buffer (aux::udp_socket::receive_buffer) and silently
// works on the truncated rest
const LT_RECEIVE_BUFFER = 1500

// ---------------------------------------------------------------------------------------------------------
// The libtorrent side

interface LtEvent {
  event: string
  [field: string]: unknown
}

interface LtReady extends LtEvent {
  libtorrent: string
  port: number
  infohash: string
  pieceLength: number
  numPieces: number
  pieces: string[]
}

interface LtTorrentStatus {
  isSeeding: boolean
  numPieces: number
  totalPayloadDownload: number
  totalFailedBytes: number
  totalRedundantBytes: number
}

interface LtFinished extends LtEvent {
  seconds: number
  sha256: string
  hashFailures: number
  torrent: LtTorrentStatus
  counters: Record<string, number>
  udpDrops: number | null
  rcvbufErrorsDelta: number | null
}

/** One lt_peer.py process: its JSON events, commands, and a teardown that always ends it */
class LtPeer {
  readonly events: LtEvent[] = []
  ready!: LtReady
  private readonly child: ChildProcessWithoutNullStreams
  private readonly listeners = new Set<() => void>()
  private stderr = ''
  private statusId = 0
  readonly exited: Promise<number | null>

  private constructor (args: string[]) {
    this.child = spawn('python3', ['-u', LT_PEER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)))
    this.child.stderr.setEncoding('utf8')
    this.child.stderr.on('data', (s: string) => { this.stderr = (this.stderr + s).slice(-4000) })
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as LtEvent)
      } catch {
        this.events.push({ event: 'unparsed', line })
      }
      for (const l of [...this.listeners]) l()
    })
    this.child.once('exit', () => {
      for (const l of [...this.listeners]) l()
    })
    // A test that already failed may leave the pipe closed under a late write
    this.child.stdin.on('error', () => {})
  }

  /** `settings`: libtorrent settings to override, as NAME=VALUE */
  static async start (mode: 'seed' | 'download', t: PreparedTorrent, peer?: string, settings: string[] = []): Promise<LtPeer> {
    const args = [mode, '--torrent', t.torrentPath, '--save', mode === 'seed' ? t.seedDir : t.downloadDir]
    if (peer !== undefined) args.push('--peer', peer)
    for (const s of settings) args.push('--set', s)
    const lt = new LtPeer(args)
    livePeers.add(lt)
    lt.ready = await lt.waitFor((e) => e.event === 'ready', 30_000, 'lt_peer.py ready') as LtReady
    return lt
  }

  /** The first event (past or future) that matches; rejects after `ms` or when the process exits */
  waitFor (match: (e: LtEvent) => boolean, ms: number, what: string): Promise<LtEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.events.find(match)
        if (found !== undefined) done(null, found)
        else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          done(new Error(`${what}: lt_peer.py exited (${this.child.exitCode ?? this.child.signalCode}); stderr: ${this.stderr}`))
        }
      }
      const timer = setTimeout(() => done(new Error(`${what}: nothing within ${ms} ms`)), ms)
      const done = (err: Error | null, e?: LtEvent): void => {
        clearTimeout(timer)
        this.listeners.delete(check)
        if (err !== null) reject(err)
        else resolve(e as LtEvent)
      }
      this.listeners.add(check)
      check()
    })
  }

  command (cmd: Record<string, unknown>): void {
    if (this.child.stdin.writable) this.child.stdin.write(JSON.stringify(cmd) + '\n')
  }

  /** libtorrent's torrent, peers and uTP counters now (or why there is no answer) */
  async status (): Promise<LtEvent | string> {
    const id = ++this.statusId
    this.command({ cmd: 'status', id })
    try {
      return await this.waitFor((e) => e.event === 'status' && e.id === id, 3000, 'status')
    } catch (err) {
      return (err as Error).message
    }
  }

  alerts (...types: string[]): LtEvent[] {
    return this.events.filter((e) => e.event === 'alert' && (types.length === 0 || types.includes(e.type as string)))
  }

  /** Why libtorrent dropped connections: its peer_disconnected and peer_error alerts */
  disconnects (): string[] {
    return this.alerts('peer_disconnected', 'peer_error').map((a) => `${a.type as string}: ${a.message as string} [op ${a.op as string}, error ${a.errorCategory as string}:${a.errorCode as number} ${a.error as string}, reason ${a.reason as string}]`)
  }

  stderrTail (): string {
    return this.stderr
  }

  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.command({ cmd: 'quit' })
    this.child.stdin.end()
    const quit = await Promise.race([this.exited.then(() => true), sleep(5000).then(() => false)])
    if (quit) return
    this.child.kill('SIGTERM')
    const terminated = await Promise.race([this.exited.then(() => true), sleep(2000).then(() => false)])
    if (!terminated) this.child.kill('SIGKILL')
    await this.exited
  }
}

const livePeers = new Set<LtPeer>()
const tempDirs: string[] = []

// ---------------------------------------------------------------------------------------------------------
// Torrents, diagnostics

interface PreparedTorrent {
  data: Buffer
  torrent: Torrent
  torrentPath: string
  /** Holds the data file: where the seed reads it */
  seedDir: string
  /** Empty: where a downloading libtorrent writes */
  downloadDir: string
}

function prepareTorrent (size: number): PreparedTorrent {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-lt-'))
  tempDirs.push(dir)
  const data = randomBytes(size)
  const torrent = makeTorrent('data.bin', data, PIECE_LENGTH)
  const seedDir = path.join(dir, 'seed')
  const downloadDir = path.join(dir, 'download')
  fs.mkdirSync(seedDir)
  fs.mkdirSync(downloadDir)
  fs.writeFileSync(path.join(seedDir, torrent.name), data)
  const torrentPath = path.join(dir, 'data.torrent')
  fs.writeFileSync(torrentPath, torrent.metainfo)
  return { data, torrent, torrentPath, seedDir, downloadDir }
}

/** Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:port (/proc/net/udp's last column) */
function udpDrops (port: number): number | null {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  try {
    for (const line of fs.readFileSync('/proc/net/udp', 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/)
      if (fields[1] === local) return Number(fields[fields.length - 1])
    }
  } catch {}
  return null
}

/** What our socket emitted, in order, with ms since it was made */
interface SocketLog {
  events: string[]
  names: string[]
  errors: UtpError[]
}

function recordSocket (socket: Socket): SocketLog {
  const t0 = Date.now()
  const log: SocketLog = { events: [], names: [], errors: [] }
  const note = (name: string, detail = ''): void => {
    log.names.push(name)
    log.events.push(`${name}${detail}@${Date.now() - t0}ms`)
  }
  socket.on('end', () => note('end'))
  socket.on('finish', () => note('finish'))
  socket.on('close', () => note('close'))
  socket.on('error', (err: UtpError) => {
    log.errors.push(err)
    note('error', ` ${err.code ?? ''} (${err.message})`)
  })
  return log
}

interface Context {
  lt: LtPeer
  node?: Node
  socket?: () => Socket | undefined
  log?: () => SocketLog | undefined
  progress?: DownloadProgress | SeedProgress
  /** More to say on failure (read at that moment) */
  extra?: () => string
}

async function diagnose (ctx: Context): Promise<string> {
  const socket = ctx.socket?.()
  const lines = [
    `our socket.stats(): ${JSON.stringify(socket?.stats() ?? null)}`,
    `our socket events: ${JSON.stringify(ctx.log?.()?.events ?? null)}`,
    `our node.stats(): ${JSON.stringify(ctx.node?.stats() ?? null)}`,
    `BitTorrent progress: ${JSON.stringify(ctx.progress ?? null)}`,
    `libtorrent status: ${JSON.stringify(await ctx.lt.status())}`,
    `libtorrent disconnects: ${JSON.stringify(ctx.lt.disconnects())}`,
    `libtorrent last alerts: ${JSON.stringify(ctx.lt.alerts().slice(-12).map((a) => `${a.type as string}: ${a.message as string}`))}`,
    `kernel UDP drops: ours ${ctx.node !== undefined ? udpDrops(ctx.node.address().port) : '?'}, libtorrent's ${udpDrops(ctx.lt.ready.port)}`
  ]
  if (ctx.extra !== undefined) lines.push(ctx.extra())
  const stderr = ctx.lt.stderrTail()
  if (stderr !== '') lines.push(`lt_peer.py stderr: ${stderr}`)
  return lines.join('\n')
}

/** `work`, or a failure that says what both sides were doing: on a stall after `ms`, or on the first error */
async function within<T> (ms: number, what: string, ctx: Context, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no progress to completion within ${ms / 1000} s (stalled)`)), ms)
  })
  try {
    return await Promise.race([work, deadline])
  } catch (err) {
    const e = err as UtpError
    throw new Error(`${what} failed: ${e.code !== undefined ? `[${e.code}] ` : ''}${e.message}\n${await diagnose(ctx)}`)
  } finally {
    clearTimeout(timer)
  }
}

function report (line: string): void {
  console.log(`[libtorrent interop] ${line}`)
}

/** Our Node connected to a libtorrent seed (at `port`: libtorrent's own, or a relay's in front of it) */
async function connectToSeed (lt: LtPeer, options?: NodeOptions, port = lt.ready.port): Promise<{ node: Node, socket: Socket, wire: PeerWire, log: SocketLog }> {
  const node = makeNode(options)
  await node.bindAsync(0, '127.0.0.1')
  const socket = node.connect(port, '127.0.0.1')
  const log = recordSocket(socket)
  return { node, socket, wire: new PeerWire(socket), log }
}

/**
 * Handshake, interested, and wait for the bitfield and the unchoke: the connection is then idle on both
 * sides (no requests outstanding)
 */
async function openIdleSession (wire: PeerWire, torrent: Torrent): Promise<void> {
  wire.sendHandshake(torrent.infoHash, newPeerId())
  const hs = await wire.receiveHandshake()
  expect(hs.infoHash.equals(torrent.infoHash)).toBe(true)
  wire.send(MessageId.interested)
  let bitfield = false
  let unchoked = false
  while (!bitfield || !unchoked) {
    const m = await wire.receiveMessage()
    if (m === null) throw new Error('libtorrent closed the connection during the session setup')
    if (m.id === MessageId.bitfield) bitfield = true
    if (m.id === MessageId.unchoke) unchoked = true
  }
}

/** Until the socket emitted 'close'; rejects after `ms` with the diagnostics */
function closeOf (socket: Socket, ctx: Context, what: string): Promise<void> {
  return within(CLOSE_DEADLINE, what, ctx, closed(socket))
}

// ---------------------------------------------------------------------------------------------------------
// A tapping relay: what crosses between us and libtorrent

interface UtpHeaderInfo {
  type: string
  /** Lengths of the selective-ACK extensions, in order */
  sackLengths: number[]
  /** Extension types other than selective ACK (libtorrent's close reason is type 3) */
  otherExtensions: number[]
}

const PACKET_TYPES = ['DATA', 'FIN', 'STATE', 'RESET', 'SYN']

/** BEP 29 header and extension chain, or null for a datagram that is not uTP v1 */
function parseUtp (d: Buffer): UtpHeaderInfo | null {
  if (d.length < 20 || (d[0] & 0x0f) !== 1 || d[0] >> 4 > 4) return null
  const info: UtpHeaderInfo = { type: PACKET_TYPES[d[0] >> 4], sackLengths: [], otherExtensions: [] }
  let next = d[1]
  let at = 20
  while (next !== 0) {
    if (at + 2 > d.length) return null
    const len = d[at + 1]
    if (next === 1) info.sackLengths.push(len)
    else info.otherExtensions.push(next)
    next = d[at]
    at += 2 + len
  }
  return at <= d.length ? info : null
}

interface Tap {
  relay: Relay
  /** Datagrams toward libtorrent larger than its receive buffer (libtorrent truncates them) */
  oversizeToLt: number[]
  /** Datagrams toward libtorrent that are not uTP at all (the first bytes, as text) */
  nonUtpToLt: string[]
  /** uTP types we sent, counted */
  typesToLt: Record<string, number>
  typesFromLt: Record<string, number>
  /** Selective-ACK lengths libtorrent used, counted */
  sackLengthsFromLt: Record<number, number>
  largestToLt: number
}

/** A relay toward `targetPort` (the side that is connected to) that records every datagram and drops none */
async function tapRelay (targetPort: number, targetIsLt: boolean): Promise<Tap> {
  const tap: Tap = { relay: undefined as unknown as Relay, oversizeToLt: [], nonUtpToLt: [], typesToLt: {}, typesFromLt: {}, sackLengthsFromLt: {}, largestToLt: 0 }
  tap.relay = await createRelay(targetPort, {
    drop: (msg, dir) => {
      const toLt = (dir === 'toServer') === targetIsLt
      const u = parseUtp(msg)
      if (toLt) {
        tap.largestToLt = Math.max(tap.largestToLt, msg.length)
        if (msg.length > LT_RECEIVE_BUFFER) tap.oversizeToLt.push(msg.length)
        if (u === null) tap.nonUtpToLt.push(`${msg.subarray(0, 6).toString('latin1')}.. (${msg.length} bytes)`)
        else tap.typesToLt[u.type] = (tap.typesToLt[u.type] ?? 0) + 1
      } else if (u !== null) {
        tap.typesFromLt[u.type] = (tap.typesFromLt[u.type] ?? 0) + 1
        for (const l of u.sackLengths) tap.sackLengthsFromLt[l] = (tap.sackLengthsFromLt[l] ?? 0) + 1
      }
      return false
    }
  })
  relays.push(tap.relay)
  return tap
}

function tapSummary (tap: Tap): string {
  return JSON.stringify({
    largestToLt: tap.largestToLt,
    oversizeToLt: tap.oversizeToLt.length,
    oversizeSizes: [...new Set(tap.oversizeToLt)].slice(0, 8),
    nonUtpToLt: tap.nonUtpToLt.length,
    nonUtpSamples: [...new Set(tap.nonUtpToLt)].slice(0, 4),
    typesToLt: tap.typesToLt,
    typesFromLt: tap.typesFromLt,
    sackLengthsFromLt: tap.sackLengthsFromLt,
    relay: tap.relay.stats
  })
}

const relays: Relay[] = []

// ---------------------------------------------------------------------------------------------------------
// The two directions of a transfer

interface Download {
  lt: LtPeer
  node: Node
  socket: Socket
  log: SocketLog
  progress: DownloadProgress
  data: Buffer
  seconds: number
}

/**
 * Our Node downloads `t` from a libtorrent seed, optionally through a relay in front of it (`via` gets
 * libtorrent's port and returns the one to connect to); the download is checked piece by piece
 */
async function downloadFromLibtorrent (t: PreparedTorrent, options: DownloadOptions & { via?: (ltPort: number) => Promise<number>, hooks?: (s: Socket) => void }): Promise<Download> {
  const lt = await LtPeer.start('seed', t)
  // libtorrent checked the data against our torrent: the torrent and its info hash are what it computes too
  expect(lt.ready.infohash).toBe(t.torrent.infoHash.toString('hex'))
  expect(lt.ready.pieces).toEqual(t.torrent.pieces.map((p) => p.toString('hex')))
  const port = options.via !== undefined ? await options.via(lt.ready.port) : lt.ready.port
  const { node, socket, wire, log } = await connectToSeed(lt, undefined, port)
  options.hooks?.(socket)
  const progress = newProgress()
  const ctx: Context = { lt, node, socket: () => socket, log: () => log, progress }
  const t0 = Date.now()
  const data = await within(TRANSFER_DEADLINE, `downloading ${t.data.length} bytes from libtorrent ${lt.ready.libtorrent}`, ctx,
    downloadTorrent(wire, t.torrent, options, progress))
  return { lt, node, socket, log, progress, data, seconds: (Date.now() - t0) / 1000 }
}

interface Upload {
  lt: LtPeer
  node: Node
  /** Our side of the connection libtorrent opened */
  socket: Socket
  log: SocketLog
  progress: SeedProgress
  finished: LtFinished
  seconds: number
}

/**
 * libtorrent downloads `t` from our listening Node (connecting to the port `via` returns for ours: a relay's,
 * or ours by default) and reports what it wrote to disk
 */
async function uploadToLibtorrent (t: PreparedTorrent, via?: (ourPort: number) => Promise<number>, ltSettings: string[] = []): Promise<Upload> {
  let socket: Socket | undefined
  let log: SocketLog | undefined
  const progress = newSeedProgress()
  const { node, port } = await listeningNode(undefined, (s) => {
    socket = s
    log = recordSocket(s)
    // A failure shows in libtorrent's alerts and in the diagnostics; keep it from being unhandled
    seedTorrent(new PeerWire(s), t.torrent, t.data, progress).catch(() => {})
  })
  const target = via !== undefined ? await via(port) : port
  const lt = await LtPeer.start('download', t, `127.0.0.1:${target}`, ltSettings)
  const ctx: Context = { lt, node, socket: () => socket, log: () => log, progress }
  const t0 = Date.now()
  const finished = await within(TRANSFER_DEADLINE, `libtorrent ${lt.ready.libtorrent} downloading ${t.data.length} bytes from us`, ctx,
    lt.waitFor((e) => e.event === 'finished', TRANSFER_DEADLINE + 1000, 'finished')) as LtFinished
  return { lt, node, socket: socket as Socket, log: log as SocketLog, progress, finished, seconds: (Date.now() - t0) / 1000 }
}

/** Everything the tap saw us send libtorrent was uTP that fits its 1,500-byte read, and the transfer finished */
function expectOnlyFittingUtp (what: string, tap: Tap | undefined, outcome: string): void {
  const summary = tapSummary(tap as Tap)
  report(`wire, ${what}: ${summary}`)
  expect((tap as Tap).nonUtpToLt, `${summary}\n${outcome}`).toEqual([])
  expect((tap as Tap).oversizeToLt, `${summary}\n${outcome}`).toEqual([])
  expect(outcome).toBe('finished')
}

function expectIntactAtLibtorrent (t: PreparedTorrent, up: Upload): void {
  expect(up.finished.sha256).toBe(sha256Hex(t.data))
  expect(up.finished.torrent.numPieces).toBe(t.torrent.pieces.length)
  expect(up.finished.hashFailures).toBe(0)
  expect(up.finished.torrent.totalFailedBytes).toBe(0)
  expect(up.progress.unexpected).toEqual([])
}

function describeUpload (up: Upload): string {
  const stats = up.socket.stats()
  return `${up.finished.torrent.totalPayloadDownload} bytes in ${up.seconds.toFixed(2)} s (libtorrent: ${up.finished.seconds.toFixed(2)} s), our retransmits ${stats?.retransmits}, timeouts ${stats?.timeouts}, our mtu ${stats?.mtu}, ${rejected(up.node)}; libtorrent: hash failures ${up.finished.hashFailures}, failed bytes ${up.finished.torrent.totalFailedBytes}, redundant bytes ${up.finished.torrent.totalRedundantBytes}, its socket's kernel drops ${up.finished.udpDrops}, RcvbufErrors +${up.finished.rcvbufErrorsDelta}, uTP counters ${JSON.stringify(Object.fromEntries(Object.entries(up.finished.counters).filter(([k]) => k.startsWith('utp.'))))}`
}

function describeDownload (down: Download): string {
  const stats = down.socket.stats()
  return `${down.data.length} bytes in ${down.seconds.toFixed(2)} s, our retransmits ${stats?.retransmits}, timeouts ${stats?.timeouts}, duplicates ${stats?.duplicates}, bytesReceived ${stats?.bytesReceived}, rtt ${stats?.rttMs} ms, our mtu ${stats?.mtu}, ${rejected(down.node)}`
}

/**
 * Datagrams our node did not take as uTP and handed to the UDP facade as foreign: from a libtorrent peer these
 * are uTP packets our decoder rejected
 */
function rejected (node: Node): string {
  const s = node.stats()
  return `non-uTP datagrams received ${s.rawDatagramsReceived} (${s.rawBytesReceived} bytes)`
}

/**
 * A relay on 127.0.0.1 in front of `port` that drops `loss` of the datagrams each way, but no packet's third
 * transmission in a row (`boundedLoss`: libtorrent's own limit, case 1d). Seeded, but both ends start their
 * sequence numbers at random, so which packets are lost differs from run to run
 */
async function lossyRelay (port: number, loss: number): Promise<number> {
  const relay = await createRelay(port, { drop: boundedLoss(0x1b7, loss) })
  relays.push(relay)
  return relay.port
}

// ---------------------------------------------------------------------------------------------------------

describe('interop with libtorrent-rasterbar over uTP', () => {
  // after-hooks run last-registered first: our nodes close while libtorrent and the relays still answer
  afterEach(async () => {
    const peers = [...livePeers]
    livePeers.clear()
    await Promise.all(peers.map((p) => p.stop()))
    await Promise.all(relays.splice(0).map((r) => r.close()))
    for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
  })
  cleanupNodes()

  describe('our Node downloads from a libtorrent seed', () => {
    it('1. 8 MiB, 16 requests outstanding, every piece SHA-1 checked', async () => {
      const t = prepareTorrent(8 * MiB)
      const down = await downloadFromLibtorrent(t, { pipeline: 16 })
      report(`case 1 (download, 16 outstanding): ${describeDownload(down)}`)
      expect(sha256Hex(down.data)).toBe(sha256Hex(t.data))
      expect(down.progress.unexpected).toEqual([])
      expect(down.log.errors).toEqual([])
      expect(down.socket.stats()?.bytesReceived).toBeGreaterThanOrEqual(t.data.length)
    }, CASE_TIMEOUT)

    it('2. 8 MiB with all 512 requests in one write() (8,704 bytes: one application write over several packets)', async () => {
      const t = prepareTorrent(8 * MiB)
      const blocks = t.data.length / BLOCK_SIZE
      const down = await downloadFromLibtorrent(t, { pipeline: blocks, oneWrite: true })
      report(`case 2 (download, ${blocks} requests in one write): ${describeDownload(down)}`)
      expect(sha256Hex(down.data)).toBe(sha256Hex(t.data))
      expect(down.log.errors).toEqual([])
    }, CASE_TIMEOUT)

    it('1b. 8 MiB through a relay that loses 1% of the datagrams each way: both sides recover with selective ACKs', async () => {
      const t = prepareTorrent(8 * MiB)
      const down = await downloadFromLibtorrent(t, { pipeline: 16, via: (port) => lossyRelay(port, 0.01) })
      const relay = relays[relays.length - 1]
      report(`case 1b (download through 1% loss, relay ${JSON.stringify(relay.stats)}): ${describeDownload(down)}; libtorrent: ${JSON.stringify(down.lt.disconnects())}`)
      expect(sha256Hex(down.data)).toBe(sha256Hex(t.data))
      expect(down.log.errors).toEqual([])
      // Every packet libtorrent sent was uTP: none may be thrown away as malformed (nor surface as a raw datagram)
      expect(down.node.stats().rawDatagramsReceived, 'libtorrent packets our node did not accept as uTP').toBe(0)
      // Every payload byte delivered in order counts, also those that waited in the reorder buffer for a gap
      expect(down.socket.stats()?.bytesReceived, 'socket.stats().bytesReceived').toBeGreaterThanOrEqual(t.data.length)
    }, CASE_TIMEOUT)

    it('1d. libtorrent drops the connection without a word when a packet is lost three times: our reader hears \'timeout\', then ETIMEDOUT, not minutes of silence', async () => {
      const t = prepareTorrent(8 * MiB)
      // The 1,001st data packet libtorrent sends, lost in all three of its transmissions (the first, the fast
      // resend, the resend at its timeout): libtorrent's utp_num_resends is 3
      let first: number | undefined
      const lostAt: number[] = []
      const via = async (port: number): Promise<number> => {
        const relay = await createRelay(port, {
          drop: (msg, dir) => {
            if (dir !== 'toClient' || msg.length < 20 || msg[0] >> 4 !== 0) return false
            const seq = msg.readUInt16BE(16)
            first ??= seq
            if (seq !== ((first + 1000) & 0xffff) || lostAt.length === 3) return false
            lostAt.push(Date.now())
            return true
          }
        })
        relays.push(relay)
        return relay.port
      }
      let timeoutAt: number | undefined
      let errorAt: number | undefined
      const download = downloadFromLibtorrent(t, {
        pipeline: 16,
        via,
        hooks: (s) => {
          s.once('timeout', () => { timeoutAt = Date.now() })
          s.once('error', () => { errorAt = Date.now() })
        }
      })
      const err = await download.then(() => undefined, (e: Error) => e)
      expect(err, 'the download cannot finish: libtorrent gave up on the connection').toBeInstanceOf(Error)
      expect(lostAt, 'the packet\'s three transmissions were lost').toHaveLength(3)
      const lt = livePeers.values().next().value as LtPeer
      expect(lt.disconnects().join('\n'), 'libtorrent gave up for the timeout').toMatch(/timed out/i)
      // The error that ended the download is ours, and it came as soon as the limits allow. libtorrent's last
      // packet came before the third loss (a resend at its timeout, with nothing else in flight): 'timeout' 5 s
      // after that packet, ETIMEDOUT once libtorrent could have resent the hole four times (1 + 2 + 4 + 8 s), not
      // after the 150 s an idle stranger gets
      expect((err as Error).message).toContain('[ETIMEDOUT]')
      expect(timeoutAt, '\'timeout\' emitted').toBeDefined()
      expect(errorAt, '\'error\' emitted').toBeDefined()
      const lastLoss = lostAt[2]
      const notice = (timeoutAt as number) - lastLoss
      const dead = (errorAt as number) - lastLoss
      expect(notice).toBeGreaterThan(0)
      expect(notice).toBeLessThan(8_000)
      expect(dead).toBeGreaterThan(notice)
      expect(dead).toBeLessThan(20_000)
      report(`case 1d: after the third loss, 'timeout' in ${notice} ms and ETIMEDOUT in ${dead} ms; ${(err as Error).message.split('\n')[0]}`)
    }, CASE_TIMEOUT)

    it('1c. our receive window closes while our reader pauses for 2 s, and the transfer resumes when it reads again', async () => {
      const t = prepareTorrent(8 * MiB)
      const pausedWindow: number[] = []
      let socket: Socket | undefined
      // 80 outstanding blocks (1.25 MiB) are more than our receive window: unread, they close it
      const down = await downloadFromLibtorrent(t, {
        pipeline: 80,
        hooks: (s) => { socket = s },
        onBlock: (n) => {
          if (n !== 1 || socket === undefined) return
          const s = socket
          s.pause()
          setTimeout(() => pausedWindow.push(s.stats()?.recvWindow ?? -1), 1500)
          setTimeout(() => s.resume(), 2000)
        }
      })
      report(`case 1c (reader paused 2 s): our window fell to ${pausedWindow[0]} bytes; ${describeDownload(down)}`)
      expect(pausedWindow[0]).toBeLessThan(BLOCK_SIZE)
      expect(sha256Hex(down.data)).toBe(sha256Hex(t.data))
      expect(down.log.errors).toEqual([])
    }, CASE_TIMEOUT)
  })

  describe('libtorrent downloads from our Node', () => {
    it('3. 8 MiB, libtorrent checks every piece and writes the file intact', async () => {
      const t = prepareTorrent(8 * MiB)
      const up = await uploadToLibtorrent(t)
      report(`case 3 (libtorrent downloads from us): ${describeUpload(up)}; our socket: ${JSON.stringify(up.log.events)}`)
      expectIntactAtLibtorrent(t, up)
    }, CASE_TIMEOUT)

    it('3b. 8 MiB through a relay that loses 1% of the datagrams each way: we recover from libtorrent\'s selective ACKs', async () => {
      const t = prepareTorrent(8 * MiB)
      const up = await uploadToLibtorrent(t, (port) => lossyRelay(port, 0.01))
      const relay = relays[relays.length - 1]
      report(`case 3b (libtorrent downloads from us through 1% loss, relay ${JSON.stringify(relay.stats)}): ${describeUpload(up)}`)
      expectIntactAtLibtorrent(t, up)
      expect(up.node.stats().rawDatagramsReceived, 'libtorrent packets our node did not accept as uTP').toBe(0)
    }, CASE_TIMEOUT)
  })

  describe('closing', () => {
    // An idle session: both sides have said all they had to (handshakes, bitfield, interested, unchoke)
    // and wait, with keepalives only, for longer than our keepalive interval
    const IDLE_MS = 2500

    it('4a. idle, then our end(): libtorrent closes its side too; our socket ends and closes without an error', async () => {
      const t = prepareTorrent(1 * MiB)
      const lt = await LtPeer.start('seed', t)
      const { node, socket, wire, log } = await connectToSeed(lt)
      const ctx: Context = { lt, node, socket: () => socket, log: () => log }
      await within(TRANSFER_DEADLINE, 'the session setup', ctx, openIdleSession(wire, t.torrent))
      await sleep(IDLE_MS)
      socket.end()
      await closeOf(socket, ctx, 'closing after our end()')
      await sleep(500)
      report(`case 4a (idle, we end()): our socket ${JSON.stringify(log.events)}; libtorrent: ${JSON.stringify(lt.disconnects())}`)
      expect(log.errors.map((e) => e.code)).toEqual([])
      expect(log.names).toEqual(expect.arrayContaining(['finish', 'end', 'close']))
    }, CASE_TIMEOUT)

    for (const how of ['pause', 'remove'] as const) {
      it(`4b. idle, then libtorrent closes the connection (${how === 'pause' ? 'pauses' : 'removes'} the torrent): our socket ends and closes without an error`, async () => {
        const t = prepareTorrent(1 * MiB)
        const lt = await LtPeer.start('seed', t)
        const { node, socket, wire, log } = await connectToSeed(lt)
        const ctx: Context = { lt, node, socket: () => socket, log: () => log }
        await within(TRANSFER_DEADLINE, 'the session setup', ctx, openIdleSession(wire, t.torrent))
        await sleep(IDLE_MS)
        lt.command({ cmd: how })
        await closeOf(socket, ctx, `closing after libtorrent's ${how}`)
        await sleep(500)
        report(`case 4b (idle, libtorrent ${how}): our socket ${JSON.stringify(log.events)}; libtorrent: ${JSON.stringify(lt.disconnects())}`)
        expect(log.errors.map((e) => e.code)).toEqual([])
        expect(log.names).toEqual(expect.arrayContaining(['end', 'close']))
      }, CASE_TIMEOUT)
    }

    it('4c. we end() right after the last byte of a download: both sides close without an error', async () => {
      const t = prepareTorrent(2 * MiB)
      let socket: Socket | undefined
      const down = await downloadFromLibtorrent(t, {
        pipeline: 16,
        hooks: (s) => { socket = s },
        onBlock: (n, total) => { if (n === total) socket?.end() }
      })
      expect(sha256Hex(down.data)).toBe(sha256Hex(t.data))
      await closeOf(down.socket, { lt: down.lt, node: down.node, socket: () => down.socket, log: () => down.log }, 'closing after the last byte')
      await sleep(500)
      report(`case 4c (we end() after the last byte): our socket ${JSON.stringify(down.log.events)}; libtorrent: ${JSON.stringify(down.lt.disconnects())}`)
      expect(down.log.errors.map((e) => e.code)).toEqual([])
      expect(down.log.names).toEqual(expect.arrayContaining(['finish', 'end', 'close']))
    }, CASE_TIMEOUT)

    it('4c. libtorrent closes right after the last byte it downloads from us (a seed drops a seed): our socket ends and closes without an error', async () => {
      const t = prepareTorrent(2 * MiB)
      const up = await uploadToLibtorrent(t)
      expectIntactAtLibtorrent(t, up)
      // libtorrent, now a seed too, disconnects the redundant connection itself (close_redundant_connections)
      await closeOf(up.socket, { lt: up.lt, node: up.node, socket: () => up.socket, log: () => up.log }, 'closing after libtorrent finished')
      await sleep(500)
      report(`case 4c (libtorrent closes after its last byte): our socket ${JSON.stringify(up.log.events)}; libtorrent: ${JSON.stringify(up.lt.disconnects())}`)
      expect(up.log.errors.map((e) => e.code)).toEqual([])
      expect(up.log.names).toEqual(expect.arrayContaining(['end', 'close']))
    }, CASE_TIMEOUT)

    it('4d. half-close: we end() our side right after our requests and keep reading; what arrives is intact and the close is clean', async () => {
      const t = prepareTorrent(1 * MiB)
      const lt = await LtPeer.start('seed', t)
      // allowHalfOpen: our side ended first, we must stay readable until libtorrent ends its side
      const { node, socket, wire, log } = await connectToSeed(lt, { allowHalfOpen: true })
      const progress = newProgress()
      const ctx: Context = { lt, node, socket: () => socket, log: () => log, progress }
      const download = downloadTorrent(wire, t.torrent, { pipeline: 64, oneWrite: true }, progress)
      // End our side as soon as the requests are on their way (the first batch goes out on the unchoke)
      const endAfterRequests = (async () => {
        while (progress.blocksRequested === 0 && !socket.destroyed) await sleep(1)
        socket.end()
      })()
      const outcome = await within(TRANSFER_DEADLINE, 'the half-closed download', ctx,
        download.then(() => 'complete', (err: Error) => `stopped: ${err.message}`))
      await endAfterRequests
      await closeOf(socket, ctx, 'closing after the half-close')
      await sleep(500)
      report(`case 4d (half-close): download ${outcome}, ${progress.blocksReceived} of 64 blocks after our FIN, ${progress.piecesVerified} pieces verified; our socket ${JSON.stringify(log.events)}; libtorrent: ${JSON.stringify(lt.disconnects())}`)
      // Blocks that arrived were checked by downloadTorrent: a corrupt one would say so in `outcome`
      expect(outcome).not.toMatch(/SHA-1|framing|did not request/)
      expect(log.errors.map((e) => e.code)).toEqual([])
      expect(log.names).toEqual(expect.arrayContaining(['finish', 'end', 'close']))
    }, CASE_TIMEOUT)
  })

  describe('datagrams on the wire (through a tapping relay on 127.0.0.1)', () => {
    it('everything we send a libtorrent seed while downloading from it is a uTP packet that fits its 1,500-byte receive buffer', async () => {
      const t = prepareTorrent(2 * MiB)
      let tap: Tap | undefined
      let outcome = 'finished'
      try {
        // 128 requests (2,176 bytes) in one write: our side sends more than ACKs
        const down = await downloadFromLibtorrent(t, {
          pipeline: 128,
          oneWrite: true,
          via: async (port) => {
            tap = await tapRelay(port, true)
            return tap.relay.port
          }
        })
        expect(sha256Hex(down.data)).toBe(sha256Hex(t.data))
        // Past the first path-MTU probes (200 ms into a connection), which would go out by now
        await sleep(1500)
      } catch (err) {
        outcome = (err as Error).message
      }
      expectOnlyFittingUtp('downloading from libtorrent', tap, outcome)
    }, CASE_TIMEOUT)

    it('everything we send libtorrent while seeding to it is a uTP packet that fits its 1,500-byte receive buffer', async () => {
      const t = prepareTorrent(2 * MiB)
      let tap: Tap | undefined
      let outcome = 'finished'
      try {
        const up = await uploadToLibtorrent(t, async (port) => {
          tap = await tapRelay(port, false)
          return tap.relay.port
        })
        expectIntactAtLibtorrent(t, up)
        await sleep(1500)
      } catch (err) {
        outcome = (err as Error).message
      }
      expectOnlyFittingUtp('seeding to libtorrent', tap, outcome)
    }, CASE_TIMEOUT)
  })
})
