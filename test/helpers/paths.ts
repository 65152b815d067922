// The two packet regimes the transfer, fault and stream suites run under. On loopback a node sends 16 KB packets
// with at most 64 of them in flight (the loopbackMtu special case); a real path gets 1,000-byte packets that
// path MTU probing grows to at most 1,448, and the full bufferSize window. `loopbackMtu: 0` gives loopback peers
// the real-path treatment, so about ten times more packets, ACKs, SACKs and losses go through the same code
import { expect } from 'vitest'

import type { NodeOptions, Socket } from './utp'

export interface PathMode {
  name: string
  /** Options every node of the test gets (a test's own options win) */
  options: NodeOptions
  /** Payload bytes per packet the connection must end up using */
  payload: [number, number]
}

export const PATH_MODES: PathMode[] = [
  { name: 'loopback packets', options: {}, payload: [16000, 16000] },
  // 1,448 is the probing ceiling (a 1,500-byte IPv4 packet minus IP, UDP and our largest uTP header)
  { name: 'internet-sized packets', options: { loopbackMtu: 0 }, payload: [1000, 1448] }
]

/** `options` on top of the mode's */
export function withMode (mode: PathMode, options?: NodeOptions): NodeOptions {
  return { ...mode.options, ...options }
}

/**
 * Checks the connection's packet size is the one `mode` promises, for tests that carry too little data for
 * expectMode's packet count. Reads the native stats (getMtu() falls back to the configured size without them):
 * call while the connection is open
 */
export function expectPacketSize (socket: Socket, mode: PathMode): void {
  const stats = socket.stats()
  expect(stats, 'the socket still has stats').not.toBeNull()
  const [min, max] = mode.payload
  expect(stats?.mtu, `${mode.name}: payload per packet`).toBeGreaterThanOrEqual(min)
  expect(stats?.mtu, `${mode.name}: payload per packet`).toBeLessThanOrEqual(max)
}

/**
 * Checks the connection really ran in `mode`: its packet size, and a packet count that fits `bytes` of payload at
 * that size (about ten times more with internet-sized packets than with loopback ones). Call while the socket
 * still has stats (before it closes)
 */
export function expectMode (socket: Socket, mode: PathMode, bytes: number): void {
  const stats = socket.stats()
  expect(stats, 'the socket still has stats').not.toBeNull()
  if (stats === null) return
  const [min, max] = mode.payload
  expect(stats.mtu, `${mode.name}: payload per packet`).toBeGreaterThanOrEqual(min)
  expect(stats.mtu, `${mode.name}: payload per packet`).toBeLessThanOrEqual(max)
  // Every packet carries at most `max` bytes: fewer packets than this cannot have carried them
  expect(stats.packetsSent, `${mode.name}: packets sent`).toBeGreaterThanOrEqual(Math.floor(bytes / max))
  // ...and full ones at least `min`: twice the count that needs leaves room for ACKs, retransmissions and probes,
  // but not for packets that carry much less than the size the stats claim
  expect(stats.packetsSent, `${mode.name}: packets sent`).toBeLessThanOrEqual(2 * Math.ceil(bytes / min) + 100)
}
