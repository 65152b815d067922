// The uTP socket's public address and NAT mapping from DHT nodes (BEP 42's `ip`), asked from the socket itself;
// and the bencoding it speaks, against what strangers may send.
import * as dgram from 'dgram'
import { randomBytes } from 'crypto'

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'

import { startDhtLab, type DhtLab } from './helpers/dht-lab.mjs'
import { cleanupNodes, makeNode, requireFromRoot } from './helpers/utp'

const { bdecode, bencode } = requireFromRoot('./dist/lib/dht/bencode.js') as typeof import('../lib/dht/bencode')
const { reflectAddress, reflectUntilKnown } = requireFromRoot('./dist/lib/dht/reflect.js') as typeof import('../lib/dht/reflect')
const { bootstrapEndpoints } = requireFromRoot('./dist/lib/rendezvous/local.js') as typeof import('../lib/rendezvous/local')

cleanupNodes()

describe('bencode', () => {
  it('round-trips KRPC messages with keys in byte order', () => {
    const m = { t: Buffer.from('ab'), y: Buffer.from('q'), q: Buffer.from('ping'), a: { id: Buffer.alloc(20, 7), n: -12, l: [1, Buffer.from('x')] } }
    const b = bencode(m)
    expect(b.toString('latin1')).toBe('d1:ad2:id20:' + '\x07'.repeat(20) + '1:lli1e1:xe1:ni-12ee1:q4:ping1:t2:ab1:y1:qe')
    expect(bdecode(b)).toEqual(m)
  })

  it('refuses anything not exactly one well-formed value, and never throws', () => {
    for (const s of ['', 'i', 'ie', 'i-0e', 'i01e', 'i1', '3:ab', '-1:a', '1:ab', 'l', 'le1', 'd1:ae', 'di1e1:ae', 'x', '01:a', 'i12345678901234567e']) {
      expect(bdecode(Buffer.from(s, 'latin1')), s).toBeNull()
    }
    expect(bdecode(Buffer.from('l'.repeat(100) + 'e'.repeat(100)))).toBeNull() // nested deeper than any KRPC message
    for (let i = 0; i < 5000; i++) bdecode(randomBytes(1 + (i % 64)))
  })
})

/** Fake nodes, one per host, answering pings with BEP 42's `ip`: the truth, or what `say(i)` returns; counting pings */
async function fakeNodes (hosts: string[], say: (i: number) => Buffer | null = () => null): Promise<{ sockets: dgram.Socket[], pings: number[], endpoints: Array<{ address: string, port: number }> }> {
  const pings = hosts.map(() => 0)
  const sockets = await Promise.all(hosts.map(async (host, i) => {
    const s = dgram.createSocket('udp4')
    s.on('message', (msg, rinfo) => {
      pings[i]++
      const q = bdecode(msg) as { t: Buffer }
      const ip = Buffer.alloc(6)
      rinfo.address.split('.').forEach((x, j) => { ip[j] = Number(x) })
      ip.writeUInt16BE(rinfo.port, 4)
      s.send(bencode({ t: q.t, y: Buffer.from('r'), r: { id: Buffer.alloc(20) }, ip: say(i) ?? ip }), rinfo.port, rinfo.address)
    })
    await new Promise<void>(resolve => s.bind(0, host, () => resolve()))
    return s
  }))
  return { sockets, pings, endpoints: sockets.map((s, i) => ({ address: hosts[i], port: s.address().port })) }
}

describe('reflectAddress', () => {
  let lab: DhtLab
  beforeAll(async () => {
    lab = await startDhtLab({ host: '127.0.0.1', ours: 3, theirs: 2 })
  }, 30_000)
  afterAll(async () => { await lab?.close() })

  const endpoints = (list: string[]): Array<{ address: string, port: number }> => list.map(s => ({ address: s.split(':')[0], port: Number(s.split(':')[1]) }))

  it('learns the socket\'s address from the nodes that report it', async () => {
    const node = makeNode()
    const { port } = await node.bindAsync(0, '127.0.0.1')
    const r = await reflectAddress(node, endpoints(lab.bootstrap))
    expect(r.public).toEqual({ address: '127.0.0.1', port })
    // mainline (like libtorrent) puts BEP 42's `ip` in every answer; bittorrent-dht answers without it
    expect(r.answers).toBe(lab.ours.length)
    expect(r.addresses).toBe(1)
    expect(r.mapping).toBeUndefined() // one node address cannot tell the mapping
  })

  it('calls a mapping independent when two addresses saw one port, dependent when ports differ', async () => {
    // Two fake nodes on two loopback addresses: the first tells the truth, the second what we make it say
    let lie: Buffer | null = null
    const { sockets: fakes } = await fakeNodes(['127.0.0.2', '127.0.0.3'], i => i === 1 ? lie : null)
    try {
      const node = makeNode()
      const { port } = await node.bindAsync(0, '0.0.0.0')
      const targets = fakes.map((s, i) => ({ address: `127.0.0.${i + 2}`, port: s.address().port }))
      const honest = await reflectAddress(node, targets)
      expect(honest).toMatchObject({ mapping: 'independent', answers: 2, addresses: 2 })
      expect(honest.public?.port).toBe(port)
      lie = Buffer.from([127, 0, 0, 1, 0, 9])
      expect(await reflectAddress(node, targets)).toMatchObject({ mapping: 'dependent', answers: 2 })
    } finally {
      for (const s of fakes) s.close()
    }
  })

  it('reflectUntilKnown asks again as the node list grows, until two addresses tell the mapping', async () => {
    // A DHT node that has just joined knows a node or two, at one address; more arrive as its join goes on
    const { sockets, pings, endpoints } = await fakeNodes(['127.0.0.2', '127.0.0.2', '127.0.0.3'])
    try {
      const node = makeNode()
      const { port } = await node.bindAsync(0, '0.0.0.0')
      let calls = 0
      const r = await reflectUntilKnown(node, async () => ++calls < 3 ? endpoints.slice(0, 2) : endpoints, { pollMs: 50 })
      expect(r).toMatchObject({ mapping: 'independent', answers: 3, addresses: 2, public: { address: '127.0.0.1', port } })
      expect(calls).toBe(3)
      expect(pings).toEqual([1, 1, 1]) // nobody asked twice
    } finally {
      for (const s of sockets) s.close()
    }
  })

  it('reflectUntilKnown asks nodes at addresses not heard from before more nodes of an address already heard', async () => {
    const { sockets, pings, endpoints } = await fakeNodes(['127.0.0.2', '127.0.0.2', '127.0.0.2', '127.0.0.3'])
    try {
      const node = makeNode()
      await node.bindAsync(0, '0.0.0.0')
      let calls = 0
      const r = await reflectUntilKnown(node, async () => ++calls === 1 ? endpoints.slice(0, 1) : endpoints, { maxNodes: 1, pollMs: 50 })
      expect(r).toMatchObject({ mapping: 'independent', answers: 2, addresses: 2 })
      expect(calls).toBe(2)
      expect(pings).toEqual([1, 0, 0, 1])
    } finally {
      for (const s of sockets) s.close()
    }
  })

  it('reflectUntilKnown gives up at its budget with what it has: one address tells no mapping', async () => {
    const { sockets, pings, endpoints } = await fakeNodes(['127.0.0.2'])
    try {
      const node = makeNode()
      await node.bindAsync(0, '0.0.0.0')
      let calls = 0
      const started = Date.now()
      const r = await reflectUntilKnown(node, async () => { calls++; return endpoints }, { budgetMs: 600, pollMs: 100 })
      const took = Date.now() - started
      expect(r).toMatchObject({ answers: 1, addresses: 1 })
      expect(r.mapping).toBeUndefined()
      expect(pings).toEqual([1])
      expect(calls).toBeGreaterThanOrEqual(4) // it kept looking for other nodes
      expect(took).toBeGreaterThanOrEqual(450)
      expect(took).toBeLessThan(2000)
    } finally {
      for (const s of sockets) s.close()
    }
  })

  it('reflectUntilKnown returns at the first round that tells the mapping, dependent included', async () => {
    const { sockets, endpoints } = await fakeNodes(['127.0.0.2', '127.0.0.3'], i => i === 1 ? Buffer.from([127, 0, 0, 1, 0, 9]) : null)
    try {
      const node = makeNode()
      await node.bindAsync(0, '0.0.0.0')
      let calls = 0
      const started = Date.now()
      const r = await reflectUntilKnown(node, async () => { calls++; return endpoints }, { budgetMs: 5000 })
      expect(r).toMatchObject({ mapping: 'dependent', answers: 2 })
      expect(calls).toBe(1)
      expect(Date.now() - started).toBeLessThan(1000)
    } finally {
      for (const s of sockets) s.close()
    }
  })

  it('bootstrapEndpoints: IPv4 entries as they are, names resolved, anything else left out, in bounded time', async () => {
    const started = Date.now()
    const got = await bootstrapEndpoints(['198.51.100.7:6881', 'localhost:25401', ':80', 'nocolon', '192.0.2.1:0', '192.0.2.1:65536', '192.0.2.1:x', '::1:6881', 'no-such-host.invalid:6881', '192.0.2.2:65535'], 500)
    expect(got).toEqual([{ address: '198.51.100.7', port: 6881 }, { address: '127.0.0.1', port: 25401 }, { address: '192.0.2.2', port: 65535 }])
    expect(Date.now() - started).toBeLessThan(1500)
    // A name that resolved leaves no timer running (it would hold the process up to the timeout)
    const timers = (): number => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
    const before = timers()
    await bootstrapEndpoints(['localhost:1'], 60_000)
    expect(timers()).toBe(before)
    // A resolver that never answers costs the timeout, not more
    const dns = requireFromRoot('dns') as typeof import('dns')
    const hang = vi.spyOn(dns.promises, 'lookup').mockImplementation(async () => await new Promise(() => {}))
    try {
      const t0 = Date.now()
      expect(await bootstrapEndpoints(['slow.example:6881', '192.0.2.9:1'], 300)).toEqual([{ address: '192.0.2.9', port: 1 }])
      expect(hang).toHaveBeenCalledWith('slow.example', { family: 4, all: true })
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250)
      expect(Date.now() - t0).toBeLessThan(1000)
    } finally {
      hang.mockRestore()
    }
  })

  it('ignores answers from elsewhere or to other transactions, and ends at its timeout', async () => {
    const silent = dgram.createSocket('udp4')
    await new Promise<void>(resolve => silent.bind(0, '127.0.0.1', () => resolve()))
    const intruder = dgram.createSocket('udp4')
    try {
      const node = makeNode()
      const { port } = await node.bindAsync(0, '127.0.0.1')
      silent.on('message', (msg) => {
        // Someone else answers in its place, with the right transaction id
        const q = bdecode(msg) as { t: Buffer }
        intruder.send(bencode({ t: q.t, y: Buffer.from('r'), r: { id: Buffer.alloc(20) }, ip: Buffer.from([9, 9, 9, 9, 0, 9]) }), port, '127.0.0.1')
      })
      const started = Date.now()
      const r = await reflectAddress(node, [{ address: '127.0.0.1', port: silent.address().port }], { timeoutMs: 800 })
      expect(r).toEqual({ answers: 0, addresses: 0 })
      expect(Date.now() - started).toBeGreaterThanOrEqual(750)
      expect(Date.now() - started).toBeLessThan(3000)
    } finally {
      silent.close()
      intruder.close()
    }
  })
})

describe('reflectAddress against what the network may send (each found by StrykerJS)', () => {
  /** A UDP socket on `host` answering each KRPC query with `reply(t)`'s messages, in order, `delayMs` apart */
  async function replier (host: string, reply: (t: Buffer) => Buffer[], delayMs = 0, port = 0): Promise<dgram.Socket> {
    const s = dgram.createSocket('udp4')
    s.on('message', (msg, rinfo) => {
      const q = bdecode(msg) as { t: Buffer }
      reply(q.t).forEach((m, i) => setTimeout(() => s.send(m, rinfo.port, rinfo.address), delayMs + i * 5))
    })
    await new Promise<void>(resolve => s.bind(port, host, () => resolve()))
    return s
  }
  const compact = (address: string, port: number): Buffer => {
    const b = Buffer.alloc(6)
    address.split('.').forEach((x, j) => { b[j] = Number(x) })
    b.writeUInt16BE(port, 4)
    return b
  }
  const answer = (t: Buffer, ip: Buffer, y = 'r'): Buffer => bencode({ t, y: Buffer.from(y), r: { id: Buffer.alloc(20) }, ip })
  const sockets: dgram.Socket[] = []
  afterAll(() => { for (const s of sockets) s.close() })

  it('pings IPv4 literals only, and with nobody to ask returns at once', async () => {
    const node = makeNode()
    const { port } = await node.bindAsync(0, '0.0.0.0')
    // Every octet of two digits: a pattern that wants one digit somewhere would leave this node out
    const real = await replier('127.10.10.10', t => [answer(t, compact('127.0.0.1', port))])
    sockets.push(real)
    const started = Date.now()
    // Neither a name that merely contains an address nor IPv6 is pinged: they would never answer, and the
    // reflection would wait out its timeout for them
    const r = await reflectAddress(node, [{ address: '127.10.10.10', port: real.address().port }, { address: 'x127.0.0.2', port: 1 }, { address: '127.0.0.2x', port: 1 }, { address: '::1', port: 1 }], { timeoutMs: 3000 })
    expect(r).toMatchObject({ answers: 1, addresses: 1, public: { address: '127.0.0.1', port } })
    expect(Date.now() - started).toBeLessThan(1500)
    const t0 = Date.now()
    expect(await reflectAddress(node, [], { timeoutMs: 3000 })).toEqual({ answers: 0, addresses: 0 })
    expect(Date.now() - t0).toBeLessThan(500)
  })

  it('takes only a well-formed answer to its own transaction from the node asked; leaves no listener behind', async () => {
    const node = makeNode()
    const { port } = await node.bindAsync(0, '0.0.0.0')
    const udp = node.getUdpSocket()
    const listeners = udp.listenerCount('message')
    const wrong = compact('203.0.113.66', 4444)
    // Before the real answer: garbage, a list, a numeric transaction id, no `y`, an error and a query carrying
    // our transaction id and a false `ip`, and an answer to another transaction
    const noisy = await replier('127.0.0.2', t => [
      randomBytes(40), bencode([1, 2]), bencode({ t: 7, y: Buffer.from('r'), ip: wrong }), bencode({ t, ip: wrong }),
      answer(t, wrong, 'e'), answer(t, wrong, 'q'), answer(randomBytes(4), wrong), answer(t, compact('127.0.0.1', port))
    ])
    // An `ip` of IPv6 length, and one too short: no address, and no harm
    const long = await replier('127.0.0.3', t => [answer(t, Buffer.alloc(18, 1))])
    const short = await replier('127.0.0.4', t => [answer(t, Buffer.from([127, 0, 0, 1]))])
    sockets.push(noisy, long, short)
    const r = await reflectAddress(node, [noisy, long, short].map((s, i) => ({ address: `127.0.0.${i + 2}`, port: s.address().port })), { timeoutMs: 1500 })
    expect(r).toEqual({ answers: 1, addresses: 1, public: { address: '127.0.0.1', port } })
    expect(udp.listenerCount('message')).toBe(listeners)
  })

  it('an answer with our transaction id from another address on the same port is not the node\'s', async () => {
    const silent = dgram.createSocket('udp4')
    await new Promise<void>(resolve => silent.bind(0, '127.0.0.5', () => resolve()))
    const intruder = dgram.createSocket('udp4')
    await new Promise<void>(resolve => intruder.bind(silent.address().port, '127.0.0.6', () => resolve()))
    sockets.push(silent, intruder)
    const node = makeNode()
    const { port } = await node.bindAsync(0, '0.0.0.0')
    silent.on('message', (msg) => {
      const q = bdecode(msg) as { t: Buffer }
      intruder.send(answer(q.t, compact('9.9.9.9', 9)), port, '127.0.0.1')
    })
    expect(await reflectAddress(node, [{ address: '127.0.0.5', port: silent.address().port }], { timeoutMs: 600 })).toEqual({ answers: 0, addresses: 0 })
  })

  it('the address most nodes saw wins, whichever answered first', async () => {
    const node = makeNode()
    const { port } = await node.bindAsync(0, '0.0.0.0')
    // The one that saw another port answers first; the two that saw ours 100 ms later
    const first = await replier('127.0.0.7', t => [answer(t, compact('127.0.0.1', 1111))])
    const later = await Promise.all(['127.0.0.8', '127.0.0.9'].map(async h => await replier(h, t => [answer(t, compact('127.0.0.1', port))], 100)))
    sockets.push(first, ...later)
    const r = await reflectAddress(node, [first, ...later].map((s, i) => ({ address: `127.0.0.${i + 7}`, port: s.address().port })))
    expect(r).toEqual({ answers: 3, addresses: 3, public: { address: '127.0.0.1', port }, mapping: 'dependent' })
  })

  it('reflectUntilKnown: a silent node costs the budget, not the ping timeout; rounds stop at the budget', async () => {
    const silent = dgram.createSocket('udp4')
    await new Promise<void>(resolve => silent.bind(0, '127.0.0.5', () => resolve()))
    sockets.push(silent)
    const node = makeNode()
    await node.bindAsync(0, '0.0.0.0')
    let t0 = Date.now()
    expect(await reflectUntilKnown(node, async () => [{ address: '127.0.0.5', port: silent.address().port }], { budgetMs: 400, retryMs: 100 }))
      .toEqual({ answers: 0, addresses: 0, asked: 1 })
    expect(Date.now() - t0).toBeLessThan(1000)
    // With nothing new to ask, it reads the nodes every pollMs and stops before a poll would pass the budget
    t0 = Date.now()
    await reflectUntilKnown(node, async () => [], { budgetMs: 1000, pollMs: 400 })
    expect(Date.now() - t0).toBeGreaterThanOrEqual(750)
    expect(Date.now() - t0).toBeLessThan(1500)
    // Nothing new for quietMs: the network has no more addresses to offer, long before the budget
    t0 = Date.now()
    await reflectUntilKnown(node, async () => [], { budgetMs: 10_000, pollMs: 100, quietMs: 500 })
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450)
    expect(Date.now() - t0).toBeLessThan(2000)
  })

  it('reflectUntilKnown: each new node restarts the quiet time', async () => {
    const { sockets: fakes, endpoints } = await fakeNodes(['127.0.0.2', '127.0.0.2', '127.0.0.3'])
    sockets.push(...fakes)
    const node = makeNode()
    await node.bindAsync(0, '0.0.0.0')
    // A node at 0, 300 and 600 ms: never 400 ms without one, until the third tells the mapping
    const t0 = Date.now()
    const r = await reflectUntilKnown(node, async () => endpoints.slice(0, 1 + Math.min(2, Math.floor((Date.now() - t0) / 300))), { pollMs: 50, quietMs: 400 })
    expect(r).toMatchObject({ mapping: 'independent', answers: 3, asked: 3 })
  })

  it('reflectUntilKnown also asks more nodes of an address already heard from', async () => {
    const { sockets: fakes, pings, endpoints } = await fakeNodes(['127.0.0.2', '127.0.0.2', '127.0.0.3'])
    sockets.push(...fakes)
    const node = makeNode()
    await node.bindAsync(0, '0.0.0.0')
    let calls = 0
    const r = await reflectUntilKnown(node, async () => { calls++; return calls === 1 ? endpoints.slice(0, 1) : calls === 2 ? endpoints.slice(0, 2) : endpoints }, { maxNodes: 1, pollMs: 30 })
    expect(r).toMatchObject({ mapping: 'independent', answers: 3, addresses: 2, asked: 3 })
    expect(pings).toEqual([1, 1, 1])
  })
})
