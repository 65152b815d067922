// UDP hole punching over the node's own socket (so the NAT mapping it opens is the one uTP uses).
//
// Wire format of a probe datagram (14 bytes): 'UTPRS' | type (1 PROBE, 2 ACK) | 8-byte nonce.
// Byte 0 is 0x55 whose low nibble (5) is not uTP version 1, so the native demux always hands it to us.
// Each punch() has its own random nonce. A PROBE is answered with an ACK echoing its nonce, whether or not
// we are punching ourselves. Receiving the ACK of our own nonce from the target proves both directions:
// our probe reached the peer and the peer's answer reached us.

import { randomBytes } from 'crypto'

import { normalizeAddress } from './options'

const MAGIC = Buffer.from('UTPRS', 'latin1')
const NONCE_LEN = 8
const PACKET_LEN = MAGIC.length + 1 + NONCE_LEN

export const PROBE = 1
export const ACK = 2
/** Milliseconds between probes (utp-punch's interval) */
export const PUNCH_INTERVAL = 500

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

  constructor (private readonly _t: PunchTransport) {}

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
      this._t._sendRawTo(encodePunch(ACK, p.nonce), port, address)
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
