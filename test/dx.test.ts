// Developer experience: typed events, socket and node stats, NODE_DEBUG logging, the CLI's --json and --help
import { createHash, randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { Writable } from 'stream'
import ts from 'typescript'
import { afterAll, describe, expect, it } from 'vitest'

import type * as ProgressModule from '../bin/progress'
import type { MigrateInfo, NodeEvents, SocketEvents } from '../lib/events'
import type * as ServerModule from '../lib/server/server'
import type * as StatsModule from '../lib/stats'
import { cleanupNodes, closed, drainHash, listeningNode, makeNode, once, requireFromRoot, root, sleep, writeRandom, type Node, type Socket } from './helpers/utp'
import { finish, start, type Run } from './helpers/cli'
import { spawnScript } from './helpers/script'

const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
const { Progress, clock } = requireFromRoot('./dist/bin/progress.js') as typeof ProgressModule
const { Totals, socketStats } = requireFromRoot('./dist/lib/stats.js') as typeof StatsModule

cleanupNodes()

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-dx-'))
const servers: ServerModule.RendezvousServer[] = []
afterAll(async () => {
  await Promise.all(servers.map(async s => await s.close()))
  fs.rmSync(tmp, { recursive: true, force: true })
})

/** Until socket.stats() says the native connection closed (its numbers are final) */
async function nativeClosed (socket: Socket): Promise<void> {
  for (let i = 0; i < 500 && socket.stats()?.open !== false; i++) await sleep(10)
  expect(socket.stats()?.open).toBe(false)
}

async function rendezvousServer (): Promise<string> {
  const server = new RendezvousServer({ port: 0, host: '127.0.0.1', http: false })
  servers.push(server)
  const { port } = await server.listen()
  return `127.0.0.1:${port}`
}

// ---- typed events: checked by `tsc -p test/tsconfig.json` (a gate), never run ---------------------------------

export function typedEvents (node: Node, socket: Socket): void {
  node.on('connection', (s) => s.write('hello'))
  node.once('bound', (a) => console.log(a.port, a.family))
  node.on('error', (err) => console.log(err.code))
  node.prependListener('timeout', (s) => s.destroy())
  node.off('close', () => {})
  node.emit('listening')
  // Names outside the map take any listener, as EventEmitter does
  node.on('something-else', (a: string, b: number) => console.log(a, b))
  const name: string = 'dynamic'
  node.on(name, () => {})
  socket.on('migrate', (m: MigrateInfo) => console.log(m.address, m.port, m.from?.port))
  socket.on('data', (chunk: Buffer) => console.log(chunk.length))
  socket.on('error', (err) => console.log(err.code, err.syscall))
  socket.once('connect', () => {})
  socket.addListener('timeout', () => socket.destroy())
  const tuple: NodeEvents['connection'] = [socket]
  const info: SocketEvents['migrate'][0] = { address: '192.0.2.1', port: 1, from: null }
  console.log(tuple, info)

  // @ts-expect-error 'connection' hands over a Socket, not a number
  node.on('connection', (n: number) => n)
  // @ts-expect-error 'bound' hands over an AddressInfo
  node.once('bound', (a: string) => a)
  // @ts-expect-error 'close' has no arguments
  node.emit('close', 1)
  // @ts-expect-error 'connect' on a Node carries the socket
  node.emit('connect')
  // @ts-expect-error 'migrate' hands over { address, port, from }
  socket.on('migrate', (m: string) => m)
  // @ts-expect-error a socket's 'close' has no arguments
  socket.once('close', (x: number) => x)
  // @ts-expect-error 'migrate' needs its info
  socket.emit('migrate')
}

describe('typed events', () => {
  it('reject listeners of the wrong shape for known events, accept anything for other names', () => {
    // The same check as typedEvents() above, run by the compiler here so that a regression shows in vitest too
    const file = path.join(tmp, 'typed-events.ts')
    const lines = [
      `import { Node } from ${JSON.stringify(path.join(root, 'lib', 'node'))}`,
      'const node = new Node()',
      "const socket = node.connect(4000, '127.0.0.1')",
      "node.on('connection', (s) => s.end())",
      "node.on('bound', (a) => a.port)",
      "socket.on('migrate', (m) => m.from?.address)",
      "node.on('custom', (a: string, b: number) => a + b)",
      "node.emit('custom', 1, 2, 3)",
      "node.on('connection', (n: number) => n) // wrong",
      "node.on('bound', (a: string) => a) // wrong",
      "node.emit('close', 1) // wrong",
      "socket.on('migrate', (m: string) => m) // wrong",
      "socket.on('timeout', (x: number) => x) // wrong",
      "socket.emit('connect', 1) // wrong"
    ]
    fs.writeFileSync(file, lines.join('\n') + '\n')
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      types: ['node'],
      typeRoots: [path.join(root, 'node_modules', '@types')],
      skipLibCheck: true
    })
    const errorLines = ts.getPreEmitDiagnostics(program)
      .filter(d => d.file?.fileName === file)
      .map(d => (d.file as ts.SourceFile).getLineAndCharacterOfPosition(d.start ?? 0).line)
    const wrong = lines.flatMap((l, i) => l.endsWith('// wrong') ? [i] : [])
    expect([...new Set(errorLines)].sort((a, b) => a - b)).toEqual(wrong)
  }, 60_000)
})

// ---- stats ------------------------------------------------------------------------------------------------------

describe('stats', () => {
  it('node totals sum every connection counted, closed and open; socket stats carry milliseconds beside microseconds', () => {
    // A transfer on loopback rarely retransmits, so the sums are pinned here rather than read off one
    const t = new Totals()
    t.add({ bytesSent: 1, bytesReceived: 2, packetsSent: 3, packetsReceived: 4, retransmits: 5, timeouts: 6 })
    t.add({ bytesSent: 10, bytesReceived: 20, packetsSent: 30, packetsReceived: 40, retransmits: 50, timeouts: 60 })
    expect({ ...t }).toEqual({ bytesSent: 11, bytesReceived: 22, packetsSent: 33, packetsReceived: 44, retransmits: 55, timeouts: 66 })
    const native = { rtt: 2500, rttVar: 750, rto: 300_000, queuingDelay: 1200 } as unknown as Parameters<typeof socketStats>[0]
    expect(socketStats(native, undefined, true)).toMatchObject({ rtt: 2500, rttMs: 2.5, rttVarMs: 0.75, rtoMs: 300, queuingDelayMs: 1.2, open: true, path: undefined })
  })

  it('socket.stats() and node.stats() after a transfer: bytes match, packets and mtu sensible, final after close', async () => {
    const total = 3 << 20
    const { node: server, port } = await listeningNode()
    let serverSocket: Socket | undefined
    const received = new Promise<{ bytes: number, sha256: string }>((resolve, reject) => {
      server.once('connection', (s) => {
        serverSocket = s
        drainHash(s).then(resolve, reject)
      })
    })
    const client = makeNode()
    const socket = await client.connectAsync(port, '127.0.0.1')
    socket.resume() // the server's FIN must be read for the socket to close
    const live = socket.stats()
    expect(live).toMatchObject({ open: true, path: undefined, mtu: 16000 })
    const sha256 = await writeRandom(socket, total)
    const got = await received
    expect(got).toEqual({ bytes: total, sha256 })
    await Promise.all([closed(socket), closed(serverSocket as Socket)])
    // The streams close once both ended; the native connections a moment later, when the FINs are acknowledged
    await Promise.all([nativeClosed(socket), nativeClosed(serverSocket as Socket)])

    const sent = socket.stats()
    const recv = (serverSocket as Socket).stats()
    for (const s of [sent, recv]) {
      expect(s).not.toBeNull()
      const st = s as NonNullable<typeof s>
      for (const key of ['rtt', 'rttVar', 'rto', 'cwnd', 'inFlight', 'peerWindow', 'recvWindow', 'queuingDelay', 'mtu', 'bytesSent',
        'bytesReceived', 'packetsSent', 'packetsReceived', 'retransmits', 'timeouts', 'duplicates', 'congestionEvents', 'spuriousTimeouts', 'blackHoles', 'rttMs', 'rttVarMs', 'rtoMs',
        'queuingDelayMs'] as const) {
        expect(typeof st[key], key).toBe('number')
        expect(st[key], key).toBeGreaterThanOrEqual(0)
      }
      expect(st.congestion).toBe('ledbat')
      expect(st.open).toBe(false)
      expect(st.path).toBeUndefined()
      expect(st.mtu).toBe(16000)
      expect(st.packetsSent).toBeGreaterThan(0)
      expect(st.packetsReceived).toBeGreaterThan(0)
      expect(st.rttMs).toBeCloseTo(st.rtt / 1000, 6)
      expect(st.rtoMs).toBeGreaterThanOrEqual(100) // the resend floor
    }
    const s = sent as NonNullable<typeof sent>
    const r = recv as NonNullable<typeof recv>
    expect(r.bytesReceived).toBe(total)
    expect(s.bytesSent).toBeGreaterThanOrEqual(total)
    expect(s.bytesSent - s.retransmits * s.mtu).toBeLessThanOrEqual(total)
    expect(s.packetsSent).toBeGreaterThanOrEqual(Math.ceil(total / s.mtu))
    expect(r.packetsReceived).toBeGreaterThanOrEqual(Math.ceil(total / s.mtu))

    const ns = server.stats()
    expect(ns).toMatchObject({ listening: true, connectionsOpened: 1, serverConnections: 0, clientConnections: 0, bytesReceived: total })
    expect(ns.address).toEqual(server.address())
    expect(ns.packetsReceived).toBe(r.packetsReceived)
    const nc = client.stats()
    expect(nc).toMatchObject({ listening: false, connectionsOpened: 1, bytesSent: s.bytesSent, packetsSent: s.packetsSent, retransmits: s.retransmits })
    for (const key of ['unmatchedPackets', 'resetsSent', 'refused', 'rawDatagramsReceived', 'rawBytesReceived', 'rawDatagramsSent', 'rawBytesSent', 'maxConnections'] as const) {
      expect(typeof nc[key], key).toBe('number')
    }
    await client.closeAsync()
    expect(client.stats()).toMatchObject({ address: null, bytesSent: s.bytesSent, connectionsOpened: 1 })
  })

  it('node.stats() counts open connections, raw datagrams both ways and refused connections', async () => {
    const { node: server, port } = await listeningNode()
    const client = makeNode()
    const accepted = once(server, 'connection')
    await client.connectAsync(port, '127.0.0.1')
    await accepted
    expect(server.stats()).toMatchObject({ serverConnections: 1, connectionsOpened: 1 })
    expect(client.stats()).toMatchObject({ clientConnections: 1, connectionsOpened: 1 })

    const udp = server.getUdpSocket()
    const heard = once<Buffer>(udp, 'message')
    client.getUdpSocket().send('ping!', port, '127.0.0.1')
    expect(String(await heard)).toBe('ping!')
    expect(client.stats()).toMatchObject({ rawDatagramsSent: 1, rawBytesSent: 5 })
    expect(server.stats()).toMatchObject({ rawDatagramsReceived: 1, rawBytesReceived: 5 })

    const deaf = makeNode()
    const { port: deafPort } = await deaf.bindAsync(0, '127.0.0.1')
    const refused = client.connect(deafPort, '127.0.0.1')
    const err = await once(refused, 'error').catch((e: unknown) => e) as { code?: string }
    expect(err.code).toBe('ECONNREFUSED')
    expect(deaf.stats()).toMatchObject({ listening: false, connectionsOpened: 0 })
    expect(deaf.stats().refused).toBeGreaterThanOrEqual(1)
    expect(deaf.stats().resetsSent).toBeGreaterThanOrEqual(1)
    expect(client.stats().connectionsOpened).toBe(2)
  })

  it('node.stats() before bind() is all zeros; open connections count as they go; the endpoint counters outlive close()', async () => {
    const fresh = makeNode({ maxConnections: 77 })
    const zeros = fresh.stats()
    expect(zeros).toMatchObject({ address: null, listening: false, maxConnections: 77, connectionsOpened: 0 })
    for (const [key, value] of Object.entries(zeros)) {
      if (key !== 'address' && key !== 'listening' && key !== 'maxConnections' && key !== 'connectionsOpened') expect(value, key).toBe(0)
    }
    expect(fresh.maxConnections).toBe(77)

    const { node: server, port } = await listeningNode(undefined, (s) => s.pipe(s))
    const client = makeNode({ maxConnections: 77 })
    const socket = await client.connectAsync(port, '127.0.0.1')
    expect(client.maxConnections).toBe(77)
    const echoed = drainHash(socket)
    const sha256 = await writeRandom(socket, 1 << 20, 64 * 1024, false)
    // Still open: the node's totals are the open connection's own numbers
    while (socket.stats()?.bytesReceived !== 1 << 20) await sleep(10)
    const live = socket.stats() as NonNullable<ReturnType<Socket['stats']>>
    expect(client.stats()).toMatchObject({ clientConnections: 1, bytesSent: live.bytesSent, bytesReceived: 1 << 20, packetsSent: live.packetsSent })
    expect(live.bytesSent).toBeGreaterThanOrEqual(1 << 20)
    socket.end()
    expect((await echoed).sha256).toBe(sha256)

    const deaf = makeNode()
    const { port: deafPort } = await deaf.bindAsync(0, '127.0.0.1')
    await once(client.connect(deafPort, '127.0.0.1'), 'error').catch(() => {})
    const before = deaf.stats()
    expect(before.refused).toBeGreaterThanOrEqual(1)
    await Promise.all([deaf.closeAsync(), server.closeAsync()])
    // The native endpoint is gone, its last numbers stay
    expect(deaf.stats()).toMatchObject({ address: null, listening: false, refused: before.refused, resetsSent: before.resetsSent, serverConnections: 0 })
    expect(server.stats()).toMatchObject({ listening: false, connectionsOpened: 1, bytesReceived: 1 << 20 })
  })

  it('a socket made by rendezvous() reports its path', async () => {
    const server = await rendezvousServer()
    const a = makeNode()
    const b = makeNode()
    await Promise.all([a.bindAsync(0, '127.0.0.1'), b.bindAsync(0, '127.0.0.1')])
    const opts = { server, code: `dx-${randomBytes(4).toString('hex')}`, followMoves: false, timeoutMs: 20_000 }
    const [ra, rb] = await Promise.all([a.rendezvous(opts), b.rendezvous(opts)])
    expect(ra.path).toBe(rb.path)
    expect(ra.socket.stats()?.path).toBe(ra.path)
    expect(rb.socket.stats()?.path).toBe(rb.path)
    ra.socket.destroy()
    rb.socket.destroy()
  })
})

// ---- NODE_DEBUG ------------------------------------------------------------------------------------------------

const DEBUG_SCRIPT = `
const Node = require('./dist/index.js')
const { RendezvousServer } = Node
const CODE = 'secret-pairing-code'
;(async () => {
  const server = new Node((s) => { s.resume(); s.on('end', () => s.end()) })
  const { port } = await server.bindAsync(0, '127.0.0.1')
  await server.listenAsync()
  await server.listenAsync() // already listening: no second line
  const client = new Node()
  const socket = await client.connectAsync(port, '127.0.0.1')
  socket.end(Buffer.alloc(100000))
  socket.resume()
  await new Promise((resolve) => socket.on('close', resolve))
  await client.punchAsync(1, port, '127.0.0.1')
  await new Node().bindAsync(port, '127.0.0.1').catch(() => {})
  const rv = new RendezvousServer({ port: 0, host: '127.0.0.1', http: false })
  const addr = await rv.listen()
  const a = new Node(); const b = new Node()
  await Promise.all([a.bindAsync(0, '127.0.0.1'), b.bindAsync(0, '127.0.0.1')])
  const opts = { server: '127.0.0.1:' + addr.port, code: CODE, followMoves: false }
  const [ra, rb] = await Promise.all([a.rendezvous(opts), b.rendezvous(opts)])
  ra.socket.destroy(); rb.socket.destroy()
  // node.stun() and node.natType(), answered by a plain STUN server (no OTHER-ADDRESS) and by silence
  const dgram = require('dgram')
  const { encodeStunMessage, encodeAddressAttribute, StunType, StunAttr } = require('./dist/lib/stun.js')
  const [plain, silent] = [dgram.createSocket('udp4'), dgram.createSocket('udp4')]
  await Promise.all([plain, silent].map((u) => new Promise((resolve) => u.bind(0, '127.0.0.1', resolve))))
  plain.on('message', (msg, r) => {
    const id = msg.subarray(8, 20)
    plain.send(encodeStunMessage(StunType.BINDING_SUCCESS, id, [encodeAddressAttribute(StunAttr.XOR_MAPPED_ADDRESS, r, id)]), r.port, r.address)
  })
  const s = new Node()
  const own = (await s.bindAsync(0, '127.0.0.1')).port
  const [at, nowhere] = [plain, silent].map((u) => '127.0.0.1:' + u.address().port)
  const mapped = await s.stun(at)
  const nat = await s.natType(at)
  const failed = await Promise.all([s.stun(nowhere, { timeoutMs: 200 }), s.natType(nowhere, { timeoutMs: 200 })].map((p) => p.catch((e) => e.code)))
  console.log('stun', mapped.address, mapped.port === own, nat.mapping, nat.natted, failed.join(' '))
  plain.close(); silent.close()
  await Promise.all([client.closeAsync(), server.closeAsync(), a.closeAsync(), b.closeAsync(), s.closeAsync(), rv.close()])
  console.log('done')
})().catch((e) => { console.error(e); process.exit(1) })
`

function runDebugScript (env: NodeJS.ProcessEnv): Promise<Run> {
  return finish(spawnScript(DEBUG_SCRIPT, env))
}

describe('NODE_DEBUG=utp-punch-rs', () => {
  it('prints lifecycle lines to stderr when set, and nothing when not', async () => {
    const { NODE_DEBUG: _, ...quiet } = process.env
    const [on, off] = await Promise.all([
      runDebugScript({ ...quiet, NODE_DEBUG: 'utp-punch-rs' }),
      runDebugScript(quiet)
    ])
    const stdout = 'stun 127.0.0.1 true unknown false ERR_STUN_TIMEOUT ERR_STUN_TIMEOUT\ndone\n'
    expect([on.code, on.stdout]).toEqual([0, stdout])
    expect([off.code, off.stdout, off.stderr]).toEqual([0, stdout, ''])
    const lines = on.stderr.trim().split('\n')
    for (const line of lines) expect(line).toMatch(/^UTP-PUNCH-RS \d+: node \d+ /)
    const text = lines.map(l => l.replace(/^UTP-PUNCH-RS \d+: /, '')).join('\n')
    expect(text).toMatch(/^node 1 bound 127\.0\.0\.1:\d+ \(IPv4\)$/m)
    expect(text.match(/^node 1 listening$/gm)).toEqual(['node 1 listening'])
    expect(text).toMatch(/^node 2 connection \d+ to 127\.0\.0\.1:\d+ opening$/m)
    expect(text).toMatch(/^node 1 connection \d+ from 127\.0\.0\.1:\d+ accepted$/m)
    expect(text).toMatch(/^node 2 connection \d+ to 127\.0\.0\.1:\d+ connected$/m)
    // (a round trip on loopback is well under a second: the microseconds are divided, not multiplied)
    expect(text).toMatch(/^node 2 connection \d+ with 127\.0\.0\.1:\d+ closed: finished; rtt \d{1,3}\.\d ms, sent 100000 bytes in \d+ packets, .* retransmits, \d+ timeouts, mtu 16000$/m)
    expect(text).toMatch(/^node 1 connection \d+ with 127\.0\.0\.1:\d+ closed: finished; .*received 100000 bytes/m)
    expect(text).toMatch(/^node \d+ rendezvous via 127\.0\.0\.1:\d+: starting$/m)
    expect(text).toMatch(/^node \d+ rendezvous via 127\.0\.0\.1:\d+: registered, the server sees us as 127\.0\.0\.1:\d+; waiting for the peer$/m)
    expect(text).toMatch(/^node \d+ rendezvous via 127\.0\.0\.1:\d+: paired as (connect|accept); confirming the code$/m)
    expect(text).toMatch(/^node \d+ rendezvous via 127\.0\.0\.1:\d+: (lan|direct) path to .* as (connect|accept) \(connection \d+, encrypted\); registered \+\d+ ms, paired \+\d+ ms, .*connected \+\d+ ms/m)
    expect(text).toMatch(/^node \d+ connection \d+ with .* closed: (finished|aborted|reset by peer) \((lan|direct) path\)/m)
    expect(text).toMatch(/^node 2 punch 127\.0\.0\.1:\d+: 1 probes$/m)
    expect(text).toMatch(/^node 2 punch 127\.0\.0\.1:\d+: both directions work$/m)
    expect(text).toMatch(/^node \d+ bind 127\.0\.0\.1:\d+ failed: EADDRINUSE$/m)
    expect(text).toMatch(/^node 1 closing: 0 connections to end$/m)
    expect(text).toMatch(/^node 1 closed$/m)
    expect(text).toMatch(/^node \d+ stun 127\.0\.0\.1:\d+$/m)
    expect(text).toMatch(/^node \d+ stun 127\.0\.0\.1:\d+: public address 127\.0\.0\.1:\d+, rtt \d+\.\d ms$/m)
    expect(text).toMatch(/^node \d+ stun 127\.0\.0\.1:\d+ failed: ERR_STUN_TIMEOUT: STUN Binding to 127\.0\.0\.1:\d+ timed out after 200 ms$/m)
    expect(text).toMatch(/^node \d+ NAT discovery via 127\.0\.0\.1:\d+$/m)
    expect(text).toMatch(/^node \d+ NAT discovery via 127\.0\.0\.1:(\d+): public address 127\.0\.0\.1:\d+ \(our own: no NAT\); mapping and filtering unknown: 127\.0\.0\.1:\1 gives no OTHER-ADDRESS \(no RFC 5780 support\)$/m)
    expect(text).toMatch(/^node \d+ NAT discovery via 127\.0\.0\.1:\d+ failed: ERR_STUN_TIMEOUT: STUN Binding to 127\.0\.0\.1:\d+ timed out after 200 ms$/m)
    expect(text).not.toContain('secret-pairing-code')
  })
})

// ---- progress ---------------------------------------------------------------------------------------------------

function sink (): { out: Writable, text: () => string } {
  let text = ''
  const out = new Writable({
    write (chunk: Buffer, _enc, cb) {
      text += chunk.toString()
      cb()
    }
  })
  return { out, text: () => text }
}

describe('CLI progress', () => {
  it('plain lines every interval with rate and ETA; a bar redrawn in place; JSON objects; nothing for a quick transfer', () => {
    let now = 0
    const lines = sink()
    const p = new Progress('sending', 'f.bin', 10e6, { mode: 'lines', out: lines.out, now: () => now })
    for (now = 0; now <= 12_000; now += 500) p.update(now * 500) // 0.5 MB/s
    now = 12_000
    p.update(6e6, true) // the final update is written because earlier ones were
    p.end()
    expect(lines.text()).toBe([
      'sending f.bin: 25% (2.50 of 10.00 MB), 0.50 MB/s, ETA 0:15',
      'sending f.bin: 50% (5.00 of 10.00 MB), 0.50 MB/s, ETA 0:10',
      'sending f.bin: 60% (6.00 of 10.00 MB), 0.50 MB/s, ETA 0:08',
      ''
    ].join('\n'))

    const quick = sink()
    const q = new Progress('receiving', 'f.bin', 1000, { mode: 'lines', out: quick.out, now: () => 10 })
    q.update(500)
    q.update(1000, true)
    q.end()
    expect(quick.text()).toBe('')

    now = 0
    const bar = sink()
    const b = new Progress('sending', 'f.bin', 4e6, { mode: 'bar', out: bar.out, now: () => now })
    for (now = 0; now <= 2000; now += 100) b.update(now * 1000) // 1 MB/s
    b.end()
    const frames = bar.text().split('\r').filter(Boolean)
    expect(frames.length).toBeGreaterThan(5)
    expect(frames[frames.length - 1]).toBe('sending f.bin [############............]  50% 2.00/4.00 MB 1.00 MB/s ETA 0:02\x1b[K\n')

    now = 0
    const json = sink()
    const j = new Progress('sending', 'f.bin', 4e6, { mode: 'json', out: json.out, now: () => now })
    for (now = 0; now <= 2000; now += 250) j.update(now * 1000)
    const objects = json.text().trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    expect(objects).toEqual([
      { event: 'progress', name: 'f.bin', bytes: 1e6, total: 4e6, seconds: 1, megabytesPerSecond: 1, etaSeconds: 3 },
      { event: 'progress', name: 'f.bin', bytes: 2e6, total: 4e6, seconds: 2, megabytesPerSecond: 1, etaSeconds: 2 }
    ])
    expect([clock(undefined), clock(59.2), clock(3725)]).toEqual(['-:--', '1:00', '1:02:05'])
  })
})

// ---- the CLI ----------------------------------------------------------------------------------------------------

function cli (args: string[], timeoutMs?: number): Promise<Run> {
  return finish(start(args), timeoutMs)
}

function jsonLines (text: string): Array<Record<string, unknown>> {
  return text.trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
}

describe('CLI', () => {
  it('--help for every command documents --json and the exit status; help COMMAND; --version', async () => {
    const runs = await Promise.all(['rendezvous', 'send', 'receive', 'nat-check'].map(async (command) => [command, await cli([command, '--help'])] as const))
    for (const [command, r] of runs) {
      expect(r.code, command).toBe(0)
      expect(r.stdout).toMatch(new RegExp(`^usage: utp-punch-rs ${command} `))
      expect(r.stdout).toContain('--json')
      expect(r.stdout).toMatch(/exit status:\n {2}0 {2}success\n {2}1 {2}failure.*\n {2}2 {2}usage error/)
    }
    const [top, helpSend, helpBogus, version, none] = await Promise.all([cli(['--help']), cli(['help', 'send']), cli(['help', 'bogus']), cli(['--version']), cli([])])
    expect(top.code).toBe(0)
    expect(top.stdout).toContain('exit status:')
    expect(top.stdout).toContain('NODE_DEBUG=utp-punch-rs')
    expect(helpSend.stdout).toBe(runs[1][1].stdout)
    expect(helpBogus.code).toBe(2)
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }
    expect(version).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '', status: [] })
    expect(none.code).toBe(2)
  })

  it('--json: send, receive and the rendezvous server print one JSON object per line', async () => {
    const server = start(['rendezvous', '--port', '0', '--host', '127.0.0.1', '--json'])
    const serverExit = finish(server)
    const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let buf = ''
      const onData = (d: Buffer): void => {
        buf += d.toString()
        const nl = buf.indexOf('\n')
        if (nl < 0) return
        server.stdout?.removeListener('data', onData)
        resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>)
      }
      server.stdout?.on('data', onData)
      server.once('exit', (code) => reject(new Error(`the server exited with ${String(code)}`)))
    })
    expect(first).toMatchObject({ event: 'listening', address: '127.0.0.1' })
    const rv = `127.0.0.1:${first.port as number}`
    try {
      const src = path.join(tmp, 'payload.bin')
      const data = randomBytes(1 << 20)
      fs.writeFileSync(src, data)
      const sha256 = createHash('sha256').update(data).digest('hex')
      const out = fs.mkdtempSync(path.join(tmp, 'out-'))
      const code = `dx-${randomBytes(4).toString('hex')}`
      const [send, receive] = await Promise.all([
        cli(['send', src, '--rendezvous', rv, '--code', code, '--json']),
        cli(['receive', '--rendezvous', rv, '--code', code, '--out', out, '--json', '--yes'])
      ])
      expect([send.code, send.stderr, receive.code, receive.stderr]).toEqual([0, '', 0, ''])
      const s = jsonLines(send.stdout)
      const r = jsonLines(receive.stdout)
      for (const [lines, event] of [[s, 'sent'], [r, 'received']] as const) {
        expect(lines[0]).toMatchObject({ event: 'waiting', server: rv })
        expect(lines[1]).toMatchObject({ event: 'connected', path: expect.stringMatching(/^(lan|direct)$/) as unknown })
        const last = lines[lines.length - 1]
        expect(last).toMatchObject({ ok: true, event, name: 'payload.bin', bytes: 1 << 20, sha256, path: lines[1].path, remote: lines[1].remote })
        expect(typeof last.seconds).toBe('number')
        expect(last.megabytesPerSecond).toBeGreaterThan(0)
        expect(last.stats).toMatchObject({ mtu: expect.any(Number) as unknown, retransmits: expect.any(Number) as unknown })
        expect((last.stats as { packetsSent: number }).packetsSent).toBeGreaterThan(0)
        for (const mid of lines.slice(2, -1)) expect(mid.event).toBe('progress')
      }
      expect(r[r.length - 1].file).toBe(path.join(out, 'payload.bin'))
      expect(fs.readFileSync(path.join(out, 'payload.bin')).equals(data)).toBe(true)

      // Failures: {"ok":false,...} on stdout, nothing on stderr, exit 1 (2 for usage errors)
      const [lonely, usage] = await Promise.all([
        cli(['receive', '--rendezvous', rv, '--code', 'nobody-else', '--out', out, '--timeout', '500ms', '--json', '--yes']),
        cli(['send', src, '--json', '--bogus'])
      ])
      expect([lonely.code, lonely.stderr]).toEqual([1, ''])
      expect(jsonLines(lonely.stdout).pop()).toEqual({ ok: false, code: 'ERR_RENDEZVOUS_TIMEOUT', message: 'no peer registered under this code within 500 ms', stage: 'rendezvous' })
      expect(usage).toEqual({ code: 2, stdout: '{"ok":false,"code":"ERR_USAGE","message":"unknown option --bogus"}\n', stderr: '', status: [] })
    } finally {
      server.kill('SIGTERM')
    }
    const srv = await serverExit
    expect([srv.code, srv.stderr]).toEqual([0, ''])
    const events = jsonLines(srv.stdout)
    expect(events.map(e => e.event)).toEqual(['listening', 'paired', 'closed'])
    expect(events[1]).toMatchObject({ connect: { address: '127.0.0.1' }, accept: { address: '127.0.0.1' } })
    expect(events[2]).toMatchObject({ stats: { pairings: 1 } })
  })
})
