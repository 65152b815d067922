// Attacks on rendezvous() (issue 12), on loopback as root: a passive eavesdropper (AF_PACKET on lo), a stranger
// who races the victim to the server, a process holding one of the victim's candidate addresses, and forged
// server messages (raw-socket source spoofing). Each test failed on the code before issue 12; the numbers seen
// then are in the comments ("before").
import { createHash, randomBytes } from 'crypto'
import * as dgram from 'dgram'
import { EventEmitter } from 'events'
import { afterEach, describe, expect, it } from 'vitest'

import type { Node as NodeClass } from '../lib/api'
import type * as AuthModule from '../lib/rendezvous/auth'
import type * as ProtocolModule from '../lib/rendezvous/protocol'
import type * as WatchModule from '../lib/rendezvous/watch'
import { Sniffer } from './helpers/attack-sniffer'
import { Forger } from './helpers/forge'
import { interceptServer, type Edit } from './helpers/server-path'
import { cleanupNodes, closed, drainHash, makeNode, requireFromRoot, sleep, utp, type Node, type Socket } from './helpers/utp'

const protocol = requireFromRoot('./dist/lib/rendezvous/protocol.js') as typeof ProtocolModule
const { ConnectionWatch } = requireFromRoot('./dist/lib/rendezvous/watch.js') as typeof WatchModule

type Result = NodeClass.RendezvousResult
type Server = NodeClass.RendezvousServer

const servers: Server[] = []
const closers: Array<() => void> = []
cleanupNodes()
afterEach(async () => {
  for (const c of closers.splice(0)) c()
  await Promise.all(servers.splice(0).map(async s => await s.close()))
})

async function startServer (options: NodeClass.RendezvousServerOptions = {}): Promise<{ addr: string, port: number }> {
  const server = new utp.RendezvousServer({ port: 0, host: '127.0.0.1', ...options })
  servers.push(server)
  const { port } = await server.listen()
  return { addr: `127.0.0.1:${port}`, port }
}

async function nodes (n: number): Promise<Node[]> {
  const out = Array.from({ length: n }, () => makeNode())
  await Promise.all(out.map(async x => await x.bindAsync(0, '127.0.0.1')))
  return out
}

function sniffer (needles: Buffer[] = []): Sniffer {
  const s = new Sniffer(needles)
  closers.push(() => { s.stop().catch(() => {}) })
  return s
}

async function socketOn (host = '127.0.0.1'): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4')
  closers.push(() => s.close())
  await new Promise<void>(resolve => s.bind(0, host, () => resolve()))
  return s
}

/** The uTP socket under a result (the encrypted stream wraps it) */
function utpOf (r: Result): Socket {
  return (r as { utpSocket?: Socket }).utpSocket ?? r.socket as unknown as Socket
}

/** A rendezvous datagram with the current protocol's header */
function datagram (m: Record<string, unknown>): Buffer {
  return protocol.encode(m as unknown as ProtocolModule.Message)
}

/** `bytes` bytes of one repeating 1 KiB block: any datagram carrying the plaintext carries a slice of it */
function patterned (block: Buffer, bytes: number): Buffer {
  return Buffer.concat(Array.from({ length: Math.ceil(bytes / block.length) }, () => block)).subarray(0, bytes)
}

async function send (from: Result, to: Result, data: Buffer): Promise<void> {
  const got = drainHash(to.socket)
  from.socket.end(data)
  const r = await got
  expect(r.bytes).toBe(data.length)
  expect(r.sha256).toBe(createHash('sha256').update(data).digest('hex'))
  // The other direction ends too: a stream torn down without its authenticated end fails with ERR_DECRYPT
  const both = Promise.all([closed(from.socket), closed(to.socket)])
  from.socket.resume()
  to.socket.end()
  await both
}

/** A well-formed SPAKE2 message (of some other password), or random bytes before there was a PAKE */
function pakeMessage (): Buffer {
  const Pake = (utp as { Pake?: { start: (pw: string, ctx: string) => { message: Buffer } } }).Pake
  return Pake === undefined ? randomBytes(33) : Pake.start('not-the-code', 'utp-punch-rs rendezvous v2|n:6121').message
}

function codeOf (e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code
}

describe('attacks on rendezvous()', () => {
  it('code hijack: a stranger who registers the nameplate with a wrong secret gets no byte; both fail with ERR_WRONG_CODE, and the code is burned', async () => {
    const sniff = sniffer()
    await sniff.ready
    const { addr, port } = await startServer()
    const [victim, stranger, friend] = await nodes(3)
    const code = '4127-purple-sausage-tiger'
    const t0 = Date.now()
    const victimP = victim.rendezvous({ server: addr, code, timeoutMs: 8000 })
    // The stranger sees the victim's registration go by and registers what it learns
    const reg = await sniff.waitFor(d => d.dport === port && d.body.t === 'register')
    const learned = typeof reg.body.code === 'string' ? reg.body.code : `${String(reg.body.key).slice(2)}-wrong-guess`
    const strangerP = stranger.rendezvous({ server: addr, code: learned, timeoutMs: 8000 })
    let strangerBytes = 0
    const [v, s] = await Promise.allSettled([victimP, strangerP])
    if (s.status === 'fulfilled') s.value.socket.on('data', (d: Buffer) => { strangerBytes += d.length })
    if (v.status === 'fulfilled') v.value.socket.write('the victim thinks it talks to its friend')
    await sleep(300)
    // before: both rendezvous succeeded, the stranger got 40 bytes
    expect(strangerBytes).toBe(0)
    expect([v.status === 'rejected' ? codeOf(v.reason) : 'connected', s.status === 'rejected' ? codeOf(s.reason) : 'connected']).toEqual(['ERR_WRONG_CODE', 'ERR_WRONG_CODE'])
    expect(Date.now() - t0).toBeLessThan(3000)
    // The real friend comes too late: the code is burned
    await expect(friend.rendezvous({ server: addr, code, timeoutMs: 3000 })).rejects.toMatchObject({ code: 'ERR_RENDEZVOUS_REFUSED', serverCode: 'ERR_CODE_BURNED' })
  })

  it('relay before confirmation: a stranger on the nameplate who asks for a relay at once cannot connect through it to a listening victim', async () => {
    const { PairingPake, codeKey } = requireFromRoot('./dist/lib/rendezvous/auth.js') as typeof AuthModule
    const { addr, port } = await startServer()
    const [victim, stranger] = await nodes(2)
    // A node that already listens (a server application): the relay's connection would be taken at once
    victim.listen()
    const code = '4242-quiet-harbor-lantern'
    const wrong = '4242-wrong-guess-here'
    // The stranger registers first (so the victim takes the accepting part) with a real SPAKE2 message for a
    // wrong secret: the victim cannot tell until the confirm MACs are compared
    const raw = stranger.getUdpSocket()
    const heard: Array<Record<string, unknown>> = []
    raw.on('message', (msg: Buffer) => {
      const m = protocol.decode(msg)
      if (m !== null && !protocol.isDecodeError(m)) heard.push(m as unknown as Record<string, unknown>)
    })
    const to = (m: Record<string, unknown>): void => { raw.send(datagram(m), port, '127.0.0.1') }
    const waitFor = async (t: string): Promise<Record<string, unknown>> => {
      for (let i = 0; i < 300; i++) {
        const m = heard.find(x => x.t === t)
        if (m !== undefined) return m
        await sleep(10)
      }
      throw new Error(`the stranger never heard ${t}: ${JSON.stringify(heard.map(x => x.t))}`)
    }
    const nonce = randomBytes(8).toString('hex')
    const register = { t: 'register', key: codeKey(wrong), pake: new PairingPake(wrong, codeKey(wrong)).message, nonce, lan: [], relay: true }
    to(register)
    to({ ...register, cookie: (await waitFor('retry')).cookie })
    await waitFor('registered')
    const victimP = victim.rendezvous({ server: addr, code, forceRelay: true, encrypt: false, timeoutMs: 3000 })
    const peer = await waitFor('peer')
    expect(peer.role).toBe('connect')
    to({ t: 'relay-request', nonce })
    const relay = await waitFor('relay-allocated')
    // The stranger says hello to its relay port and connects through it as soon as the relay is ready
    const hello = (): void => { raw.send(datagram({ t: 'relay-hello', token: relay.token }), relay.port as number, '127.0.0.1') }
    const helloTimer = setInterval(hello, 100)
    hello()
    let connected = false
    try {
      for (let i = 0; i < 150 && heard.find(x => x.t === 'relay-hello-ack' && x.ready === true) === undefined; i++) await sleep(10)
      if (heard.some(x => x.t === 'relay-hello-ack' && x.ready === true)) {
        const s = stranger.connect(relay.port as number, '127.0.0.1')
        s.on('error', () => {})
        s.on('connect', () => { connected = true })
      }
      const outcome = await victimP.then(() => 'connected to the stranger', (e: Error & { code?: string }) => {
        // The confirmation's own limit (10 s by default) is cut to the call's
        expect(e.message).toBe('the peer never proved it holds the code (no confirm from it within 3000 ms)')
        return e.code
      })
      // With the relay hello's guard gone, or _confirmed true from the start, the relay opens and the stranger's
      // connection reaches the victim's node (the accept check in _acceptIfOurs is a second line, not tested here)
      expect([outcome, connected]).toEqual(['ERR_RENDEZVOUS_TIMEOUT', false])
    } finally {
      clearInterval(helloTimer)
    }
  })

  it('eavesdropper: a recorder on the path sees neither the code nor the plaintext of 8 MiB, direct or relayed', async () => {
    const block = randomBytes(1024)
    const codes = ['5813-velvet-otter-harbor', '5814-amber-crane-meadow']
    const secrets = codes.map(c => Buffer.from(c.slice(5)))
    const sniff = sniffer([...codes.map(c => Buffer.from(c)), ...secrets, block.subarray(100, 132)])
    await sniff.ready
    const { addr } = await startServer({ relayRate: 100_000_000 })
    const [a, b, c, d] = await nodes(4)
    const data = patterned(block, 8 << 20)
    const direct = await Promise.all([a.rendezvous({ server: addr, code: codes[0] }), sleep(30).then(async () => await b.rendezvous({ server: addr, code: codes[0] }))])
    await send(direct[0], direct[1], data)
    const relayed = await Promise.all([c.rendezvous({ server: addr, code: codes[1], forceRelay: true }), sleep(30).then(async () => await d.rendezvous({ server: addr, code: codes[1], forceRelay: true }))])
    expect(relayed.map(r => r.path)).toEqual(['relay', 'relay'])
    await send(relayed[0], relayed[1], data)
    await sleep(200)
    const summary = await sniff.stop()
    expect(summary.dropped, 'frames the recorder missed').toBe(0)
    expect(summary.bytes).toBeGreaterThan(2 * data.length) // it did see both transfers
    // before: [2, 2, 2, 2, 903] (each code in clear in both registrations, 903 datagrams of plaintext)
    expect(summary.hits).toEqual([0, 0, 0, 0, 0])
    expect([...direct, ...relayed].map(r => (r as { encrypted?: boolean }).encrypted)).toEqual([true, true, true, true])
  })

  it('candidate hijack: whoever holds one of the peer\'s LAN candidate addresses and acks its probes does not get the connection', async () => {
    const attacker = makeNode()
    const at = await attacker.bindAsync(0, '127.0.0.1')
    await attacker.listenAsync()
    let stolen = 0
    let acked = 0
    attacker.on('connection', () => stolen++)
    attacker.getUdpSocket().on('message', (msg: Buffer, rinfo: { address: string, port: number }) => {
      if (msg.subarray(0, 5).toString('latin1') !== 'UTPRV') return
      const body = JSON.parse(msg.subarray(6).toString()) as Record<string, unknown>
      if (body.t !== 'probe') return
      // The best it can do: the sniffed pair id and nonce, and the probe's own MAC
      acked++
      attacker.getUdpSocket().send(Buffer.concat([msg.subarray(0, 6), Buffer.from(JSON.stringify({ t: 'probe-ack', pair: body.pair, nonce: body.nonce, mac: body.mac }))]), rinfo.port, rinfo.address)
    })
    const hijack = { address: '127.0.0.1', port: at.port }
    const { addr } = await startServer({ rewriteCandidates: (c: { public: { address: string, port: number } }) => ({ public: c.public, lan: [hijack] }) })
    const [a, b] = await nodes(2)
    const code = '7702-silver-kettle-drum'
    const [ra, rb] = await Promise.allSettled([
      a.rendezvous({ server: addr, code, timeoutMs: 8000, acceptGraceMs: 0 }),
      sleep(30).then(async () => await b.rendezvous({ server: addr, code, timeoutMs: 8000, acceptGraceMs: 0 }))
    ])
    await sleep(200)
    expect(acked).toBeGreaterThan(0)
    // before: stolen 1 (the 'connect' peer preferred the LAN "candidate" and connected to the attacker)
    expect(stolen).toBe(0)
    expect(ra.status).toBe('fulfilled')
    expect(rb.status).toBe('fulfilled')
    if (ra.status !== 'fulfilled' || rb.status !== 'fulfilled') return
    expect(ra.value.remote.port).toBe(b.address().port)
    expect((ra.value as { unauthenticatedDropped?: number }).unauthenticatedDropped).toBeGreaterThan(0)
    await send(ra.value, rb.value, randomBytes(64 * 1024))
  })

  it('forged peer-moved (spoofed from the server) and a forged keepalive do not re-aim a live connection', async () => {
    const sniff = sniffer()
    await sniff.ready
    const { addr, port } = await startServer()
    const [a, b] = await nodes(2)
    const code = '3390-paper-lantern-moth'
    const r = await Promise.all([a.rendezvous({ server: addr, code }), sleep(30).then(async () => await b.rendezvous({ server: addr, code }))])
    const nonceOf = (n: Node): string => String(sniff.seen.find(d => d.dport === port && d.sport === n.address().port && d.body.t === 'register')?.body.nonce)
    const [nonceA, nonceB] = [nonceOf(a), nonceOf(b)]
    const moves: unknown[] = []
    for (const x of r) utpOf(x).on('migrate', (m: unknown) => moves.push(m))
    const attacker = await socketOn()
    const evil = { address: '127.0.0.1', port: attacker.address().port }
    let reached = 0
    attacker.on('message', (msg: Buffer) => {
      reached++
      const body = JSON.parse(msg.subarray(6).toString()) as Record<string, unknown>
      // A server that wants a cookie gets it: the attacker owns its address
      if (body.t === 'retry') attacker.send(datagram({ t: 'keepalive', nonce: nonceB, cookie: body.cookie }), port, '127.0.0.1')
    })
    const forger = new Forger()
    closers.push(() => forger.close())
    // peer-moved "from the server" to A, naming the attacker as B's new address
    await forger.send({ src: '127.0.0.1', sport: port, dst: '127.0.0.1', dport: a.address().port, payload: datagram({ t: 'peer-moved', nonce: nonceA, public: evil, seq: 1 }), count: 3 })
    // B's registration "moving" to the attacker's address: the server then tells A itself
    attacker.send(datagram({ t: 'keepalive', nonce: nonceB }), port, '127.0.0.1')
    await sleep(1500)
    // before: A migrated to the attacker's port (1 'migrate') and its connection pointed there
    expect(moves).toEqual([])
    expect(utpOf(r[0]).remotePort).toBe(b.address().port)
    expect(reached).toBeGreaterThan(0) // the attack did run (the attacker heard the server, or A's validation probes)
    await send(r[0], r[1], randomBytes(64 * 1024))
  })

  it('a peer-moved with a huge seq does not block a later legitimate move, and only a validated path is followed', async () => {
    let auth: AuthModule.PeerAuth | undefined
    try {
      const { PeerAuth } = requireFromRoot('./dist/lib/rendezvous/auth.js') as typeof AuthModule
      auth = new PeerAuth({ probe: Buffer.alloc(32, 7), confirm: Buffer.alloc(32, 8), stream: Buffer.alloc(32, 9) }, 'ab'.repeat(16))
    } catch {} // before issue 12 there was no auth module: the watch below runs without it
    const server = { address: '127.0.0.1', port: 7000 }
    const peer = { address: '127.0.0.1', port: 7100 }
    const evil = { address: '127.0.0.1', port: 6666 }
    const moved = { address: '127.0.0.1', port: 7200 }
    const followed: Array<{ port: number }> = []
    const fakeSocket = Object.assign(new EventEmitter(), {
      remoteAddress: peer.address,
      remotePort: peer.port,
      stats: () => null,
      _migrate: (port: number, address: string) => { followed.push({ port }); fakeSocket.remoteAddress = address; fakeSocket.remotePort = port; return true }
    })
    let watch: WatchModule.ConnectionWatch | null = null
    const toServer: unknown[] = []
    watch = new ConnectionWatch({
      socket: fakeSocket as unknown as Socket,
      wire: { send: (m: unknown) => toServer.push(m), close: () => {} } as unknown as WatchModule.WatchOptions['wire'],
      server,
      nonce: 'cd'.repeat(8),
      pair: 'ab'.repeat(16),
      auth,
      cookie: () => undefined,
      setCookie: () => {},
      keepaliveMs: 60_000,
      quietMs: 60_000,
      followable: true,
      relay: null,
      // The peer really is at `moved` and answers probes there; nobody answers at `evil`
      sendFromSocketNode: (m: ProtocolModule.Message, to: { port: number }) => {
        if (m.t === 'probe' && to.port === moved.port && auth !== undefined) setImmediate(() => watch?.handle(auth.ack(m.nonce), moved))
      }
    } as unknown as WatchModule.WatchOptions)
    closers.push(() => watch?.close())
    watch.handle({ t: 'peer-moved', nonce: 'cd'.repeat(8), public: evil, seq: 999_999_999 }, server)
    watch.handle({ t: 'peer-moved', nonce: 'cd'.repeat(8), public: evil, seq: 1000 }, server)
    await sleep(100)
    // before: the connection followed the first (huge seq) move to the attacker at once
    expect(followed).toEqual([])
    watch.handle({ t: 'peer-moved', nonce: 'cd'.repeat(8), public: moved, seq: 1 }, server)
    for (let i = 0; i < 50 && followed.length === 0; i++) await sleep(20)
    // before: [6666] only (seq 1 was "a repeat" after seq 999,999,999)
    expect(followed).toEqual([{ port: moved.port }])
  })

  it('server messages from a foreign source are ignored, and a forged pairing makes nobody spray probes', async () => {
    const sniff = sniffer()
    await sniff.ready
    const { addr, port } = await startServer()
    const [a, b, c] = await nodes(3)
    const third = { address: '127.0.0.99', port: 40000 }
    const forgedPeer = (nonce: string): Buffer => datagram({
      t: 'peer', nonce, pair: 'ab'.repeat(16), role: 'connect', startInMs: 0, public: third, lan: [], relay: false,
      mapping: 'independent', peerMapping: 'dependent', pake: pakeMessage().toString('base64')
    })
    const code = '6120-quiet-lantern-bay'
    let settled: string | null = null
    const pa = a.rendezvous({ server: addr, code, timeoutMs: 10_000, birthdayRate: 2000 })
    pa.then(() => { settled = 'paired' }, (e) => { settled = codeOf(e) ?? 'error' })
    const nonceA = String((await sniff.waitFor(d => d.dport === port && d.sport === a.address().port && d.body.t === 'register')).body.nonce)
    // From a foreign address: a pairing with "birthday" probing at a third party, and an error
    const foreign = await socketOn()
    foreign.send(forgedPeer(nonceA), a.address().port, '127.0.0.1')
    foreign.send(datagram({ t: 'error', code: 'ERR_CODE_IN_USE', message: 'go away', nonce: nonceA }), a.address().port, '127.0.0.1')
    await sleep(1000)
    const sprayedAt = (): number => sniff.seen.filter(d => d.dst === third.address).length
    // before: 1,991 probes (birthday spraying at 2,000/s) at 127.0.0.99 within the second
    expect(sprayedAt()).toBe(0)
    expect(settled).toBeNull()
    // The real peer still pairs with it
    const rb = await b.rendezvous({ server: addr, code, timeoutMs: 10_000 })
    const ra = await pa
    expect(ra.role).toBe('connect')
    rb.socket.destroy()
    ra.socket.destroy()
    // Spoofed from the server's own address: the victim may believe it, but sprays nothing before the peer's confirm
    const pc = c.rendezvous({ server: addr, code: '6121-open-window-fox', timeoutMs: 2500, birthdayRate: 2000 })
    pc.catch(() => {})
    const nonceC = String((await sniff.waitFor(d => d.dport === port && d.sport === c.address().port && d.body.t === 'register')).body.nonce)
    const forger = new Forger()
    closers.push(() => forger.close())
    await forger.send({ src: '127.0.0.1', sport: port, dst: '127.0.0.1', dport: c.address().port, payload: forgedPeer(nonceC) })
    // It never confirms (the forger has no code): the rendezvous fails, as an interception should
    expect(codeOf(await pc.then(() => null, (e: unknown) => e))).toMatch(/^ERR_(RENDEZVOUS_TIMEOUT|WRONG_CODE)$/)
    const summary = await sniff.stop()
    expect(summary.perDst[third.address] ?? 0).toBe(0)
  })
})

/** interceptServer() for this test only (the latest undone first: each restores the one it wrapped) */
function intercept (edit: Edit): void {
  closers.unshift(interceptServer(edit))
}

function forger (): Forger {
  const f = new Forger()
  closers.push(() => f.close())
  return f
}

/** A server and two bound nodes, with a stranger on the path who sees every datagram and can spoof any source */
async function onPath (): Promise<{ sniff: Sniffer, f: Forger, addr: string, port: number, a: Node, b: Node }> {
  const sniff = sniffer()
  await sniff.ready
  const f = forger()
  const { addr, port } = await startServer()
  const [a, b] = await nodes(2)
  return { sniff, f, addr, port, a, b }
}

describe('forged answers to rendezvous() on the path', () => {
  it('a relay-hello-ack that is not ready, has another token, or comes from another port or address neither stops the hellos nor starts the connection', async () => {
    const { sniff, f, addr, a, b } = await onPath()
    // The relay's real acknowledgements are held back until the forgeries were sent (a path that loses them)
    const held = new Map<number, { token: string, relayPort: number, ready: boolean }>()
    let hold = true
    let heldCount = 0
    intercept((m, hop) => {
      if (m.t !== 'relay-hello-ack' || !hold) return m
      heldCount++
      held.set(hop.to.port, { token: m.token, relayPort: (hop.via.address()).port, ready: m.ready })
      return null
    })
    let settled: string | null = null
    const both = Promise.all([a, b].map(async n => await n.rendezvous({ server: addr, code: '5150-forged-relay-ack', forceRelay: true, timeoutMs: 10_000 })))
    both.then(() => { settled = 'paired' }, (e) => { settled = codeOf(e) ?? 'error' })
    const ports = [a.address().port, b.address().port]
    const readyForBoth = (): boolean => ports.every(p => held.get(p)?.ready === true)
    for (let i = 0; i < 500 && !readyForBoth(); i++) await sleep(10)
    expect(readyForBoth()).toBe(true)
    // The relay is ready for both: an ack taken now would connect them through it
    const other = new Map([[ports[0], ports[1]], [ports[1], ports[0]]])
    for (const port of ports) {
      const { token, relayPort } = held.get(port) as { token: string, relayPort: number }
      const wrongToken = (held.get(other.get(port) as number) as { token: string }).token
      const to = { dst: '127.0.0.1', dport: port }
      await f.send({ ...to, src: '127.0.0.1', sport: relayPort, payload: datagram({ t: 'relay-hello-ack', token, ready: false }) })
      await f.send({ ...to, src: '127.0.0.1', sport: relayPort, payload: datagram({ t: 'relay-hello-ack', token: wrongToken, ready: true }) })
      await f.send({ ...to, src: '127.0.0.1', sport: relayPort === 65535 ? 1024 : relayPort + 1, payload: datagram({ t: 'relay-hello-ack', token, ready: true }) })
      await f.send({ ...to, src: '127.0.0.2', sport: relayPort, payload: datagram({ t: 'relay-hello-ack', token, ready: true }) })
    }
    const hellosBefore = (p: number): number => sniff.seen.filter(d => d.sport === p && d.body.t === 'relay-hello').length
    const before = ports.map(hellosBefore)
    const heldBefore = heldCount
    await sleep(700)
    // Still saying hello (every 200 ms), and nobody connected
    expect(ports.map((p, i) => hellosBefore(p) - before[i]).every(n => n >= 2)).toBe(true)
    expect(heldCount - heldBefore).toBeGreaterThanOrEqual(4)
    expect(settled).toBeNull()
    // The real acknowledgements get through: the relay carries them
    hold = false
    const [ra, rb] = await both
    expect([ra.remote.port, rb.remote.port].sort()).toEqual([...new Set(Array.from(held.values(), h => h.relayPort))].sort())
    await send(ra, rb, randomBytes(16 * 1024))
    // Closed while the relay still carries the connections' last packets (the server closes first at the end)
    await Promise.all([a.closeAsync(), b.closeAsync()])
  })

  it('the client\'s own mapping check stands in when the pairing names no mapping, and takes no check-ack from a stranger, the server\'s main port, another address or for another nonce', async () => {
    const { addr, port } = await startServer()
    const [a, b] = await nodes(2)
    const [aPort, bPort] = [a.address().port, b.address().port]
    // The path in the middle: the server's pairing loses our mapping (as from a server that measured none), A's
    // check-acks are held until the forgeries were sent, and B's says it came from another port
    const held: Array<{ nonce: string, checkPort: number }> = []
    const passed: number[] = []
    let holdA = true
    intercept((m, hop) => {
      if (m.t === 'peer') {
        // (B's also loses the peer's mapping)
        const { mapping: _lost, peerMapping, ...unmeasured } = m
        return hop.to.port === bPort ? unmeasured : { ...unmeasured, peerMapping }
      }
      if (m.t !== 'check-ack') return m
      if (hop.to.port === aPort && holdA) {
        held.push({ nonce: m.nonce, checkPort: hop.via.address().port })
        return null
      }
      passed.push(hop.to.port)
      return hop.to.port === bPort ? { ...m, observed: { ...m.observed, port: m.observed.port + 1 } } : m
    })
    const f = forger() // started now: A's checks (8, 250 ms apart) are not to run out while it starts
    const opts = { server: addr, code: '5151-forged-check-ack', birthday: false, timeoutMs: 10_000 }
    const pa = a.rendezvous(opts)
    for (let i = 0; i < 300 && held.length === 0; i++) await sleep(10)
    expect(held.length).toBeGreaterThan(0)
    const { nonce, checkPort } = held[0]
    // Each would make A's mapping look endpoint-dependent: the port they "saw" is not the one the server saw
    const ack = (n: string): Buffer => datagram({ t: 'check-ack', nonce: n, observed: { address: '127.0.0.1', port: aPort === 65535 ? 1 : aPort + 1 } })
    const to = { dst: '127.0.0.1', dport: aPort }
    await f.send({ ...to, src: '127.0.0.1', sport: checkPort === 65535 ? 1 : checkPort + 1, payload: ack(nonce) })
    await f.send({ ...to, src: '127.0.0.1', sport: port, payload: ack(nonce) })
    await f.send({ ...to, src: '127.0.0.2', sport: checkPort, payload: ack(nonce) })
    await f.send({ ...to, src: '127.0.0.1', sport: checkPort, payload: ack('0f'.repeat(8)) })
    await sleep(100)
    // The real answer to A's next check (every 250 ms) gets through
    holdA = false
    for (let i = 0; i < 100 && !passed.includes(aPort); i++) await sleep(10)
    expect(passed).toContain(aPort)
    const [ra, rb] = await Promise.all([pa, b.rendezvous(opts)])
    // The peer's mapping comes from the server's pairing, ours from our own check; what is unknown is left out
    expect([ra.mapping, rb.mapping]).toStrictEqual([{ ours: 'independent', peer: 'independent' }, { ours: 'dependent' }])
    await send(ra, rb, Buffer.from('mapped'))

    // A server without a mapping-check port: a check-ack spoofed from its main port finds no check to answer
    const other = await startServer({ mappingCheck: false })
    const [c, d] = await nodes(2)
    const registered = new Map<number, string>()
    intercept((m, hop) => {
      if (m.t === 'registered') registered.set(hop.to.port, m.nonce)
      // C hears a mapping for its peer (as if D had been measured), none for itself
      return m.t === 'peer' && hop.to.port === c.address().port ? { ...m, peerMapping: 'dependent' } : m
    })
    const opts2 = { server: other.addr, code: '5152-no-check-port', birthday: false, timeoutMs: 10_000 }
    let cRegistered = false
    const pc = c.rendezvous({ ...opts2, onStatus: (st) => { if (st.state === 'registered') cRegistered = true } })
    // C took its registration (the check-ack must not find it unregistered, which would drop it anyway)
    for (let i = 0; i < 300 && !cRegistered; i++) await sleep(10)
    expect(cRegistered).toBe(true)
    await f.send({ src: '127.0.0.1', sport: other.port, dst: '127.0.0.1', dport: c.address().port, payload: datagram({ t: 'check-ack', nonce: String(registered.get(c.address().port)), observed: { address: '127.0.0.1', port: 1 } }) })
    await sleep(50)
    const [rc, rd] = await Promise.all([pc, d.rendezvous(opts2)])
    expect([rc.mapping, rd.mapping]).toStrictEqual([{ peer: 'dependent' }, undefined])
    await send(rc, rd, Buffer.from('unmapped'))
  })

  it('a stranger\'s connection to the accepting side, made while the relay is readied, is not taken for the peer\'s', async () => {
    const { addr } = await startServer()
    const [a, b, stranger] = await nodes(3)
    // The relay says it is ready only after a second: the stranger connects in that time
    let firstAck: number | undefined
    const relayPortOf = new Map<number, number>()
    intercept((m, hop) => {
      if (m.t === 'relay-allocated') relayPortOf.set(hop.to.port, m.port)
      return m.t === 'relay-hello-ack' && Date.now() - (firstAck ??= Date.now()) < 1000 ? null : m
    })
    const code = '5154-stranger-before-relay'
    // A registers first and takes the connecting part; B, which accepts, heard of the relay from A
    const pa = a.rendezvous({ server: addr, code, forceRelay: true, encrypt: false, timeoutMs: 10_000 })
    await sleep(30)
    const pb = b.rendezvous({ server: addr, code, encrypt: false, timeoutMs: 10_000 })
    for (let i = 0; i < 300 && firstAck === undefined; i++) await sleep(10)
    expect(firstAck).toBeDefined()
    const s = stranger.connect(b.address().port, '127.0.0.1')
    s.on('error', () => {})
    await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
    const [ra, rb] = await Promise.all([pa, pb])
    expect([ra.role, rb.role]).toEqual(['connect', 'accept'])
    expect([ra.path, rb.path]).toEqual(['relay', 'relay'])
    // B's connection is the one from its side of the relay
    expect(rb.remote).toEqual({ address: '127.0.0.1', port: relayPortOf.get(b.address().port) })
    await send(ra, rb, Buffer.from('from the peer'))
    s.destroy()
    await Promise.all([a.closeAsync(), b.closeAsync()])
  })

  it('a relay-allocated spoofed from the server before the pairing is ignored: the pair punches as usual', async () => {
    const { sniff, f, addr, port, a, b } = await onPath()
    const code = '5155-early-relay'
    const pa = a.rendezvous({ server: addr, code, timeoutMs: 10_000 })
    const nonce = String((await sniff.waitFor(d => d.dport === port && d.sport === a.address().port && d.body.t === 'register')).body.nonce)
    // A relay port nobody answers on: a client that kept it would go there and wait out its timeout
    const silent = await socketOn()
    await f.send({ src: '127.0.0.1', sport: port, dst: '127.0.0.1', dport: a.address().port, payload: datagram({ t: 'relay-allocated', nonce, port: silent.address().port, token: 'ee'.repeat(16) }) })
    await sleep(50)
    const [ra, rb] = await Promise.all([pa, b.rendezvous({ server: addr, code, timeoutMs: 10_000 })])
    expect([ra.path, rb.path]).not.toContain('relay')
    await send(ra, rb, Buffer.from('punched'))
  })

  it('a retry while the relay is being requested repeats the request at once, with its cookie', async () => {
    const { sniff, f, addr, port, a, b } = await onPath()
    // The relay's allocation is held back: both sides keep requesting it (every 500 ms)
    let hold = true
    intercept(m => m.t === 'relay-allocated' && hold ? null : m)
    const both = Promise.all([a, b].map(async n => await n.rendezvous({ server: addr, code: '5153-retry-relay-request', forceRelay: true, timeoutMs: 10_000 })))
    const aPort = a.address().port
    const request = (d: { sport: number, dport: number, body: Record<string, unknown> }): boolean => d.sport === aPort && d.dport === port && d.body.t === 'relay-request'
    // Just after the timer's first repeat: the next is 500 ms away, and the server's own retry (at the
    // registration) long enough ago for ours not to count as a loop
    const first = await sniff.waitFor(request)
    await sniff.waitFor(d => request(d) && d !== first)
    const cookie = 'c0'.repeat(16)
    await f.send({ src: '127.0.0.1', sport: port, dst: '127.0.0.1', dport: aPort, payload: datagram({ t: 'retry', cookie }) })
    const retried = Date.now()
    await sniff.waitFor(d => request(d) && d.body.cookie === cookie)
    expect(Date.now() - retried).toBeLessThan(250)
    hold = false
    const [ra, rb] = await both
    expect([ra.path, rb.path]).toEqual(['relay', 'relay'])
    await send(ra, rb, Buffer.from('relayed'))
    await Promise.all([a.closeAsync(), b.closeAsync()])
  })
})
