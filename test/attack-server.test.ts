// Attacks on the rendezvous server by strangers on loopback: forged sources (test/helpers/forge.ts, root),
// nameplate guessing from many addresses, registration hijacking with a sniffed nonce, reflection. Each test
// logs its measure ("MEASURE ...") and failed on the v1 server of main (numbers in the CHANGELOG / report).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

import type * as ServerModule from '../lib/server/server'
import { Forger } from './helpers/forge'
import { datagram, freshNonce, pairUp, registerBody, RendezvousPeer, type Msg } from './helpers/rendezvous-peer'
import { requireFromRoot, sleep } from './helpers/utp'

const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
type Server = ServerModule.RendezvousServer
type At = { address: string, port: number }

const servers: Server[] = []
const peers: RendezvousPeer[] = []
let forger: Forger

beforeAll(() => { forger = new Forger() })
afterAll(() => forger.close())
afterEach(async () => {
  for (const p of peers.splice(0)) p.close()
  await Promise.all(servers.splice(0).map(async s => await s.close()))
})

async function startServer (options: ServerModule.RendezvousServerOptions = {}): Promise<{ server: Server, at: At }> {
  const server = new RendezvousServer({ port: 0, host: '127.0.0.1', http: false, ...options })
  servers.push(server)
  const { port } = await server.listen()
  return { server, at: { address: '127.0.0.1', port } }
}

async function peer (at: At, host = '127.0.0.1'): Promise<RendezvousPeer> {
  const p = await RendezvousPeer.open(at, host)
  peers.push(p)
  return p
}

async function paired (at: At, key: string, hosts: [string, string] = ['127.0.0.1', '127.0.0.1']): Promise<Awaited<ReturnType<typeof pairUp>>> {
  const r = await pairUp(at, key, hosts)
  peers.push(r.a, r.b)
  return r
}

/** Register like a real client: repeat every 500 ms until answered, at most `tries` times */
async function registerPatiently (p: RendezvousPeer, key: string, nonce: string, tries = 6): Promise<Msg | null> {
  for (let i = 0; i < tries; i++) {
    const r = await p.register(key, nonce, {}, 500)
    if (r !== null) return r
  }
  return null
}

const measure = (what: string, value: unknown): void => console.log(`MEASURE ${what}: ${JSON.stringify(value)}`)

describe('attacks on the rendezvous server', () => {
  it('forged registers leave no state: 11,000 from forged sources do not lock out a legitimate pair', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const t0 = Date.now()
    // In chunks of 250, paced so the server's receive buffer keeps up (~11,000 in 1.8 s)
    for (let chunk = 0; chunk < 11_000; chunk += 250) {
      const sends: Array<Promise<void>> = []
      for (let i = chunk; i < chunk + 250; i++) {
        const src = `127.1.${i >> 8}.${i & 255}`
        sends.push(forger.send({ src, sport: 40000, dst: '127.0.0.1', dport: at.port, payload: datagram(registerBody(`n:${i}`, (i + 0x1000000).toString(16).padStart(16, '0'))) }))
      }
      await Promise.all(sends)
      await sleep(25)
    }
    await sleep(200)
    const filled = server.stats().activeRegistrations
    measure('registrations held after 11,000 forged registers', { filled, ms: Date.now() - t0 })
    const a = await peer(at, '127.0.9.1')
    const b = await peer(at, '127.0.9.2')
    const ra = await registerPatiently(a, 'n:999999', freshNonce())
    const rb = await registerPatiently(b, 'n:999999', freshNonce())
    measure('legitimate registrations', [ra?.t === 'error' ? ra.code : ra?.t, rb?.t === 'error' ? rb.code : rb?.t])
    expect(filled).toBe(0)
    expect([ra?.t, rb?.t]).toEqual(['registered', 'registered'])
    expect(await a.wait(m => m.t === 'peer', 2000)).not.toBeNull()
  })

  it('forged datagrams "from" a victim do not starve it through the rate limit', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const victim = await peer(at, '127.0.0.5')
    const partner = await peer(at, '127.0.9.2')
    let flooding = true
    let forged = 0
    const flood = (async () => {
      while (flooding) {
        // ~870/s in small bursts, so the per-address bucket never refills to a whole token between them
        await forger.send({ src: '127.0.0.5', sport: 1234, dst: '127.0.0.1', dport: at.port, payload: Buffer.from('UTPRV'), count: 9 })
        forged += 9
        await sleep(10)
      }
    })()
    await sleep(500)
    // Six registrations, one try each (a real client would retry, but each try is what the flood denies)
    const outcomes: string[] = []
    for (let i = 0; i < 6; i++) {
      const r = await victim.register(`n:${5550 + i}`, freshNonce(), {}, 500)
      outcomes.push(r === null ? 'timeout' : r.t === 'error' ? r.code : r.t)
    }
    const rp = await registerPatiently(partner, 'n:5555', freshNonce())
    const peerMsg = await victim.wait(m => m.t === 'peer', 2000)
    flooding = false
    await flood
    measure('victim under ~870 forged datagrams/s', { outcomes, paired: peerMsg !== null, forged, rateLimited: server.stats().rateLimited })
    expect(outcomes).toEqual(Array(6).fill('registered'))
    expect(rp?.t).toBe('registered')
    expect(peerMsg).not.toBeNull()
  })

  it('nameplate guessing from 50 addresses is held to the global rate of new registrations', async () => {
    const { at } = await startServer({ mappingCheck: false })
    const guessers = await Promise.all(Array.from({ length: 50 }, async (_, i) => await peer(at, `127.0.${10 + i}.1`)))
    let accepted = 0
    let tried = 0
    const t0 = Date.now()
    const until = t0 + 2000
    await Promise.all(guessers.map(async (g, i) => {
      for (let k = 0; Date.now() < until; k++) {
        tried++
        const r = await g.register(`n:${100000 + i * 1000 + k}`, freshNonce(), {}, 300)
        if (r?.t === 'registered') accepted++
      }
    }))
    const seconds = (Date.now() - t0) / 1000
    measure('nameplate guesses accepted per second from 50 addresses', { perSecond: Math.round(accepted / seconds), accepted, tried, seconds })
    // Defaults: 50/s with a burst of 100 in total
    expect(accepted).toBeLessThanOrEqual(100 + 50 * seconds + 5)
  })

  it('a guessed key gives one PAKE attempt: a third registrant is refused, and the key is burned afterwards', async () => {
    const { at } = await startServer({ mappingCheck: false })
    const { a, na } = await paired(at, 'n:4242')
    const thief = await peer(at, '127.0.66.1')
    const third = await thief.register('n:4242', freshNonce())
    a.send({ t: 'bye', nonce: na })
    await sleep(50)
    const after = await thief.register('n:4242', freshNonce())
    measure('third registrant, and a registrant after the pairing ended', [third?.t === 'error' ? third.code : third?.t, after?.t === 'error' ? after.code : after?.t])
    expect(third).toMatchObject({ t: 'error', code: 'ERR_CODE_BURNED' })
    expect(after).toMatchObject({ t: 'error', code: 'ERR_CODE_BURNED' })
  })

  it('a sniffed nonce does not move or end a registration from another address, forged or real', async () => {
    const { server, at } = await startServer({ mappingCheck: false })
    const { b, na } = await paired(at, 'n:808')
    // Forged keepalive and bye "from" an address the attacker does not receive at
    const pad = 'x'.repeat(100)
    await forger.send({ src: '127.0.0.66', sport: 5555, dst: '127.0.0.1', dport: at.port, payload: datagram({ t: 'keepalive', nonce: na, pad }) })
    await sleep(700)
    const moves = server.stats().moves
    const movedTo = b.all('peer-moved').map(m => m.public)
    // A real attacker that does receive (so it gets a cookie) still cannot end it: bye counts only from home
    const attacker = await peer(at, '127.0.0.77')
    attacker.send({ t: 'bye', nonce: na })
    await forger.send({ src: '127.0.0.66', sport: 5555, dst: '127.0.0.1', dport: at.port, payload: datagram({ t: 'bye', nonce: na }) })
    await sleep(200)
    const registrations = server.stats().activeRegistrations
    measure('moves by a forged keepalive, registrations left after foreign byes', { moves, movedTo, registrations })
    expect(moves).toBe(0)
    expect(movedTo).toEqual([])
    expect(registrations).toBe(2)
  })

  it('a sniffed relay token is useless from another IP: the relay keeps forwarding to the real peer', async () => {
    const { at } = await startServer({ mappingCheck: false })
    const { a, b, na } = await paired(at, 'n:909')
    const alloc = await a.request({ t: 'relay-request', nonce: na }, m => m.t === 'relay-allocated', 1000) as Extract<Msg, { t: 'relay-allocated' }>
    const allocB = await b.wait(m => m.t === 'relay-allocated') as Extract<Msg, { t: 'relay-allocated' }>
    a.raw(datagram({ t: 'relay-hello', token: alloc.token }), alloc.port)
    b.raw(datagram({ t: 'relay-hello', token: allocB.token }), allocB.port)
    expect(await a.wait(m => m.t === 'relay-hello-ack' && m.ready)).not.toBeNull()
    const thief = await peer(at, '127.0.0.77')
    thief.raw(datagram({ t: 'relay-hello', token: allocB.token }), allocB.port)
    await sleep(100)
    const stolen: Buffer[] = []
    const delivered: Buffer[] = []
    thief.socket.on('message', (m) => { if (m.toString() === 'secret') stolen.push(m) })
    b.socket.on('message', (m) => { if (m.toString() === 'secret') delivered.push(m) })
    for (let i = 0; i < 5; i++) a.raw(Buffer.from('secret'), alloc.port)
    await sleep(100)
    measure('relayed datagrams the token thief got, and the real peer got', { stolen: stolen.length, delivered: delivered.length })
    expect(stolen).toHaveLength(0)
    expect(delivered).toHaveLength(5)
  })

  it('no reflection: forged registers and junk "from" a victim bring it at most the bytes forged', async () => {
    const { at } = await startServer({ mappingCheck: false })
    const v1 = await peer(at, '127.0.0.9')
    const v2 = await peer(at, '127.0.0.9')
    const lan = Array.from({ length: 16 }, (_, i) => ({ address: `10.0.${i}.200`, port: 65000 + i }))
    const payloads: Array<[RendezvousPeer, Buffer]> = [
      [v1, datagram(registerBody('n:7007', 'a1'.repeat(8), { lan }))],
      [v2, datagram(registerBody('n:7007', 'b2'.repeat(8), { lan }))]
    ]
    let forgedBytes = 0
    for (const [v, payload] of payloads) {
      await forger.send({ src: '127.0.0.9', sport: v.address.port, dst: '127.0.0.1', dport: at.port, payload })
      forgedBytes += payload.length
      await sleep(20)
    }
    await sleep(4000) // the v1 server repeats `peer` 6 times, every 500 ms
    const peerBytes = v1.bytesIn + v2.bytesIn
    // Small datagrams that draw errors
    const junk = [Buffer.from('UTPRV\x09{}', 'latin1'), datagram({}), datagram({ t: 'nope' }), datagram({ t: 'keepalive', nonce: 'cd'.repeat(8) }), datagram({ t: 'peer-ack', nonce: 'ef'.repeat(8) })]
    const before = v1.bytesIn
    let junkBytes = 0
    for (const payload of junk) {
      await forger.send({ src: '127.0.0.9', sport: v1.address.port, dst: '127.0.0.1', dport: at.port, payload })
      junkBytes += payload.length
    }
    await sleep(200)
    const errorBytes = v1.bytesIn - before
    measure('reflection: bytes to the victim per byte forged', { registerPair: +(peerBytes / forgedBytes).toFixed(2), errors: +(errorBytes / junkBytes).toFixed(2), peerBytes, forgedBytes, errorBytes, junkBytes })
    expect(peerBytes).toBeLessThanOrEqual(forgedBytes)
    expect(errorBytes).toBeLessThanOrEqual(junkBytes)
  })
})
