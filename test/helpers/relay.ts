// A UDP relay between a client and a server node, in the style of udx-native's test proxy: the client
// connects to the relay's port, the relay forwards each datagram to the other side from that same port,
// and a fault model decides per datagram whether it is dropped, duplicated or held back (reordered).
import * as dgram from 'dgram'
import * as fs from 'fs'

export type Direction = 'toServer' | 'toClient'

export interface Faults {
  /** Drop everything (the peer "vanishes") */
  blackhole?: boolean
  /** Probability 0..1 of dropping a datagram */
  loss?: number
  /** Probability 0..1 of sending a datagram twice */
  dup?: number
  /** Probability 0..1 of holding a datagram back by `reorderDelay` ms so later ones overtake it */
  reorder?: number
  reorderDelay?: number
  /** Custom per-datagram decision: return true to drop */
  drop?: (msg: Buffer, dir: Direction) => boolean
}

export interface Relay {
  port: number
  faults: Faults
  stats: { forwarded: number, dropped: number, duplicated: number, reordered: number }
  close(): Promise<void>
}

/** Seeded PRNG (mulberry32) so a failing run can be replayed with the printed seed */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Receive buffer asked for: more than a full window of either packet size (1 MiB of 16 KB packets, 1.4 MiB of
 * 1,448-byte ones). The kernel caps it at net.core.rmem_max (4 MiB on the test machine); the lossy relay test's
 * kernelDrops() check says so if that cap is lower
 */
const RECV_BUFFER = 4 * 1024 * 1024

/**
 * Datagrams the kernel dropped at a UDP port because its receive buffer was full (Linux /proc/net/udp{,6}, last
 * column), or undefined where that cannot be read. Such drops are losses the fault model never decided
 */
export function kernelDrops (port: number): number | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  let found: number | undefined
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string
    try {
      text = fs.readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols.length > 2 && cols[1].endsWith(`:${hexPort}`)) found = (found ?? 0) + Number(cols[cols.length - 1])
    }
  }
  return found
}

export async function createRelay (serverPort: number, faults: Faults = {}, seed = Date.now() & 0xffffffff, host = '127.0.0.1'): Promise<Relay> {
  // The default receive buffer (about 200 KB) holds a dozen 16 KB loopback packets: a 64-packet window arriving
  // while this process is busy overflowed it, so the kernel dropped three times more than the fault model did
  const sock = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: RECV_BUFFER })
  const rand = prng(seed)
  const timers = new Set<NodeJS.Timeout>()
  let client: { address: string, port: number } | null = null
  const relay: Relay = {
    port: 0,
    faults,
    stats: { forwarded: 0, dropped: 0, duplicated: 0, reordered: 0 },
    close: () => new Promise((resolve) => {
      for (const t of timers) clearTimeout(t)
      sock.close(() => resolve())
    })
  }
  sock.on('message', (msg, rinfo) => {
    const fromServer = rinfo.port === serverPort && rinfo.address === host
    if (!fromServer) client = { address: rinfo.address, port: rinfo.port }
    const dest = fromServer ? client : { address: host, port: serverPort }
    if (dest === null) return
    const dir: Direction = fromServer ? 'toClient' : 'toServer'
    const f = relay.faults
    if (f.blackhole === true || (f.drop?.(msg, dir) ?? false) || (f.loss !== undefined && rand() < f.loss)) {
      relay.stats.dropped++
      return
    }
    const copies = f.dup !== undefined && rand() < f.dup ? 2 : 1
    if (copies === 2) relay.stats.duplicated++
    const send = (): void => {
      for (let i = 0; i < copies; i++) sock.send(msg, dest.port, dest.address)
      relay.stats.forwarded++
    }
    if (f.reorder !== undefined && rand() < f.reorder) {
      relay.stats.reordered++
      const t = setTimeout(() => {
        timers.delete(t)
        send()
      }, f.reorderDelay ?? 5)
      timers.add(t)
    } else {
      send()
    }
  })
  await new Promise<void>((resolve) => sock.bind(0, host, () => resolve()))
  relay.port = sock.address().port
  return relay
}

/** A uniform number in [0, 1) that is a pure function of its four inputs (murmur3's finalizer over their mix) */
function hashUnit (seed: number, a: number, b: number, c: number): number {
  let h = (seed ^ Math.imul(a + 1, 0x9E3779B1) ^ Math.imul(b + 1, 0x85EBCA77) ^ Math.imul(c + 1, 0xC2B2AE3D)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85EBCA6B)
  h = Math.imul(h ^ (h >>> 13), 0xC2B2AE35)
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296
}

/**
 * Random loss of `loss` per datagram, with one bound: no uTP DATA or FIN packet (the same sequence number, the same
 * direction) is lost more than `maxLossesPerPacket` times in a row. Whether a packet's k-th transmission is lost
 * depends only on the seed, its direction, its sequence number and k, not on how the two directions interleave.
 *
 * The bound is there for libtorrent, which abandons a connection when one packet's third transmission goes
 * unanswered (`utp_num_resends`), without a word to the other side. At 1% loss that ends, by count, about one
 * 8 MiB transfer in 170 (one in a million per packet, 6,000 packets). It is a rule of that peer, tested on its
 * own; a test of recovery from loss needs it out of the way. Other datagrams (ACKs, SYNs) are lost at the same
 * rate, in arrival order
 */
export function boundedLoss (seed: number, loss: number, maxLossesPerPacket = 2): (msg: Buffer, dir: Direction) => boolean {
  const rand = prng(seed)
  /** Per direction and sequence number: transmissions seen, and how many of the last ones in a row were lost */
  const seen = new Map<string, { sent: number, lostInRow: number }>()
  return (msg, dir) => {
    const type = msg.length >= 20 && (msg[0] & 0x0f) === 1 ? msg[0] >> 4 : -1
    if (type !== 0 && type !== 1) return rand() < loss
    const seq = msg.readUInt16BE(16)
    const key = `${dir}:${seq}`
    const s = seen.get(key) ?? { sent: 0, lostInRow: 0 }
    seen.set(key, s)
    const lost = s.lostInRow < maxLossesPerPacket && hashUnit(seed, dir === 'toServer' ? 0 : 1, seq, s.sent) < loss
    s.sent++
    s.lostInRow = lost ? s.lostInRow + 1 : 0
    return lost
  }
}

/**
 * The fault that leaves a handshake unconfirmed: the initiator's SYN (uTP type 4, the high nibble of the first
 * byte) reaches the server, nothing it sends after does. The server answers the SYN, so the initiator counts
 * itself connected, but never hears the confirmation, so its program never hears of the connection
 */
export function onlyTheSyn (msg: Buffer, dir: Direction): boolean {
  return dir === 'toServer' && msg[0] >> 4 !== 4
}

