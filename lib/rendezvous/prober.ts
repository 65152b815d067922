// Simultaneous-open probing between two paired peers (ICE-like connectivity checks, much simplified).
//
// Both peers probe every candidate of the other every `intervalMs`. The first probe to a public candidate
// leaves with a low TTL: it opens our own NAT's mapping toward the peer but dies before the peer's NAT,
// which could otherwise take an unsolicited packet as an attack and block the flow. Every probe carrying
// the pairing id is answered with an ack echoing its nonce. An ack from the very candidate we probed proves
// the path works both ways. A probe or ack from an address we did not know (a NAT that maps per
// destination) becomes a peer-reflexive candidate, probed at once.
//
// The 'connect' peer picks the winner: the first acked candidate if it is a LAN one (or LAN is not
// preferred), else the best acked candidate a short grace later (LAN answers may still come). It then sends `select` to the winner and
// connects. The 'accept' peer stops probing once it has heard the peer and been heard (or got `select`), and
// keeps answering probes; it accepts the connection from any address its peer's probes came from.

import { randomBytes } from 'crypto'

import { describeCandidate, type Candidate, type CandidateKind } from './candidates'
import { endpointKey, type DirectPath, type Endpoint, type Message } from './protocol'

export interface ProberOptions {
  role: 'connect' | 'accept'
  pair: string
  candidates: Candidate[]
  intervalMs: number
  /** TTL of the first probe to each public candidate; 0 sends it with the normal TTL */
  lowTtl: number
  /** Prefer a LAN path: after a non-LAN ack, wait graceMs for a LAN one (the lanFirst option) */
  preferLan: boolean
  /** How long the connect side waits after a non-LAN ack for a LAN one */
  graceMs: number
  send: (msg: Message, to: Endpoint, ttl?: number) => void
  /** connect side: the chosen candidate (once) */
  onWinner: (c: Candidate) => void
  /** A peer address became trusted (it sent us a valid probe, ack or select) */
  onVerified: (key: string) => void
  /**
   * What a peer address learned from a probe's source counts as: 'peer' by default; 'birthday' while we
   * spray at an endpoint-dependent peer, whose every new port is one our spray opened
   */
  learnedKind?: CandidateKind
}

const MAX_PEER_REFLEXIVE = 8

export const nonce = (): string => randomBytes(8).toString('hex')

export class Prober {
  /** Peer addresses (endpointKey) that proved they know the pairing id */
  readonly verified = new Set<string>()
  heardPeer = false
  beenHeard = false
  /** When this side knew a path works both ways (Date.now()), null until then */
  punchedAt: number | null = null
  /** The path the connect side announced with `select` (accept side) */
  selected: { path: DirectPath, from: Endpoint } | null = null
  private readonly _candidates: Candidate[]
  private _timer: NodeJS.Timeout | null = null
  private _grace: NodeJS.Timeout | null = null
  private _probing = false
  private _done = false
  private _chosen = false
  private _reflexive = 0
  private _sprayNonce: string | null = null

  constructor (private readonly _o: ProberOptions) {
    this._candidates = [..._o.candidates]
  }

  /**
   * Birthday probing's easy side: probes to random ports carry this nonce, and an ack of one from the peer's
   * IP is a path found (a 'birthday' candidate, acked)
   */
  sprayNonce (): string {
    this._sprayNonce ??= nonce()
    return this._sprayNonce
  }

  /** A birthday candidate was found */
  get birthdayFound (): boolean {
    return this._candidates.some(c => c.kind === 'birthday' && c.acked)
  }

  get candidates (): readonly Candidate[] {
    return this._candidates
  }

  describe (): string {
    return this._candidates.map(describeCandidate).join(', ')
  }

  start (): void {
    if (this._done || this._probing) return
    this._probing = true
    this._tick()
    this._timer = setInterval(() => this._tick(), this._o.intervalMs)
  }

  /** Stop sending probes; acks to the peer's probes continue until close() */
  stopProbing (): void {
    this._probing = false
    if (this._timer !== null) clearInterval(this._timer)
    this._timer = null
  }

  close (): void {
    this._done = true
    this.stopProbing()
    if (this._grace !== null) clearTimeout(this._grace)
    this._grace = null
  }

  /** Handle a peer-to-peer message; anything else is not ours */
  handle (m: Message, from: Endpoint): void {
    if (this._done) return
    if ((m.t !== 'probe' && m.t !== 'probe-ack' && m.t !== 'select') || m.pair !== this._o.pair) return
    const key = endpointKey(from)
    this.heardPeer = true
    if (!this.verified.has(key)) {
      this.verified.add(key)
      this._o.onVerified(key)
    }
    switch (m.t) {
      case 'probe':
        this._o.send({ t: 'probe-ack', pair: this._o.pair, nonce: m.nonce, mac: '0'.repeat(32) /* v2 bridge: the client helper computes the MAC */ }, from)
        this._learn(from, null)
        break
      case 'probe-ack': {
        if (m.nonce === this._sprayNonce) {
          this._found(from)
          break
        }
        const c = this._candidates.find(x => x.nonce === m.nonce)
        if (c === undefined) return
        if (endpointKey(c) !== key) {
          this._learn(from, c) // answered from elsewhere: that address is worth probing itself
          return
        }
        c.acked = true
        this.beenHeard = true
        this._onAck(c)
        break
      }
      case 'select':
        if (this._o.role !== 'accept') return
        this.selected = { path: m.path, from }
        this.punchedAt ??= Date.now()
        this.stopProbing()
        break
    }
    if (this._o.role === 'accept' && this.heardPeer && this.beenHeard) {
      this.punchedAt ??= Date.now()
      this.stopProbing()
    }
  }

  private _tick (): void {
    for (const c of this._candidates) this._probe(c)
  }

  private _probe (c: Candidate): void {
    const ttl = c.kind === 'public' && c.sent === 0 && this._o.lowTtl > 0 ? this._o.lowTtl : undefined
    c.sent++
    this._o.send({ t: 'probe', pair: this._o.pair, nonce: c.nonce, mac: '0'.repeat(32) /* v2 bridge: the client helper computes the MAC */ }, c, ttl)
  }

  /** A peer address not among the candidates: add it (peer-reflexive) and probe it now */
  private _learn (from: Endpoint, via: Candidate | null): void {
    const key = endpointKey(from)
    if (this._candidates.some(c => endpointKey(c) === key) || this._reflexive >= MAX_PEER_REFLEXIVE) return
    this._reflexive++
    const kind = via?.kind === 'lan' ? 'lan' : this._o.learnedKind ?? 'peer'
    const c: Candidate = { address: from.address, port: from.port, kind, nonce: nonce(), sent: 0, acked: false }
    this._candidates.push(c)
    if (this._probing) this._probe(c)
  }

  /** An ack to a sprayed probe: the port it came from is open both ways */
  private _found (from: Endpoint): void {
    const key = endpointKey(from)
    let c = this._candidates.find(x => endpointKey(x) === key)
    if (c === undefined) {
      // Every answered spray probe names a port; one is enough, a handful covers the race, more only cost probes
      if (this._candidates.filter(x => x.kind === 'birthday').length >= MAX_PEER_REFLEXIVE) return
      c = { address: from.address, port: from.port, kind: 'birthday', nonce: nonce(), sent: 0, acked: false }
      this._candidates.push(c)
    } else if (c.kind === 'peer') {
      c.kind = 'birthday' // its probe came a moment before this ack: same port, found by the spray
    }
    if (c.acked) return
    c.acked = true
    this.beenHeard = true
    this._onAck(c)
  }

  private _onAck (c: Candidate): void {
    if (this._o.role !== 'connect' || this._chosen || this._grace !== null) return
    const lanPending = this._candidates.some(x => x.kind === 'lan' && !x.acked)
    if (!this._o.preferLan || c.kind === 'lan' || !lanPending || this._o.graceMs === 0) {
      this._choose()
      return
    }
    this._grace = setTimeout(() => this._choose(), this._o.graceMs)
  }

  private _choose (): void {
    this._grace = null
    if (this._done || this._chosen) return
    const acked = this._candidates.filter(c => c.acked)
    // Candidates are in priority order, so acked[0] is the best one that works
    const winner = (this._o.preferLan ? acked.find(c => c.kind === 'lan') : undefined) ?? acked[0]
    if (winner === undefined) return
    this._chosen = true
    this.punchedAt = Date.now()
    this.stopProbing()
    this._o.send({ t: 'select', pair: this._o.pair, path: pathOf(winner), mac: '0'.repeat(32) /* v2 bridge: the client helper computes the MAC */ }, winner)
    this._o.onWinner(winner)
  }
}

/** The path a candidate stands for */
export function pathOf (c: Candidate): DirectPath {
  return c.kind === 'lan' ? 'lan' : c.kind === 'birthday' ? 'birthday' : 'direct'
}
