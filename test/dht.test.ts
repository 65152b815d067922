// DhtNode against a Mainline DHT built here: 20 nodes of ours and 10 of webtorrent's bittorrent-dht on
// loopback (test/helpers/dht-lab.mjs). Items must cross between the two implementations in both directions
// (so we speak BEP 44, not a dialect), survive hostile nodes, and bad arguments must fail clearly.
import { createHash, createPrivateKey, randomBytes, sign as edSign } from 'crypto'

import BittorrentDht from 'bittorrent-dht'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { ed25519Verify, itemHolder, startDhtLab } from './helpers/dht-lab.mjs'
import { requireFromRoot } from './helpers/utp'

const { DhtNode, dhtPublicKey } = requireFromRoot('./dist/lib/dht/node.js') as typeof import('../lib/dht/node')
type DhtNode = import('../lib/dht/node').DhtNode
type Lab = import('./helpers/dht-lab.mjs').DhtLab

// RFC 8410: an Ed25519 private key in PKCS #8 is this prefix and the 32-byte seed
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

let lab: Lab
const clients: DhtNode[] = []

async function client (extra: string[] = []): Promise<DhtNode> {
  const node = await DhtNode.open({ bootstrap: [...lab.bootstrap.slice(0, 3), ...extra], host: '127.0.0.1' })
  clients.push(node)
  expect(await node.bootstrapped()).toBe(true)
  return node
}

/** A bittorrent-dht client (not one of the lab's nodes), for gets and puts from the other implementation */
async function theirClient (): Promise<BittorrentDht> {
  const dht = new BittorrentDht({ bootstrap: lab.theirBootstrap.slice(0, 3), host: '127.0.0.1', verify: ed25519Verify })
  await new Promise<void>(resolve => dht.listen(0, '127.0.0.1', () => resolve()))
  await new Promise<void>(resolve => dht.once('ready', () => resolve()))
  return dht
}

beforeAll(async () => {
  lab = await startDhtLab({ host: '127.0.0.1', ours: 20, theirs: 10, hostile: true })
}, 60_000)

afterAll(async () => {
  for (const c of clients) c.close()
  await lab?.close()
})

describe('DhtNode on a local Mainline DHT of two implementations', () => {
  it('stores an item that a bittorrent-dht client reads and verifies, and on bittorrent-dht nodes too', async () => {
    const a = await client()
    const seed = randomBytes(32)
    const salt = Buffer.from('ours-to-theirs')
    const value = randomBytes(600)
    const storedAt = await a.put(seed, salt, value, { seq: 5 })
    expect(storedAt).toBeGreaterThanOrEqual(8)

    const theirs = await theirClient()
    try {
      const got = await new Promise<{ v: Buffer, seq: number } | null>((resolve, reject) => {
        // Their get finds the target from our key and salt, and checks our signature with ed25519Verify
        const target = (theirs as unknown as { _hash: (b: Buffer) => Buffer })._hash(Buffer.concat([dhtPublicKey(seed), salt]))
        theirs.get(target, { salt }, (err, res) => err !== null ? reject(err) : resolve(res))
      })
      expect(got?.v.equals(value)).toBe(true)
      expect(got?.seq).toBe(5)
    } finally {
      await new Promise<void>(resolve => theirs.destroy(() => resolve()))
    }
    // Some of the independent nodes hold it: the put went to them, not only to nodes of ours
    const holders = lab.theirs.filter(d => (d as unknown as { _values: { length: number } })._values.length > 0)
    expect(holders.length).toBeGreaterThan(0)
  }, 60_000)

  it('reads an item that a bittorrent-dht client signed and stored', async () => {
    const seed = randomBytes(32)
    const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
    const salt = Buffer.from('theirs-to-ours')
    const value = Buffer.from('from bittorrent-dht')
    const theirs = await theirClient()
    try {
      await new Promise<void>((resolve, reject) => {
        theirs.put({ k: dhtPublicKey(seed), salt, seq: 9, v: value, sign: (buf: Buffer) => edSign(null, buf, key) },
          (err) => err !== null ? reject(err) : resolve())
      })
    } finally {
      await new Promise<void>(resolve => theirs.destroy(() => resolve()))
    }
    const b = await client()
    const r = await b.get(dhtPublicKey(seed), salt)
    expect(r.item?.value.equals(value)).toBe(true)
    expect(r.item?.seq).toBe(9)
    // Nothing newer than what is there
    expect((await b.get(dhtPublicKey(seed), salt, { moreRecentThan: 9 })).item).toBeUndefined()
  }, 60_000)

  it('returns the newest version and refuses a put whose cas does not match', async () => {
    const a = await client()
    const seed = randomBytes(32)
    const salt = Buffer.from('versions')
    await a.put(seed, salt, Buffer.from('one'), { seq: 1 })
    await a.put(seed, salt, Buffer.from('two'), { seq: 2, cas: 1 })
    const r = await (await client()).get(dhtPublicKey(seed), salt)
    expect(r.item?.value.toString()).toBe('two')
    await expect(a.put(seed, salt, Buffer.from('stale'), { seq: 3, cas: 1 })).rejects.toMatchObject({ code: 'ERR_DHT_CONFLICT' })
    expect((await a.get(dhtPublicKey(seed), salt)).item?.value.toString()).toBe('two')
  }, 60_000)

  it('gets the real item past a silent node, a garbage node and a node forging values, in bounded time', async () => {
    const a = await client()
    const seed = randomBytes(32)
    const salt = Buffer.from('hostile')
    await a.put(seed, salt, Buffer.from('real'), { seq: 1 })
    // The liar takes the id beside the item's target (BEP 44: SHA-1 of key and salt), so the lookup asks it
    lab.aimLiar(createHash('sha1').update(Buffer.concat([dhtPublicKey(seed), salt])).digest())
    const b = await client(lab.hostile.map(h => h.address))
    const started = Date.now()
    const r = await b.get(dhtPublicKey(seed), salt)
    expect(r.item?.value.toString()).toBe('real') // the forged seq of 1e9 lost: its signature does not verify
    expect(r.invalidValues).toBeGreaterThanOrEqual(1)
    expect(Date.now() - started).toBeLessThan(15_000)
    for (const h of lab.hostile) expect(h.queries(), h.kind).toBeGreaterThan(0) // each was really asked
    expect(lab.hostile.find(h => h.kind === 'liar')?.kinds().get).toBeGreaterThan(0)
  }, 60_000)
})

describe('DhtNode among nodes holding different versions of an item', () => {
  it('returns the highest seq that verifies, not the first answer: a node that missed the update answers first', async () => {
    const seed = randomBytes(32)
    const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
    const salt = Buffer.from('versions')
    // BEP 44 signs the bencoded salt, seq and value, without the dictionary around them
    const item = (seq: number, v: Buffer): { k: Buffer, seq: number, sig: Buffer, v: Buffer } => {
      const signed = Buffer.concat([Buffer.from(`4:salt${salt.length}:`), salt, Buffer.from(`3:seqi${seq}e1:v${v.length}:`), v])
      return { k: dhtPublicKey(seed), seq, sig: edSign(null, signed, key), v }
    }
    const stale = await itemHolder('127.0.0.1', item(1, Buffer.from('old')), 0)
    const fresh = await itemHolder('127.0.0.1', item(2, Buffer.from('new')), 300)
    try {
      const b = await DhtNode.open({ bootstrap: [stale.address, fresh.address], host: '127.0.0.1' })
      clients.push(b)
      expect(await b.bootstrapped()).toBe(true)
      const r = await b.get(dhtPublicKey(seed), salt)
      expect(r.item?.value.toString()).toBe('new')
      expect(r.item?.seq).toBe(2)
      expect(r.responded).toBe(2)
    } finally {
      stale.close()
      fresh.close()
    }
  }, 30_000)
})

describe('DhtNode misuse', () => {
  it('rejects bad arguments before anything is sent: each check at its limit, with its message and error type', async () => {
    const a = await DhtNode.open({ bootstrap: [], host: '127.0.0.1' })
    clients.push(a)
    const refused = async (p: Promise<unknown>, code: string, message: string, type: ErrorConstructor = RangeError): Promise<void> => {
      const err = await p.then(() => null, (e: unknown) => e)
      expect(err, message).toBeInstanceOf(type)
      expect(err).toMatchObject({ code, message })
    }
    const bad = async (p: Promise<unknown>, code: string): Promise<void> => { await expect(p).rejects.toMatchObject({ code }) }
    const key = Buffer.alloc(32)
    const none = Buffer.alloc(0)
    await bad(a.put(Buffer.alloc(31), none, Buffer.alloc(1), { seq: 1 }), 'ERR_INVALID_ARG_VALUE')
    await bad(a.put('seed' as unknown as Buffer, none, Buffer.alloc(1), { seq: 1 }), 'ERR_INVALID_ARG_TYPE')
    await bad(a.get(Buffer.alloc(33), none), 'ERR_INVALID_ARG_VALUE')
    expect(() => dhtPublicKey(Buffer.alloc(16))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    // Checked natively, when the node opens
    await bad(DhtNode.open({ bootstrap: ['[::1]:6881'] }), 'ERR_INVALID_ARG_VALUE') // the Mainline DHT is IPv4
    await bad(DhtNode.open({ bootstrap: [], host: 'localhost' }), 'ERR_INVALID_ARG_VALUE')
    await bad(DhtNode.open({ bootstrap: [], port: 70000 }), 'ERR_SOCKET_BAD_PORT')
    await bad(DhtNode.open({ bootstrap: 'x' as unknown as string[] }), 'ERR_INVALID_ARG_TYPE')
    await refused(a.put(Buffer.alloc(33), none, none, { seq: 1 }), 'ERR_INVALID_ARG_VALUE', 'seed must be 32 bytes, got 33')
    await refused(a.put(key, Buffer.alloc(65), none, { seq: 1 }), 'ERR_INVALID_ARG_VALUE', 'salt must be 0..64 bytes, got 65')
    await refused(a.put(key, none, Buffer.alloc(1001), { seq: 1 }), 'ERR_INVALID_ARG_VALUE', 'value must be 0..1000 bytes, got 1001')
    await refused(a.put(key, none, 'v' as unknown as Buffer, { seq: 1 }), 'ERR_INVALID_ARG_TYPE', 'value must be a Buffer', TypeError)
    await refused(a.put(key, new Uint8Array(4) as Buffer, none, { seq: 1 }), 'ERR_INVALID_ARG_TYPE', 'salt must be a Buffer', TypeError)
    for (const seq of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, NaN, '1']) {
      await refused(a.put(key, none, none, { seq: seq as number }), 'ERR_INVALID_ARG_VALUE', `seq must be a non-negative safe integer, got ${String(seq)}`)
    }
    await refused(a.put(key, none, none, { seq: 1, cas: -1 }), 'ERR_INVALID_ARG_VALUE', 'cas must be a non-negative safe integer, got -1')
    await refused(a.get(Buffer.alloc(31), none), 'ERR_INVALID_ARG_VALUE', 'publicKey must be 32 bytes, got 31')
    await refused(a.get(key, Buffer.alloc(65)), 'ERR_INVALID_ARG_VALUE', 'salt must be 0..64 bytes, got 65')
    await refused(a.get(key, none, { moreRecentThan: -1 }), 'ERR_INVALID_ARG_VALUE', 'moreRecentThan must be a non-negative safe integer, got -1')
    // At each limit the call goes through to the network: a node that knows nobody has nowhere to store
    const alone = async (p: Promise<unknown>): Promise<void> => { await expect(p).rejects.toMatchObject({ code: 'ERR_DHT_NO_NODES' }) }
    await alone(a.put(key, Buffer.alloc(64), Buffer.alloc(1000), { seq: 0 }))
    await alone(a.put(key, none, none, { seq: Number.MAX_SAFE_INTEGER, cas: 0 }))
    const nothing = await a.get(key, Buffer.alloc(64), { moreRecentThan: 0 })
    expect(nothing).toEqual({ item: undefined, queried: 0, responded: 0, invalidValues: 0 })
    expect(() => dhtPublicKey('k' as unknown as Buffer)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: 'seed must be a Buffer' }))
    expect(dhtPublicKey(key)).toHaveLength(32)
    for (const port of [-1, 65536, 1.5]) {
      await refused(DhtNode.open({ bootstrap: [], port }), 'ERR_SOCKET_BAD_PORT', `DHT port must be an integer in 0..65535, got ${port}`)
    }
    for (const requestTimeoutMs of [0, -5, 2.5]) {
      await refused(DhtNode.open({ bootstrap: [], requestTimeoutMs }), 'ERR_INVALID_ARG_VALUE', 'requestTimeoutMs must be a positive integer')
    }
    await refused(DhtNode.open({ bootstrap: [5] as unknown as string[] }), 'ERR_INVALID_ARG_TYPE', 'bootstrap must be an array of "host:port" strings', TypeError)
    // The limits themselves open
    for (const o of [{ port: 0, requestTimeoutMs: 1 }, { port: 65535 }]) {
      const n = await DhtNode.open({ bootstrap: [], host: '127.0.0.1', ...o })
      clients.push(n)
      const port = (await n.info()).port
      expect(o.port === 0 ? port > 0 : port === 65535, String(port)).toBe(true)
      n.close()
    }
  })

  it('lists its routing table as addresses and ports, and serves others only when asked to', async () => {
    const a = await client()
    const nodes = await a.nodes()
    expect(nodes.length).toBeGreaterThan(3)
    for (const n of nodes) expect(lab.bootstrap).toContain(`${n.address}:${n.port}`)
    expect(nodes.every(n => n.address === '127.0.0.1' && Number.isInteger(n.port))).toBe(true)
    expect((await a.info()).server).toBe(false)
    const server = await DhtNode.open({ bootstrap: lab.bootstrap.slice(0, 2), host: '127.0.0.1', server: true })
    clients.push(server)
    expect((await server.info()).server).toBe(true)
    expect(a.closed).toBe(false)
  })

  it('bootstrap names that do not resolve are skipped; when none resolves, ERR_DHT_BOOTSTRAP names each and why', async () => {
    // Both fail without asking a name server: an unbracketed IPv6 literal resolves to IPv6 only, and a port that is
    // not a number is refused before any lookup
    const unusable = ['::1:6881', '127.0.0.1:port']
    await expect(DhtNode.open({ bootstrap: unusable, host: '127.0.0.1' })).rejects.toMatchObject({
      code: 'ERR_DHT_BOOTSTRAP',
      message: 'no DHT bootstrap node resolves: ::1:6881 (no IPv4 address), 127.0.0.1:port (invalid port value)'
    })
    const skipping = await DhtNode.open({ bootstrap: [...unusable, lab.bootstrap[0]], host: '127.0.0.1' })
    clients.push(skipping)
    expect(await skipping.bootstrapped()).toBe(true)
  })

  it('a node alone cannot store, and a closed node says so', async () => {
    const alone = await DhtNode.open({ bootstrap: [], host: '127.0.0.1' })
    clients.push(alone)
    await expect(alone.put(randomBytes(32), Buffer.alloc(0), Buffer.from('x'), { seq: 1 })).rejects.toMatchObject({ code: 'ERR_DHT_NO_NODES' })
    alone.close()
    alone.close()
    expect(alone.closed).toBe(true)
    await expect(alone.get(randomBytes(32), Buffer.alloc(0))).rejects.toMatchObject({ code: 'ERR_DHT_CLOSED', message: 'the DHT node is closed' })
  })
})
