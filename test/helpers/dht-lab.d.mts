// Types of dht-lab.mjs (plain JavaScript so that it also runs as a program inside a network namespace)
import type BittorrentDht from 'bittorrent-dht'

import type { DhtNode } from '../../lib/dht/node'

export interface HostileNode {
  kind: 'silent' | 'garbage' | 'liar'
  /** "host:port" */
  address: string
  /** Datagrams it received, and the queries it understood by name (the liar) */
  queries: () => number
  kinds: () => Record<string, number>
}

export interface DhtLab {
  host: string
  /** Every honest node, "host:port", the first of ours first */
  bootstrap: string[]
  ours: DhtNode[]
  theirs: BittorrentDht[]
  /** The independent nodes alone: where a bittorrent-dht client joins */
  theirBootstrap: string[]
  hostile: HostileNode[]
  /** Move the liar next to a target id (20 bytes), where lookups for it will ask it */
  aimLiar: (target: Buffer) => void
  close: () => Promise<void>
}

export function ed25519Verify (signature: Buffer, message: Buffer, publicKey: Buffer): boolean
export function startDhtLab (opts?: { host?: string, hosts?: string[], ours?: number, theirs?: number, hostile?: boolean }): Promise<DhtLab>

/** A node holding one signed BEP 44 item, answering every `get` with it after `delayMs` */
export function itemHolder (host: string, item: { k: Buffer, seq: number, sig: Buffer, v: Buffer }, delayMs: number):
Promise<{ address: string, close: () => void }>
