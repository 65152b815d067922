// The pairing's secrets, client side: what the server may see of a code (its key), the PAKE run through the
// server, and the keys and MACs derived from the PAKE's shared secret (protocol.ts, "Codes and keys").
//
// The code itself never leaves this process. The server relays both SPAKE2 messages but cannot learn the
// shared secret K without the code, and gets one online guess per pairing (the key burns after a failure).
// From K come three keys: "probe" authenticates every datagram between the peers (probe, probe-ack, select,
// path validation after a NAT rebinding), "confirm" proves both sides derived the same K before anything is
// sent to a candidate, and "stream" keys the encrypted stream.

import { createHash, createHmac, timingSafeEqual } from 'crypto'

import { deriveKey, Pake } from '../secure'
import { CONFIRM_MAC_HEX, PROBE_MAC_HEX, type DirectPath, type Message, type ProbeAckMsg, type ProbeMsg, type Role, type SelectMsg } from './protocol'

const NAMEPLATE_CODE = /^(\d{1,6})-(.+)$/
const CODE_HASH_PREFIX = 'utp-punch-rs code v2\0'
const PAKE_CONTEXT_PREFIX = 'utp-punch-rs rendezvous v2|'

/**
 * The key a code registers under: "n:" + nameplate for `<nameplate>-<secret>` codes, else "h:" + a hash of
 * the whole code (a server could test guesses of a free-text code offline against that hash)
 */
export function codeKey (code: string): string {
  const m = NAMEPLATE_CODE.exec(code)
  if (m !== null) return `n:${m[1]}`
  return 'h:' + createHash('sha256').update(CODE_HASH_PREFIX + code).digest('hex')
}

/** Whether a code has the `<nameplate>-<secret>` form (its secret never reaches the server in any form) */
export function isNameplateCode (code: string): boolean {
  return NAMEPLATE_CODE.test(code)
}

/** The keys of one pairing, all derived from the PAKE's shared secret */
export interface PairingKeys {
  /** MACs on probe, probe-ack, select and path validation */
  probe: Buffer
  /** The confirm MACs exchanged through the server */
  confirm: Buffer
  /** The encrypted stream's master key */
  stream: Buffer
}

/** Our half of the PAKE: `message` goes to the server in `register`, `finish` takes the peer's from `peer` */
export class PairingPake {
  private readonly _pake: Pake

  constructor (code: string, key: string) {
    this._pake = Pake.start(code, PAKE_CONTEXT_PREFIX + key)
  }

  /** Our SPAKE2 message, base64 (the `pake` field of register) */
  get message (): string {
    return this._pake.message.toString('base64')
  }

  /**
   * The pairing's keys from the peer's SPAKE2 message (base64); null when the message is not a valid one
   * (which, like a wrong code, means the peer did not run the PAKE with our code)
   */
  finish (peerMessage: string): PairingKeys | null {
    let secret: Buffer
    try {
      secret = this._pake.finish(Buffer.from(peerMessage, 'base64'))
    } catch {
      return null
    }
    return { probe: deriveKey(secret, 'probe'), confirm: deriveKey(secret, 'confirm'), stream: deriveKey(secret, 'stream') }
  }
}

/** The confirm MAC `role` sends: HMAC-SHA256(confirmKey, "confirm|" + role + "|" + pair), 64 hex digits */
export function confirmMac (keys: PairingKeys, role: Role, pair: string): string {
  return createHmac('sha256', keys.confirm).update(`confirm|${role}|${pair}`).digest('hex').slice(0, CONFIRM_MAC_HEX)
}

/** A peer-to-peer MAC: the first 16 bytes of HMAC-SHA256(probeKey, label|field|...), hex */
export function probeMac (keys: PairingKeys, label: 'probe' | 'probe-ack' | 'select', ...fields: string[]): string {
  return createHmac('sha256', keys.probe).update([label, ...fields].join('|')).digest('hex').slice(0, PROBE_MAC_HEX)
}

/** Constant-time comparison of two hex MACs (false for any length or format mismatch) */
export function macEquals (got: string, expected: string): boolean {
  const a = Buffer.from(got, 'hex')
  const b = Buffer.from(expected, 'hex')
  return a.length === b.length && a.length * 2 === got.length && timingSafeEqual(a, b)
}

/**
 * Signs and checks the datagrams between the two peers: only a holder of the probe key can make a probe,
 * an ack or a select that the other accepts. The pairing id travels in clear but proves nothing by itself.
 */
export class PeerAuth {
  /** Peer-to-peer datagrams dropped because they named our pairing but their MAC did not verify */
  invalid = 0

  constructor (private readonly _keys: PairingKeys, readonly pair: string) {}

  probe (nonce: string): ProbeMsg {
    return { t: 'probe', pair: this.pair, nonce, mac: probeMac(this._keys, 'probe', this.pair, nonce) }
  }

  ack (nonce: string): ProbeAckMsg {
    return { t: 'probe-ack', pair: this.pair, nonce, mac: probeMac(this._keys, 'probe-ack', this.pair, nonce) }
  }

  select (path: DirectPath): SelectMsg {
    return { t: 'select', pair: this.pair, path, mac: probeMac(this._keys, 'select', this.pair, path) }
  }

  /** Whether `m` is a probe, ack or select of our pairing with a valid MAC; forgeries are counted */
  verify (m: Message): m is ProbeMsg | ProbeAckMsg | SelectMsg {
    if (m.t !== 'probe' && m.t !== 'probe-ack' && m.t !== 'select') return false
    if (m.pair !== this.pair) return false // someone else's pairing: not a forgery of ours
    const expected = m.t === 'select' ? probeMac(this._keys, 'select', m.pair, m.path) : probeMac(this._keys, m.t, m.pair, m.nonce)
    if (macEquals(m.mac, expected)) return true
    this.invalid++
    return false
  }
}
