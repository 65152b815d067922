// rendezvous({ dht }) on loopback: two peers that share only a code meet on a local Mainline DHT of 20 nodes of
// ours and 10 of bittorrent-dht (test/helpers/dht-lab.mjs), punch, and carry an encrypted 8 MiB each way. Then
// what can go wrong: the same side twice, a used code, a DHT nobody answers on, a peer that never comes.
// Across NATs: test/natlab.test.ts.
import { createHash } from 'crypto'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type * as ClientModule from '../lib/rendezvous/client'
import type * as CodeModule from '../lib/rendezvous/code'
import type * as MeetingModule from '../lib/dht/meeting'
import type * as ProtocolModule from '../lib/rendezvous/protocol'
import type * as ServerModule from '../lib/server/server'
import { startDhtLab, type DhtLab } from './helpers/dht-lab.mjs'
import { cleanupNodes, drainHash, makeNode, requireFromRoot, writeRandom, type Node } from './helpers/utp'

const { rendezvous } = requireFromRoot('./dist/lib/rendezvous/client.js') as typeof ClientModule
const { generateCode } = requireFromRoot('./dist/lib/rendezvous/code.js') as typeof CodeModule
const { deriveMeetingKeys } = requireFromRoot('./dist/lib/dht/meeting.js') as typeof MeetingModule
const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
const protocol = requireFromRoot('./dist/lib/rendezvous/protocol.js') as typeof ProtocolModule
type RendezvousStatus = ClientModule.RendezvousStatus
type Result = ClientModule.RendezvousResult<Node>

cleanupNodes()

let lab: DhtLab

beforeAll(async () => {
  lab = await startDhtLab({ host: '127.0.0.1', ours: 20, theirs: 10, hostile: true })
}, 60_000)

afterAll(async () => { await lab?.close() })

function code (): string {
  return generateCode()
}

async function peer (opts: { code: string, side?: string, statuses?: RendezvousStatus[], onStatus?: (s: RendezvousStatus) => void, timeoutMs?: number, bootstrap?: string[], relay?: string, allowHalfOpen?: boolean, forceRelay?: boolean, noRelay?: boolean }): Promise<Result> {
  const node = makeNode({ allowHalfOpen: opts.allowHalfOpen ?? false })
  await node.bindAsync(0, '127.0.0.1')
  return await rendezvous(node, {
    dht: { bootstrap: opts.bootstrap ?? lab.bootstrap.slice(0, 3), ...(opts.relay === undefined ? {} : { relay: opts.relay }) },
    ...(opts.relay === undefined && opts.forceRelay !== true ? {} : { forceRelay: true }),
    ...(opts.noRelay === true ? { relay: false } : {}),
    code: opts.code,
    ...(opts.side === undefined ? {} : { side: opts.side }),
    timeoutMs: opts.timeoutMs ?? 40_000,
    onStatus: (s) => {
      opts.statuses?.push(s)
      opts.onStatus?.(s)
    }
  })
}

describe('rendezvous over the DHT', () => {
  it('pairs by code, punches and carries 8 MiB each way encrypted', async () => {
    const c = code()
    const statusA: RendezvousStatus[] = []
    const started = Date.now()
    // allowHalfOpen: each side ends its 8 MiB on its own; without it, the first to finish ends the other's writing
    // (as net does), which a loaded machine made happen once in CI
    const [a, b] = await Promise.all([peer({ code: c, side: 'receive', statuses: statusA, allowHalfOpen: true }), peer({ code: c, side: 'send', allowHalfOpen: true })])
    const pairMs = Date.now() - started
    expect(a.encrypted && b.encrypted).toBe(true)
    expect(new Set([a.role, b.role])).toEqual(new Set(['accept', 'connect']))
    expect(['lan', 'direct']).toContain(a.path)
    // No server: no server round trip among the timings, no relay time
    expect(Object.keys(a.timings).sort()).toEqual(['connectedMs', 'pairedMs', 'punchedMs', 'registeredMs'])
    expect(statusA.map(s => s.state).slice(0, 3)).toEqual(['joining-dht', 'published', 'paired'])
    const published = statusA[1] as Extract<RendezvousStatus, { state: 'published' }>
    expect(published.observed?.port).toBe(a.node.address().port) // DHT nodes saw the uTP socket itself
    const MiB = 1024 * 1024
    const [sentA, sentB, gotA, gotB] = await Promise.all([writeRandom(a.socket, 8 * MiB), writeRandom(b.socket, 8 * MiB), drainHash(a.socket), drainHash(b.socket)])
    expect(gotB.sha256).toBe(sentA)
    expect(gotA.sha256).toBe(sentB)
    expect(pairMs).toBeLessThan(30_000)
  }, 60_000)

  it('pairs past a silent node, a garbage node and a node forging the first slot, in bounded time', async () => {
    const c = code()
    const keys = await deriveMeetingKeys(c)
    // The liar sits beside slot 0's target (SHA-1 of its key and salt, BEP 44), so reads of it ask the liar
    lab.aimLiar(createHash('sha1').update(Buffer.concat([keys.publicKeys[0], keys.salt])).digest())
    const bootstrap = [...lab.bootstrap.slice(0, 2), ...lab.hostile.map(h => h.address)]
    const started = Date.now()
    const [a, b] = await Promise.all([peer({ code: c, bootstrap }), peer({ code: c, bootstrap })])
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(new Set([a.role, b.role])).toEqual(new Set(['accept', 'connect']))
    for (const h of lab.hostile) expect(h.queries(), h.kind).toBeGreaterThan(0)
    expect(lab.hostile.find(h => h.kind === 'liar')?.kinds().get).toBeGreaterThan(0)
    a.socket.destroy()
    b.socket.destroy()
  }, 60_000)

  it('with a relay server configured, a pairing without a direct path goes through its relay', async () => {
    const server = new RendezvousServer({ host: '127.0.0.1', port: 0 })
    const { port } = await server.listen()
    try {
      const c = code()
      const statuses: RendezvousStatus[] = []
      // forceRelay stands for "no direct path": punching gives up at once. The receiver is there first, so the
      // sender meets it on its first read and, going on to the relay, marks its slot used within milliseconds
      // of publishing it: the receiver's next read finds the used card, not the live one, and must follow it
      let published!: () => void
      const receiverPublished = new Promise<void>(resolve => { published = resolve })
      const receiving = peer({ code: c, side: 'receive', relay: `127.0.0.1:${port}`, statuses, onStatus: s => { if (s.state === 'published') published() } })
      await Promise.race([receiverPublished, receiving])
      await new Promise(resolve => setTimeout(resolve, 1500)) // its card lands in slot 0
      const [a, b] = await Promise.all([receiving, peer({ code: c, side: 'send', relay: `127.0.0.1:${port}` })])
      expect([a.path, b.path]).toEqual(['relay', 'relay'])
      expect(a.encrypted && b.encrypted).toBe(true)
      expect(statuses.map(s => s.state)).toContain('relay')
      const [sent, got] = await Promise.all([writeRandom(a.socket, 1 << 20), drainHash(b.socket)])
      expect(got.sha256).toBe(sent)
      expect(server.stats().pairings).toBe(1)
      expect(server.stats().relayedBytes).toBeGreaterThan(1 << 20)
      a.socket.destroy()
      b.socket.destroy()
    } finally {
      await server.close()
    }
  }, 60_000)

  it('a relay is used only when dht.relay names one and relay is not false: otherwise ERR_PUNCH_FAILED says which', async () => {
    const server = new RendezvousServer({ host: '127.0.0.1', port: 0 })
    const { port } = await server.listen()
    try {
      const none = code()
      const disabled = code()
      const outcomes = await Promise.allSettled([
        peer({ code: none, forceRelay: true }), peer({ code: none, forceRelay: true }),
        peer({ code: disabled, relay: `127.0.0.1:${port}`, noRelay: true }), peer({ code: disabled, relay: `127.0.0.1:${port}`, noRelay: true })
      ])
      const why = outcomes.map(o => o.status === 'rejected' ? `${(o.reason as { code?: string }).code} ${/ (\([^()]*\))$/.exec((o.reason as Error).message)?.[1]}` : o.value.path)
      expect(why).toEqual([
        ...Array(2).fill('ERR_PUNCH_FAILED (no relay: pairing over the DHT has no server to relay through; dht.relay names one)'),
        ...Array(2).fill('ERR_PUNCH_FAILED (relay disabled)')
      ])
      expect(server.stats().registrations).toBe(0)
    } finally {
      await server.close()
    }
  }, 60_000)

  it('a second peer of the same side fails with ERR_SAME_ROLE; the first then pairs with the right one', async () => {
    const c = code()
    const first = peer({ code: c, side: 'receive' })
    await new Promise(resolve => setTimeout(resolve, 4000))
    await expect(peer({ code: c, side: 'receive' })).rejects.toMatchObject({ code: 'ERR_SAME_ROLE', side: 'receive' })
    const sender = await peer({ code: c, side: 'send' })
    expect((await first).role).toBe('accept')
    expect(sender.role).toBe('connect')
    sender.socket.destroy()
  }, 60_000)

  it('a peer that gave up takes its card back: running again with the code is not a second peer of its side', async () => {
    const c = code()
    await expect(peer({ code: c, side: 'receive', timeoutMs: 7000 })).rejects.toMatchObject({ code: 'ERR_RENDEZVOUS_TIMEOUT' })
    await new Promise(resolve => setTimeout(resolve, 3000)) // the withdrawn card lands
    const [again, sender] = await Promise.all([peer({ code: c, side: 'receive' }), peer({ code: c, side: 'send' })])
    expect([again.role, sender.role]).toEqual(['accept', 'connect'])
    again.socket.destroy()
    sender.socket.destroy()
  }, 60_000)

  it('a code that paired once is burned', async () => {
    const c = code()
    const [a, b] = await Promise.all([peer({ code: c }), peer({ code: c })])
    a.socket.destroy()
    b.socket.destroy()
    // The used marks go out as the pairing ends: give them a moment to land
    await new Promise(resolve => setTimeout(resolve, 4000))
    await expect(peer({ code: c })).rejects.toMatchObject({ code: 'ERR_CODE_BURNED' })
  }, 60_000)

  it('says when nobody came, and when no DHT node answers', async () => {
    const started = Date.now()
    // The message ends with what the meeting last saw: nothing yet (its first lookups of empty slots can take
    // seconds), or our own card alone
    await expect(peer({ code: code(), timeoutMs: 8000 })).rejects.toMatchObject({
      code: 'ERR_RENDEZVOUS_TIMEOUT',
      message: expect.stringMatching(/no peer appeared on the DHT .*; the meeting's last (round 1 \(no slot taken yet\): slot 0 showed empty|round \d+ \(our card in slot 0, seq (\d+)\): slot 0 showed ours seq \2), slot 1 empty$/)
    })
    expect(Date.now() - started).toBeLessThan(12_000)
    const node = makeNode()
    await node.bindAsync(0, '127.0.0.1')
    const dead = makeNode()
    const { port } = await dead.bindAsync(0, '127.0.0.1') // a socket that never answers
    const joining = rendezvous(node, { dht: { bootstrap: [`127.0.0.1:${port}`] }, code: code(), timeoutMs: 30_000 })
    // A stranger's "server" messages mean nothing to a meeting over the DHT, which has no server: ignored
    for (const m of [{ t: 'error', nonce: '00'.repeat(8), code: 'ERR_CODE_IN_USE', message: 'stray' }, { t: 'check-ack', nonce: '00'.repeat(8), observed: { address: '127.0.0.1', port: 1 } }]) {
      dead.getUdpSocket().send(protocol.encode(m as ProtocolModule.Message), node.address().port, '127.0.0.1')
    }
    await expect(joining).rejects.toMatchObject({ code: 'ERR_DHT_UNREACHABLE' })
  }, 60_000)

  it('rejects options naming both or neither of server and dht', async () => {
    const node = makeNode()
    await expect(rendezvous(node, { code: 'x' })).rejects.toThrow(TypeError)
    await expect(rendezvous(node, { server: '127.0.0.1:1', dht: true, code: 'x' })).rejects.toThrow(/exactly one/)
    await expect(rendezvous(node, { dht: { bootstrap: 'x' as unknown as string[] }, code: 'x' })).rejects.toThrow(TypeError)
  })
})
