// The rendezvous server's relays, driven by bare test clients on loopback: allocation and its refusals, repeats,
// idle expiry, failures and late completions, what a relay is bound to. One allocation on its own is in
// server-relay.test.ts; attacks on relays in attack-server-relay.test.ts.
import { describe, expect, it, vi } from 'vitest'

import type * as RelayModule from '../lib/server/relay'
import { datagram, freshNonce, protocol, type Msg, type RendezvousPeer } from './helpers/rendezvous-peer'
import { errorCode, serverHarness } from './helpers/server-harness'
import { requireFromRoot, sleep } from './helpers/utp'

const { RelayAllocation } = requireFromRoot('./dist/lib/server/relay.js') as typeof RelayModule
type RelayAllocationT = RelayModule.RelayAllocation
const { startServer, peer, paired } = serverHarness()

describe('RendezvousServer relays', () => {
  it('relays between the two learned addresses once both said hello, and frees the relay when the pairing ends', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const events: unknown[] = []
    server.on('relay', e => events.push(e))
    const { a, b, na, nb } = await paired(at, 'n:600')
    const alloc = await a.request({ t: 'relay-request', nonce: na }, m => m.t === 'relay-allocated') as Extract<Msg, { t: 'relay-allocated' }>
    const allocB = await b.wait(m => m.t === 'relay-allocated') as Extract<Msg, { t: 'relay-allocated' }>
    expect(alloc).not.toBeNull()
    expect(allocB).not.toBeNull()
    expect(events).toEqual([{ key: 'n:600', ports: [alloc.port, allocB.port] }])
    a.raw(protocol.encode({ t: 'relay-hello', token: alloc.token }), alloc.port)
    b.raw(protocol.encode({ t: 'relay-hello', token: allocB.token }), allocB.port)
    expect(await a.wait(m => m.t === 'relay-hello-ack' && m.ready)).not.toBeNull()
    const got: Buffer[] = []
    b.socket.on('message', (buf) => { if (!protocol.isRendezvous(buf)) got.push(buf) })
    a.raw(Buffer.from('hello through the relay'), alloc.port)
    await sleep(50)
    expect(got.map(g => g.toString())).toEqual(['hello through the relay'])
    expect(server.stats().activeRelays).toBe(1)
    b.send({ t: 'bye', nonce: nb })
    await sleep(50)
    expect(server.stats().activeRelays).toBe(0)
    a.raw(Buffer.from('after the end'), alloc.port)
    await sleep(50)
    expect(got).toHaveLength(1)
  })

  it('a relay request is refused with its reason: not paired yet, relaying off, a peer opted out, no capacity left', async () => {
    const refusal = async (p: RendezvousPeer, nonce: string): Promise<Msg | null> => await p.request({ t: 'relay-request', nonce }, m => m.t === 'error')
    const lone = await startServer({ mappingCheck: false })
    const l = await peer(lone.at)
    const nl = freshNonce()
    expect(errorCode(await l.register('n:700', nl))).toBe('registered')
    expect(await refusal(l, nl)).toEqual({ t: 'error', code: 'ERR_NOT_PAIRED', message: 'no peer yet: a relay needs a pairing', nonce: nl })
    expect(lone.server.stats().refusals).toEqual({ ERR_NOT_PAIRED: 1 })
    const off = await startServer({ mappingCheck: false, relay: false })
    const o = await paired(off.at, 'n:701')
    expect(await refusal(o.a, o.na)).toEqual({ t: 'error', code: 'ERR_RELAY_UNAVAILABLE', message: 'this server does not relay', nonce: o.na })
    const optOut = await startServer({ mappingCheck: false })
    const [x, y] = [await peer(optOut.at), await peer(optOut.at)]
    const [nx, ny] = [freshNonce(), freshNonce()]
    expect(errorCode(await x.register('n:702', nx, { relay: false }))).toBe('registered')
    expect(errorCode(await y.register('n:702', ny))).toBe('registered')
    expect(await y.wait(m => m.t === 'peer', 3000)).not.toBeNull()
    expect(await refusal(y, ny)).toEqual({ t: 'error', code: 'ERR_RELAY_UNAVAILABLE', message: 'a peer opted out of relaying', nonce: ny })
    const full = await startServer({ mappingCheck: false, maxRelays: 0 })
    const f = await paired(full.at, 'n:703')
    expect(await refusal(f.b, f.nb)).toEqual({ t: 'error', code: 'ERR_RELAY_FULL', message: 'no relay capacity left, try again later', nonce: f.nb })
    expect(full.server.stats()).toMatchObject({ activeRelays: 0, refusals: { ERR_RELAY_FULL: 1 } })
  })

  it('a relay that cannot be allocated is refused and can be asked again; one ready after its pairing or server ended is closed unannounced', async () => {
    const realOpen = RelayAllocation.open
    try {
      const { server, at } = await startServer({ mappingCheck: false, relaysPerPrefix: 1, maxRelays: 1 })
      const { a, b, na } = await paired(at, 'n:704')
      RelayAllocation.open = async () => { throw new Error('no ports') }
      expect(await a.request({ t: 'relay-request', nonce: na }, m => m.t === 'error' || m.t === 'relay-allocated')).toEqual({ t: 'error', code: 'ERR_RELAY_UNAVAILABLE', message: 'could not allocate relay ports', nonce: na })
      expect(server.stats()).toMatchObject({ relays: 0, activeRelays: 0 })
      // The failure held nothing: asked again, as the one relay of its prefix and of the server, it is allocated
      RelayAllocation.open = realOpen
      expect(await a.request({ t: 'relay-request', nonce: na }, m => m.t === 'error' || m.t === 'relay-allocated')).toMatchObject({ t: 'relay-allocated' })
      expect(await b.wait(m => m.t === 'relay-allocated')).not.toBeNull()
      // Allocations that complete too late: the pairing ended (bye) or the server closed meanwhile
      const late: RelayAllocationT[] = []
      let release = (): void => {}
      RelayAllocation.open = async (o) => {
        await new Promise<void>(resolve => { release = resolve })
        const r = await realOpen(o)
        late.push(r)
        return r
      }
      const lateRelay = await startServer({ mappingCheck: false, relaysPerPrefix: 1 })
      const events: unknown[] = []
      lateRelay.server.on('relay', e => events.push(e))
      const q = await paired(lateRelay.at, 'n:705')
      q.a.send({ t: 'relay-request', nonce: q.na })
      await sleep(100)
      q.a.send({ t: 'bye', nonce: q.na })
      await sleep(100)
      release()
      await sleep(100)
      expect(late).toHaveLength(1)
      expect(late[0].closed).toBe(true)
      expect([...q.a.inbox, ...q.b.inbox].filter(m => m.t === 'relay-allocated' || m.t === 'error')).toEqual([])
      expect(lateRelay.server.stats()).toMatchObject({ relays: 0, activeRelays: 0 })
      expect(events).toEqual([])
      const closing = await startServer({ mappingCheck: false })
      const c = await paired(closing.at, 'n:706')
      c.a.send({ t: 'relay-request', nonce: c.na })
      await sleep(100)
      await closing.server.close()
      release()
      await sleep(100)
      expect(late).toHaveLength(2)
      expect(late[1].closed).toBe(true)
    } finally {
      RelayAllocation.open = realOpen
    }
  })

  it('relay requests: a repeat gets the same relay, one after it idled out a new one, one while allocating waits for it', async () => {
    const realOpen = RelayAllocation.open
    try {
      const { server, at } = await startServer({ mappingCheck: false, relayIdleMs: 300 })
      const { a, b, na, nb } = await paired(at, 'n:707')
      const allocated = async (p: RendezvousPeer, nonce: string): Promise<Msg | null> => await p.request({ t: 'relay-request', nonce }, m => m.t === 'error' || m.t === 'relay-allocated')
      const first = await allocated(a, na) as Extract<Msg, { t: 'relay-allocated' }>
      expect(first).toMatchObject({ t: 'relay-allocated', nonce: na })
      expect(await allocated(b, nb)).toMatchObject({ t: 'relay-allocated', nonce: nb })
      expect(await allocated(a, na)).toEqual(first)
      expect(server.stats()).toMatchObject({ relays: 1, activeRelays: 1 })
      // The relay is bound to the address the peers reached the server at, and no other
      const elsewhere = await peer(at)
      elsewhere.raw(datagram({ t: 'relay-hello', token: first.token }), first.port, '127.0.0.2')
      await sleep(100)
      expect(elsewhere.inbox).toEqual([])
      // Nobody said hello: it idles out, and a new request gets a new relay
      await sleep(600)
      expect(server.stats().activeRelays).toBe(0)
      const second = await allocated(a, na)
      expect(second).toMatchObject({ t: 'relay-allocated' })
      expect((second as typeof first).token).not.toBe(first.token)
      expect(server.stats()).toMatchObject({ relays: 2, activeRelays: 1 })
      // While a relay is being allocated, a repeated request starts no second one, and the allocation being
      // bound counts against maxRelays
      let opened = 0
      let release = (): void => {}
      RelayAllocation.open = async (o) => {
        opened++
        await new Promise<void>(resolve => { release = resolve })
        return await realOpen(o)
      }
      const slow = await startServer({ mappingCheck: false, maxRelays: 1 })
      const q = await paired(slow.at, 'n:708')
      q.a.send({ t: 'relay-request', nonce: q.na })
      await sleep(50)
      q.b.send({ t: 'relay-request', nonce: q.nb })
      const r = await paired(slow.at, 'n:709')
      expect(await allocated(r.a, r.na)).toEqual({ t: 'error', code: 'ERR_RELAY_FULL', message: 'no relay capacity left, try again later', nonce: r.na })
      expect(opened).toBe(1)
      release()
      expect(await q.a.wait(m => m.t === 'relay-allocated', 1000)).not.toBeNull()
      expect(await q.b.wait(m => m.t === 'relay-allocated', 1000)).not.toBeNull()
      await sleep(100)
      expect(q.a.all('relay-allocated')).toHaveLength(1)
      expect([...q.a.inbox, ...q.b.inbox].filter(m => m.t === 'error')).toEqual([])
      expect(opened).toBe(1)
    } finally {
      RelayAllocation.open = realOpen
    }
  })

  it('relays per address prefix are limited (ERR_RATE_LIMITED, counted as a quota refusal)', async () => {
    const { server, at } = await startServer({ mappingCheck: false, relaysPerPrefix: 1 })
    const p = await paired(at, 'n:710')
    expect(await p.a.request({ t: 'relay-request', nonce: p.na }, m => m.t === 'relay-allocated')).not.toBeNull()
    const q = await paired(at, 'n:711')
    expect(await q.a.request({ t: 'relay-request', nonce: q.na }, m => m.t === 'error')).toEqual({ t: 'error', code: 'ERR_RATE_LIMITED', message: 'too many relays for this network, try again later', nonce: q.na })
    expect(server.stats()).toMatchObject({ quotaRefused: 1, relays: 1 })
  })

  it('a relay idle for exactly relayIdleMs is kept; one millisecond more and the sweep frees it', async () => {
    // A fake clock for Date and the sweeper's interval; the sockets and the test's own waits stay real
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] })
    try {
      const { server, at } = await startServer({ mappingCheck: false, relayIdleMs: 400 }) // sweeps every 100 ms
      const { a, na } = await paired(at, 'n:712')
      expect(await a.request({ t: 'relay-request', nonce: na }, m => m.t === 'relay-allocated')).not.toBeNull()
      vi.advanceTimersByTime(400)
      expect(server.stats().activeRelays).toBe(1)
      vi.advanceTimersByTime(100)
      expect(server.stats().activeRelays).toBe(0)
    } finally {
      vi.useRealTimers()
    }
  })
})
