// One relay allocation on its own (lib/server/relay.ts), driven by bare UDP sockets on loopback: who may say
// hello, when forwarding starts and for whom, NAT rebinding, moves, the byte caps, and what close() frees.
// The server's use of it (allocation, refusals, expiry) is in rendezvous-server.test.ts and the attacks in
// attack-server-relay.test.ts.
import * as dgram from 'dgram'
import { afterEach, describe, expect, it } from 'vitest'

import type * as LimitsModule from '../lib/server/limits'
import type * as RelayModule from '../lib/server/relay'
import type * as SocketsModule from '../lib/server/sockets'
import { datagram, protocol, type Msg } from './helpers/rendezvous-peer'
import { requireFromRoot, sleep, udpPortFree } from './helpers/utp'

const { RelayAllocation } = requireFromRoot('./dist/lib/server/relay.js') as typeof RelayModule
const { ByteBudget } = requireFromRoot('./dist/lib/server/limits.js') as typeof LimitsModule
const socketsModule = requireFromRoot('./dist/lib/server/sockets.js') as { -readonly [K in keyof typeof SocketsModule]: typeof SocketsModule[K] }
type Relay = RelayModule.RelayAllocation

const relays: Relay[] = []
const sockets: Udp[] = []

afterEach(() => {
  for (const r of relays.splice(0)) r.close()
  for (const s of sockets.splice(0)) s.socket.close()
})

/** A UDP socket that keeps what it receives: relay control messages decoded, anything else raw */
interface Udp { socket: dgram.Socket, port: number, control: Msg[], raw: Buffer[] }

async function udp (host = '127.0.0.1', port = 0): Promise<Udp> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>(resolve => socket.bind(port, host, resolve))
  const u: Udp = { socket, port: socket.address().port, control: [], raw: [] }
  socket.on('message', (buf) => {
    const m = protocol.decode(buf)
    if (m !== null && !protocol.isDecodeError(m)) u.control.push(m)
    else u.raw.push(buf)
  })
  sockets.push(u)
  return u
}

async function open (options: Partial<RelayModule.RelayOptions> = {}): Promise<{ relay: Relay, forwarded: number[] }> {
  const forwarded: number[] = []
  const relay = await RelayAllocation.open({
    hosts: ['127.0.0.1', '127.0.0.1'],
    peerIps: ['127.0.0.1', '127.0.0.1'],
    rate: 1_000_000,
    budget: new ByteBudget(1e9, 60_000),
    onForward: n => forwarded.push(n),
    ...options
  })
  relays.push(relay)
  return { relay, forwarded }
}

const hello = (from: Udp, relay: Relay, i: 0 | 1, token = relay.side(i).token): void => {
  from.socket.send(datagram({ t: 'relay-hello', token }), relay.side(i).port, '127.0.0.1')
}
const send = (from: Udp, relay: Relay, i: 0 | 1, buf: Buffer): void => { from.socket.send(buf, relay.side(i).port, '127.0.0.1') }

/** A relay both of whose sides said hello from a socket of their own (on 127.0.0.1) */
async function readyRelay (options: Partial<RelayModule.RelayOptions> = {}): Promise<{ relay: Relay, forwarded: number[], a: Udp, b: Udp }> {
  const { relay, forwarded } = await open(options)
  const a = await udp()
  const b = await udp()
  hello(a, relay, 0)
  hello(b, relay, 1)
  await sleep(100)
  return { relay, forwarded, a, b }
}

/** `count` copies of `chunk` from A, in batches of `batch` with a pause between, so no socket buffer overflows */
async function sendInBatches (a: Udp, relay: Relay, chunk: Buffer, count: number, batch: number, pauseMs: number): Promise<void> {
  for (let i = 0; i < count; i += batch) {
    for (let j = 0; j < batch; j++) send(a, relay, 0, chunk)
    await sleep(pauseMs)
  }
}

describe('RelayAllocation', () => {
  it('takes a hello only with its side\'s token from its side\'s IP; forwards only once both sides said hello', async () => {
    const { relay } = await open({ peerIps: ['127.0.0.1', '127.0.0.2'] })
    const a = await udp()
    const b = await udp('127.0.0.2')
    const strangerB = await udp() // B's token, but from A's IP
    expect(relay.side(0).port).not.toBe(relay.side(1).port)
    expect(relay.side(0).token).toMatch(/^[0-9a-f]{32}$/)
    expect(relay.side(0).token).not.toBe(relay.side(1).token)
    hello(a, relay, 0, relay.side(1).token) // the other side's token
    hello(strangerB, relay, 1)
    await sleep(100)
    expect(relay.refused).toBe(2)
    expect([...a.control, ...strangerB.control]).toEqual([])
    expect(relay.describe()).toBe('? <-> ?')
    // Malformed control messages and other types are ignored, not counted
    a.socket.send(datagram({ t: 'keepalive', nonce: 'ab'.repeat(8) }), relay.side(0).port, '127.0.0.1')
    a.socket.send(Buffer.from('UTPRV\x02{', 'latin1'), relay.side(0).port, '127.0.0.1')
    hello(a, relay, 0)
    await sleep(100)
    expect(relay.refused).toBe(2)
    expect(a.control).toEqual([{ t: 'relay-hello-ack', token: relay.side(0).token, ready: false }])
    expect(relay.ready).toBe(false)
    // A's data before B is known goes nowhere
    send(a, relay, 0, Buffer.from('too early'))
    await sleep(50)
    hello(b, relay, 1)
    await sleep(100)
    expect(relay.ready).toBe(true)
    // Each side hears it is ready: B in answer, A (who was waiting) unasked
    expect(b.control).toEqual([{ t: 'relay-hello-ack', token: relay.side(1).token, ready: true }])
    expect(a.control).toEqual([
      { t: 'relay-hello-ack', token: relay.side(0).token, ready: false },
      { t: 'relay-hello-ack', token: relay.side(0).token, ready: true }
    ])
    expect(b.raw).toEqual([])
    expect(relay.describe()).toBe(`127.0.0.1:${a.port} <-> 127.0.0.2:${b.port}`)
    // A's hello repeated (its NAT kept open) is answered; B, told once already, hears nothing more
    hello(a, relay, 0)
    await sleep(100)
    expect(a.control).toHaveLength(3)
    expect(b.control).toHaveLength(1)
  })

  it('forwards raw datagrams both ways between the learned addresses, and follows a NAT rebinding on the same IP', async () => {
    const { relay, forwarded, a, b } = await readyRelay()
    send(a, relay, 0, Buffer.from('from a'))
    send(b, relay, 1, Buffer.from('from b!'))
    await sleep(100)
    expect(b.raw.map(String)).toEqual(['from a'])
    expect(a.raw.map(String)).toEqual(['from b!'])
    expect(forwarded).toEqual([6, 7])
    // Another port of A's IP that said no hello is not A: its data is dropped
    const other = await udp()
    send(other, relay, 0, Buffer.from('not a'))
    // Nor is A's port number from another IP
    const samePortElsewhere = await udp('127.0.0.2', a.port)
    send(samePortElsewhere, relay, 0, Buffer.from('not a either'))
    // Data sent to the wrong side's port (A to B's port) is not forwarded either
    send(a, relay, 1, Buffer.from('wrong port'))
    await sleep(100)
    expect(b.raw.map(String)).toEqual(['from a'])
    expect(a.raw.map(String)).toEqual(['from b!'])
    // A's NAT rebinds: its hello from the new port moves A there, and B's data follows
    hello(other, relay, 0)
    await sleep(100)
    send(b, relay, 1, Buffer.from('to the new port'))
    await sleep(100)
    expect(other.raw.map(String)).toEqual(['to the new port'])
    expect(a.raw.map(String)).toEqual(['from b!'])
    expect(relay.describe()).toBe(`127.0.0.1:${other.port} <-> 127.0.0.1:${b.port}`)
  })

  it('on a dual-stack port (the server\'s \'::\' fallback) an IPv4 peer is known by its plain IPv4 address', async () => {
    const { relay, a, b } = await readyRelay({ hosts: ['::', '::'], peerIps: ['::ffff:127.0.0.1', '127.0.0.1'] })
    expect(relay.refused).toBe(0)
    expect(relay.ready).toBe(true)
    expect(relay.describe()).toBe(`127.0.0.1:${a.port} <-> 127.0.0.1:${b.port}`)
    send(a, relay, 0, Buffer.from('mapped'))
    await sleep(100)
    expect(b.raw.map(String)).toEqual(['mapped'])
  })

  it('after allow(), hellos count from the side\'s new IP and no longer from its old one', async () => {
    const { relay } = await open()
    const old = await udp()
    const moved = await udp('127.0.0.3')
    hello(moved, relay, 1)
    await sleep(50)
    expect(relay.refused).toBe(1)
    relay.allow(1, '::ffff:127.0.0.3') // IPv4-mapped, as a dual-stack socket reports it
    hello(moved, relay, 1)
    hello(old, relay, 1)
    await sleep(100)
    expect(relay.refused).toBe(2)
    expect(moved.control).toEqual([{ t: 'relay-hello-ack', token: relay.side(1).token, ready: false }])
    expect(old.control).toEqual([])
  })

  it('drops what exceeds its byte rate or the shared budget, counting each drop', async () => {
    // The burst is max(rate / 2, 128 KiB): 128 KiB here
    const { relay, forwarded, a } = await readyRelay({ rate: 1000 })
    const chunk = Buffer.alloc(1024, 1)
    await sendInBatches(a, relay, chunk, 140, 10, 15) // only the cap drops
    await sleep(100)
    expect(forwarded).toHaveLength(128)
    expect(relay.dropped).toBe(12)
    // The server's budget is shared by all relays: spent, it stops this one too
    const budget = new ByteBudget(3000, 60_000)
    const capped = await open({ budget })
    const c = await udp()
    const d = await udp()
    hello(c, capped.relay, 0)
    await sleep(50)
    send(c, capped.relay, 0, chunk) // before D said hello: dropped without spending the budget
    hello(d, capped.relay, 1)
    await sleep(100)
    for (let i = 0; i < 4; i++) send(c, capped.relay, 0, chunk)
    await sleep(100)
    expect(capped.forwarded).toEqual([1024, 1024])
    expect(capped.relay.dropped).toBe(2)
    expect(d.raw).toHaveLength(2)
  })

  it('a fast relay\'s burst is half a second of its rate, not more', async () => {
    // 300,000 B/s: a burst of 150,000 bytes (more than the 128 KiB floor). 320 KB sent at once, in a few batches so
    // no socket buffer drops any, must lose some to the cap; the sending takes far less than the second that
    // refilling the other 170 KB would need
    const { relay, forwarded, a } = await readyRelay({ rate: 300_000 })
    await sendInBatches(a, relay, Buffer.alloc(8000, 2), 40, 5, 5)
    await sleep(100)
    expect(relay.dropped).toBeGreaterThan(0)
    expect(forwarded.length + relay.dropped).toBe(40)
  })

  it('counts idle time from the last hello or datagram it forwarded', async () => {
    const { relay } = await open()
    const a = await udp()
    const b = await udp()
    expect(relay.idleFor(Date.now() + 5000)).toBeGreaterThanOrEqual(5000)
    await sleep(100)
    let idle = relay.idleFor()
    expect(idle).toBeGreaterThanOrEqual(90)
    hello(a, relay, 0)
    await sleep(20)
    expect(relay.idleFor()).toBeLessThan(idle)
    hello(b, relay, 1)
    await sleep(100)
    idle = relay.idleFor()
    send(a, relay, 0, Buffer.from('x'))
    await sleep(20)
    expect(relay.idleFor()).toBeLessThan(idle)
  })

  it('close() frees both ports once, and a failed bind of either side frees the other', async () => {
    const { relay } = await open()
    const ports = [relay.side(0).port, relay.side(1).port]
    expect([await udpPortFree(ports[0]), await udpPortFree(ports[1])]).toEqual([false, false])
    expect(relay.closed).toBe(false)
    relay.close()
    relay.close()
    expect(relay.closed).toBe(true)
    expect([await udpPortFree(ports[0]), await udpPortFree(ports[1])]).toEqual([true, true])
    // 192.0.2.1 is no address of this host: that side cannot bind. The side that did is closed again
    const bound: dgram.Socket[] = []
    const realBindUdp = socketsModule.bindUdp
    socketsModule.bindUdp = async (...args) => {
      const s = await realBindUdp(...args)
      bound.push(s)
      return s
    }
    try {
      await expect(open({ hosts: ['127.0.0.1', '192.0.2.1'] })).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' })
      await expect(open({ hosts: ['192.0.2.1', '127.0.0.1'] })).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' })
    } finally {
      socketsModule.bindUdp = realBindUdp
    }
    expect(bound).toHaveLength(2)
    for (const s of bound) expect(() => s.address()).toThrow(/Not running/)
  })
})
