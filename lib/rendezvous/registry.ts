// The server's tables: registrations by nonce, the one waiting registrant per code, the one pairing per code.
// Pure bookkeeping, no I/O: the server decides what to send.

import { randomBytes } from 'crypto'

import type { Endpoint, Mapping } from './protocol'
import type { RelayAllocation } from './relay'

export interface Registration {
  nonce: string
  code: string
  /** The client's SPAKE2 message (base64), forwarded to its peer in `peer` */
  pake: string
  /** Where replies go: the source address exactly as the UDP socket reported it */
  reply: { address: string, port: number }
  /** The same address, normalised (IPv4-mapped IPv6 shown as IPv4): what the other peer is told */
  observed: Endpoint
  lan: Endpoint[]
  relay: boolean
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
  code: string
  /** [0] registered first and opens the uTP connection ('connect'), [1] accepts it */
  peers: [Registration, Registration]
  /** Server time at which both peers should start probing (set when announced) */
  startAt: number
  /** Both peers were told about each other (announcement may wait for mapping checks) */
  announced: boolean
  announceTimer: NodeJS.Timeout | null
  /** Which peers confirmed the `peer` message */
  acked: [boolean, boolean]
  relayAllowed: boolean
  /** The allocation once made; a promise while the ports are being bound */
  relay: RelayAllocation | Promise<RelayAllocation | null> | null
  resendTimer: NodeJS.Timeout | null
  /** Registrations still attached (bye or expiry detaches one); the pairing is dropped at zero */
  live: number
}

export class Registry {
  readonly byNonce = new Map<string, Registration>()
  private readonly _waiting = new Map<string, Registration>()
  private readonly _pairings = new Map<string, Pairing>()

  get size (): number {
    return this.byNonce.size
  }

  get pairingCount (): number {
    return this._pairings.size
  }

  codeInUse (code: string): boolean {
    return this._pairings.has(code)
  }

  /**
   * Add a new registration. Returns the pairing when someone was waiting under the same code, else null
   * (this registration now waits). A waiting registration from the very same address is a restarted
   * client, not a peer: it is replaced.
   */
  add (reg: Registration, relayAllowed: boolean): Pairing | null {
    this.byNonce.set(reg.nonce, reg)
    const first = this._waiting.get(reg.code)
    if (first !== undefined && first.reply.address === reg.reply.address && first.reply.port === reg.reply.port) {
      this.remove(first)
      this._waiting.set(reg.code, reg)
      return null
    }
    if (first === undefined) {
      this._waiting.set(reg.code, reg)
      return null
    }
    this._waiting.delete(reg.code)
    const pairing: Pairing = {
      id: randomBytes(16).toString('hex'),
      code: reg.code,
      peers: [first, reg],
      startAt: 0,
      announced: false,
      announceTimer: null,
      acked: [false, false],
      relayAllowed: relayAllowed && first.relay && reg.relay,
      relay: null,
      resendTimer: null,
      live: 2
    }
    first.pairing = pairing
    reg.pairing = pairing
    this._pairings.set(reg.code, pairing)
    return pairing
  }

  /** Forget a registration (bye or expiry); its code is free again at once */
  remove (reg: Registration): void {
    if (this.byNonce.get(reg.nonce) !== reg) return
    this.byNonce.delete(reg.nonce)
    if (reg.movedTimer !== null) clearInterval(reg.movedTimer)
    reg.movedTimer = null
    if (this._waiting.get(reg.code) === reg) this._waiting.delete(reg.code)
    const p = reg.pairing
    if (p === null) return
    if (this._pairings.get(p.code) === p) this._pairings.delete(p.code)
    if (--p.live === 0) {
      if (p.resendTimer !== null) clearInterval(p.resendTimer)
      if (p.announceTimer !== null) clearTimeout(p.announceTimer)
      p.resendTimer = null
      p.announceTimer = null
    }
  }

  /** Remove and return the registrations silent for longer than ttlMs */
  expire (now: number, ttlMs: number): Registration[] {
    const gone: Registration[] = []
    for (const reg of this.byNonce.values()) {
      if (now - reg.lastSeen > ttlMs) gone.push(reg)
    }
    for (const reg of gone) this.remove(reg)
    return gone
  }

  /** Every live registration, e.g. to stop timers on close */
  clear (): void {
    for (const reg of [...this.byNonce.values()]) this.remove(reg)
  }
}
