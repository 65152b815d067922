// The rendezvous server's tables (lib/server/registry.ts) on their own: pure bookkeeping with time as a
// parameter, so each boundary (a burn running out, a registration expiring) is checked to the millisecond.
// The server's use of them is in rendezvous-server.test.ts.
import { describe, expect, it } from 'vitest'

import type * as RegistryModule from '../lib/server/registry'
import { requireFromRoot } from './helpers/utp'

const { Registry } = requireFromRoot('./dist/lib/server/registry.js') as typeof RegistryModule
type Registration = RegistryModule.Registration
type Pairing = RegistryModule.Pairing

let nonces = 0
function reg (key: string, extra: Partial<Registration> = {}): Registration {
  const port = 40000 + ++nonces
  return {
    nonce: nonces.toString(16).padStart(16, '0'),
    key,
    pake: 'p',
    reply: { address: '192.0.2.1', port },
    via: null as unknown as Registration['via'],
    observed: { address: '192.0.2.1', port },
    prefix: '192.0.2',
    lan: [],
    relay: true,
    rtt: 0,
    lastSeen: 1000,
    pairing: null,
    movedSeq: 0,
    movedTimer: null,
    ...extra
  }
}

function registry (o: { burnMs?: number, maxPerPrefix?: number } = {}): { r: RegistryModule.Registry, ended: Pairing[] } {
  const ended: Pairing[] = []
  const r = new Registry({ burnMs: o.burnMs ?? 100, maxPerPrefix: o.maxPerPrefix ?? 10, onPairingEnd: p => ended.push(p) })
  return { r, ended }
}

describe('Registry', () => {
  it('the first under a key waits; the second pairs with it, first as connect, relaying only if both allow it', () => {
    const { r } = registry()
    const a = reg('k')
    const b = reg('k', { relay: false })
    expect(r.add(a)).toBeNull()
    expect(r.waiting('k')).toBe(a)
    const p = r.add(b) as Pairing
    expect(p).not.toBeNull()
    expect(p.peers).toEqual([a, b])
    expect(p.key).toBe('k')
    expect(p.id).toMatch(/^[0-9a-f]{32}$/)
    expect(p).toMatchObject({ announced: false, ended: false, acked: [false, false], confirm: [null, null], relay: null, relayAllowed: false })
    expect(a.pairing).toBe(p)
    expect(b.pairing).toBe(p)
    expect(r.waiting('k')).toBeUndefined()
    expect(r.refusal('k')).toBe('ERR_CODE_BURNED')
    expect(r).toMatchObject({ size: 2, pairingCount: 1, burnedCount: 0 })
    // Both allowing it, the pairing may relay; another key is independent
    const c = reg('other')
    r.add(c)
    expect((r.add(reg('other')) as Pairing).relayAllowed).toBe(true)
    expect(r.refusal('unused')).toBeNull()
  })

  it('a newcomer from the waiting registration\'s very address replaces it (a restarted client)', () => {
    const { r } = registry({ maxPerPrefix: 2 })
    const a = reg('k')
    r.add(a)
    const restarted = reg('k', { reply: { ...a.reply } })
    expect(r.add(restarted)).toBeNull()
    expect(r.waiting('k')).toBe(restarted)
    expect(r.byNonce.has(a.nonce)).toBe(false)
    expect(r.size).toBe(1)
    // The replaced one's prefix count was given back: one more still fits the quota of two
    expect(r.prefixFull('192.0.2')).toBe(false)
    // Same port, another address: a peer
    const p = r.add(reg('k', { reply: { address: '192.0.2.2', port: restarted.reply.port } }))
    expect(p).not.toBeNull()
    expect(r.prefixFull('192.0.2')).toBe(true)
    // Same address, another port: a peer too
    r.add(reg('k2'))
    expect(r.add(reg('k2', { reply: { address: '192.0.2.1', port: 1 } }))).not.toBeNull()
  })

  it('a key is burned for exactly burnMs after its pairing ends, and the pairing ends once', () => {
    const { r, ended } = registry({ burnMs: 100 })
    const a = reg('k')
    const b = reg('k')
    r.add(a)
    const p = r.add(b) as Pairing
    r.remove(a, 5000)
    expect(p.ended).toBe(true)
    expect(ended).toEqual([p])
    expect(r).toMatchObject({ size: 1, pairingCount: 0, burnedCount: 1 })
    r.remove(b, 5050)
    r.endPairing(p, 5060)
    expect(ended).toEqual([p]) // once
    expect(r.size).toBe(0)
    // Burned until 5100 (from the first end, not pushed on by the second)
    expect(r.refusal('k', 5099)).toBe('ERR_CODE_BURNED')
    expect(r.refusal('k', 5100)).toBeNull()
    // expire() forgets the burn once it ran out, not before
    r.expire(5099, 1e9)
    expect(r.burnedCount).toBe(1)
    r.expire(5100, 1e9)
    expect(r.burnedCount).toBe(0)
  })

  it('ending a pairing that no longer holds its key leaves the pairing that does', () => {
    // The server never pairs a key twice at once (refusal() first); the registry still keeps its tables right
    const { r } = registry()
    r.add(reg('k'))
    const old = r.add(reg('k')) as Pairing
    r.add(reg('k'))
    const fresh = r.add(reg('k')) as Pairing
    r.endPairing(old, 1000)
    expect(r.pairingCount).toBe(1)
    expect(fresh.ended).toBe(false)
    expect(r.refusal('k', 1000)).toBe('ERR_CODE_BURNED')
  })

  it('remove() forgets a waiting registration and stops its peer-moved timer; it is idempotent', () => {
    const { r, ended } = registry()
    let fired = 0
    const a = reg('k', { movedTimer: setInterval(() => { fired++ }, 1) })
    r.add(a)
    r.remove(a)
    r.remove(a)
    expect(a.movedTimer).toBeNull()
    expect(r.waiting('k')).toBeUndefined()
    expect(r).toMatchObject({ size: 0, burnedCount: 0 })
    expect(ended).toEqual([])
    expect(r.refusal('k')).toBeNull()
    const before = fired
    return new Promise<void>(resolve => setTimeout(() => { expect(fired).toBe(before); resolve() }, 20))
  })

  it('a registration removed does not take away a newer one waiting under its key', () => {
    const { r } = registry({ maxPerPrefix: 1, burnMs: 0 })
    const a = reg('k')
    r.add(a)
    const b = reg('k', { reply: { ...a.reply } }) // replaces a
    r.add(b)
    r.remove(a) // a is no longer registered: nothing changes
    expect(r.waiting('k')).toBe(b)
    expect(r.size).toBe(1)
    expect(r.prefixFull('192.0.2')).toBe(true)
    // The survivor of an ended pairing leaving later does not unseat a newcomer waiting under the key
    const { r: r2 } = registry({ burnMs: 0 })
    const c = reg('k')
    const d = reg('k')
    r2.add(c)
    r2.add(d)
    r2.remove(c, 1000) // the pairing ends; d stays registered
    const e = reg('k')
    expect(r2.add(e)).toBeNull()
    r2.remove(d, 1000)
    expect(r2.waiting('k')).toBe(e)
  })

  it('counts live registrations per prefix and moves the count when a registration changes prefix', () => {
    const { r } = registry({ maxPerPrefix: 1 })
    const a = reg('k')
    r.add(a)
    expect(r.prefixFull('192.0.2')).toBe(true)
    expect(r.prefixFull('198.51.100')).toBe(false)
    r.rehome(a, '198.51.100')
    expect(a.prefix).toBe('198.51.100')
    expect(r.prefixFull('192.0.2')).toBe(false)
    expect(r.prefixFull('198.51.100')).toBe(true)
    r.rehome(a, '198.51.100') // the same prefix: counted once still
    r.remove(a)
    expect(r.prefixFull('198.51.100')).toBe(false)
    // A registration that is not (or no longer) registered is not counted anywhere
    r.rehome(a, '203.0.113')
    expect(a.prefix).toBe('198.51.100')
    expect(r.prefixFull('203.0.113')).toBe(false)
  })

  it('expire() removes those silent for longer than the TTL, not those silent exactly that long', () => {
    const { r } = registry()
    const old = reg('k1', { lastSeen: 1000 })
    const edge = reg('k2', { lastSeen: 1001 })
    r.add(old)
    r.add(edge)
    expect(r.expire(1000 + 500, 499)).toEqual([old])
    expect(r.size).toBe(1)
    expect(r.byNonce.get(edge.nonce)).toBe(edge)
  })

  it('clear() removes every registration and ends every pairing', () => {
    const { r, ended } = registry()
    r.add(reg('k'))
    r.add(reg('k'))
    r.add(reg('w'))
    r.clear()
    expect(r).toMatchObject({ size: 0, pairingCount: 0 })
    expect(ended).toHaveLength(1)
    expect(r.waiting('w')).toBeUndefined()
  })
})
