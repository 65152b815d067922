// Attacks on the rendezvous server's relays, on loopback: exhausting the allocations from many addresses,
// keeping them alive past their registrations, and spending the server's bandwidth. Each test logs its
// measure ("MEASURE ...") and failed on the v1 server of main.
import { afterEach, describe, expect, it } from 'vitest'

import type * as ServerModule from '../lib/server/server'
import { datagram, pairUp, RendezvousPeer, type Msg } from './helpers/rendezvous-peer'
import { requireFromRoot, sleep } from './helpers/utp'

const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
type Server = ServerModule.RendezvousServer
type At = { address: string, port: number }
type Allocated = Extract<Msg, { t: 'relay-allocated' }>

const servers: Server[] = []
const peers: RendezvousPeer[] = []

afterEach(async () => {
  for (const p of peers.splice(0)) p.close()
  await Promise.all(servers.splice(0).map(async s => await s.close()))
})

async function startServer (options: ServerModule.RendezvousServerOptions = {}): Promise<{ server: Server, at: At }> {
  const server = new RendezvousServer({ port: 0, host: '127.0.0.1', http: false, mappingCheck: false, ...options })
  servers.push(server)
  const { port } = await server.listen()
  return { server, at: { address: '127.0.0.1', port } }
}

/** A pair under `key` that asks for a relay: the allocation for each side, or the error code, or 'timeout' */
async function relayPair (at: At, key: string, hosts: [string, string]): Promise<{ a: RendezvousPeer, b: RendezvousPeer, result: string, alloc?: [Allocated, Allocated] }> {
  let r: Awaited<ReturnType<typeof pairUp>>
  try {
    r = await pairUp(at, key, hosts)
  } catch {
    return { a: null as unknown as RendezvousPeer, b: null as unknown as RendezvousPeer, result: 'not paired' }
  }
  peers.push(r.a, r.b)
  const reply = await r.a.request({ t: 'relay-request', nonce: r.na }, m => (m.t === 'relay-allocated' || m.t === 'error') && m.nonce === r.na, 1000)
  if (reply === null) return { a: r.a, b: r.b, result: 'timeout' }
  if (reply.t === 'error') return { a: r.a, b: r.b, result: reply.code }
  const other = await r.b.wait(m => m.t === 'relay-allocated', 1000) as Allocated
  return { a: r.a, b: r.b, result: 'allocated', alloc: [reply as Allocated, other] }
}

/** Both sides say hello until the relay is ready */
async function hello (a: RendezvousPeer, b: RendezvousPeer, alloc: [Allocated, Allocated]): Promise<void> {
  a.raw(datagram({ t: 'relay-hello', token: alloc[0].token }), alloc[0].port)
  b.raw(datagram({ t: 'relay-hello', token: alloc[1].token }), alloc[1].port)
  expect(await a.wait(m => m.t === 'relay-hello-ack' && m.ready, 1000)).not.toBeNull()
}

const measure = (what: string, value: unknown): void => console.log(`MEASURE ${what}: ${JSON.stringify(value)}`)

describe('attacks on the rendezvous relays', () => {
  it('24 addresses cannot take every relay: per-prefix quotas leave room for a legitimate pair', async () => {
    // The attacker's 576 registrations in half a second would also drain the global rate of new registrations
    // (50/s, burst 100: it bounds nameplate sweeps, and test/attack-server.test.ts checks it), which refuses
    // everyone for a moment; that trade-off is documented in docs/security.md. Here the relay quota is under
    // test, so the global rate is out of the way and the per-prefix defaults stay.
    const { server, at } = await startServer({ registrationRate: { perPrefix: { perSecond: 10, burst: 40 }, global: { perSecond: 10_000, burst: 10_000 } } })
    const t0 = Date.now()
    const results = await Promise.all(Array.from({ length: 24 }, async (_, i) => {
      const host = `127.0.${40 + i}.1`
      const out: string[] = []
      for (let k = 0; k < 12; k++) out.push((await relayPair(at, `n:${700000 + i * 100 + k}`, [host, host])).result)
      return out
    }))
    const attackerRelays = results.flat().filter(r => r === 'allocated').length
    const ms = Date.now() - t0
    const legit = await relayPair(at, 'n:424242', ['127.0.9.1', '127.0.9.2'])
    measure('relays the attacker got, and the legitimate pair\'s answer', { attackerRelays, ms, legit: legit.result, activeRelays: server.stats().activeRelays })
    expect(legit.result).toBe('allocated')
    expect(attackerRelays).toBeLessThanOrEqual(24 * 4)
  })

  it('a relay lives only as long as its pairing: hellos do not keep it past its registrations', async () => {
    const { server, at } = await startServer({ registrationTtlMs: 600 })
    const r = await relayPair(at, 'n:31', ['127.0.0.1', '127.0.0.1'])
    expect(r.result).toBe('allocated')
    const alloc = r.alloc as [Allocated, Allocated]
    await hello(r.a, r.b, alloc)
    // No keepalives, only a hello now and then
    for (let i = 0; i < 10; i++) {
      r.a.raw(datagram({ t: 'relay-hello', token: alloc[0].token }), alloc[0].port)
      await sleep(200)
    }
    const stats = server.stats()
    measure('relays alive 2 s after their registrations went quiet (TTL 600 ms)', { activeRelays: stats.activeRelays, activeRegistrations: stats.activeRegistrations })
    expect(stats.activeRegistrations).toBe(0)
    expect(stats.activeRelays).toBe(0)
  })

  it('the relay byte budget caps what all relays forward, and then refuses new relays with ERR_RELAY_BUDGET', async () => {
    const { server, at } = await startServer({ relayBudget: { bytes: 10_000, windowMs: 60_000 } })
    const r = await relayPair(at, 'n:41', ['127.0.0.1', '127.0.0.1'])
    expect(r.result).toBe('allocated')
    await hello(r.a, r.b, r.alloc as [Allocated, Allocated])
    let received = 0
    r.b.socket.on('message', (m) => { if (m.length === 1000) received++ })
    for (let i = 0; i < 30; i++) {
      r.a.raw(Buffer.alloc(1000, 1), (r.alloc as [Allocated, Allocated])[0].port)
      await sleep(5)
    }
    await sleep(100)
    const next = await relayPair(at, 'n:42', ['127.0.0.1', '127.0.0.1'])
    measure('1000-byte datagrams relayed of 30 under a 10,000-byte budget, and the next relay request', { received, next: next.result, relayedBytes: server.stats().relayedBytes })
    expect(received).toBe(10)
    expect(next.result).toBe('ERR_RELAY_BUDGET')
    expect(next.a.all('error')).toMatchObject([{ code: 'ERR_RELAY_BUDGET', message: 'the server\'s relay budget is spent, try again later' }])
  })
})
