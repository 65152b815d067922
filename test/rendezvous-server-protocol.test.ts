// Rendezvous protocol v2 messages (encode/decode round trips, strict validation of the new fields) and the
// server's cookies and address prefixes
import { describe, expect, it } from 'vitest'

import type * as ProtocolModule from '../lib/rendezvous/protocol'
import type * as CookieModule from '../lib/server/cookie'
import { requireFromRoot } from './helpers/utp'

const protocol = requireFromRoot('./dist/lib/rendezvous/protocol.js') as typeof ProtocolModule
type Msg = ProtocolModule.Message

const n = 'ab'.repeat(8)
const pair = 'cd'.repeat(16)
const pake = Buffer.alloc(33, 9).toString('base64')
const cookie = 'e1'.repeat(16)
const ep = { address: '198.51.100.7', port: 4000 }
const body = (o: object): Buffer => Buffer.concat([Buffer.from('UTPRV\x02', 'latin1'), Buffer.from(JSON.stringify(o))])

describe('rendezvous protocol v2', () => {
  it('round-trips every new or changed message', () => {
    const msgs: Msg[] = [
      { t: 'register', key: 'n:4127', nonce: n, lan: [ep], relay: true, pake, cookie },
      { t: 'register', key: 'h:' + 'f0'.repeat(32), nonce: n, lan: [], relay: false, pake },
      { t: 'retry', cookie },
      { t: 'keepalive', nonce: n, rtt: 5, cookie },
      { t: 'check', nonce: n, cookie },
      { t: 'relay-request', nonce: n, cookie },
      { t: 'confirm', nonce: n, mac: '01'.repeat(32) },
      { t: 'peer-confirm', nonce: n, mac: '02'.repeat(32) },
      { t: 'peer-confirm-ack', nonce: n },
      { t: 'pake-failed', nonce: n },
      { t: 'peer', nonce: n, pair, role: 'connect', startInMs: 300, public: ep, lan: [], relay: true, pake },
      { t: 'probe', pair, nonce: n, mac: '03'.repeat(16) },
      { t: 'probe-ack', pair, nonce: n, mac: '04'.repeat(16) },
      { t: 'select', pair, path: 'direct', mac: '05'.repeat(16) }
    ]
    for (const m of msgs) expect(protocol.decode(protocol.encode(m))).toEqual(m)
    expect(protocol.encode(msgs[0]).subarray(0, 6).toString('latin1')).toBe('UTPRV\x02')
  })

  it('refuses a code sent in clear, bad keys, oversized PAKE messages, bad cookies and missing MACs', () => {
    const reg = { t: 'register', key: 'n:4127', nonce: n, lan: [], relay: true, pake }
    const malformed = [
      { ...reg, key: undefined, code: '4127-purple-sausage' },
      { ...reg, key: 'n:1234567' },
      { ...reg, key: '4127-purple' },
      { ...reg, key: 'h:' + 'F0'.repeat(32) },
      { ...reg, pake: Buffer.alloc(65).toString('base64') },
      { ...reg, pake: 'not base64!' },
      { ...reg, pake: undefined },
      { ...reg, cookie: 'e1'.repeat(15) },
      { t: 'retry', cookie: 'zz'.repeat(16) },
      { t: 'confirm', nonce: n, mac: '01'.repeat(16) },
      { t: 'peer-confirm', nonce: n },
      { t: 'probe', pair, nonce: n },
      { t: 'probe-ack', pair, nonce: n, mac: '04'.repeat(32) },
      { t: 'select', pair, path: 'lan' }
    ]
    for (const o of malformed) expect(protocol.decode(body(o)), JSON.stringify(o)).toMatchObject({ error: 'ERR_MALFORMED' })
    expect(protocol.decode(Buffer.from('UTPRV\x01{"t":"register"}', 'latin1'))).toMatchObject({ error: 'ERR_VERSION' })
  })

  it('names every error code a server sends', () => {
    for (const code of ['ERR_CODE_BURNED', 'ERR_RATE_LIMITED', 'ERR_RELAY_BUDGET', 'ERR_RELAY_FULL', 'ERR_VERSION']) {
      expect(protocol.ERROR_CODES).toHaveProperty(code)
    }
  })
})

describe('rendezvous server building blocks', () => {
  const { CookieJar, COOKIE_BUCKET_MS } = requireFromRoot('./dist/lib/server/cookie.js') as typeof CookieModule

  it('cookies are bound to the source address and port and live for one or two 30 s buckets', () => {
    const jar = new CookieJar()
    const t = 10 * COOKIE_BUCKET_MS + 5
    const c = jar.mint('198.51.100.7', 4000, t)
    expect(c).toMatch(/^[0-9a-f]{32}$/)
    expect(jar.verify(c, '198.51.100.7', 4000, t)).toBe(true)
    expect(jar.verify(c, '::ffff:198.51.100.7', 4000, t)).toBe(true) // the same address, mapped
    expect(jar.verify(c, '198.51.100.7', 4001, t)).toBe(false)
    expect(jar.verify(c, '198.51.100.8', 4000, t)).toBe(false)
    expect(jar.verify(c, '198.51.100.7', 4000, t + COOKIE_BUCKET_MS)).toBe(true)
    expect(jar.verify(c, '198.51.100.7', 4000, t + 2 * COOKIE_BUCKET_MS)).toBe(false)
    expect(new CookieJar().verify(c, '198.51.100.7', 4000, t)).toBe(false) // another server's secret
    expect(jar.verify(undefined, '198.51.100.7', 4000, t)).toBe(false)
    // Any string at all is a cookie that fails, never an exception: too short, too long, not hex (Buffer.from
    // stops at the first bad digit, and comparing buffers of different lengths throws)
    for (const bad of ['', c.slice(1), c + '0', 'zz'.repeat(16), c.slice(0, 31) + 'g', c.slice(0, 30) + 'é']) {
      expect(jar.verify(bad, '198.51.100.7', 4000, t), bad).toBe(false)
    }
  })
})
