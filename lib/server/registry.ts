// The server's tables: registrations by nonce, the one waiting registrant per key, the one pairing per key,
// the burned keys, and live registrations per address prefix. Pure bookkeeping, no I/O: the server decides
// what to send.
//
// A key pairs once. While its pairing lives a third registrant is refused, and when the pairing ends (a
// peer leaves or expires, or a peer reports a failed PAKE) the key is burned: refused for `burnMs`. So a
// stranger who guessed a nameplate gets at most one PAKE attempt at the code, and the victims hear of it.

import { randomBytes } from 'crypto'

import type { Endpoint, Mapping } from '../rendezvous/protocol'
import { PrefixCounter } from './limits'
import type { RelayAllocation } from './relay'
import type { LocalSocket } from './sockets'

export interface Registration {
  nonce: string
  key: string
  /** The client's SPAKE2 message (base64), forwarded to its peer in `peer` */
  pake: string
  /** Where replies go: the source address exactly as the UDP socket reported it */
  reply: { address: string, port: number }
  /** The local socket the client talks to: replies leave from the address it sent to */
  via: LocalSocket
  /** The same address, normalised (IPv4-mapped IPv6 shown as IPv4): what the other peer is told */
  observed: Endpoint
  /** The /24 or /64 the registration counts against */
  prefix: string
  lan: Endpoint[]
  relay: boolean
  /** The side the client declared ("send", "receive"), if any */
  side?: string
  nat?: string
  /** Round-trip time the client measured to us, ms (0 = unknown) */
  rtt: number
  lastSeen: number
  pairing: Pairing | null
  /** The NAT mapping behaviour, once a check on the server's second port measured it */
  mapping?: Mapping
  /** peer-moved messages sent to this peer (the other moved), and the timer repeating the latest */
  movedSeq: number
  movedTimer: NodeJS.Timeout | null
}

export interface Pairing {
  id: string
  key: string
  /** [0] registered first and opens the uTP connection ('connect'), [1] accepts it */
  peers: [Registration, Registration]
  /** Server time at which both peers should start probing (set when announced) */
  startAt: number
  /** Both peers were told about each other (announcement may wait for mapping checks) */
  announced: boolean
  announceTimer: NodeJS.Timeout | null
  /** Which peers confirmed the `peer` message */
  acked: [boolean, boolean]
  /** Each peer's key-confirmation MAC (the first one it sent), forwarded to the other as peer-confirm */
  confirm: [string | null, string | null]
  /** Which peers acknowledged the other's peer-confirm, and the timers repeating it */
  confirmAcked: [boolean, boolean]
  confirmTimers: [NodeJS.Timeout | null, NodeJS.Timeout | null]
  relayAllowed: boolean
  /** The allocation once made; a promise while the ports are being bound */
  relay: RelayAllocation | Promise<RelayAllocation | null> | null
  resendTimer: NodeJS.Timeout | null
  /** A peer left: the key is burned, the relay freed, nothing more is sent for this pairing */
  ended: boolean
  /** The error code of the peer that left saying it gave up: the other is told (peer-gone) */
  gaveUp: string | null
}

/** Why a key cannot take a new registrant */
export type KeyRefusal = 'ERR_CODE_BURNED' | null

export class Registry {
  readonly byNonce = new Map<string, Registration>()
  private readonly _waiting = new Map<string, Registration>()
  private readonly _pairings = new Map<string, Pairing>()
  private readonly _burned = new Map<string, number>()
  private readonly _perPrefix: PrefixCounter

  /**
   * @param burnMs how long a used key stays refused
   * @param onPairingEnd called once per pairing when it ends (the server frees its relay and timers)
   */
  constructor (private readonly _o: { burnMs: number, maxPerPrefix: number, onPairingEnd: (p: Pairing) => void }) {
    this._perPrefix = new PrefixCounter(_o.maxPerPrefix)
  }

  get size (): number {
    return this.byNonce.size
  }

  get pairingCount (): number {
    return this._pairings.size
  }

  get burnedCount (): number {
    return this._burned.size
  }

  /** The registration waiting under `key` for a peer, if any */
  waiting (key: string): Registration | undefined {
    return this._waiting.get(key)
  }

  /** A paired or burned key takes nobody new; the same answer for both, so neither state leaks */
  refusal (key: string, now = Date.now()): KeyRefusal {
    if (this._pairings.has(key)) return 'ERR_CODE_BURNED'
    const until = this._burned.get(key)
    if (until !== undefined && until > now) return 'ERR_CODE_BURNED'
    return null
  }

  prefixFull (prefix: string): boolean {
    return this._perPrefix.full(prefix)
  }

  /**
   * Add a new registration (the caller checked refusal() and the quotas). Returns the pairing when someone
   * was waiting under the same key, else null (this registration now waits). A waiting registration from
   * the very same address is a restarted client, not a peer: it is replaced.
   */
  add (reg: Registration): Pairing | null {
    this.byNonce.set(reg.nonce, reg)
    this._perPrefix.add(reg.prefix)
    const first = this._waiting.get(reg.key)
    if (first !== undefined && first.reply.address === reg.reply.address && first.reply.port === reg.reply.port) {
      this.remove(first)
      this._waiting.set(reg.key, reg)
      return null
    }
    if (first === undefined) {
      this._waiting.set(reg.key, reg)
      return null
    }
    this._waiting.delete(reg.key)
    const pairing: Pairing = {
      id: randomBytes(16).toString('hex'),
      key: reg.key,
      peers: [first, reg],
      startAt: 0,
      announced: false,
      announceTimer: null,
      acked: [false, false],
      confirm: [null, null],
      confirmAcked: [false, false],
      confirmTimers: [null, null],
      relayAllowed: first.relay && reg.relay,
      relay: null,
      resendTimer: null,
      ended: false,
      gaveUp: null
    }
    first.pairing = pairing
    reg.pairing = pairing
    this._pairings.set(reg.key, pairing)
    return pairing
  }

  /** The registration moved to another address prefix: count it there from now on */
  rehome (reg: Registration, prefix: string): void {
    if (this.byNonce.get(reg.nonce) !== reg || reg.prefix === prefix) return
    this._perPrefix.remove(reg.prefix)
    this._perPrefix.add(prefix)
    reg.prefix = prefix
  }

  /** Forget a registration (bye, expiry, failed PAKE); a pairing it belonged to ends and burns its key */
  remove (reg: Registration, now = Date.now()): void {
    if (this.byNonce.get(reg.nonce) !== reg) return
    this.byNonce.delete(reg.nonce)
    this._perPrefix.remove(reg.prefix)
    if (reg.movedTimer !== null) clearInterval(reg.movedTimer)
    reg.movedTimer = null
    if (this._waiting.get(reg.key) === reg) this._waiting.delete(reg.key)
    if (reg.pairing !== null) this.endPairing(reg.pairing, now)
  }

  /** End a pairing: its key is burned for burnMs, the server's hook frees what it holds */
  endPairing (p: Pairing, now = Date.now()): void {
    if (p.ended) return
    p.ended = true
    if (this._pairings.get(p.key) === p) this._pairings.delete(p.key)
    this.burn(p.key, now)
    this._o.onPairingEnd(p)
  }

  burn (key: string, now = Date.now()): void {
    this._burned.set(key, now + this._o.burnMs)
  }

  /** Remove and return the registrations silent for longer than ttlMs; forget burns that ran out */
  expire (now: number, ttlMs: number): Registration[] {
    const gone: Registration[] = []
    for (const reg of this.byNonce.values()) {
      if (now - reg.lastSeen > ttlMs) gone.push(reg)
    }
    for (const reg of gone) this.remove(reg, now)
    for (const [key, until] of this._burned) {
      if (until <= now) this._burned.delete(key)
    }
    return gone
  }

  /** Every live registration, e.g. to stop timers on close */
  clear (): void {
    for (const reg of [...this.byNonce.values()]) this.remove(reg)
  }
}
