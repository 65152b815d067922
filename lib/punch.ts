// UDP hole punching over the node's own socket (so the NAT mapping it opens is the one uTP uses).
//
// Wire format of a probe datagram (14 bytes): 'UTPRS' | type (1 PROBE, 2 ACK) | 8-byte nonce.
// Byte 0 is 0x55 whose low nibble (5) is not uTP version 1, so the native demux always hands it to us.
// Each punch() has its own random nonce. A PROBE is answered with an ACK echoing its nonce, whether or not
// we are punching ourselves. Receiving the ACK of our own nonce from the target proves both directions:
// our probe reached the peer and the peer's answer reached us.
//
// Every node answers probes, so a probe with a forged source address makes it send to a victim. Answers are
// never larger than the probe (only 14-byte probes are answered, with 14 bytes) and are rate-limited per
// source IP address and in all (token buckets, see AnswerLimiter): a flood of forged probes gets at most a
// trickle of answers, while punch() (two probes a second per peer) always gets its own.

import { randomBytes } from 'crypto'

import { normalizeAddress } from './options'

const MAGIC = Buffer.from('UTPRS', 'latin1')
const NONCE_LEN = 8
const PACKET_LEN = MAGIC.length + 1 + NONCE_LEN

export const PROBE = 1
export const ACK = 2
/** Milliseconds between probes (utp-punch's interval) */
export const PUNCH_INTERVAL = 500
/** Probe answers per second to one IP address (four times what one punch() sends), and the burst */
export const ANSWERS_PER_ADDRESS = 8
/** Probe answers per second in all, and the burst */
export const ANSWERS_TOTAL = 200
/** Addresses whose buckets are remembered at once; past this, full (idle) buckets are forgotten */
const MAX_TRACKED_ADDRESSES = 4096

/** A token bucket: `rate` tokens a second, at most `rate` held */
class Bucket {
  tokens: number
  private _at: number

  constructor (readonly rate: number, now: number) {
    this.tokens = rate
    this._at = now
  }

  refill (now: number): void {
    this.tokens = Math.min(this.rate, this.tokens + (now - this._at) * this.rate / 1000)
    this._at = now
  }
}

/** Whether a probe from an address may be answered now: a bucket per IP address and one for all */
export class AnswerLimiter {
  private readonly _total: Bucket
  private readonly _byAddress = new Map<string, Bucket>()
  /** Probes left unanswered by the limit */
  dropped = 0

  constructor (
    private readonly _perAddress = ANSWERS_PER_ADDRESS,
    total = ANSWERS_TOTAL,
    private readonly _now: () => number = () => performance.now()
  ) {
    this._total = new Bucket(total, this._now())
  }

  allow (address: string): boolean {
    const now = this._now()
    let b = this._byAddress.get(address)
    if (b === undefined) {
      if (this._byAddress.size >= MAX_TRACKED_ADDRESSES) this._forgetIdle(now)
      b = new Bucket(this._perAddress, now)
      // Still full of busy addresses (a flood from many forged ones): the total bucket alone decides
      if (this._byAddress.size < MAX_TRACKED_ADDRESSES) this._byAddress.set(address, b)
    }
    b.refill(now)
    this._total.refill(now)
    // Both or neither: a flood from elsewhere that empties the total costs this address nothing
    if (b.tokens < 1 || this._total.tokens < 1) {
      this.dropped++
      return false
    }
    b.tokens -= 1
    this._total.tokens -= 1
    return true
  }

  private _forgetIdle (now: number): void {
    for (const [address, b] of this._byAddress) {
      b.refill(now)
      if (b.tokens >= b.rate) this._byAddress.delete(address)
    }
  }
}

export function encodePunch (type: number, nonce: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(PACKET_LEN)
  MAGIC.copy(buf, 0)
  buf[MAGIC.length] = type
  nonce.copy(buf, MAGIC.length + 1, 0, NONCE_LEN)
  return buf
}

export function decodePunch (msg: Buffer): { type: number, nonce: Buffer } | null {
  if (msg.length !== PACKET_LEN || msg.compare(MAGIC, 0, MAGIC.length, 0, MAGIC.length) !== 0) return null
  const type = msg[MAGIC.length]
  if (type !== PROBE && type !== ACK) return null
  return { type, nonce: msg.subarray(MAGIC.length + 1) }
}

/** What the puncher needs from its node */
export interface PunchTransport {
  /** Resolve a host name (or pass an IP literal through) to an address the socket can reach */
  _resolve(host: string, cb: (err: Error | null, address?: string) => void): void
  /** Send a raw datagram to a resolved address; errors are reported, never thrown */
  _sendRawTo(data: Buffer, port: number, address: string, cb?: (err: Error | null) => void): void
  /** Whether timers should keep the event loop alive (the node is ref'd) */
  _isRefed(): boolean
}

class PunchSession {
  address = ''
  sent = 0
  timer: NodeJS.Timeout | null = null
  readonly nonce = randomBytes(NONCE_LEN)

  constructor (
    readonly attempts: number,
    readonly port: number,
    private readonly done: (session: PunchSession, success: boolean) => void
  ) {}

  finish (success: boolean): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.done(this, success)
  }
}

export class Puncher {
  private readonly _sessions = new Set<PunchSession>()
  readonly answers: AnswerLimiter

  constructor (private readonly _t: PunchTransport, answers = new AnswerLimiter()) {
    this.answers = answers
  }

  /** Probe `attempts` times, PUNCH_INTERVAL apart (the first at once); done(true) once our probe is answered */
  punch (attempts: number, port: number, host: string, done: (success: boolean) => void): void {
    const session = new PunchSession(attempts, port, (s, success) => {
      if (this._sessions.delete(s)) done(success)
    })
    this._sessions.add(session)
    this._t._resolve(host, (err, address) => {
      if (!this._sessions.has(session)) return // cancelled while resolving
      if (err !== null || address === undefined) {
        session.finish(false)
        return
      }
      session.address = normalizeAddress(address)
      const probe = encodePunch(PROBE, session.nonce)
      const tick = (): void => {
        if (session.sent >= session.attempts) {
          session.finish(false) // the last probe had one interval to be answered
          return
        }
        session.sent++
        this._t._sendRawTo(probe, port, address)
      }
      session.timer = setInterval(tick, PUNCH_INTERVAL)
      if (!this._t._isRefed()) session.timer.unref()
      tick()
    })
  }

  /** Handle a non-uTP datagram; returns whether it was a punch datagram */
  onMessage (msg: Buffer, address: string, port: number): boolean {
    const p = decodePunch(msg)
    if (p === null) return false
    if (p.type === PROBE) {
      // The answer has the probe's size (decodePunch takes only PACKET_LEN bytes)
      if (this.answers.allow(normalizeAddress(address))) this._t._sendRawTo(encodePunch(ACK, p.nonce), port, address)
      return true
    }
    const from = normalizeAddress(address)
    for (const s of this._sessions) {
      if (s.port === port && s.address === from && s.nonce.equals(p.nonce)) {
        s.finish(true)
        break
      }
    }
    return true
  }

  /** Stop every punch in progress; each reports failure */
  cancelAll (): void {
    for (const s of [...this._sessions]) s.finish(false)
  }

  ref (): void {
    for (const s of this._sessions) s.timer?.ref()
  }

  unref (): void {
    for (const s of this._sessions) s.timer?.unref()
  }
}
