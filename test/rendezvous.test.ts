// The rendezvous server, rendezvous() and the relay, on loopback (the NAT lab covers real NATs)
import * as dgram from 'dgram'
import { getEventListeners } from 'events'
import * as os from 'os'
import { afterEach, describe, expect, it, vi } from 'vitest'

import type * as AuthModule from '../lib/rendezvous/auth'
import type * as BirthdayModule from '../lib/rendezvous/birthday'
import type * as ClientModule from '../lib/rendezvous/client'
import type * as ProberModule from '../lib/rendezvous/prober'
import type * as ProtocolModule from '../lib/rendezvous/protocol'
import type { SecureSocket } from '../lib/secure'
import type * as ServerModule from '../lib/server/server'
import { interceptServer } from './helpers/server-path'
import { cleanupNodes, closed, drainHash, makeNode, requireFromRoot, sleep, writeRandom, type Node } from './helpers/utp'

const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
const { rendezvous } = requireFromRoot('./dist/lib/rendezvous/client.js') as typeof ClientModule
const protocol = requireFromRoot('./dist/lib/rendezvous/protocol.js') as typeof ProtocolModule
const { Prober } = requireFromRoot('./dist/lib/rendezvous/prober.js') as typeof ProberModule
const { BirthdaySpray, birthdayRole } = requireFromRoot('./dist/lib/rendezvous/birthday.js') as typeof BirthdayModule
const { PeerAuth, codeKey } = requireFromRoot('./dist/lib/rendezvous/auth.js') as typeof AuthModule

/** A pairing's probe signer with throwaway keys */
const testAuth = (pair: string): AuthModule.PeerAuth => new PeerAuth({ probe: Buffer.alloc(32, 1), confirm: Buffer.alloc(32, 2), stream: Buffer.alloc(32, 3) }, pair)

type Server = ServerModule.RendezvousServer
/** Results typed with the default (encrypted) stream; the encrypt: false case checks its own */
type Result = ClientModule.RendezvousResult<Node, SecureSocket>
type Msg = ProtocolModule.Message

/** Placeholder SPAKE2 message and MAC: the server only checks their shape */
const PAKE = Buffer.alloc(32, 7).toString('base64')
const MAC = '5a'.repeat(16)

const servers: Server[] = []
const sockets: dgram.Socket[] = []

afterEach(async () => {
  for (const s of sockets.splice(0)) s.close()
  await Promise.all(servers.splice(0).map(async s => await s.close()))
})

async function startServer (options: ServerModule.RendezvousServerOptions = {}): Promise<{ server: Server, addr: string, port: number }> {
  const server = new RendezvousServer({ port: 0, host: '127.0.0.1', ...options })
  servers.push(server)
  const { port } = await server.listen()
  return { server, addr: `127.0.0.1:${port}`, port }
}

async function udp (host = '127.0.0.1'): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4')
  sockets.push(s)
  await new Promise<void>(resolve => s.bind(0, host, () => resolve()))
  return s
}

/** Calls `on` with each rendezvous message `socket` receives (other datagrams are dropped), for a scripted server */
function onMessages (socket: dgram.Socket, on: (m: Msg, rinfo: dgram.RemoteInfo) => void): void {
  socket.on('message', (buf: Buffer, rinfo: dgram.RemoteInfo) => {
    const m = protocol.decode(buf)
    if (m !== null && !protocol.isDecodeError(m)) on(m, rinfo)
  })
}

/** A scripted server's answer to a register from `rinfo`: registered for a minute, seen where it came from */
function registeredFor (nonce: string, rinfo: dgram.RemoteInfo, checkPort?: number): Buffer {
  const observed = { address: rinfo.address, port: rinfo.port }
  return protocol.encode({ t: 'registered', nonce, observed, expiresInMs: 60_000, ...(checkPort === undefined ? {} : { checkPort }) })
}

async function pair (a: Node, b: Node, opts: Omit<ClientModule.RendezvousOptions, 'code'>, code = 'pairing-code'): Promise<[Result, Result]> {
  return await Promise.all([rendezvous(a, { ...opts, code }), sleep(30).then(async () => await rendezvous(b, { ...opts, code }))]) as [Result, Result]
}

/** Send `bytes` from one socket to the other and compare checksums */
async function transfer (from: Result, to: Result, bytes: number): Promise<void> {
  const received = drainHash(to.socket)
  const sent = await writeRandom(from.socket, bytes)
  const got = await received
  expect(got.bytes).toBe(bytes)
  expect(got.sha256).toBe(sent)
  await closeBoth(from, to)
}

/**
 * End the other direction too and wait until both streams closed: an encrypted stream torn down without its
 * authenticated end (the test's nodes or the relay closing under it) rightly fails with ERR_DECRYPT
 */
async function closeBoth (a: Result, b: Result): Promise<void> {
  const both = Promise.all([closed(a.socket), closed(b.socket)])
  for (const x of [a, b]) {
    x.socket.resume()
    x.socket.end()
  }
  await both
}

/** Two bound nodes; host null binds the default (dual-stack '::') */
async function nodes (host: string | null = '127.0.0.1'): Promise<[Node, Node]> {
  const a = makeNode()
  const b = makeNode()
  await a.bindAsync(0, host)
  await b.bindAsync(0, host)
  return [a, b]
}

function roles (r: [Result, Result]): string[] {
  return r.map(x => x.role).sort()
}

describe('rendezvous protocol', () => {
  it('encodes to a datagram the uTP demux never takes and decodes it back, strictly', () => {
    const msg: Msg = { t: 'register', key: 'n:4127', pake: PAKE, nonce: '0123456789abcdef', lan: [{ address: '10.0.0.2', port: 4000 }], relay: true, nat: 'cone', rtt: 12 }
    const buf = protocol.encode(msg)
    expect(buf.subarray(0, 6).toString('latin1')).toBe('UTPRV\x02')
    expect(buf[0] & 0x0f).not.toBe(1)
    expect(protocol.decode(buf)).toEqual(msg)
    expect(protocol.decode(Buffer.from('hello'))).toBeNull()
    const body = (o: object): Buffer => Buffer.concat([Buffer.from('UTPRV\x02', 'latin1'), Buffer.from(JSON.stringify(o))])
    expect(protocol.decode(body({ ...msg, extra: 1 }))).toEqual(msg) // unknown fields dropped
    expect(protocol.decode(body({ ...msg, lan: [{ address: 'not-an-ip', port: 1 }] }))).toMatchObject({ error: 'ERR_MALFORMED' })
    expect(protocol.decode(body({ ...msg, nonce: 'XYZ' }))).toMatchObject({ error: 'ERR_MALFORMED' })
    expect(protocol.decode(body({ t: 'nope' }))).toMatchObject({ error: 'ERR_UNKNOWN_TYPE' })
    expect(protocol.decode(body([1, 2]))).toMatchObject({ error: 'ERR_MALFORMED' })
    expect(protocol.decode(Buffer.from('UTPRV\x01{}', 'latin1'))).toMatchObject({ error: 'ERR_VERSION' })
    expect(protocol.decode(Buffer.from('UTPRV\x02{', 'latin1'))).toMatchObject({ error: 'ERR_MALFORMED' })
    expect(protocol.parseHostPort('[::1]:7000')).toEqual({ host: '::1', port: 7000 })
    expect(protocol.parseHostPort('example.org:7')).toEqual({ host: 'example.org', port: 7 })
    expect(() => protocol.parseHostPort('example.org')).toThrow(/host:port/)
  })

  it('decodes the mapping check, peer-moved and birthday messages, strictly', () => {
    const ep = { address: '198.51.100.7', port: 4000 }
    const n = 'ab'.repeat(8)
    const msgs: Msg[] = [
      { t: 'registered', nonce: n, observed: ep, expiresInMs: 60000, checkPort: 7001 },
      { t: 'check', nonce: n },
      { t: 'check-ack', nonce: n, observed: ep },
      { t: 'peer', nonce: n, pair: 'cd'.repeat(16), role: 'accept', startInMs: 300, public: ep, lan: [], relay: true, mapping: 'dependent', peerMapping: 'independent', pake: PAKE },
      { t: 'peer-moved', nonce: n, public: ep, seq: 2 },
      { t: 'peer-moved-ack', nonce: n, seq: 2 },
      { t: 'select', pair: 'cd'.repeat(16), path: 'birthday', mac: MAC }
    ]
    for (const m of msgs) expect(protocol.decode(protocol.encode(m))).toEqual(m)
    const body = (o: object): Buffer => Buffer.concat([Buffer.from('UTPRV\x02', 'latin1'), Buffer.from(JSON.stringify(o))])
    expect(protocol.decode(body({ ...msgs[3], mapping: 'cone' }))).toMatchObject({ error: 'ERR_MALFORMED' })
    expect(protocol.decode(body({ ...msgs[0], checkPort: 0 }))).toMatchObject({ error: 'ERR_MALFORMED' })
    expect(protocol.decode(body({ t: 'peer-moved', nonce: n, seq: 1 }))).toMatchObject({ error: 'ERR_MALFORMED' })
  })

  it('birthday probing: who plays which side, and the spray\'s distinct random ports, count and pace', async () => {
    expect(birthdayRole('independent', 'dependent')).toBe('easy')
    expect(birthdayRole('dependent', 'independent')).toBe('hard')
    expect(birthdayRole('dependent', 'dependent')).toBeNull() // both hard: the relay's job
    expect(birthdayRole('independent', 'independent')).toBeNull() // plain probing works
    // A mapping not measured, facing a dependent one, plays the easy side (and the dependent one, seeing the same
    // pair, the hard side): found in the NAT lab, where a peer whose DHT answers came from one address only
    // learned no mapping, and a cone and a symmetric NAT then never punched through
    expect(birthdayRole(undefined, 'dependent')).toBe('easy')
    expect(birthdayRole('dependent', undefined)).toBe('hard')
    expect(birthdayRole(undefined, undefined)).toBeNull()
    expect(birthdayRole(undefined, 'independent')).toBeNull()
    expect(birthdayRole('independent', undefined)).toBeNull()
    const ports: number[] = []
    const spray = new BirthdaySpray({ address: '203.0.113.9', count: 300, rate: 2000, send: (to) => { expect(to.address).toBe('203.0.113.9'); ports.push(to.port) } })
    const t0 = Date.now()
    spray.start()
    for (let i = 0; i < 300 && ports.length < 300; i++) await sleep(10)
    await sleep(50)
    expect(ports).toHaveLength(300) // stops at count
    expect(spray.sent).toBe(300)
    expect(new Set(ports).size).toBe(300)
    expect(ports.every(p => p >= 1024 && p <= 65535)).toBe(true)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100) // paced: 300 at 2,000/s takes at least 150 ms
  })

  it('the first probe to a public candidate has a low TTL, later ones and LAN probes the normal TTL', async () => {
    const sent: Array<{ to: string, ttl: number | undefined }> = []
    const cand = (address: string, kind: 'lan' | 'public'): ProberModule.ProberOptions['candidates'][number] =>
      ({ address, port: 5000, kind, nonce: kind === 'lan' ? '1'.repeat(16) : '2'.repeat(16), sent: 0, acked: false })
    const p = new Prober({
      role: 'connect',
      auth: testAuth('ab'.repeat(16)),
      candidates: [cand('10.0.0.2', 'lan'), cand('203.0.113.7', 'public')],
      intervalMs: 20,
      lowTtl: 3,
      preferLan: true,
      graceMs: 0,
      send: (_m, to, ttl) => sent.push({ to: to.address, ttl }),
      onWinner: () => {},
      onVerified: () => {}
    })
    p.start()
    // Poll rather than sleep a fixed time: a loaded machine may run the interval late
    for (let i = 0; i < 200 && sent.filter(s => s.to === '203.0.113.7').length < 3; i++) await sleep(10)
    p.close()
    const pub = sent.filter(s => s.to === '203.0.113.7')
    const lan = sent.filter(s => s.to === '10.0.0.2')
    expect(pub.length).toBeGreaterThanOrEqual(3)
    expect(pub[0].ttl).toBe(3)
    expect(pub.slice(1).every(s => s.ttl === undefined)).toBe(true)
    expect(lan.every(s => s.ttl === undefined)).toBe(true)
    expect(sent[0].to).toBe('10.0.0.2') // LAN first
  })

  it('acks to sprayed probes from many ports add at most a handful of birthday candidates', async () => {
    const sent: number[] = []
    const auth = testAuth('cd'.repeat(16))
    const p = new Prober({
      role: 'accept',
      auth,
      candidates: [],
      intervalMs: 10,
      lowTtl: 0,
      preferLan: false,
      graceMs: 0,
      send: (m, to) => { if (m.t === 'probe') sent.push(to.port) },
      onWinner: () => {},
      onVerified: () => {}
    })
    const spray = p.sprayNonce()
    for (let port = 20000; port < 20040; port++) {
      p.handle({ t: 'probe-ack', pair: 'cd'.repeat(16), nonce: spray, mac: MAC }, { address: '203.0.113.9', port })
    }
    expect(p.beenHeard).toBe(false) // forged acks (a MAC without the key) are dropped and counted
    expect(auth.invalid).toBe(40)
    for (let port = 20000; port < 20040; port++) p.handle(auth.ack(spray), { address: '203.0.113.9', port })
    expect(p.beenHeard).toBe(true)
    p.start()
    for (let i = 0; i < 200 && sent.length < 16; i++) await sleep(10)
    p.close()
    expect(sent.length).toBeGreaterThan(0)
    expect(new Set(sent).size).toBe(8)
  })
})

describe('rendezvous()', () => {
  cleanupNodes()

  it('pairs two nodes, one connects and one accepts, and 1 MiB crosses intact', async () => {
    const { server, addr } = await startServer()
    const paired: unknown[] = []
    server.on('paired', (p) => paired.push(p))
    const [a, b] = await nodes()
    const listening = (): number[] => [a, b].flatMap(n => [n.listenerCount('connection'), n.listenerCount('close')])
    const before = listening()
    const signal = new AbortController().signal
    const t0 = Date.now()
    const r = await pair(a, b, { server: addr, signal })
    expect(Date.now() - t0).toBeLessThan(3000)
    expect(roles(r)).toEqual(['accept', 'connect'])
    // The sessions let go of the nodes and the signal: nothing piles up over many calls on one node
    expect(listening()).toEqual(before)
    expect(getEventListeners(signal, 'abort')).toEqual([])
    for (const x of r) {
      expect(['lan', 'direct']).toContain(x.path)
      // no NAT on loopback: the server's mapping check finds one port for both of its ports
      expect(x.mapping).toEqual({ ours: 'independent', peer: 'independent' })
      expect(x.node).toBe(x === r[0] ? a : b)
      // Milliseconds since rendezvous() was called, in order
      // (and no relay time on a path that did not use it)
      expect(Object.keys(x.timings).sort()).toEqual(['connectedMs', 'pairedMs', 'punchedMs', 'registeredMs', 'serverRttMs'])
      const { registeredMs, pairedMs, punchedMs, connectedMs } = x.timings
      expect(registeredMs).toBeGreaterThanOrEqual(0)
      expect(pairedMs).toBeGreaterThanOrEqual(registeredMs)
      // A punched path says when its first probe was answered
      expect(punchedMs).toBeGreaterThanOrEqual(pairedMs)
      expect(connectedMs).toBeGreaterThanOrEqual(punchedMs as number)
      expect(connectedMs).toBeLessThanOrEqual(Date.now() - t0)
    }
    // Each side talks to the other's port
    expect(r[0].remote.port).toBe(b.address().port)
    expect(r[1].remote.port).toBe(a.address().port)
    const [connect, accept] = r[0].role === 'connect' ? r : [r[1], r[0]]
    // The accept side talks first (no end: a peer's end ends our side too), then 1 MiB the other way
    const hello = new Promise<string>(resolve => connect.socket.once('data', (d: Buffer) => resolve(d.toString())))
    accept.socket.write('hello from the accepting side')
    expect(await hello).toBe('hello from the accepting side')
    // Both stay registered while their sockets live (to follow a NAT rebinding); the byes come on close
    expect(server.stats()).toMatchObject({ activeRegistrations: 2, activePairings: 1 })
    await transfer(connect, accept, 1 << 20)
    expect(paired).toHaveLength(1)
    for (let i = 0; i < 50 && server.stats().activeRegistrations > 0; i++) await sleep(20) // the byes
    expect(server.stats()).toMatchObject({ registrations: 2, pairings: 1, activeRegistrations: 0, activePairings: 0, errors: 0 })
  })

  it('dual-stack nodes (bound to ::) prefer their LAN addresses unless lanFirst is false', async () => {
    const { addr } = await startServer()
    const [a, b] = await nodes(null)
    const r = await pair(a, b, { server: addr })
    // This machine's LAN addresses, read here from the OS (not from the product): each peer must reach the
    // other at one of them. Without any, there is no LAN candidate and the public (loopback) one wins
    const own = Object.values(os.networkInterfaces()).flat()
      .filter(i => i !== undefined && !i.internal && !/^(fe80:|169\.254\.)/i.test(i.address))
      .map(i => (i as os.NetworkInterfaceInfo).address)
    if (own.length > 0) {
      expect(r.map(x => x.path)).toEqual(['lan', 'lan'])
      for (const x of r) expect(own).toContain(x.remote.address)
    } else {
      expect(r.map(x => x.path)).toEqual(['direct', 'direct'])
    }
    await transfer(r[0], r[1], 256 * 1024)
    const [c, d] = await nodes(null)
    const r2 = await pair(c, d, { server: addr, lanFirst: false }, 'second')
    expect(r2.map(x => x.path)).toEqual(['direct', 'direct'])
    expect(r2.map(x => x.remote.address)).toEqual(['127.0.0.1', '127.0.0.1'])
  })

  it('binds an unbound node itself and leaves the accepting node listening', async () => {
    const { addr } = await startServer()
    const a = makeNode()
    const b = makeNode()
    const r = await pair(a, b, { server: addr })
    expect(a.address().port).toBeGreaterThan(0)
    await transfer(r[1], r[0], 1000)
  })

  it('a forced relay carries 2 MiB, capped by the relay rate, and closes once idle', async () => {
    const { server, addr } = await startServer({ relayRate: 2_000_000, relayIdleMs: 400 })
    const [a, b] = await nodes()
    const statuses: ClientModule.RendezvousStatus[] = []
    const r = await pair(a, b, { server: addr, forceRelay: true, onStatus: (s) => statuses.push(s) })
    expect(r.map(x => x.path)).toEqual(['relay', 'relay'])
    // No punching to report, and the relay's reason says why
    expect(statuses.map(s => s.state)).not.toContain('punching')
    expect(statuses.filter(s => s.state === 'relay')).toEqual(Array(2).fill({ state: 'relay', reason: 'relay forced by the forceRelay option' }))
    const serverPort = server.address().port
    for (const x of r) {
      expect(x.remote.address).toBe('127.0.0.1')
      expect(x.remote.port).not.toBe(serverPort)
      expect(x.timings.relayMs).toBeGreaterThanOrEqual(0)
      expect(x.timings.punchedMs).toBeUndefined()
    }
    expect(server.stats()).toMatchObject({ activeRelays: 1, relays: 1 })
    const t0 = Date.now()
    await transfer(r[0], r[1], 2 << 20)
    // 2 MiB through a 2 MB/s cap with a 1 MB burst takes well over half a second
    expect(Date.now() - t0).toBeGreaterThan(400)
    expect(server.stats().relayedBytes).toBeGreaterThan(2 << 20)
    await Promise.all([a.closeAsync(), b.closeAsync()])
    await sleep(700)
    expect(server.stats().activeRelays).toBe(0)
  })

  it('followMoves: false says bye at once on a direct path; a relayed connection connects, outlives the registration\'s time-to-live, and frees the relay once closed', async () => {
    const { server, addr } = await startServer({ registrationTtlMs: 1000 })
    const [c, d] = await nodes()
    const direct = await pair(c, d, { server: addr, followMoves: false, keepaliveMs: 200 }, 'direct-pairing')
    expect(direct.map(x => x.path)).not.toContain('relay')
    // Well before the time-to-live could have ended them
    for (let i = 0; i < 30 && server.stats().activeRegistrations > 0; i++) await sleep(10)
    expect(server.stats().activeRegistrations).toBe(0)
    await transfer(direct[0], direct[1], 1000)
    // before: the relayed side that finished first said bye at once too, which closed the relay under the
    // connection (ERR_RENDEZVOUS_TIMEOUT "the relay did not connect us")
    const [a, b] = await nodes()
    const r = await pair(a, b, { server: addr, forceRelay: true, followMoves: false, keepaliveMs: 200, timeoutMs: 5000 })
    expect(r.map(x => x.path)).toEqual(['relay', 'relay'])
    // Two time-to-lives later the registrations (kept by keepalives) still hold the relay
    await sleep(2100)
    expect(server.stats()).toMatchObject({ activeRegistrations: 2, activeRelays: 1 })
    await transfer(r[0], r[1], 64 * 1024)
    // Closed: the registrations end (a bye after the relay's linger for the last packets, or the time-to-live
    // once the keepalives stopped) and the relay with them
    for (let i = 0; i < 400 && server.stats().activeRelays > 0; i++) await sleep(10)
    expect(server.stats()).toMatchObject({ activeRegistrations: 0, activeRelays: 0 })
  })

  it('falls back to the relay by itself when no candidate answers', async () => {
    const silent = await udp()
    const bogus = { address: '127.0.0.1', port: silent.address().port }
    const { addr } = await startServer({ rewriteCandidates: () => ({ public: bogus, lan: [] }) })
    const [a, b] = await nodes()
    const t0 = Date.now()
    const r = await pair(a, b, { server: addr, punchTimeoutMs: 800 })
    expect(r.map(x => x.path)).toEqual(['relay', 'relay'])
    expect(Date.now() - t0).toBeLessThan(5000)
    await transfer(r[0], r[1], 256 * 1024)
  })

  it('relay: false with unreachable candidates rejects with ERR_PUNCH_FAILED naming NATs and candidates', async () => {
    const silent = await udp()
    let probes = 0
    const fromPorts = new Set<number>()
    silent.on('message', (_m: Buffer, rinfo: dgram.RemoteInfo) => {
      probes++
      fromPorts.add(rinfo.port)
    })
    const bogus = { address: '127.0.0.1', port: silent.address().port }
    const { addr } = await startServer({ rewriteCandidates: () => ({ public: bogus, lan: [] }) })
    const [a, b] = await nodes()
    const t0 = Date.now()
    const roles: string[] = []
    const roleOf = (i: number) => (s: ClientModule.RendezvousStatus): void => { if (s.state === 'paired') roles[i] = s.role }
    const results = await Promise.allSettled([
      rendezvous(a, { server: addr, code: 'k', relay: false, punchTimeoutMs: 1000, nat: 'symmetric', onStatus: roleOf(0) }),
      rendezvous(b, { server: addr, code: 'k', relay: false, punchTimeoutMs: 1000, acceptGraceMs: 0, onStatus: roleOf(1) })
    ])
    expect(Date.now() - t0).toBeLessThan(3000)
    for (const res of results) {
      expect(res.status).toBe('rejected')
      const err = (res as PromiseRejectedResult).reason as ClientModule.RendezvousOptions & { code: string, message: string, candidates: string[] }
      expect(err.code).toBe('ERR_PUNCH_FAILED')
      expect(err.message).toContain(`127.0.0.1:${bogus.port} (public)`)
      // the NAT types: what the caller said (nat) and the mappings the server measured
      expect(err.message).toMatch(/NAT types: ours (symmetric, )?endpoint-independent mapping, peer's (symmetric, )?endpoint-independent mapping/)
      expect(err.candidates).toEqual([`127.0.0.1:${bogus.port} (public)`])
    }
    // Each side says what it missed: the connecting side an answer, the accepting side the peer's probes
    const reasons = results.map((res, i) => `${roles[i]}: ${/^hole punching failed: ([^(]*) \(NAT types/.exec(((res as PromiseRejectedResult).reason as Error).message)?.[1]}`)
    expect(reasons.sort()).toEqual(['accept: no probe from the peer arrived', 'connect: no probe was answered'])
    expect(probes).toBeGreaterThanOrEqual(8) // both sides probed, 200 ms apart, for a second
    // From their own sockets only: both NATs map endpoint-independently, so neither opened birthday ports
    expect([...fromPorts].sort()).toEqual([a.address().port, b.address().port].sort())
  })

  it('probing starts when the server says (startInMs), not when the peer confirmed', async () => {
    const silent = await udp()
    const probesAt: number[] = []
    silent.on('message', () => probesAt.push(Date.now()))
    const bogus = { address: '127.0.0.1', port: silent.address().port }
    const { addr } = await startServer({ rewriteCandidates: () => ({ public: bogus, lan: [] }), startDelayMs: 1200 })
    const [a, b] = await nodes()
    const pairedAt: number[] = []
    const opts = { server: addr, code: 'late-start', relay: false, punchTimeoutMs: 400, acceptGraceMs: 0, onStatus: (s: ClientModule.RendezvousStatus) => { if (s.state === 'paired') pairedAt.push(Date.now()) } }
    const results = await Promise.allSettled([rendezvous(a, opts), rendezvous(b, opts)])
    expect(results.map(r => r.status)).toEqual(['rejected', 'rejected'])
    expect(pairedAt).toHaveLength(2)
    expect(probesAt.length).toBeGreaterThan(0)
    // The confirmation takes a round trip; the server's start is 1.2 s after the pairing
    expect(Math.min(...probesAt) - Math.max(...pairedAt)).toBeGreaterThanOrEqual(900)
  })

  it('once the peer asked for the relay, no probe goes out: not at the start, and not after a confirmation the relay overtook', async () => {
    const silent = await udp()
    let probes = 0
    silent.on('message', () => probes++)
    const bogus = { address: '127.0.0.1', port: silent.address().port }
    for (const hold of ['relay-hello-ack', 'peer-confirm', 'nothing'] as const) {
      // relay-hello-ack: the relay is slow to say it is ready, so the start time (1.5 s) passes before it does.
      // peer-confirm: the unforced side hears the relay's allocation before the peer's confirmation.
      // nothing: the unforced side registers first and connects: it hears of the relay while punching
      const { addr } = await startServer({ rewriteCandidates: () => ({ public: bogus, lan: [] }), startDelayMs: 1500 })
      const [a, b] = await nodes()
      const allocatedTo = new Set<number>()
      let firstAck: number | undefined
      const undo = interceptServer((m, hop) => {
        if (m.t === 'relay-allocated') allocatedTo.add(hop.to.port)
        if (m.t !== hold) return m
        // The relay's acks to both sides for 2 s; the peer's confirmation to B until B heard of the relay
        if (hold === 'relay-hello-ack') return Date.now() - (firstAck ??= Date.now()) < 2000 ? null : m
        return hop.to.port === b.address().port && !allocatedTo.has(hop.to.port) ? null : m
      })
      try {
        const t0 = Date.now()
        const code = `relay-first-${hold}`
        const statuses: ClientModule.RendezvousStatus[] = []
        const forced = async (): Promise<Result> => await rendezvous(a, { server: addr, code, forceRelay: true }) as Result
        const unforced = async (): Promise<Result> => await rendezvous(b, { server: addr, code, onStatus: (st) => statuses.push(st) }) as Result
        const r = hold === 'nothing'
          ? (await Promise.all([unforced(), sleep(30).then(forced)])).reverse()
          : await Promise.all([forced(), sleep(30).then(unforced)])
        expect(r.map(x => x.path)).toEqual(['relay', 'relay'])
        expect(r[1].role).toBe(hold === 'nothing' ? 'connect' : 'accept')
        // Either side says why it went to the relay, once
        expect(statuses.filter(st => st.state === 'relay')).toEqual([{ state: 'relay', reason: 'the peer asked for the relay' }])
        // Without waiting for its punch timeout (5 s after the start)
        expect(Date.now() - t0).toBeLessThan(4500)
        await transfer(r[0], r[1], 1000)
        expect(probes).toBe(0)
      } finally {
        undo()
      }
    }
  })

  it('ERR_PUNCH_FAILED\'s message, whole: the NAT types when either is known, the candidates tried or none usable, the relay\'s refusal', async () => {
    const silent = await udp()
    const bogus = { address: '127.0.0.1', port: silent.address().port }
    // No mapping checks: the NAT types are only what the callers said
    const unmeasured = await startServer({ mappingCheck: false, rewriteCandidates: () => ({ public: bogus, lan: [] }) })
    // Candidates an IPv4 socket cannot reach, and a server whose relays are all taken (it has none)
    const unusable = await startServer({ mappingCheck: false, maxRelays: 0, rewriteCandidates: () => ({ public: { address: '::1', port: 9 }, lan: [] }) })
    const [a, b] = await nodes()
    const [c, d] = await nodes()
    const opts = { relay: false, punchTimeoutMs: 400, acceptGraceMs: 0 }
    const message = async (p: Promise<unknown>): Promise<string> => await p.then(() => 'paired', (e: Error & { code?: string }) => `${e.code}: ${e.message}`)
    const got = await Promise.all([
      message(rendezvous(a, { ...opts, server: unmeasured.addr, code: 'one-known', nat: 'symmetric' })),
      message(sleep(30).then(async () => await rendezvous(b, { ...opts, server: unmeasured.addr, code: 'one-known' }))),
      message(rendezvous(c, { server: unusable.addr, code: 'none-usable', punchTimeoutMs: 400, acceptGraceMs: 0 })),
      message(sleep(30).then(async () => await rendezvous(d, { server: unusable.addr, code: 'none-usable', punchTimeoutMs: 400, acceptGraceMs: 0 })))
    ])
    const tried = `tried 127.0.0.1:${bogus.port} (public)`
    // Both time out together (the later may hear of the other's failure first: it then fails in the same words)
    expect(got.slice(0, 2)).toEqual([
      `ERR_PUNCH_FAILED: hole punching failed: no probe was answered (NAT types: ours symmetric, peer's unknown); ${tried} (relay disabled)`,
      `ERR_PUNCH_FAILED: hole punching failed: no probe from the peer arrived (NAT types: ours unknown, peer's symmetric); ${tried} (relay disabled)`
    ])
    // The first to ask is refused for capacity; the other may hear of that first, or ask after the first's bye
    const unusable2 = 'ERR_PUNCH_FAILED: hole punching failed; no usable candidates'
    const refused = (why: string): string => `${unusable2} and the relay is unavailable (${why})`
    const full = refused('ERR_RELAY_FULL: no relay capacity left, try again later')
    expect(got.slice(2)).toContain(full)
    for (const m of got.slice(2)) {
      expect([full, refused('ERR_NOT_PAIRED: no peer yet: a relay needs a pairing'), `${unusable2} and the peer's attempt failed too (ERR_PUNCH_FAILED on its side)`]).toContain(m)
    }
  })

  it('a connecting side refused by the accepting node (its maxConnections reached) fails with ERR_PUNCH_FAILED naming the refusal, direct and then through the relay', async () => {
    const { addr } = await startServer()
    const a = makeNode()
    const b = makeNode({ maxConnections: 1 })
    const c = makeNode()
    for (const n of [a, b, c]) await n.bindAsync(0, '127.0.0.1')
    // B's one connection is taken before the rendezvous
    b.listen()
    const taken = c.connect(b.address().port, '127.0.0.1')
    await new Promise<void>(resolve => taken.once('connect', () => resolve()))
    const outcomes = await Promise.allSettled([
      rendezvous(a, { server: addr, code: 'refused', timeoutMs: 4000 }),
      sleep(30).then(async () => await rendezvous(b, { server: addr, code: 'refused', timeoutMs: 2500 }))
    ])
    const why = outcomes.map(o => o.status === 'rejected' ? `${(o.reason as { code?: string }).code}: ${(o.reason as Error).message}` : 'paired')
    // The refusal is an error of the session's, not an 'error' event nobody listens to
    expect(why[0]).toMatch(/^ERR_PUNCH_FAILED: hole punching failed .* and the uTP connection to 127\.0\.0\.1:\d+ failed \(ECONNREFUSED\) through the relay$/)
    // and the accepting side, which waited for the relayed connection, hears that the peer's attempt failed (before,
    // it waited out its timeoutMs: "the relay did not connect us within 2500 ms")
    expect(why[1]).toMatch(/^ERR_PUNCH_FAILED: hole punching failed .* and the peer's attempt failed too \(ERR_PUNCH_FAILED on its side\)$/)
    taken.destroy()
  })

  it('a peer that opts out of relaying makes the relay unavailable for both', async () => {
    const silent = await udp()
    const bogus = { address: '127.0.0.1', port: silent.address().port }
    const { addr } = await startServer({ rewriteCandidates: () => ({ public: bogus, lan: [] }) })
    const [a, b] = await nodes()
    const results = await Promise.allSettled([
      rendezvous(a, { server: addr, code: 'k', punchTimeoutMs: 500 }),
      rendezvous(b, { server: addr, code: 'k', punchTimeoutMs: 500, relay: false, acceptGraceMs: 0 })
    ])
    for (const res of results) expect((res as PromiseRejectedResult).reason?.code).toBe('ERR_PUNCH_FAILED')
    // Each says why there is no relay: the peer (or server) does not allow one; we disabled it
    const why = results.map(res => / (\([^()]*\))$/.exec(((res as PromiseRejectedResult).reason as Error).message)?.[1])
    expect(why).toEqual(['(no relay: the peer or the server does not allow one)', '(relay disabled)'])
  })

  it('times out when the server never answers, and when no peer comes', async () => {
    const silent = await udp()
    const a = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    // Named by the address it was looked up at
    await expect(rendezvous(a, { server: `localhost:${silent.address().port}`, code: 'x', timeoutMs: 400 }))
      .rejects.toMatchObject({ code: 'ERR_RENDEZVOUS_TIMEOUT', message: `no answer from the rendezvous server 127.0.0.1:${silent.address().port} within 400 ms` })
    // Within the overall timeout, serverTimeoutMs says which end was silent
    await expect(rendezvous(a, { server: `127.0.0.1:${silent.address().port}`, code: 'x', timeoutMs: 5000, serverTimeoutMs: 300 }))
      .rejects.toMatchObject({ code: 'ERR_SERVER_UNREACHABLE', message: `the rendezvous server 127.0.0.1:${silent.address().port} did not answer in 300 ms (wrong address, not running, or UDP blocked on the way)` })
    await expect(rendezvous(a, { server: `127.0.0.1:${silent.address().port}`, code: 'x', timeoutMs: 5000, serverTimeoutMs: 1000 }))
      .rejects.toMatchObject({ code: 'ERR_SERVER_UNREACHABLE', message: expect.stringContaining(' did not answer in 1 s (') })
    const { server, addr } = await startServer()
    await expect(rendezvous(a, { server: addr, code: 'lonely', timeoutMs: 400 }))
      .rejects.toMatchObject({ code: 'ERR_RENDEZVOUS_TIMEOUT', message: expect.stringContaining('no peer registered') })
    await sleep(50)
    expect(server.stats().activeRegistrations).toBe(0) // the bye freed it
  })

  it('an AbortSignal cancels a waiting rendezvous', async () => {
    const { server, addr } = await startServer()
    const a = makeNode()
    const ac = new AbortController()
    const p = rendezvous(a, { server: addr, code: 'x', signal: ac.signal })
    await sleep(100)
    expect(server.stats().activeRegistrations).toBe(1)
    const why = new Error('the user left')
    ac.abort(why)
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError', message: 'the rendezvous was aborted', cause: why })
    await sleep(50)
    expect(server.stats().activeRegistrations).toBe(0)
    await expect(rendezvous(a, { server: addr, code: 'x', signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })

  it.each(['paired', 'punching'] as const)('a peer that gives up once %s fails the other at once with ERR_PEER_GAVE_UP and its code, also when the first word of it is lost', async (when) => {
    // Before, the other side went on until its own timeout (the confirmation's 10 s, or the punch's 5 s) and then
    // blamed the code or the relay
    const { server, addr } = await startServer()
    for (const lose of [false, true]) {
      const code = `gives-up-${when}-${String(lose)}`
      let dropped = 0
      const undo = lose ? interceptServer((m) => m.t === 'peer-gone' && dropped++ === 0 ? null : m) : () => {}
      try {
        const [a, b] = [makeNode(), makeNode()]
        const ac = new AbortController()
        let abortedAt = 0
        const pa = rendezvous(a, {
          server: addr,
          code,
          signal: ac.signal,
          onStatus: (st) => {
            if (st.state !== when || abortedAt > 0) return
            abortedAt = Date.now()
            ac.abort()
          }
        })
        const pb = rendezvous(b, { server: addr, code })
        await expect(pa).rejects.toMatchObject({ code: 'ABORT_ERR' })
        await expect(pb).rejects.toMatchObject({
          code: 'ERR_PEER_GAVE_UP',
          peerCode: 'ABORT_ERR',
          message: 'the peer gave up the rendezvous (ABORT_ERR on its side)'
        })
        // Lost, it comes again with the next confirmation (every 500 ms) or, when punching, the next message to the
        // server: the relay request at the punch timeout
        expect(Date.now() - abortedAt).toBeLessThan(lose ? (when === 'paired' ? 1500 : 6500) : 500)
        expect(dropped).toBe(lose ? 2 : 0)
      } finally {
        undo()
      }
    }
    expect(server.stats().gaveUp).toBe(2)
  }, 20_000)

  it('a peer whose punching failed first: the other, still punching, fails at once with its own ERR_PUNCH_FAILED and the peer\'s code', async () => {
    const silent = await udp()
    const bogus = { address: '127.0.0.1', port: silent.address().port }
    const { addr } = await startServer({ mappingCheck: false, rewriteCandidates: () => ({ public: bogus, lan: [] }) })
    const [a, b] = await nodes()
    const failedAt = (p: Promise<unknown>): Promise<[number, Error & { code?: string, peerCode?: string }]> =>
      p.then(() => { throw new Error('paired') }, (e: Error) => [Date.now(), e])
    const [[aAt, aErr], [bAt, bErr]] = await Promise.all([
      failedAt(rendezvous(a, { server: addr, code: 'first-fails', relay: false, punchTimeoutMs: 400, acceptGraceMs: 0 })),
      failedAt(rendezvous(b, { server: addr, code: 'first-fails', relay: false, punchTimeoutMs: 5000, acceptGraceMs: 0 }))
    ])
    expect([aErr.code, aErr.peerCode]).toEqual(['ERR_PUNCH_FAILED', undefined])
    expect(aErr.message).toMatch(/ \(relay disabled\)$/)
    expect([bErr.code, bErr.peerCode]).toEqual(['ERR_PUNCH_FAILED', 'ERR_PUNCH_FAILED'])
    // In the words its own punch timeout would have used; peerCode says the peer's failure came first
    expect(bErr.message).toBe(`hole punching failed: no probe from the peer arrived; tried 127.0.0.1:${bogus.port} (public) (relay disabled)`)
    // Its own punch timeout was 5 s away
    expect(bAt - aAt).toBeLessThan(1000)
  })

  it('a server that starts late is reached by the registration, sent again every 500 ms', async () => {
    // A port nothing listens on yet
    const probe = await udp()
    const port = probe.address().port
    probe.close()
    sockets.splice(sockets.indexOf(probe), 1)
    const a = makeNode()
    const states: string[] = []
    const ac = new AbortController()
    const p = rendezvous(a, { server: `127.0.0.1:${port}`, code: 'late', signal: ac.signal, onStatus: (st) => states.push(st.state) })
    p.catch(() => {})
    await sleep(700)
    expect(states).toEqual(['registering'])
    const server = new RendezvousServer({ port, host: '127.0.0.1' })
    servers.push(server)
    await server.listen()
    for (let i = 0; i < 100 && !states.includes('registered'); i++) await sleep(20)
    expect(states).toEqual(['registering', 'registered'])
    ac.abort()
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })

  it('once registered, a waiting peer sends only its keepalives (the registration is not sent again)', async () => {
    // A scripted server, so that what the client sends is counted by type
    const fake = await udp()
    const got: Array<{ m: Msg, at: number }> = []
    onMessages(fake, (m, rinfo) => {
      got.push({ m, at: Date.now() })
      if (m.t === 'register') fake.send(registeredFor(m.nonce, rinfo), rinfo.port, rinfo.address)
      if (m.t === 'keepalive') fake.send(protocol.encode({ t: 'keepalive-ack', nonce: m.nonce, observed: { address: rinfo.address, port: rinfo.port } }), rinfo.port, rinfo.address)
    })
    const a = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    const ac = new AbortController()
    let registered = false
    const p = rendezvous(a, { server: `127.0.0.1:${fake.address().port}`, code: 'quiet', signal: ac.signal, keepaliveMs: 1000, onStatus: (st) => { if (st.state === 'registered') registered = true } })
    p.catch(() => {})
    for (let i = 0; i < 100 && !registered; i++) await sleep(20)
    expect(registered).toBe(true)
    // (a register already on its way when the answer came may still arrive: only later ones count)
    const since = Date.now() + 100
    await sleep(1600)
    const later = got.filter(g => g.at > since).map(g => g.m)
    // One keepalive a second (two, on a slow machine); the registration's own resend (every 500 ms) stopped
    expect(later.filter(m => m.t === 'register')).toEqual([])
    const keepalives = later.filter(m => m.t === 'keepalive').length
    expect(keepalives).toBeGreaterThanOrEqual(1)
    expect(keepalives).toBeLessThanOrEqual(2)
    expect(later.filter(m => m.t !== 'keepalive')).toEqual([])
    ac.abort()
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })

  it('against a scripted server: no keepalive goes out before the registration is answered', async () => {
    const fake = await udp()
    const got: Array<{ m: Msg, answered: boolean }> = []
    let answered = false
    onMessages(fake, (m, rinfo) => {
      got.push({ m, answered })
      // The first register is answered 700 ms late (the registration is sent again meanwhile)
      if (m.t === 'register' && got.length === 1) {
        setTimeout(() => {
          try {
            answered = true
            fake.send(registeredFor(m.nonce, rinfo), rinfo.port, rinfo.address)
          } catch {}
        }, 700)
      }
    })
    const a = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    const ac = new AbortController()
    const p = rendezvous(a, { server: `127.0.0.1:${fake.address().port}`, code: 'slow', keepaliveMs: 100, signal: ac.signal })
    p.catch(() => {})
    for (let i = 0; i < 200 && !got.some(g => g.m.t === 'keepalive'); i++) await sleep(10)
    ac.abort()
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' })
    expect(got.filter(g => g.m.t === 'keepalive' && !g.answered)).toEqual([])
    expect(got.some(g => g.m.t === 'keepalive' && g.answered)).toBe(true)
  })

  it('a registration the server forgot (keepalives too rare for its time-to-live) is made again, and the pairing goes on', async () => {
    const { server, addr } = await startServer({ registrationTtlMs: 300 })
    const [a, b] = await nodes()
    const states: string[] = []
    const first = rendezvous(a, { server: addr, code: 'forgotten', keepaliveMs: 1000, timeoutMs: 10_000, onStatus: (st) => states.push(st.state) })
    // The keepalive at 1 s met ERR_NOT_REGISTERED: registered a second time
    for (let i = 0; i < 400 && states.filter(x => x === 'registered').length < 2; i++) await sleep(10)
    expect(states.filter(x => x === 'registered').length).toBeGreaterThanOrEqual(2)
    expect(server.stats().expired).toBeGreaterThanOrEqual(1)
    // b keeps itself registered; a is forgotten again until its next keepalive (2 s) registers it once more
    const [ra, rb] = await Promise.all([first, rendezvous(b, { server: addr, code: 'forgotten', keepaliveMs: 100, timeoutMs: 10_000 })])
    await transfer(ra as Result, rb as Result, 1000)
  })

  it('an onStatus that throws is the caller\'s problem: the pairing goes on', async () => {
    const { addr } = await startServer()
    const [a, b] = await nodes()
    const seen: string[] = []
    const onStatus = (st: ClientModule.RendezvousStatus): void => { seen.push(st.state); throw new Error('a buggy callback') }
    const r = await pair(a, b, { server: addr, onStatus }) as [Result, Result]
    expect(seen).toEqual(expect.arrayContaining(['registering', 'registered', 'paired', 'punching']))
    await transfer(r[0], r[1], 1000)
  })

  it('against a scripted server: the keepalive carries the registration\'s round trip; nothing is sent after a lookup that outlived an abort', async () => {
    const fake = await udp()
    const got: Msg[] = []
    onMessages(fake, (m, rinfo) => {
      got.push(m)
      // Answered 30 ms late: the round trip the client measures
      // (a test that failed early has closed the socket by then: the answer is dropped)
      if (m.t === 'register') setTimeout(() => { try { fake.send(registeredFor(m.nonce, rinfo), rinfo.port, rinfo.address) } catch {} }, 30)
    })
    const a = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    const ac = new AbortController()
    const p = rendezvous(a, { server: `127.0.0.1:${fake.address().port}`, code: 'x', keepaliveMs: 100, signal: ac.signal })
    p.catch(() => {})
    for (let i = 0; i < 100 && !got.some(m => m.t === 'keepalive'); i++) await sleep(10)
    const keepalive = got.find(m => m.t === 'keepalive') as ProtocolModule.KeepaliveMsg
    const register = got.find(m => m.t === 'register') as ProtocolModule.RegisterMsg
    expect(keepalive).toEqual({ t: 'keepalive', nonce: register.nonce, rtt: expect.any(Number) })
    expect(keepalive.rtt).toBeGreaterThanOrEqual(25)
    expect(keepalive.rtt).toBeLessThan(2000)
    ac.abort()
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' })
    // A lookup still under way when the rendezvous was aborted: nothing goes to the server it resolves to
    got.length = 0
    const dns = requireFromRoot('dns') as typeof import('dns')
    const lookup = vi.spyOn(dns.promises, 'lookup').mockImplementation((async () => { await sleep(200); return { address: '127.0.0.1', family: 4 } }) as never)
    try {
      const ac2 = new AbortController()
      const p2 = rendezvous(a, { server: `rv.test:${fake.address().port}`, code: 'x', signal: ac2.signal })
      await sleep(50)
      ac2.abort()
      await expect(p2).rejects.toMatchObject({ code: 'ABORT_ERR' })
      await sleep(400)
      expect(lookup).toHaveBeenCalled()
      // (the first rendezvous' bye may arrive meanwhile)
      expect(got.filter(m => !('nonce' in m) || m.nonce !== register.nonce)).toEqual([])
    } finally {
      lookup.mockRestore()
    }
  })

  it('against a scripted server: a retry\'s cookie goes with the next messages, retries cannot make it loop, and only the server\'s own address is heard', async () => {
    const fake = await udp()
    const port = fake.address().port
    const got: Array<{ at: number, m: Msg }> = []
    let answer: 'retry' | 'registered' = 'retry'
    let retries = 0
    /** A cookie as the server makes them: 32 hex digits */
    const cookie = (n: number): string => n.toString(16).padStart(32, '0')
    onMessages(fake, (m, rinfo) => {
      got.push({ at: Date.now(), m })
      if (m.t !== 'register') return
      const reply: Msg = answer === 'retry'
        ? { t: 'retry', cookie: cookie(++retries) }
        : { t: 'registered', nonce: m.nonce, observed: { address: rinfo.address, port: rinfo.port }, expiresInMs: 60_000 }
      fake.send(protocol.encode(reply), rinfo.port, rinfo.address)
    })
    const a = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    const ac = new AbortController()
    const p = rendezvous(a, { server: `127.0.0.1:${port}`, code: 'x', keepaliveMs: 200, signal: ac.signal })
    p.catch(() => {})
    // A server that answers every register with a retry: the client registers again with the cookie, at once,
    // but not more than once per 100 ms (and on its own 500 ms timer)
    await sleep(1000)
    const registers = got.filter(x => x.m.t === 'register') as Array<{ at: number, m: ProtocolModule.RegisterMsg }>
    expect(registers[0].m.cookie).toBeUndefined()
    expect(registers[1].m.cookie).toBe(cookie(1))
    expect(registers[1].at - registers[0].at).toBeLessThan(400) // not the 500 ms timer's
    // (about 4 in a second: each timer's register and its answer; without the limit, thousands)
    expect(registers.length).toBeGreaterThanOrEqual(3)
    expect(registers.length).toBeLessThanOrEqual(12)
    // Registered now: a later retry renews the cookie without registering again; the keepalive carries it
    answer = 'registered'
    for (let i = 0; i < 100 && !got.some(x => x.m.t === 'keepalive'); i++) await sleep(10)
    const nonce = registers[0].m.nonce
    got.length = 0
    fake.send(protocol.encode({ t: 'retry', cookie: cookie(999) }), a.address().port, '127.0.0.1')
    const renewed = (): boolean => got.some(x => x.m.t === 'keepalive' && (x.m as { cookie?: string }).cookie === cookie(999))
    for (let i = 0; i < 200 && !renewed(); i++) await sleep(10)
    expect(renewed()).toBe(true)
    expect(got.filter(x => x.m.t === 'register')).toEqual([])
    // The server's port on another address of this machine is not the server
    const forger = dgram.createSocket('udp4')
    sockets.push(forger)
    await new Promise<void>((resolve, reject) => { forger.once('error', reject); forger.bind(port, '127.0.0.2', () => resolve()) })
    forger.send(protocol.encode({ t: 'error', nonce, code: 'ERR_FORGED', message: 'go away' }), a.address().port, '127.0.0.1')
    await sleep(200)
    ac.abort()
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })

  it('against two scripted servers: a node keeps each server\'s cookie, and registers with it the next time', async () => {
    const fakes = [await udp(), await udp()]
    const registers: ProtocolModule.RegisterMsg[][] = [[], []]
    /** Each server's cookie for the node: 32 hex digits */
    const cookieOf = (i: number): string => String(i + 1).repeat(32)
    fakes.forEach((fake, i) => onMessages(fake, (m, rinfo) => {
      if (m.t !== 'register') return
      registers[i].push(m)
      fake.send(m.cookie === undefined ? protocol.encode({ t: 'retry', cookie: cookieOf(i) }) : registeredFor(m.nonce, rinfo), rinfo.port, rinfo.address)
    }))
    const a = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    // One rendezvous with each server, then the first again
    for (const i of [0, 1, 0]) {
      const ac = new AbortController()
      const states: string[] = []
      const p = rendezvous(a, { server: `127.0.0.1:${fakes[i].address().port}`, code: 'x', signal: ac.signal, onStatus: (st) => states.push(st.state) })
      p.catch(() => {})
      for (let t = 0; t < 200 && !states.includes('registered'); t++) await sleep(10)
      expect(states).toContain('registered')
      ac.abort()
      await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' })
    }
    // The first server's cookie was kept beside the second's: the third rendezvous' first register carries it
    const third = registers[0].filter(r => r.nonce === registers[0][registers[0].length - 1].nonce)
    expect(third[0].cookie).toBe(cookieOf(0))
    expect(registers[1].map(r => r.cookie)).toEqual([undefined, cookieOf(1)])
  })

  it('against a scripted server: the register\'s fields, the mapping check and its retry, and a registration made again with its round trip', async () => {
    const fake = await udp()
    const second = await udp()
    const got: Msg[] = []
    const checks: Msg[] = []
    const checkTimes: number[] = []
    const cookie = 'ab'.repeat(16)
    const observed = (r: dgram.RemoteInfo): { address: string, port: number } => ({ address: r.address, port: r.port })
    onMessages(fake, (m, rinfo) => {
      got.push(m)
      if (m.t === 'register') setTimeout(() => { try { fake.send(registeredFor(m.nonce, rinfo, second.address().port), rinfo.port, rinfo.address) } catch {} }, 20)
    })
    onMessages(second, (m, rinfo) => {
      if (m.t !== 'check') return
      checks.push(m)
      checkTimes.push(Date.now())
      // The first check gets a retry from that port, the one sent again with its cookie an answer
      const reply: Msg = checks.length === 1 ? { t: 'retry', cookie } : { t: 'check-ack', nonce: m.nonce, observed: observed(rinfo) }
      second.send(protocol.encode(reply), rinfo.port, rinfo.address)
    })
    const a = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    const ac = new AbortController()
    const p = rendezvous(a, { server: `127.0.0.1:${fake.address().port}`, code: 'x', nat: 'n'.repeat(40), keepaliveMs: 200, signal: ac.signal })
    p.catch(() => {})
    for (let i = 0; i < 100 && checks.length < 2; i++) await sleep(10)
    const register = got[0] as ProtocolModule.RegisterMsg
    // nat is cut to 32 characters; no side, no round trip yet, no cookie (and no LAN address: a loopback bind)
    expect(register).toEqual({ t: 'register', key: expect.any(String), pake: expect.any(String), nonce: expect.any(String), lan: [], relay: true, nat: 'n'.repeat(32) })
    expect(checks.map(c => (c as { cookie?: string }).cookie)).toEqual([undefined, cookie])
    // Sent again at once, not on the next round of checks (250 ms)
    expect(checkTimes[1] - checkTimes[0]).toBeLessThan(200)
    await sleep(300)
    expect(checks).toHaveLength(2)
    // A later retry from the server's main port: taken (the next keepalive carries its cookie), and no check
    // goes out again (the mapping is known)
    got.length = 0
    fake.send(protocol.encode({ t: 'retry', cookie: 'cd'.repeat(16) }), a.address().port, '127.0.0.1')
    const renewed = (): boolean => got.some(m => m.t === 'keepalive' && (m as { cookie?: string }).cookie === 'cd'.repeat(16))
    for (let i = 0; i < 200 && !renewed(); i++) await sleep(10)
    expect(renewed()).toBe(true)
    expect(checks).toHaveLength(2)
    // The server forgot us: registered again, now with the round trip it measured (about 20 ms)
    got.length = 0
    fake.send(protocol.encode({ t: 'error', nonce: register.nonce, code: 'ERR_NOT_REGISTERED', message: 'expired' }), a.address().port, '127.0.0.1')
    for (let i = 0; i < 100 && !got.some(m => m.t === 'register'); i++) await sleep(10)
    const again = got.find(m => m.t === 'register') as ProtocolModule.RegisterMsg
    expect(again).toMatchObject({ nonce: register.nonce, cookie: 'cd'.repeat(16) })
    expect(again.rtt).toBeGreaterThanOrEqual(15)
    await sleep(50) // its answer, 20 ms later, goes out before the sockets close
    ac.abort()
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })

  it('a probe, probe-ack or select that comes before the pairing is ignored, not an error', async () => {
    const { server, addr } = await startServer()
    const [a, b] = await nodes()
    const first = rendezvous(a, { server: addr, code: 'early-probes', timeoutMs: 5000 })
    for (let i = 0; i < 100 && server.stats().activeRegistrations === 0; i++) await sleep(10)
    const stray = await udp()
    const pair = 'ab'.repeat(8)
    for (const m of [{ t: 'probe', pair, nonce: '01'.repeat(8), mac: '03'.repeat(16) }, { t: 'probe-ack', pair, nonce: '01'.repeat(8), mac: '03'.repeat(16) }, { t: 'select', pair, path: 'direct', mac: '03'.repeat(16) }]) {
      stray.send(protocol.encode(m as Msg), a.address().port, '127.0.0.1')
    }
    await sleep(200)
    const [ra, rb] = await Promise.all([first, rendezvous(b, { server: addr, code: 'early-probes' })])
    await transfer(ra as Result, rb as Result, 1000)
  })

  it('against a scripted server: a "registered" or "peer-gone" for another nonce is ignored, a repeated "registered" counts once', async () => {
    const fake = await udp()
    let answered = false
    onMessages(fake, (m, rinfo) => {
      // (the registers sent again meanwhile get no answer: nothing is scheduled past the test's end)
      if (m.t !== 'register' || answered) return
      answered = true
      const reply = (nonce: string): void => { fake.send(registeredFor(nonce, rinfo), rinfo.port, rinfo.address) }
      reply('0f'.repeat(8))
      fake.send(protocol.encode({ t: 'peer-gone', nonce: '0f'.repeat(8), code: 'ABORT_ERR' }), rinfo.port, rinfo.address)
      setTimeout(() => { try { reply(m.nonce); reply(m.nonce) } catch {} }, 700)
    })
    const a = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    const ac = new AbortController()
    const states: string[] = []
    const p = rendezvous(a, { server: `127.0.0.1:${fake.address().port}`, code: 'x', signal: ac.signal, onStatus: (st) => states.push(st.state) })
    p.catch(() => {})
    await sleep(400)
    expect(states).toEqual(['registering'])
    await sleep(800)
    expect(states).toEqual(['registering', 'registered'])
    ac.abort()
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })

  it('against a scripted server: only a retry or check-ack counts from the mapping-check port, not an error', async () => {
    const fake = await udp()
    const second = await udp()
    let registers = 0
    onMessages(fake, (m, rinfo) => {
      if (m.t !== 'register') return
      registers++
      fake.send(registeredFor(m.nonce, rinfo, second.address().port), rinfo.port, rinfo.address)
    })
    let checks = 0
    onMessages(second, (m, rinfo) => {
      if (m.t !== 'check') return
      checks++
      second.send(protocol.encode({ t: 'error', nonce: m.nonce, code: 'ERR_NOT_REGISTERED', message: 'from the wrong port' }), rinfo.port, rinfo.address)
    })
    const a = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    const ac = new AbortController()
    const p = rendezvous(a, { server: `127.0.0.1:${fake.address().port}`, code: 'x', signal: ac.signal })
    p.catch(() => {})
    for (let i = 0; i < 200 && checks < 3; i++) await sleep(10)
    expect(checks).toBeGreaterThanOrEqual(3)
    // Taken as the server's, it would have made the client register again
    expect(registers).toBe(1)
    ac.abort()
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })

  it('keepalives hold a waiting registration past the server\'s time-to-live', async () => {
    const { server, addr } = await startServer({ registrationTtlMs: 400 })
    const [a, b] = await nodes()
    // (a server heard once is not "unreachable" when serverTimeoutMs passes)
    const first = rendezvous(a, { server: addr, code: 'patient', keepaliveMs: 100, timeoutMs: 5000, serverTimeoutMs: 1000 })
    await sleep(1500)
    const [ra, rb] = await Promise.all([first, rendezvous(b, { server: addr, code: 'patient', timeoutMs: 3000 })])
    expect(server.stats().expired).toBe(0)
    await transfer(ra as Result, rb as Result, 1000)
  })

  it('a server name that does not resolve fails at once with the lookup\'s error, not at the timeout', async () => {
    const dns = requireFromRoot('dns') as typeof import('dns')
    const lookup = vi.spyOn(dns.promises, 'lookup').mockRejectedValue(Object.assign(new Error('getaddrinfo ENOTFOUND rv.test'), { code: 'ENOTFOUND' }))
    try {
      const a = makeNode()
      const t0 = Date.now()
      await expect(rendezvous(a, { server: 'rv.test:7000', code: 'x', timeoutMs: 5000 })).rejects.toMatchObject({ code: 'ENOTFOUND' })
      expect(Date.now() - t0).toBeLessThan(4000)
      expect(lookup).toHaveBeenCalledWith('rv.test', expect.anything())
    } finally {
      lookup.mockRestore()
    }
  })

  it('closing the node ends a rendezvous in progress', async () => {
    const { addr } = await startServer()
    const a = makeNode()
    const p = rendezvous(a, { server: addr, code: 'x' })
    await sleep(100)
    a.close()
    await expect(p).rejects.toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
  })

  it('validates its options', async () => {
    const a = makeNode()
    await expect(rendezvous(a, { server: 'nope', code: 'x' })).rejects.toThrow(/host:port/)
    await expect(rendezvous(a, { server: '127.0.0.1:1', code: '' })).rejects.toThrow(TypeError)
    await expect(rendezvous(a, { server: '127.0.0.1:1', code: 'x', timeoutMs: -1 })).rejects.toThrow(RangeError)
    await expect(rendezvous(a, { server: '127.0.0.1:1', code: 'x', encrypt: 'yes' as unknown as boolean })).rejects.toThrow(TypeError)
    await expect(rendezvous(a, { server: '127.0.0.1:1', code: 'x', side: 'Send' })).rejects.toThrow(/lowercase token/)
  })

  it('a second peer declaring the same side is refused at once (ERR_SAME_ROLE); the first still pairs with the other side', async () => {
    const { server, addr } = await startServer()
    const [a, b] = await nodes()
    const c = makeNode()
    const code = '905-amber-kettle-frost'
    const first = rendezvous(a, { server: addr, code, side: 'send' })
    await sleep(100)
    const t0 = Date.now()
    const err = await rendezvous(b, { server: addr, code, side: 'send', timeoutMs: 20_000 }).then(() => null, (e: { code?: string, side?: string }) => e)
    // Before the server checked sides (main at 5554e7a): the two senders paired, the code was spent, and only the
    // application could notice afterwards
    expect(err).toMatchObject({ code: 'ERR_SAME_ROLE', side: 'send' })
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(server.stats()).toMatchObject({ pairings: 0, refusals: { ERR_SAME_ROLE: 1 } })
    // The code is not spent: the waiting sender pairs with a receiver, and the stream works
    const r = await Promise.all([first, rendezvous(c, { server: addr, code, side: 'receive' })]) as [Result, Result]
    await transfer(r[0], r[1], 64 * 1024)
    expect(server.stats()).toMatchObject({ pairings: 1 })
  })

  it('encrypts by default (the connect peer initiates); encrypt: false gives the plain uTP socket, still paired by the code', async () => {
    const { addr } = await startServer()
    const [a, b, c, d] = [...await nodes(), ...await nodes()]
    const secured = await pair(a, b, { server: addr }, '812-glass-river-stone')
    for (const x of secured) {
      expect(x.encrypted).toBe(true)
      expect(x.socket).not.toBe(x.utpSocket)
      expect(x.utpSocket.stats()?.path).toBe(x.path)
    }
    await transfer(secured[0], secured[1], 256 * 1024)
    const plain = await pair(c, d, { server: addr, encrypt: false }, '813-glass-river-stone')
    for (const x of plain) {
      expect(x.encrypted).toBe(false)
      expect(x.socket).toBe(x.utpSocket)
      // The session's own listeners are gone: the socket's errors are the caller's to handle
      expect([x.socket.listenerCount('connect'), x.socket.listenerCount('error')]).toEqual([0, 0])
    }
    // The connecting side's socket, which the session connected itself, keeps no more than the accepted one
    expect(plain[0].socket.listenerCount('close')).toBe(plain[1].socket.listenerCount('close'))
    await transfer(plain[1], plain[0], 256 * 1024)
  })

  it('a generated code typed with other case and separators is the same code', async () => {
    const { addr } = await startServer()
    const [a, b] = await nodes()
    const r = await Promise.all([
      rendezvous(a, { server: addr, code: '4127-otter-pretzel-canoe' }),
      sleep(30).then(async () => await rendezvous(b, { server: addr, code: ' 4127 Otter pretzel-CANOE' }))
    ]) as [Result, Result]
    for (const x of r) expect(x.encrypted).toBe(true)
    await transfer(r[0], r[1], 64 * 1024)
  })
})

describe('codes and keys', () => {
  it('the server sees a nameplate, or a hash of a free-text code, never the code', () => {
    expect(codeKey('4127-purple-sausage-tiger')).toBe('n:4127')
    expect(codeKey('4127-x')).toBe('n:4127')
    const hashed = codeKey('purple-otter')
    expect(hashed).toMatch(/^h:[0-9a-f]{64}$/)
    expect(hashed).not.toContain('purple')
    expect(codeKey('purple-otter')).toBe(hashed)
    expect(codeKey('1234567-too-long-a-nameplate')).toMatch(/^h:/)
  })

  it('a MAC verifies only for its own label, pairing and fields; forgeries of our pairing are counted', () => {
    const auth = testAuth('ab'.repeat(16))
    const probe = auth.probe('0123456789abcdef')
    expect(auth.verify(probe)).toBe(true)
    expect(auth.verify({ ...probe, nonce: 'fedcba9876543210' })).toBe(false)
    expect(auth.verify({ ...auth.ack('0123456789abcdef'), t: 'probe' })).toBe(false) // an ack is no probe
    expect(auth.verify({ ...probe, pair: 'cd'.repeat(16) })).toBe(false) // another pairing's: not counted
    expect(auth.invalid).toBe(2)
  })
})

// The server on its own: test/rendezvous-server*.test.ts; attacks on it: test/attack-server*.test.ts
