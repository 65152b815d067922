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
 * Checks the connection really ran in `mode`: its packet size, and enough packets for `bytes` of payload at that
 * size. Call while the socket still has stats (before it closes)
 */
export function expectMode (socket: Socket, mode: PathMode, bytes: number): void {
  const stats = socket.stats()
  expect(stats, 'the socket still has stats').not.toBeNull()
  if (stats === null) return
  const [min, max] = mode.payload
  expect(stats.mtu).toBeGreaterThanOrEqual(min)
  expect(stats.mtu).toBeLessThanOrEqual(max)
  // Every packet carries at most `max` bytes: fewer packets than this cannot have carried them
  expect(stats.packetsSent).toBeGreaterThanOrEqual(Math.floor(bytes / max))
}
