// The pairing's secrets on their own (lib/rendezvous/auth.ts), against the derivations protocol.ts documents,
// computed here independently with node:crypto: the key a code registers under, the three keys from the PAKE,
// the confirm and probe MACs, the constant-time comparison and the peer-to-peer verifier. The rendezvous and
// attack tests show that pairing works and forgeries fail; these pin what two builds must agree on byte for
// byte, and each rejection on its own.
import { createHash, createHmac } from 'node:crypto'

import { describe, expect, it } from 'vitest'

import { requireFromRoot } from './helpers/utp'

const auth = requireFromRoot('./dist/lib/rendezvous/auth.js') as typeof import('../lib/rendezvous/auth')
const { Pake, deriveKey } = requireFromRoot('./dist/lib/secure/index.js') as typeof import('../lib/secure')
const { codeKey, isNameplateCode, PairingPake, confirmMac, probeMac, macEquals, PeerAuth } = auth

const keys = { probe: Buffer.alloc(32, 1), confirm: Buffer.alloc(32, 2), stream: Buffer.alloc(32, 3) }
const hmacHex = (key: Buffer, text: string): string => createHmac('sha256', key).update(text).digest('hex')

describe('the key a code registers under', () => {
  it('is "n:" + the nameplate of a <nameplate>-<secret> code (1 to 6 digits), which never shows its secret', () => {
    expect(codeKey('4127-purple-sausage-tiger')).toBe('n:4127')
    expect(codeKey('7-x')).toBe('n:7')
    expect(codeKey('123456-a-b')).toBe('n:123456')
    expect(isNameplateCode('4127-purple-sausage-tiger')).toBe(true)
    expect(isNameplateCode('123456-x')).toBe(true)
  })

  it('is "h:" + SHA-256 of the prefixed code for any other code', () => {
    const hashed = (code: string): string => 'h:' + createHash('sha256').update(`utp-punch-rs code v2\0${code}`).digest('hex')
    for (const code of ['purple-sausage-tiger', '1234567-seven-digits', '4127-', '-4127-x', 'a4127-x', '']) {
      expect(codeKey(code)).toBe(hashed(code))
      expect(isNameplateCode(code)).toBe(false)
    }
  })
})

describe('the pairing keys', () => {
  it('are the PAKE secret expanded under "probe", "confirm" and "stream", with the code\'s key as context', () => {
    const ours = new PairingPake('4127-purple-sausage-tiger', 'n:4127')
    // The other side run by hand, as protocol.ts describes it: a second build must derive the same keys
    const theirs = Pake.start('4127-purple-sausage-tiger', 'utp-punch-rs rendezvous v2|n:4127')
    const secret = theirs.finish(Buffer.from(ours.message, 'base64'))
    const k = ours.finish(theirs.message.toString('base64'))
    expect(k).toEqual({ probe: deriveKey(secret, 'probe'), confirm: deriveKey(secret, 'confirm'), stream: deriveKey(secret, 'stream') })
    expect(new Set([k?.probe.toString('hex'), k?.confirm.toString('hex'), k?.stream.toString('hex')]).size).toBe(3)
  })

  it('agree between two peers with one code, and differ with another code or another key', () => {
    const run = (codeA: string, keyA: string, codeB: string, keyB: string): [unknown, unknown] => {
      const a = new PairingPake(codeA, keyA)
      const b = new PairingPake(codeB, keyB)
      return [a.finish(b.message), b.finish(a.message)]
    }
    const [a, b] = run('1-same', 'n:1', '1-same', 'n:1')
    expect(a).not.toBeNull()
    expect(a).toEqual(b)
    const [c, d] = run('1-same', 'n:1', '1-other', 'n:1')
    expect(c).not.toEqual(d)
    const [e, f] = run('1-same', 'n:1', '1-same', 'n:2')
    expect(e).not.toEqual(f)
  })

  it('are null for a peer message that is not a SPAKE2 message', () => {
    const a = new PairingPake('1-x', 'n:1')
    expect(a.finish(Buffer.alloc(7).toString('base64'))).toBeNull()
    expect(new PairingPake('1-x', 'n:1').finish('')).toBeNull()
  })
})

describe('the MACs', () => {
  it('confirm: HMAC-SHA256(confirm key, "confirm|" + role + "|" + pair), all 64 hex digits', () => {
    expect(confirmMac(keys, 'connect', 'p1')).toBe(hmacHex(keys.confirm, 'confirm|connect|p1'))
    expect(confirmMac(keys, 'accept', 'p1')).toBe(hmacHex(keys.confirm, 'confirm|accept|p1'))
    expect(confirmMac(keys, 'connect', 'p1')).toHaveLength(64)
  })

  it('probe: the first 16 bytes of HMAC-SHA256(probe key, label|field|...)', () => {
    expect(probeMac(keys, 'probe', 'p1', 'n1')).toBe(hmacHex(keys.probe, 'probe|p1|n1').slice(0, 32))
    expect(probeMac(keys, 'select', 'p1', 'lan')).toBe(hmacHex(keys.probe, 'select|p1|lan').slice(0, 32))
    expect(probeMac(keys, 'probe-ack', 'p1', 'n1')).toBe(hmacHex(keys.probe, 'probe-ack|p1|n1').slice(0, 32))
  })

  it('compare equal only for the same bytes in a whole hex string of the same length', () => {
    const mac = probeMac(keys, 'probe', 'p', 'n')
    expect(macEquals(mac, mac)).toBe(true)
    expect(macEquals(mac.toUpperCase(), mac)).toBe(true)
    const flipped = (mac[0] === '0' ? '1' : '0') + mac.slice(1)
    expect(macEquals(flipped, mac)).toBe(false)
    // Shorter or longer: false, not a RangeError from the comparison
    expect(macEquals(mac.slice(0, 30), mac)).toBe(false)
    expect(macEquals(mac + '00', mac)).toBe(false)
    // Not all hex: Buffer.from stops at the first bad digit, so the bytes may match while the string does not
    expect(macEquals(mac + 'zz', mac)).toBe(false)
    expect(macEquals(mac.slice(0, 31) + 'z', mac)).toBe(false)
    expect(macEquals('', '')).toBe(true)
  })
})

describe('PeerAuth', () => {
  const ours = new PeerAuth(keys, 'pair-1')

  it('signs probes, acks and selects with the probe MAC of their own label', () => {
    expect(ours.probe('n1')).toEqual({ t: 'probe', pair: 'pair-1', nonce: 'n1', mac: probeMac(keys, 'probe', 'pair-1', 'n1') })
    expect(ours.ack('n1')).toEqual({ t: 'probe-ack', pair: 'pair-1', nonce: 'n1', mac: probeMac(keys, 'probe-ack', 'pair-1', 'n1') })
    expect(ours.select('birthday')).toEqual({ t: 'select', pair: 'pair-1', path: 'birthday', mac: probeMac(keys, 'select', 'pair-1', 'birthday') })
  })

  it('accepts what a holder of the same keys signed', () => {
    const peer = new PeerAuth({ ...keys }, 'pair-1')
    expect(peer.verify(ours.probe('n1'))).toBe(true)
    expect(peer.verify(ours.ack('n2'))).toBe(true)
    expect(peer.verify(ours.select('lan'))).toBe(true)
    expect(peer.invalid).toBe(0)
  })

  it('counts as forged what names our pairing with a wrong MAC: other keys, a changed field, a MAC of another label', () => {
    const peer = new PeerAuth(keys, 'pair-1')
    const stranger = new PeerAuth({ ...keys, probe: Buffer.alloc(32, 9) }, 'pair-1')
    expect(peer.verify(stranger.probe('n1'))).toBe(false)
    expect(peer.verify({ ...ours.probe('n1'), nonce: 'n2' })).toBe(false)
    expect(peer.verify({ ...ours.select('lan'), path: 'direct' })).toBe(false)
    // A probe's MAC replayed as an ack of the same nonce, an ack's as a probe
    expect(peer.verify({ ...ours.probe('n1'), t: 'probe-ack' })).toBe(false)
    expect(peer.verify({ ...ours.ack('n1'), t: 'probe' })).toBe(false)
    expect(peer.invalid).toBe(5)
  })

  it('ignores, without counting, another pairing\'s datagrams and messages that are not peer-to-peer', () => {
    const peer = new PeerAuth(keys, 'pair-1')
    expect(peer.verify(new PeerAuth(keys, 'pair-2').probe('n1'))).toBe(false)
    expect(peer.verify({ t: 'bye', pair: 'pair-1' } as never)).toBe(false)
    expect(peer.verify({ t: 'confirm', pair: 'pair-1', mac: confirmMac(keys, 'connect', 'pair-1') } as never)).toBe(false)
    expect(peer.invalid).toBe(0)
  })
})
