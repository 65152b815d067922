// The rendezvous server on its own (protocol v2), driven by a bare test client on loopback: cookies, mapping
// checks, pairing, key confirmation, moves, expiry, HTTP. Its relays are in rendezvous-server-relay.test.ts,
// attacks in attack-server*.test.ts.
import * as dgram from 'dgram'
import * as net from 'net'
import { describe, expect, it } from 'vitest'

import type * as ServerModule from '../lib/server/server'
import { CONFIRM_MAC, datagram, PAKE, freshNonce, protocol, registerBody, type Msg, type RendezvousPeer } from './helpers/rendezvous-peer'
import { errorCode, serverHarness } from './helpers/server-harness'
import { requireFromRoot, sleep } from './helpers/utp'

const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
const { startServer, peer, paired, servers } = serverHarness()

/** `body` padded (an extra field) to exactly `size` bytes on the wire */
const padded = (body: Record<string, unknown>, size: number): Buffer => datagram({ ...body, pad: 'x'.repeat(size - datagram({ ...body, pad: '' }).length) })

describe('RendezvousServer (protocol v2)', () => {
  it('answers a request without a cookie with a retry no larger than it, and registers only with the cookie', async () => {
    const { server, at } = await startServer()
    const p = await peer(at)
    const body = registerBody('n:4127', freshNonce())
    p.raw(datagram(body))
    const retry = await p.wait(m => m.t === 'retry')
    expect(retry).toMatchObject({ t: 'retry' })
    expect(protocol.encode(retry as Msg).length).toBeLessThanOrEqual(datagram(body).length)
    expect(server.stats()).toMatchObject({ activeRegistrations: 0, retries: 1 })
    // A cookie for another source does not count
    p.raw(datagram({ ...body, cookie: 'ab'.repeat(16) }))
    await sleep(50)
    expect(server.stats()).toMatchObject({ activeRegistrations: 0, retries: 2 })
    const r = await p.register('n:4127', body.nonce as string)
    expect(r).toMatchObject({ t: 'registered', observed: p.address })
    expect(server.stats().activeRegistrations).toBe(1)
  })

  it('answers malformed, oversized and unexpected datagrams only when the error is no larger, and drops junk', async () => {
    const { server, at } = await startServer()
    const p = await peer(at)
    const bad = [
      Buffer.from('garbage'),
      Buffer.from('UTPRV\x01{"t":"keepalive","nonce":"abababababababab","pad":"' + 'x'.repeat(120) + '"}', 'latin1'),
      Buffer.from('UTPRV\x02{not json at all, but long enough to carry an error reply back to its sender......}', 'latin1'),
      Buffer.concat([Buffer.from('UTPRV\x02', 'latin1'), Buffer.alloc(1500, 0x20)]),
      datagram({ t: 'probe', pair: 'ab'.repeat(16), nonce: 'cd'.repeat(8), mac: 'ef'.repeat(16), pad: 'x'.repeat(80) }),
      Buffer.from('UTPRV\x02{}', 'latin1')
    ]
    for (const b of bad) p.raw(b)
    await sleep(200)
    const codes = p.inbox.map(m => errorCode(m)).sort()
    expect(codes).toEqual(['ERR_MALFORMED', 'ERR_TOO_LARGE', 'ERR_UNEXPECTED', 'ERR_VERSION'])
    expect(p.inbox.find(m => errorCode(m) === 'ERR_UNEXPECTED')).toEqual({ t: 'error', code: 'ERR_UNEXPECTED', message: 'a server does not take "probe" messages' })
    expect(server.stats().refusals).toEqual({ ERR_MALFORMED: 1, ERR_TOO_LARGE: 1, ERR_UNEXPECTED: 1, ERR_VERSION: 1 })
    expect(p.bytesIn).toBeLessThanOrEqual(bad.slice(1).reduce((n, b) => n + b.length, 0))
    expect(server.stats().errors).toBe(6)
  })

  it('pairs two registrants: peer carries the other\'s PAKE message, confirms are forwarded until acked', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const events: unknown[] = []
    server.on('paired', (e) => events.push(e))
    const { a, b, na, nb } = await paired(at, 'n:77')
    const pa = a.all('peer')[0]
    expect(pa).toMatchObject({ role: 'connect', public: b.address, pake: PAKE })
    expect(b.all('peer')[0]).toMatchObject({ role: 'accept', public: a.address })
    expect(events).toEqual([{ key: 'n:77', connect: a.address, accept: b.address }])
    a.send({ t: 'confirm', nonce: na, mac: CONFIRM_MAC })
    expect(await b.wait(m => m.t === 'peer-confirm')).toEqual({ t: 'peer-confirm', nonce: nb, mac: CONFIRM_MAC })
    await sleep(1100)
    expect(b.all('peer-confirm').length).toBeGreaterThanOrEqual(2) // repeated: not acked yet
    b.send({ t: 'peer-confirm-ack', nonce: nb })
    await sleep(100)
    const n = b.all('peer-confirm').length
    await sleep(700)
    expect(b.all('peer-confirm').length).toBe(n)
    // A different MAC later does not replace the first
    b.send({ t: 'confirm', nonce: nb, mac: 'aa'.repeat(32) })
    a.send({ t: 'confirm', nonce: na, mac: 'bb'.repeat(32) })
    expect(await a.wait(m => m.t === 'peer-confirm')).toMatchObject({ mac: 'aa'.repeat(32) })
    await sleep(50)
    expect(b.all('peer-confirm').every(m => m.mac === CONFIRM_MAC)).toBe(true)
  })

  it('peer-confirm repeats until acked, ten more times at most; a second confirm neither doubles nor restarts it', async () => {
    const { at } = await startServer({ mappingCheck: false })
    const { a, b, na, nb } = await paired(at, 'n:79')
    a.send({ t: 'confirm', nonce: na, mac: CONFIRM_MAC })
    a.send({ t: 'confirm', nonce: na, mac: CONFIRM_MAC })
    await sleep(100)
    expect(b.all('peer-confirm')).toHaveLength(1)
    for (let waited = 0; b.all('peer-confirm').length < 11 && waited < 8000; waited += 100) await sleep(100)
    await sleep(700)
    expect(b.all('peer-confirm')).toHaveLength(11)
    // Acked, a later confirm from A is not sent on
    b.send({ t: 'peer-confirm-ack', nonce: nb })
    await sleep(100)
    a.send({ t: 'confirm', nonce: na, mac: CONFIRM_MAC })
    await sleep(200)
    expect(b.all('peer-confirm')).toHaveLength(11)
  }, 15_000)

  it('peer tells each side the NAT type the other declared, and nothing when it declared none', async () => {
    const { at } = await startServer({ mappingCheck: false })
    const a = await peer(at)
    const b = await peer(at)
    expect(errorCode(await a.register('n:78', freshNonce(), { nat: 'port-restricted' }))).toBe('registered')
    expect(errorCode(await b.register('n:78', freshNonce()))).toBe('registered')
    expect(await b.wait(m => m.t === 'peer')).toMatchObject({ peerNat: 'port-restricted' })
    expect(await a.wait(m => m.t === 'peer')).not.toHaveProperty('peerNat')
  })

  it('from an unverified source, a client\'s messages that need no cookie are ignored without a word; a server\'s get ERR_UNEXPECTED', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const p = await peer(at)
    const nonce = freshNonce()
    const pad = 'x'.repeat(200) // room for an error reply: an unverified source gets none larger than its request
    const quiet = [
      { t: 'peer-ack', nonce },
      { t: 'confirm', nonce, mac: CONFIRM_MAC },
      { t: 'peer-confirm-ack', nonce },
      { t: 'pake-failed', nonce },
      { t: 'bye', nonce },
      { t: 'check', nonce },
      { t: 'peer-moved-ack', nonce, seq: 1 }
    ]
    for (const m of quiet) p.raw(datagram({ ...m, pad }))
    await sleep(150)
    expect(p.inbox).toEqual([])
    expect(server.stats()).toMatchObject({ errors: quiet.length, refusals: {} })
    // Those that need a cookie get a retry; what only a server sends is refused, naming it
    for (const t of ['register', 'keepalive', 'relay-request']) {
      p.raw(datagram({ ...(t === 'register' ? registerBody('n:80', nonce) : { t, nonce }), pad }))
    }
    p.raw(datagram({ t: 'keepalive-ack', nonce, observed: p.address, pad }))
    await sleep(150)
    expect(p.inbox.map(m => m.t)).toEqual(['retry', 'retry', 'retry', 'error'])
    expect(p.inbox[3]).toEqual({ t: 'error', code: 'ERR_UNEXPECTED', message: 'a server does not take "keepalive-ack" messages' })
  })

  it('measures each peer\'s NAT mapping on a second port (with a cookie), waits for both, and tells each', async () => {
    const { at } = await startServer({ mappingWaitMs: 3000 })
    const a = await peer(at)
    const b = await peer(at)
    const bCheck = await peer(at) // B's checks leave from another port, as a symmetric NAT would map them
    const na = freshNonce()
    const nb = freshNonce()
    const ra = await a.register('n:95014', na) as ReturnType<typeof protocol.decode> & { checkPort?: number }
    const checkPort = ra.checkPort as number
    expect(checkPort).toBeGreaterThan(0)
    expect(checkPort).not.toBe(at.port)
    // A's cookie from the main port is valid at the check port too (same address and port)
    expect(await a.request({ t: 'check', nonce: na }, m => m.t === 'check-ack', 500, checkPort)).toEqual({ t: 'check-ack', nonce: na, observed: a.address })
    expect(a.all('retry')).toHaveLength(1)
    const t0 = Date.now()
    await b.register('n:95014', nb)
    await sleep(150)
    expect(a.all('peer')).toHaveLength(0)
    // B's check port has no cookie yet: retry first (from the check port), then the ack
    expect(await bCheck.request({ t: 'check', nonce: nb, pad: 'x'.repeat(40) }, m => m.t === 'check-ack', 500, checkPort)).toMatchObject({ observed: bCheck.address })
    expect(await a.wait(m => m.t === 'peer', 2000)).toMatchObject({ role: 'connect', mapping: 'independent', peerMapping: 'dependent' })
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(await b.wait(m => m.t === 'peer')).toMatchObject({ role: 'accept', mapping: 'dependent', peerMapping: 'independent' })
    // A check naming someone else's registration from another IP gets an error, not an ack
    const stranger = await peer(at, '127.0.0.2')
    expect(errorCode(await stranger.request({ t: 'check', nonce: na, pad: 'x'.repeat(40) }, m => m.t === 'error' || m.t === 'check-ack', 500, checkPort))).toBe('ERR_NOT_REGISTERED')
  })

  it('the check port takes only checks: anything else, junk or oversized, is dropped and counted; a check needs a cookie there', async () => {
    const { server, at } = await startServer({ maxMessageSize: 300, unverifiedRate: { perSecond: 0.01, burst: 2 } })
    const a = await peer(at)
    const na = freshNonce()
    const checkPort = (await a.register('n:31337', na) as { checkPort: number }).checkPort // spends an unverified token
    const cookie = a.cookie as string
    const errors = server.stats().errors
    const heard = a.inbox.length
    a.raw(Buffer.from('not our protocol at all'), checkPort)
    a.raw(Buffer.from('UTPRV\x02{not json}', 'latin1'), checkPort)
    a.raw(datagram({ t: 'keepalive', nonce: na, cookie }), checkPort)
    a.raw(padded({ t: 'check', nonce: na, cookie }, 301), checkPort)
    await sleep(150)
    expect(a.inbox.length).toBe(heard)
    expect(server.stats().errors).toBe(errors + 4)
    // A check of exactly maxMessageSize is read
    a.raw(padded({ t: 'check', nonce: na, cookie }, 300), checkPort)
    expect(await a.wait(m => m.t === 'check-ack', 500, heard)).toEqual({ t: 'check-ack', nonce: na, observed: a.address })
    // A check naming no registration gets an error that says so
    const unknown = freshNonce()
    a.raw(datagram({ t: 'check', nonce: unknown, cookie }), checkPort)
    expect(await a.wait(m => m.t === 'error', 500, heard)).toEqual({ t: 'error', code: 'ERR_NOT_REGISTERED', message: 'no such registration (expired?): register again', nonce: unknown })
    // Another port of the same IP, without a cookie: a retry (the last unverified token), never an ack
    const other = await peer(at)
    other.raw(padded({ t: 'check', nonce: na }, 120), checkPort)
    expect(await other.wait(m => m.t !== 'retry', 200)).toBeNull()
    expect(other.all('retry')).toHaveLength(1)
    // With the unverified budget spent, a cookie-less check gets nothing at all
    const third = await peer(at)
    third.raw(padded({ t: 'check', nonce: na }, 120), checkPort)
    await sleep(150)
    expect(third.inbox).toHaveLength(0)
    expect(server.stats()).toMatchObject({ unverifiedDropped: 1, retries: 2 })
  })

  it('checks count against their IP\'s rate limit like any verified request', async () => {
    const { server, at } = await startServer({ rateLimit: { perSecond: 0.01, burst: 3 } })
    const a = await peer(at)
    const na = freshNonce()
    const checkPort = (await a.register('n:31338', na) as { checkPort: number }).checkPort // one token
    for (let i = 0; i < 3; i++) a.send({ t: 'check', nonce: na }, checkPort)
    await sleep(150)
    expect(a.all('check-ack')).toHaveLength(2)
    expect(server.stats()).toMatchObject({ rateLimited: 1, errors: 1 })
  })

  it('announces a pairing without mappings when the checks never come (mappingWaitMs)', async () => {
    const { at } = await startServer({ mappingWaitMs: 200 })
    const { a } = await paired(at, 'n:47068')
    const p = a.all('peer')[0]
    expect(p.mapping).toBeUndefined()
    expect(p.peerMapping).toBeUndefined()
  })

  it('moves a registration only to an address that shows a cookie for itself, and tells the other peer', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const { a, b, na, nb } = await paired(at, 'n:18411')
    const aMoved = await peer(at) // A's NAT rebound: the same registration now speaks from another port
    aMoved.cookie = a.cookie // the old cookie is not valid for the new port
    const ka = await aMoved.request({ t: 'keepalive', nonce: na }, m => m.t === 'keepalive-ack', 1000)
    expect(aMoved.all('retry')).toHaveLength(1)
    expect(ka).toMatchObject({ nonce: na, observed: aMoved.address })
    const moved = await b.wait(m => m.t === 'peer-moved')
    expect(moved).toEqual({ t: 'peer-moved', nonce: nb, public: aMoved.address, seq: 1 })
    await sleep(400)
    expect(b.all('peer-moved').length).toBeGreaterThanOrEqual(2) // repeated: no ack yet
    b.send({ t: 'peer-moved-ack', nonce: nb, seq: 0 }) // an ack of another move does not stop it
    const before = b.all('peer-moved').length
    await sleep(700)
    expect(b.all('peer-moved').length).toBeGreaterThan(before)
    b.send({ t: 'peer-moved-ack', nonce: nb, seq: 1 })
    await sleep(100)
    const count = b.all('peer-moved').length
    await sleep(700)
    expect(b.all('peer-moved').length).toBe(count)
    expect(server.stats().moves).toBe(1)
    // The old address is no longer the registration's: its bye is ignored
    a.send({ t: 'bye', nonce: na })
    await sleep(50)
    expect(server.stats().activeRegistrations).toBe(2)
    aMoved.send({ t: 'bye', nonce: na })
    await sleep(50)
    expect(server.stats().activeRegistrations).toBe(1)
  })

  it('a move before pairing tells nobody; the second peer\'s move reaches the first; once the other left, a move tells nobody', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const moveTo = async (p: RendezvousPeer, nonce: string): Promise<RendezvousPeer> => {
      const moved = await peer(at)
      moved.cookie = p.cookie
      expect(await moved.request({ t: 'keepalive', nonce }, m => m.t === 'keepalive-ack', 1000)).toMatchObject({ nonce, observed: moved.address })
      return moved
    }
    const lone = await peer(at)
    const nl = freshNonce()
    expect(errorCode(await lone.register('n:18412', nl))).toBe('registered')
    await moveTo(lone, nl)
    expect(server.stats()).toMatchObject({ moves: 0, errors: 0 })
    const { a, b, na, nb } = await paired(at, 'n:18413')
    const events: unknown[] = []
    server.on('moved', e => events.push(e))
    const bMoved = await moveTo(b, nb)
    expect(await a.wait(m => m.t === 'peer-moved')).toEqual({ t: 'peer-moved', nonce: na, public: bMoved.address, seq: 1 })
    expect(server.stats()).toMatchObject({ moves: 1, errors: 0 })
    expect(events).toEqual([{ key: 'n:18413', from: nb, to: bMoved.address }])
    // Unacknowledged, it is repeated every 300 ms, 10 more times at most
    for (let waited = 0; a.all('peer-moved').length < 11 && waited < 8000; waited += 100) await sleep(100)
    await sleep(700)
    expect(a.all('peer-moved')).toHaveLength(11)
    a.send({ t: 'bye', nonce: na })
    await sleep(100)
    const heard = bMoved.inbox.length
    const aHeard = a.all('peer-moved').length
    await moveTo(bMoved, nb)
    await sleep(200)
    expect(server.stats()).toMatchObject({ moves: 1, errors: 0 })
    expect(a.all('peer-moved')).toHaveLength(aHeard)
    expect(bMoved.inbox.length).toBe(heard)
  }, 15_000)

  it('rate-limits a flooding verified source without disturbing a pairing from elsewhere', async () => {
    const { server, at } = await startServer({ rateLimit: { perSecond: 10, burst: 20 }, mappingCheck: false })
    const flooder = await peer(at, '127.0.0.2')
    const nf = freshNonce()
    await flooder.register('n:9', nf)
    const before = flooder.inbox.length
    for (let i = 0; i < 10; i++) {
      for (let j = 0; j < 50; j++) flooder.send({ t: 'keepalive', nonce: nf })
      await sleep(20)
    }
    await sleep(100)
    const replies = flooder.inbox.length - before
    expect(replies).toBeGreaterThanOrEqual(15)
    expect(replies).toBeLessThan(40) // the burst plus a few refills, not 500
    const { rateLimited, errors } = server.stats()
    expect(rateLimited).toBeGreaterThan(300)
    expect(errors).toBe(rateLimited) // each dropped datagram is an error too, and nothing else went wrong
    await paired(at, 'n:10')
  })

  it('a key pairs once: a third registrant is refused, and the key stays burned after the pairing ends', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const { a, na } = await paired(at, 'n:50500')
    const c = await peer(at)
    const nc = freshNonce()
    expect(await c.register('n:50500', nc)).toEqual({ t: 'error', code: 'ERR_CODE_BURNED', message: 'this code was already used: make a new one', nonce: nc })
    a.send({ t: 'bye', nonce: na })
    await sleep(50)
    expect(server.stats()).toMatchObject({ activePairings: 0, burnedKeys: 1 })
    expect(errorCode(await c.register('n:50500', freshNonce()))).toBe('ERR_CODE_BURNED')
    // Another key is unaffected
    expect(errorCode(await c.register('n:50501', freshNonce()))).toBe('registered')
  })

  it('pake-failed burns the key for burnMs and drops both registrations', async () => {
    const { server, at } = await startServer({ mappingCheck: false, burnMs: 400 })
    const burned: unknown[] = []
    server.on('burned', (e) => burned.push(e))
    const { b, nb } = await paired(at, 'n:31337')
    b.send({ t: 'pake-failed', nonce: nb })
    await sleep(50)
    expect(server.stats()).toMatchObject({ activeRegistrations: 0, pakeFailures: 1, burnedKeys: 1 })
    expect(burned).toEqual([{ key: 'n:31337', reason: 'pake-failed' }])
    const c = await peer(at)
    expect(errorCode(await c.register('n:31337', freshNonce()))).toBe('ERR_CODE_BURNED')
    await sleep(450)
    const nc = freshNonce()
    expect(errorCode(await c.register('n:31337', nc))).toBe('registered')
    // Reported by a registrant still waiting for its peer, it burns the key and drops that registration
    c.send({ t: 'pake-failed', nonce: nc })
    await sleep(50)
    expect(server.stats()).toMatchObject({ activeRegistrations: 0, pakeFailures: 2, burnedKeys: 1 })
    expect(burned).toHaveLength(2)
  })

  it('a bye that says its peer gave up is passed on (peer-gone, again to its confirm, relay-request and keepalive); a plain bye is not', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    // A plain bye (a connection made, its socket closed) ends the pairing and tells the other nothing
    const first = await paired(at, 'n:4001')
    first.a.send({ t: 'bye', nonce: first.na })
    await sleep(100)
    expect(first.b.all('peer-gone')).toEqual([])
    first.b.send({ t: 'confirm', nonce: first.nb, mac: CONFIRM_MAC })
    await sleep(100)
    expect(first.b.all('peer-gone')).toEqual([])
    expect(server.stats().gaveUp).toBe(0)
    // With gaveUp, the other peer is told at once, with the code
    const { a, b, na, nb } = await paired(at, 'n:4002')
    b.send({ t: 'bye', nonce: nb, gaveUp: 'ERR_PUNCH_FAILED' })
    expect(await a.wait(m => m.t === 'peer-gone')).toEqual({ t: 'peer-gone', nonce: na, code: 'ERR_PUNCH_FAILED' })
    expect(server.stats()).toMatchObject({ gaveUp: 1, activePairings: 0, burnedKeys: 2 })
    // It may have been lost: each later confirm, relay request or keepalive of that peer is answered the same way
    for (const t of ['confirm', 'relay-request', 'keepalive']) {
      const from = a.inbox.length
      a.send(t === 'confirm' ? { t, nonce: na, mac: CONFIRM_MAC } : { t, nonce: na })
      expect(await a.wait(m => m.t === 'peer-gone', 1000, from), t).toEqual({ t: 'peer-gone', nonce: na, code: 'ERR_PUNCH_FAILED' })
    }
    // The one that gave up is gone; a bye with gaveUp from a registrant not yet paired tells nobody
    expect(errorCode(await b.request({ t: 'keepalive', nonce: nb }, m => m.t === 'error'))).toBe('ERR_NOT_REGISTERED')
    const c = await peer(at)
    const nc = freshNonce()
    expect(errorCode(await c.register('n:4003', nc))).toBe('registered')
    c.send({ t: 'bye', nonce: nc, gaveUp: 'ABORT_ERR' })
    expect(errorCode(await c.request({ t: 'keepalive', nonce: nc }, m => m.t === 'error'))).toBe('ERR_NOT_REGISTERED')
    expect(server.stats().gaveUp).toBe(1)
    // A gaveUp that is not an error code makes the bye malformed: counted, and the registration stays
    const before = server.stats()
    a.send({ t: 'bye', nonce: na, gaveUp: 'gave up' })
    await sleep(100)
    expect(server.stats()).toMatchObject({ errors: before.errors + 1, activeRegistrations: before.activeRegistrations })
  })

  it('expires registrations without keepalives and keeps those with', async () => {
    const { server, at } = await startServer({ registrationTtlMs: 300 })
    const quiet = await peer(at)
    const lively = await peer(at)
    const nq = freshNonce()
    const nl = freshNonce()
    await quiet.register('n:71', nq)
    await lively.register('n:72', nl)
    expect(server.stats().activeRegistrations).toBe(2)
    for (let i = 0; i < 8; i++) {
      lively.send({ t: 'keepalive', nonce: nl })
      await sleep(100)
    }
    expect(server.stats()).toMatchObject({ activeRegistrations: 1, expired: 1 })
    // The expired client hears so (its cookie still verifies it), then registers again
    expect(await quiet.request({ t: 'keepalive', nonce: nq }, m => m.t === 'error')).toMatchObject({ code: 'ERR_NOT_REGISTERED', nonce: nq })
    expect(errorCode(await quiet.register('n:71', freshNonce()))).toBe('registered')
  })

  it('a registered peer sending what only peers exchange gets ERR_UNEXPECTED naming it; listen twice and address() early say why', async () => {
    const early = new RendezvousServer({ port: 0, host: '127.0.0.1' })
    servers.push(early)
    expect(() => early.address()).toThrow('RendezvousServer is not listening')
    const { server, at } = await startServer({ mappingCheck: false })
    await expect(server.listen()).rejects.toThrow('RendezvousServer is already listening')
    const p = await peer(at)
    const n = freshNonce()
    expect(errorCode(await p.register('n:6100', n))).toBe('registered')
    const errorsBefore = server.stats().errors
    const reply = await p.request({ t: 'probe', pair: 'ab'.repeat(16), nonce: n, mac: 'ef'.repeat(16) }, m => m.t === 'error')
    expect(reply).toEqual({ t: 'error', code: 'ERR_UNEXPECTED', message: 'a server does not take "probe" messages' })
    expect(server.stats().errors).toBe(errorsBefore + 1)
    expect(server.stats().refusals).toMatchObject({ ERR_UNEXPECTED: 1 })
    expect(server.stats().activeRegistrations).toBe(1)
  })

  it('listen() says when it is listening; close() frees its ports and timers, and it can listen again', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
    const before = timers()
    const server = new RendezvousServer({ port: 0, host: '127.0.0.1' })
    servers.push(server)
    const heard = new Promise(resolve => server.once('listening', resolve))
    const a = await server.listen()
    expect(await heard).toEqual(a)
    expect(server.stats().uptimeSeconds).toBe(0)
    expect(timers()).toBeGreaterThan(before) // the sweeper
    await server.close()
    expect(timers()).toBe(before)
    expect(() => server.address()).toThrow('RendezvousServer is not listening')
    // Its UDP and TCP ports are free again
    const udp = dgram.createSocket('udp4')
    await new Promise<void>((resolve, reject) => { udp.once('error', reject); udp.bind(a.port, '127.0.0.1', resolve) })
    udp.close()
    const tcp = net.createServer()
    await new Promise<void>((resolve, reject) => { tcp.once('error', reject); tcp.listen(a.port, '127.0.0.1', resolve) })
    // With its TCP port taken, listening on that port fails with the bind's error instead of waiting for ever
    const again = new RendezvousServer({ port: a.port, host: '127.0.0.1', httpHost: '127.0.0.1' })
    servers.push(again)
    await expect(again.listen()).rejects.toMatchObject({ code: 'EADDRINUSE' })
    // ... and listens with HTTP off, binding no TCP port
    const noHttp = new RendezvousServer({ port: a.port, host: '127.0.0.1', http: false })
    servers.push(noHttp)
    expect(await noHttp.listen()).toEqual(a)
    await new Promise<void>(resolve => tcp.close(() => resolve()))
    // The closed server listens again
    expect((await server.listen()).port).toBeGreaterThan(0)
  })

  it('to an unverified source a reply goes out only when no larger than the request; junk gets none; maxMessageSize is the limit', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const p = await peer(at)
    const retrySize = protocol.encode({ t: 'retry', cookie: '0'.repeat(32) } as Msg).length
    const keepalive = (size: number): Buffer => padded({ t: 'keepalive', nonce: freshNonce() }, size)
    expect(keepalive(retrySize)).toHaveLength(retrySize)
    // One byte short of its retry: nothing goes back, and it counts as an error, not a retry
    p.raw(keepalive(retrySize - 1))
    await sleep(150)
    expect(p.bytesIn).toBe(0)
    expect(server.stats()).toMatchObject({ retries: 0, errors: 1 })
    // Exactly its size: the retry goes out
    p.raw(keepalive(retrySize))
    expect(await p.wait(m => m.t === 'retry', 1000)).not.toBeNull()
    expect(p.bytesIn).toBe(retrySize)
    expect(server.stats()).toMatchObject({ retries: 1, errors: 1 })
    // Not our protocol: no reply however large (an error reply would fit in 600 bytes)
    p.raw(Buffer.alloc(600, 0x78))
    await sleep(150)
    expect(p.inbox).toHaveLength(1)
    expect(server.stats()).toMatchObject({ errors: 2, refusals: {} })
    // A message of exactly maxMessageSize is read (a retry); one byte more is refused as too large
    p.raw(padded(registerBody('n:7', freshNonce()), 1200))
    expect(await p.wait(m => m.t === 'retry', 1000, 1)).not.toBeNull()
    p.raw(padded(registerBody('n:7', freshNonce()), 1201))
    expect(await p.wait(m => m.t === 'error', 1000)).toEqual({ t: 'error', code: 'ERR_TOO_LARGE', message: 'message of 1201 bytes exceeds 1200' })
    expect(server.stats()).toMatchObject({ retries: 2, errors: 3, refusals: { ERR_TOO_LARGE: 1 } })
  })

  it('unverified sources share one budget (unverifiedRate): past it, malformed and cookie-less requests go unanswered and are counted', async () => {
    const { server, at } = await startServer({ mappingCheck: false, unverifiedRate: { perSecond: 1, burst: 2 } })
    const p = await peer(at)
    const malformed = Buffer.from('UTPRV\x02{not json at all, but long enough to carry an error reply back to its sender......}', 'latin1')
    p.raw(malformed)
    p.raw(datagram(registerBody('n:8', freshNonce())))
    p.raw(malformed)
    p.raw(datagram(registerBody('n:8', freshNonce())))
    await sleep(200)
    expect(p.inbox.map(m => m.t)).toEqual(['error', 'retry'])
    expect(server.stats()).toMatchObject({ unverifiedDropped: 2, retries: 1 })
  })

  it('a registration\'s address is its IP and port: the same port on another IP cannot end it', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const p = await peer(at)
    const n = freshNonce()
    expect(errorCode(await p.register('n:6103', n))).toBe('registered')
    const twin = await peer(at, '127.0.0.2', p.address.port)
    twin.raw(datagram({ t: 'bye', nonce: n }))
    await sleep(150)
    expect(server.stats().activeRegistrations).toBe(1)
    p.raw(datagram({ t: 'bye', nonce: n }))
    await sleep(150)
    expect(server.stats().activeRegistrations).toBe(0)
  })

  it('repeats peer until each side acks (6 more at most), and starts both after twice the larger RTT that keepalive or register gave', async () => {
    const { at } = await startServer({ mappingCheck: false })
    const [a, b] = [await peer(at), await peer(at)]
    const [na, nb] = [freshNonce(), freshNonce()]
    expect(errorCode(await a.register('n:6104', na))).toBe('registered')
    // a's RTT comes from a keepalive, and one without rtt keeps it; b's comes with its register
    expect(await a.request({ t: 'keepalive', nonce: na, rtt: 400 }, m => m.t === 'keepalive-ack')).not.toBeNull()
    expect(await a.request({ t: 'keepalive', nonce: na }, m => m.t === 'keepalive-ack')).not.toBeNull()
    expect(errorCode(await b.register('n:6104', nb, { rtt: 200 }))).toBe('registered')
    const [pa, pb] = await Promise.all([a.wait(m => m.t === 'peer', 2000), b.wait(m => m.t === 'peer', 2000)]) as Array<Extract<Msg, { t: 'peer' }>>
    a.send({ t: 'peer-ack', nonce: na })
    // startAt is 2 * 400 ms away (more than startDelayMs, 300); each hears it less half its own RTT
    expect(pa.startInMs).toBeGreaterThan(500)
    expect(pa.startInMs).toBeLessThanOrEqual(600)
    expect(pb.startInMs).toBeGreaterThan(600)
    expect(pb.startInMs).toBeLessThanOrEqual(700)
    // Every 500 ms: wait for the seventh, then for a repeat that must not come
    for (let waited = 0; b.all('peer').length < 7 && waited < 8000; waited += 100) await sleep(100)
    await sleep(1200)
    expect(a.all('peer')).toHaveLength(1)
    expect(b.all('peer')).toHaveLength(7)
  }, 15_000)

  it('a nonce registered under one key is refused under another (ERR_NONCE_IN_USE); its registration stays', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const p = await peer(at)
    const n = freshNonce()
    expect(errorCode(await p.register('n:6101', n))).toBe('registered')
    // Before (the check disabled): 'registered', the reply for the registration under n:6101
    expect(await p.register('n:6102', n)).toEqual({ t: 'error', code: 'ERR_NONCE_IN_USE', message: 'nonce already registered under another key', nonce: n })
    expect(server.stats()).toMatchObject({ activeRegistrations: 1, activePairings: 0 })
    // The nonce still waits under its first key: a peer there pairs with it, nobody waits under the second
    const q = await peer(at)
    expect(errorCode(await q.register('n:6101', freshNonce()))).toBe('registered')
    expect(await p.wait(m => m.t === 'peer', 2000)).toMatchObject({ t: 'peer', nonce: n })
    const r = await peer(at)
    expect(errorCode(await r.register('n:6102', freshNonce()))).toBe('registered')
    expect(await r.wait(m => m.t === 'peer', 300)).toBeNull()
  })

  it('a client restarted on the same address and port replaces its waiting registration instead of pairing with it', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const p = await peer(at)
    const before = freshNonce()
    const after = freshNonce()
    expect(errorCode(await p.register('n:6201', before))).toBe('registered')
    expect(errorCode(await p.register('n:6201', after))).toBe('registered')
    // Before (replacement disabled): the client paired with its own old registration (activePairings 1)
    expect(server.stats()).toMatchObject({ activeRegistrations: 1, activePairings: 0 })
    // The real peer pairs with the restarted client, which hears of it under its new nonce
    const q = await peer(at)
    expect(errorCode(await q.register('n:6201', freshNonce()))).toBe('registered')
    expect(await p.wait(m => m.t === 'peer', 2000)).toMatchObject({ t: 'peer', nonce: after })
    expect(p.all('peer').map(m => m.nonce)).toEqual([after])
    // The old registration is gone: its nonce is no longer known
    expect(await p.request({ t: 'keepalive', nonce: before }, m => m.t === 'error')).toEqual({ t: 'error', code: 'ERR_NOT_REGISTERED', message: 'no such registration (expired?): register again', nonce: before })
  })

  it('a register repeated from a new address (with its cookie) moves the registration there; repeated from the same one it moves nothing', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const a = await peer(at)
    const na = freshNonce()
    expect(errorCode(await a.register('n:6202', na))).toBe('registered')
    // The client's NAT rebound before its reply came: the repeat arrives from another port
    const rebound = await peer(at)
    expect(await rebound.register('n:6202', na)).toMatchObject({ t: 'registered', observed: rebound.address })
    expect(a.all('registered')).toHaveLength(1)
    const b = await peer(at)
    expect(errorCode(await b.register('n:6202', freshNonce()))).toBe('registered')
    expect(await b.wait(m => m.t === 'peer', 2000)).toMatchObject({ public: rebound.address })
    // A repeat from where it already is (its reply was lost) is no move: the peer hears nothing
    expect(errorCode(await rebound.register('n:6202', na))).toBe('registered')
    await sleep(100)
    expect(b.all('peer-moved')).toHaveLength(0)
    expect(server.stats().moves).toBe(0)
  })

  it('a second registrant declaring the waiting one\'s side is refused (ERR_SAME_ROLE); the same client restarted replaces it', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const a = await peer(at)
    expect(errorCode(await a.register('n:6203', freshNonce(), { side: 'send' }))).toBe('registered')
    const b = await peer(at)
    const nb = freshNonce()
    expect(await b.register('n:6203', nb, { side: 'send' })).toEqual({ t: 'error', code: 'ERR_SAME_ROLE', message: 'the peer waiting under this code is also a "send" side', nonce: nb })
    // From the waiting one's own address and port it is that client restarted, not a second sender
    const restarted = freshNonce()
    expect(errorCode(await a.register('n:6203', restarted, { side: 'send' }))).toBe('registered')
    expect(server.stats()).toMatchObject({ activeRegistrations: 1, refusals: { ERR_SAME_ROLE: 1 } })
    const c = await peer(at)
    expect(errorCode(await c.register('n:6203', freshNonce(), { side: 'receive' }))).toBe('registered')
    expect(await a.wait(m => m.t === 'peer', 2000)).toMatchObject({ nonce: restarted })
  })

  it('refuses registrations beyond maxRegistrations and beyond the per-prefix quota', async () => {
    const { at } = await startServer({ maxRegistrations: 2 })
    const s = await peer(at)
    const codes = [await s.register('n:1', freshNonce()), await s.register('n:2', freshNonce())].map(errorCode)
    expect(codes).toEqual(['registered', 'registered'])
    const n3 = freshNonce()
    expect(await s.register('n:3', n3)).toEqual({ t: 'error', code: 'ERR_FULL', message: 'too many registrations, try again later', nonce: n3 })
    const q = await startServer({ registrationsPerPrefix: 2 })
    const t = await peer(q.at, '127.0.0.3')
    const u = await peer(q.at, '127.0.0.4') // the same /24
    const v = await peer(q.at, '127.0.1.4') // another /24
    expect([await t.register('n:1', freshNonce()), await u.register('n:2', freshNonce()), await u.register('n:3', freshNonce()), await v.register('n:4', freshNonce())].map(errorCode))
      .toEqual(['registered', 'registered', 'ERR_RATE_LIMITED', 'registered'])
    expect(q.server.stats()).toMatchObject({ quotaRefused: 1, refusals: { ERR_RATE_LIMITED: 1 } })
    expect(u.all('error')).toMatchObject([{ code: 'ERR_RATE_LIMITED', message: 'too many registrations from this network or in total, try again later' }])
  })

  it('serves /healthz and /stats over HTTP on the same port number, on loopback', async () => {
    const { at } = await startServer()
    const health = await fetch(`http://127.0.0.1:${at.port}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.text()).toBe('ok')
    const stats = await fetch(`http://127.0.0.1:${at.port}/stats`)
    expect(stats.status).toBe(200)
    expect(stats.headers.get('content-type')).toContain('application/json')
    expect(await stats.json()).toMatchObject({ registrations: 0, pairings: 0, relayedBytes: 0, activeRelays: 0, errors: 0, retries: 0 })
    expect((await fetch(`http://127.0.0.1:${at.port}/nope`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${at.port}/healthz`, { method: 'POST' })).status).toBe(405)
  })

  it('binds one socket per local address for a wildcard host and answers from the address asked', async () => {
    const { server } = await startServer({ host: '0.0.0.0', mappingCheck: false })
    const { port } = server.address()
    expect(server.address().address).toBe('0.0.0.0')
    const s = dgram.createSocket('udp4')
    await new Promise<void>(resolve => s.bind(0, '127.0.0.1', () => resolve()))
    const from = new Promise<string>(resolve => s.once('message', (_m, rinfo) => resolve(rinfo.address)))
    s.send(datagram(registerBody('n:5', freshNonce())), port, '127.0.0.1')
    expect(await from).toBe('127.0.0.1')
    s.close()
  })
})
