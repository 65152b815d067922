// The uTP socket's public address and NAT mapping from DHT nodes (BEP 42's `ip`), asked from the socket itself;
// and the bencoding it speaks, against what strangers may send.
import * as dgram from 'dgram'
import { randomBytes } from 'crypto'

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'

import { startDhtLab, type DhtLab } from './helpers/dht-lab.mjs'
import { cleanupNodes, makeNode, requireFromRoot } from './helpers/utp'

const { bdecode, bencode } = requireFromRoot('./dist/lib/dht/bencode.js') as typeof import('../lib/dht/bencode')
const { bootstrapEndpoints, reflectAddress, reflectUntilKnown } = requireFromRoot('./dist/lib/dht/reflect.js') as typeof import('../lib/dht/reflect')

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
    const got = await bootstrapEndpoints(['198.51.100.7:6881', 'localhost:25401', ':80', 'nocolon', '192.0.2.1:0', '192.0.2.1:65536', '192.0.2.1:x', '::1:6881', 'no-such-host.invalid:6881'], 500)
    expect(got).toEqual([{ address: '198.51.100.7', port: 6881 }, { address: '127.0.0.1', port: 25401 }])
    expect(Date.now() - started).toBeLessThan(1500)
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
