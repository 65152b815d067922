// The rendezvous codec's validation, field by field, at each bound: what a server or a peer accepts from the
// network and the exact reason it answers for what it refuses. rendezvous-server-protocol.test.ts round-trips
// the messages; this pins the edges (a nonce of 15, 16, 64 and 65 digits, a port of 0 and 65536, 16 and 17
// LAN candidates, a SPAKE2 message of 64 and 65 bytes), the messages' exact shapes (no field added or
// dropped) and the framing around them.
import { describe, expect, it } from 'vitest'

import type * as ProtocolModule from '../lib/rendezvous/protocol'
import { datagram as body, rawDatagram as raw } from './helpers/rendezvous-peer'
import { requireFromRoot } from './helpers/utp'

const protocol = requireFromRoot('./dist/lib/rendezvous/protocol.js') as typeof ProtocolModule
const { decode, encode, isDecodeError, isRendezvous, parseHostPort, endpointKey } = protocol

const n = 'ab'.repeat(8)
const pair = 'cd'.repeat(16)
const pake = Buffer.alloc(33, 9).toString('base64')
const cookie = 'e1'.repeat(16)
const ep = { address: '198.51.100.7', port: 4000 }
const reg = { t: 'register', key: 'n:4127', nonce: n, lan: [ep], relay: true, pake }
const peer = { t: 'peer', nonce: n, pair, role: 'accept', startInMs: 0, public: ep, lan: [], relay: false, pake }

/** The reason a malformed message is refused with (ERR_MALFORMED), or the message when it is accepted */
function reason (o: object): unknown {
  const m = decode(body(o))
  if (m === null) throw new Error('not ours')
  if (!isDecodeError(m)) return m
  expect(m.error).toBe('ERR_MALFORMED')
  return m.message
}
const NONCE_RULE = 'field "nonce" must be a string of 16..64 characters matching /^[0-9a-f]+$/'

describe('the framing', () => {
  it('is the magic "UTPRV", the version byte 2, then the message as JSON', () => {
    expect(encode({ t: 'bye', nonce: n })).toEqual(Buffer.from(`UTPRV\x02{"t":"bye","nonce":"${n}"}`, 'latin1'))
  })

  it('a datagram is ours when it starts with the whole magic; anything else is not answered', () => {
    expect(isRendezvous(Buffer.from('UTPRV', 'latin1'))).toBe(true)
    expect(isRendezvous(Buffer.from('UTPR', 'latin1'))).toBe(false)
    expect(isRendezvous(Buffer.from('XTPRV\x02{}', 'latin1'))).toBe(false)
    expect(isRendezvous(Buffer.from('UTPRX\x02{}', 'latin1'))).toBe(false)
    expect(decode(Buffer.from('UTPR', 'latin1'))).toBeNull()
    expect(decode(Buffer.alloc(0))).toBeNull()
  })

  it('refuses a missing version, another version, a body that is not JSON or not an object', () => {
    expect(decode(Buffer.from('UTPRV', 'latin1'))).toEqual({ error: 'ERR_MALFORMED', message: 'truncated header' })
    expect(decode(Buffer.from('UTPRV\x01{}', 'latin1'))).toEqual({ error: 'ERR_VERSION', message: 'unsupported version 1, expected 2' })
    expect(decode(raw(''))).toEqual({ error: 'ERR_MALFORMED', message: 'body is not JSON' })
    expect(decode(raw('{"t":'))).toEqual({ error: 'ERR_MALFORMED', message: 'body is not JSON' })
    for (const text of ['null', '[]', '[{"t":"bye"}]', '5', '"bye"', 'true']) {
      expect(decode(raw(text)), text).toEqual({ error: 'ERR_MALFORMED', message: 'body is not an object' })
    }
  })

  it('names an unknown type, cut to 40 characters; a type that is not a string is malformed', () => {
    expect(decode(body({ t: 'nope' }))).toEqual({ error: 'ERR_UNKNOWN_TYPE', message: 'unknown message type "nope"' })
    expect(decode(body({ t: 'x'.repeat(50) }))).toEqual({ error: 'ERR_UNKNOWN_TYPE', message: `unknown message type "${'x'.repeat(40)}"` })
    // Not a string at all: a malformed field (test/attack-decoder.test.ts has the hostile ones)
    expect(decode(body({ t: 7 }))).toEqual({ error: 'ERR_MALFORMED', message: 'field "t" must be a string' })
    expect(decode(body({}))).toEqual({ error: 'ERR_MALFORMED', message: 'field "t" must be a string' })
  })

  it('isDecodeError tells a refusal from a message', () => {
    expect(isDecodeError({ error: 'ERR_MALFORMED', message: 'x' })).toBe(true)
    expect(isDecodeError({ t: 'bye', nonce: n })).toBe(false)
  })
})

describe('each message is rebuilt from its validated fields only', () => {
  it('every type, exactly: optional fields present when given, absent (not undefined) when not', () => {
    const exact: object[] = [
      { t: 'register', key: 'n:4127', nonce: n, lan: [ep], relay: true, pake },
      { t: 'register', key: 'n:4127', nonce: n, lan: [], relay: false, pake, nat: 'cone', rtt: 12, side: 'send', cookie },
      { t: 'retry', cookie },
      { t: 'registered', nonce: n, observed: ep, expiresInMs: 30_000 },
      { t: 'registered', nonce: n, observed: ep, expiresInMs: 30_000, checkPort: 3479 },
      { t: 'check', nonce: n },
      { t: 'relay-request', nonce: n, cookie },
      { t: 'check-ack', nonce: n, observed: ep },
      { t: 'peer-moved', nonce: n, public: ep, seq: 3 },
      { t: 'peer-moved-ack', nonce: n, seq: 3 },
      { t: 'keepalive', nonce: n },
      { t: 'keepalive', nonce: n, rtt: 0, cookie },
      { t: 'keepalive-ack', nonce: n, observed: { address: '2001:db8::1', port: 65535 } },
      peer,
      { ...peer, peerNat: 'symmetric', mapping: 'independent', peerMapping: 'dependent' },
      { t: 'peer-ack', nonce: n },
      { t: 'peer-confirm-ack', nonce: n },
      { t: 'pake-failed', nonce: n },
      { t: 'bye', nonce: n },
      { t: 'bye', nonce: n, gaveUp: 'ERR_PUNCH_FAILED' },
      { t: 'peer-gone', nonce: n, code: 'ABORT_ERR' },
      { t: 'confirm', nonce: n, mac: '01'.repeat(32) },
      { t: 'relay-allocated', nonce: n, port: 1, token: n },
      { t: 'error', code: 'ERR_FULL', message: '' },
      { t: 'error', code: 'ERR_FULL', message: 'full', nonce: n },
      { t: 'probe', pair, nonce: n, mac: '03'.repeat(16) },
      { t: 'select', pair, path: 'birthday', mac: '05'.repeat(16) },
      { t: 'relay-hello', token: n },
      { t: 'relay-hello-ack', token: n, ready: false }
    ]
    for (const m of exact) expect(decode(body(m)), JSON.stringify(m)).toStrictEqual(m)
  })

  it('drops fields it does not know, whatever they carry', () => {
    expect(decode(body({ t: 'bye', nonce: n, code: '4127-purple-sausage', __proto__x: 1 }))).toStrictEqual({ t: 'bye', nonce: n })
    expect(decode(body({ ...reg, lan: [{ ...ep, extra: true }] }))).toStrictEqual(reg)
  })
})

describe('field bounds and reasons', () => {
  it('hex ids (nonce, pair, token): 16 to 64 lowercase hex digits', () => {
    expect(reason({ t: 'bye', nonce: 'a'.repeat(16) })).toEqual({ t: 'bye', nonce: 'a'.repeat(16) })
    expect(reason({ t: 'bye', nonce: 'a'.repeat(64) })).toEqual({ t: 'bye', nonce: 'a'.repeat(64) })
    expect(reason({ t: 'bye', nonce: 'a'.repeat(15) })).toBe(NONCE_RULE)
    expect(reason({ t: 'bye', nonce: 'a'.repeat(65) })).toBe(NONCE_RULE)
    expect(reason({ t: 'bye', nonce: 'A'.repeat(16) })).toBe(NONCE_RULE)
    expect(reason({ t: 'bye', nonce: 1234567890123456 })).toBe(NONCE_RULE)
    expect(reason({ t: 'bye' })).toBe(NONCE_RULE)
    expect(reason({ t: 'probe', pair: 'x', nonce: n, mac: '03'.repeat(16) })).toBe('field "pair" must be a string of 16..64 characters matching /^[0-9a-f]+$/')
    expect(reason({ t: 'relay-hello', token: 'ab' })).toBe('field "token" must be a string of 16..64 characters matching /^[0-9a-f]+$/')
  })

  it('free strings: the bounds alone, no pattern in the reason', () => {
    expect(reason({ t: 'error', code: '', message: '' })).toBe('field "code" must be a string of 1..64 characters')
    expect(reason({ t: 'error', code: 'x'.repeat(65), message: '' })).toBe('field "code" must be a string of 1..64 characters')
    expect(reason({ t: 'error', code: 'x', message: 'm'.repeat(512) })).toStrictEqual({ t: 'error', code: 'x', message: 'm'.repeat(512) })
    expect(reason({ t: 'error', code: 'x', message: 'm'.repeat(513) })).toBe('field "message" must be a string of 0..512 characters')
    expect(reason({ ...reg, nat: 'n'.repeat(33) })).toBe('field "nat" must be a string of 0..32 characters')
    expect(reason({ ...reg, nat: 5 })).toBe('field "nat" must be a string of 0..32 characters')
    expect(reason({ ...peer, peerNat: 'n'.repeat(33) })).toBe('field "peerNat" must be a string of 0..32 characters')
    expect(reason({ ...reg, side: 'Send' })).toBe('field "side" must be a string of 1..16 characters matching /^[a-z][a-z0-9-]{0,15}$/')
  })

  it('error codes a peer passes on (bye\'s gaveUp, peer-gone\'s code): 1 to 40 capitals, digits and underscores, from a capital', () => {
    const RULE = (k: string): string => `field "${k}" must be a string of 1..40 characters matching /^[A-Z][A-Z0-9_]*$/`
    for (const code of ['E', 'ABORT_ERR', 'E2BIG', 'X'.repeat(40)]) {
      expect(reason({ t: 'bye', nonce: n, gaveUp: code })).toStrictEqual({ t: 'bye', nonce: n, gaveUp: code })
      expect(reason({ t: 'peer-gone', nonce: n, code })).toStrictEqual({ t: 'peer-gone', nonce: n, code })
    }
    for (const code of ['', 'X'.repeat(41), 'err_x', '_ERR', '1ERR', 'ERR X', 'ERR\n', 5, null]) {
      expect(reason({ t: 'bye', nonce: n, gaveUp: code }), String(code)).toBe(RULE('gaveUp'))
      expect(reason({ t: 'peer-gone', nonce: n, code }), String(code)).toBe(RULE('code'))
    }
    expect(reason({ t: 'peer-gone', nonce: n })).toBe(RULE('code'))
  })

  it('integers: within their range, whole, and numbers', () => {
    const reg2 = (expiresInMs: unknown): unknown => reason({ t: 'registered', nonce: n, observed: ep, expiresInMs })
    expect(reg2(0)).toMatchObject({ expiresInMs: 0 })
    expect(reg2(86_400_000)).toMatchObject({ expiresInMs: 86_400_000 })
    for (const bad of [-1, 86_400_001, 1.5, '5', null]) expect(reg2(bad)).toBe('field "expiresInMs" must be an integer in 0..86400000')
    expect(reason({ ...reg, rtt: 600_000 })).toMatchObject({ rtt: 600_000 })
    expect(reason({ ...reg, rtt: 600_001 })).toBe('field "rtt" must be an integer in 0..600000')
    expect(reason({ ...reg, rtt: -1 })).toBe('field "rtt" must be an integer in 0..600000')
    expect(reason({ t: 'peer-moved-ack', nonce: n, seq: 1e9 + 1 })).toBe('field "seq" must be an integer in 0..1000000000')
  })

  it('booleans and enumerations: only their exact values', () => {
    expect(reason({ ...reg, relay: 'true' })).toBe('field "relay" must be a boolean')
    expect(reason({ t: 'relay-hello-ack', token: n, ready: 1 })).toBe('field "ready" must be a boolean')
    expect(reason({ ...peer, role: 'both' })).toBe('field "role" must be one of connect, accept')
    expect(reason({ ...peer, role: ['connect'] })).toBe('field "role" must be one of connect, accept')
    expect(reason({ ...peer, mapping: 'symmetric' })).toBe('field "mapping" must be one of independent, dependent')
    expect(reason({ ...peer, peerMapping: 0 })).toBe('field "peerMapping" must be one of independent, dependent')
    expect(reason({ t: 'select', pair, path: 'relay', mac: '05'.repeat(16) })).toBe('field "path" must be one of lan, direct, birthday')
  })

  it('endpoints: an object with an IP address and a port in 1..65535', () => {
    const ack = (observed: unknown): unknown => reason({ t: 'check-ack', nonce: n, observed })
    expect(ack({ address: '10.0.0.1', port: 1 })).toMatchObject({ observed: { address: '10.0.0.1', port: 1 } })
    expect(ack(null)).toBe('field "observed" must be an endpoint')
    expect(ack('10.0.0.1:80')).toBe('field "observed" must be an endpoint')
    expect(ack(undefined)).toBe('field "observed" must be an endpoint')
    expect(ack({ address: 'example.com', port: 80 })).toBe('field "observed.address" must be an IP address')
    expect(ack({ address: '1', port: 80 })).toBe('field "address" must be a string of 2..64 characters')
    expect(ack({ address: '10.0.0.1', port: 0 })).toBe('field "port" must be an integer in 1..65535')
    expect(ack({ address: '10.0.0.1', port: 65536 })).toBe('field "port" must be an integer in 1..65535')
  })

  it('LAN candidates: an array of at most 16 endpoints, each checked by its index', () => {
    const lan = (v: unknown): unknown => reason({ ...reg, lan: v })
    expect(lan(Array(16).fill(ep))).toMatchObject({ lan: Array(16).fill(ep) })
    expect(lan(Array(17).fill(ep))).toBe('field "lan" must be an array of at most 16 endpoints')
    expect(lan(ep)).toBe('field "lan" must be an array of at most 16 endpoints')
    expect(lan({ length: 1, 0: ep })).toBe('field "lan" must be an array of at most 16 endpoints')
    expect(lan([ep, 5])).toBe('field "lan[1]" must be an endpoint')
    expect(lan([ep, { address: 'nowhere', port: 1 }])).toBe('field "lan[1].address" must be an IP address')
  })

  it('SPAKE2 messages: padded base64 of at most 64 bytes', () => {
    const b64 = (bytes: number): string => Buffer.alloc(bytes, 7).toString('base64')
    expect(reason({ ...reg, pake: b64(64) })).toMatchObject({ pake: b64(64) })
    expect(reason({ ...reg, pake: b64(1) })).toMatchObject({ pake: b64(1) })
    // 65 and 66 bytes fit the 88 characters of 64, and are refused by their decoded length
    expect(reason({ ...reg, pake: b64(65) })).toBe('field "pake" must be padded base64 of at most 64 bytes')
    expect(reason({ ...reg, pake: b64(66) })).toBe('field "pake" must be padded base64 of at most 64 bytes')
    const chars = 'field "pake" must be a string of 4..88 characters matching /^[A-Za-z0-9+/]+={0,2}$/'
    expect(reason({ ...reg, pake: b64(67) })).toBe(chars)
    expect(reason({ ...reg, pake: 'QUJ' })).toBe(chars)
    expect(reason({ ...reg, pake: 'QUJDRA' })).toBe('field "pake" must be padded base64 of at most 64 bytes')
    expect(reason({ ...reg, pake: 'QU=D' })).toBe(chars)
  })

  it('cookies and MACs: exactly their length of lowercase hex', () => {
    expect(reason({ t: 'check', nonce: n, cookie: cookie + 'e' })).toBe('field "cookie" must be a string of 32..32 characters matching /^[0-9a-f]{32}$/')
    expect(reason({ t: 'confirm', nonce: n, mac: '0'.repeat(63) })).toBe('field "mac" must be a string of 64..64 characters matching /^[0-9a-f]{64}$/')
    expect(reason({ t: 'probe-ack', pair, nonce: n, mac: 'G'.repeat(32) })).toBe('field "mac" must be a string of 32..32 characters matching /^[0-9a-f]{32}$/')
  })
})

describe('host:port', () => {
  it('parses "host:port" and "[v6]:port" with a port in 1..65535', () => {
    expect(parseHostPort('198.51.100.7:4000')).toEqual({ host: '198.51.100.7', port: 4000 })
    expect(parseHostPort('rendezvous.example:1')).toEqual({ host: 'rendezvous.example', port: 1 })
    expect(parseHostPort('[2001:db8::1]:65535')).toEqual({ host: '2001:db8::1', port: 65535 })
  })

  it('refuses anything else, naming what it got', () => {
    for (const s of ['host:0', 'host:65536', 'host', 'host:', ':80', '2001:db8::1:80', 'x[::1]:80', '[::1]:80x', 'a:b:80', 'host:80x', 'host:8 0']) {
      expect(() => parseHostPort(s), s).toThrow(`expected host:port (or [ipv6]:port), got ${JSON.stringify(s)}`)
    }
  })

  it('endpointKey writes IPv6 in brackets', () => {
    expect(endpointKey({ address: '2001:db8::1', port: 80 })).toBe('[2001:db8::1]:80')
    expect(endpointKey({ address: '10.0.0.1', port: 80 })).toBe('10.0.0.1:80')
  })
})
