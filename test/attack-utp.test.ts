// Forged traffic against a Node (issue 12), on loopback with forged source addresses (test/helpers/forge.ts,
// root): half-open connections from SYNs, blind RESETs and the id oracle, a flood of foreign datagrams while
// JavaScript is busy, and punch probes used as a reflector. Each test prints what it measured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { handshake, parseHeader, rssMiB, ST_DATA, ST_RESET, ST_STATE, ST_SYN, utpHeader, Victim } from './helpers/attack-utp'
import { Forger } from './helpers/forge'
import { cleanupNodes, listeningNode, makeNode, once, requireFromRoot, sleep, type Socket } from './helpers/utp'

const punch = requireFromRoot('./dist/lib/punch.js') as typeof import('../lib/punch')

let forger: Forger
const victims: Victim[] = []

async function victimAt (address: string): Promise<Victim> {
  const v = await Victim.bind(address)
  victims.push(v)
  return v
}

/** Forge `payloads` from `from` to 127.0.0.1:`dport`, pipelined */
async function forge (from: Victim | { address: string, port: number }, dport: number, payloads: Buffer[]): Promise<void> {
  await Promise.all(payloads.map(payload => forger.send({ src: from.address, sport: from.port, dst: '127.0.0.1', dport, payload })))
}

describe('attacks on a node (forged sources, loopback)', () => {
  cleanupNodes()
  beforeAll(() => { forger = new Forger() })
  afterAll(() => {
    forger.close()
    for (const v of victims) v.close()
  })

  it('forged SYNs get one SYN-ACK each and nothing else, are never announced, expire, and leave room', async () => {
    let announced = 0
    const { node, port } = await listeningNode(undefined, (s: Socket) => {
      announced++
      s.on('error', () => {})
      s.write(Buffer.alloc(14_000)) // an application that speaks first
    })
    const victim = await victimAt('127.0.0.2')
    const syns = 5000
    const started = Date.now()
    await forge(victim, port, Array.from({ length: syns }, (_, i) => utpHeader({ type: ST_SYN, connId: 2 * i, seqNr: 1, ackNr: 0 })))
    const forged = Date.now()
    await sleep(3000)
    const stats = node.stats()
    console.log(`${syns} forged SYNs: the victim got ${victim.packets} datagrams (${victim.bytes} bytes) in ${Date.now() - started} ms; ` +
      `'connection' ${announced}, serverConnections ${stats.serverConnections}, pendingHandshakes ${stats.pendingHandshakes}, synsDropped ${stats.synsDropped}`)
    // Before: each SYN became a connection at once, keepalives every second (and 14 KB each, written first)
    expect(announced).toBe(0)
    expect(stats.serverConnections).toBe(0)
    expect(stats.pendingHandshakes).toBe(4096)
    expect(stats.synsDropped).toBe(syns - 4096)
    // One SYN-ACK per SYN answered, no more (a few may overflow the victim's socket buffer)
    expect(victim.packets).toBeGreaterThan(3000)
    expect(victim.packets).toBeLessThanOrEqual(4096)
    expect(victim.received.every(m => m.length === 20 && parseHeader(m)?.type === ST_STATE)).toBe(true)
    // A real client's first SYN meets the full bound and is dropped; its retransmission gets in once the
    // forged ones expired, unconfirmed, after the handshake timeout (5 s), without a word
    const client = makeNode()
    const socket = client.connect(port)
    socket.on('error', () => {})
    const packets = victim.packets
    await sleep(Math.max(0, forged + 5500 - Date.now()))
    expect(node.stats().pendingHandshakes).toBeLessThanOrEqual(1)
    expect(victim.packets).toBe(packets)
    if (socket.connecting) await once(socket, 'connect')
    await sleep(100)
    expect(announced).toBe(1)
    expect(node.stats().serverConnections).toBe(1)
    socket.destroy()
  }, 20_000)

  it('a blind RESET is ignored, the peer\'s own RESET still closes, and a live id answers like an unknown one', async () => {
    let accepted: Socket | null = null
    const { port } = await listeningNode(undefined, (s: Socket) => { accepted = s })
    const peer = await victimAt('127.0.0.1')
    const ids = await handshake(peer, port)
    await sleep(100)
    expect(accepted).not.toBeNull()
    const server = accepted as unknown as Socket
    let error: (Error & { code?: string }) | null = null
    server.on('error', (e: Error) => { error = e })
    // 1,000 forged RESETs from the peer's address with the live id, their ack_nr anything but what the server sent
    const blind = Array.from({ length: 1000 }, (_, i) =>
      utpHeader({ type: ST_RESET, connId: ids.sendId, seqNr: i, ackNr: (ids.synAckSeq + 100 + i * 64) & 0xffff }))
    await forge(peer, port, blind)
    await sleep(300)
    console.log(`1,000 blind RESETs with the live id: connection ${server.destroyed ? 'killed' : 'alive'}`)
    expect(server.destroyed).toBe(false)
    expect(error).toBeNull()
    // Still working: our data reaches the server
    const data = once<Buffer>(server, 'data')
    await peer.send(Buffer.concat([utpHeader({ type: ST_DATA, connId: ids.sendId, seqNr: ids.nextSeq, ackNr: (ids.synAckSeq - 1) & 0xffff }), Buffer.from('hi')]), port)
    expect((await data).toString()).toBe('hi')

    // The oracle: from a scanner's own address, the live id and an unknown one get the same answer
    const scanner = await victimAt('127.0.0.3')
    const answers: number[] = []
    for (const id of [ids.sendId, 0x1234]) {
      scanner.reset()
      await scanner.send(utpHeader({ type: ST_STATE, connId: id, seqNr: 7, ackNr: 7 }), port)
      await sleep(200)
      answers.push(scanner.received.filter(m => parseHeader(m)?.type === ST_RESET).length)
    }
    console.log(`RESETs answering a probe for the live id / an unknown id: ${answers.join(' / ')}`)
    expect(answers[0]).toBe(answers[1])

    // The peer's real RESET (libutp and libtorrent put the seq_nr of the packet they answer in ack_nr)
    const closed = new Promise<void>(resolve => server.once('close', () => resolve()))
    await peer.send(utpHeader({ type: ST_RESET, connId: ids.sendId, seqNr: 1, ackNr: ids.synAckSeq }), port)
    await closed
    expect((error as (Error & { code?: string }) | null)?.code).toBe('ECONNRESET')
  }, 20_000)

  for (const ioThread of [true, false]) {
    it(`foreign datagrams wait in a bounded queue while JavaScript is busy (ioThread: ${String(ioThread)})`, async () => {
      const { node, port } = await listeningNode({ ioThread })
      let messages = 0
      node.getUdpSocket().on('message', () => { messages++ })
      const flooder = { address: '127.0.0.5', port: 4444 }
      const before = rssMiB()
      // 60,000 datagrams of 1,000 bytes (60 MB) arrive while the JavaScript thread is busy for 3 s
      const sent = forger.send({ src: flooder.address, sport: flooder.port, dst: '127.0.0.1', dport: port, payload: Buffer.alloc(1000, 0x58), count: 60_000 })
      const until = Date.now() + 3000
      while (Date.now() < until) { /* busy */ }
      const grown = rssMiB() - before
      await sent
      await sleep(500)
      const dropped = node.stats().rawDatagramsDropped
      console.log(`ioThread ${String(ioThread)}: RSS +${grown.toFixed(1)} MiB while busy; 'message' ${messages}, rawDatagramsDropped ${dropped}`)
      // The queue holds 8 MiB at most; the rest is the driver's receive buffers and allocator arenas
      expect(grown).toBeLessThan(40)
      expect(messages).toBeLessThanOrEqual(60_000)
      if (ioThread) expect(dropped).toBeGreaterThan(0)
    }, 20_000)
  }

  it('punch probes with a forged source get a trickle of answers, never larger than the probe', async () => {
    const { node, port } = await listeningNode()
    const victim = await victimAt('127.0.0.4')
    const probe = punch.encodePunch(punch.PROBE, Buffer.alloc(8, 7))
    const oversized = Buffer.concat([probe, Buffer.alloc(1000)])
    const started = Date.now()
    await forge(victim, port, [...Array.from({ length: 5000 }, () => probe), oversized])
    await sleep(1000)
    const seconds = (Date.now() - started) / 1000
    console.log(`5,000 forged punch probes: the victim got ${victim.packets} answers (${victim.bytes} bytes) in ${seconds.toFixed(1)} s`)
    expect(victim.packets).toBeGreaterThan(0)
    expect(victim.packets).toBeLessThanOrEqual(punch.ANSWERS_PER_ADDRESS * (1 + seconds))
    expect(victim.received.every(m => m.length === probe.length)).toBe(true)
    // punch() between two nodes still works meanwhile
    const other = makeNode()
    await new Promise<void>((resolve) => other.bind(0, '127.0.0.1', () => resolve()))
    expect(await node.punch(4, other.address().port, '127.0.0.1')).toBe(true)
  }, 20_000)

  it('the probe answer limit is per address and in all', () => {
    let now = 0
    const limiter = new punch.AnswerLimiter(8, 200, () => now)
    const answered = (address: string, n: number): number => Array.from({ length: n }, () => limiter.allow(address)).filter(Boolean).length
    expect(answered('10.0.0.1', 100)).toBe(8)
    // Many forged addresses: the total bounds them, and an address never seen before still has its share
    let flood = 0
    for (let i = 0; i < 1000; i++) flood += answered(`10.1.${i >> 8}.${i & 255}`, 1)
    expect(flood).toBe(200 - 8)
    now += 1000
    expect(answered('10.0.0.1', 100)).toBe(8)
    expect(answered('10.9.9.9', 1)).toBe(1)
  })
})
