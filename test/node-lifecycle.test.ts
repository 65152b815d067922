// A node's life as utp-punch programs see it: when bind(), listen(), connect() and punch() may be called and
// what they throw, when the node binds by itself, how close() ends its sockets and when its 'close' comes, and
// the dgram socket options of getUdpSocket() (set for real on the node's socket)
import { createHash, randomBytes } from 'crypto'
import * as dgram from 'dgram'
import * as dns from 'dns'
import * as net from 'net'
import { describe, expect, it, onTestFinished } from 'vitest'

import { finish } from './helpers/cli'
import { killAll, nsName, nsSh, removeNamespaces, runIn, sh } from './helpers/netns'
import { spawnScript } from './helpers/script'
import { cleanupNodes, closed, codeOf, drainHash, listeningNode, makeNode, once, sleep, type Node, type Socket, type UtpError } from './helpers/utp'

cleanupNodes()

function thrown (fn: () => unknown): UtpError {
  try {
    fn()
  } catch (e) {
    return e as UtpError
  }
  throw new Error('did not throw')
}

/** A port bound by a plain dgram socket for the test's duration (closed after it) */
async function portInUse (): Promise<{ port: number, release: () => void }> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>(resolve => s.bind(0, '127.0.0.1', resolve))
  return { port: s.address().port, release: () => s.close() }
}

/** A port that was free a moment ago */
async function freePort (): Promise<number> {
  const { port, release } = await portInUse()
  release()
  await sleep(10)
  return port
}

/** dgram's own error for `fn` run on a socket, to compare shapes with */
function dgramError (fn: (s: dgram.Socket) => void): UtpError {
  const s = dgram.createSocket('udp4')
  try {
    return thrown(() => fn(s))
  } finally {
    s.close()
  }
}

describe('close(): the node closes after its sockets', () => {
  it("a node never bound emits 'close' on the next tick, as a dgram socket does (before what setImmediate() queued)", async () => {
    const n = makeNode()
    const d = dgram.createSocket('udp4')
    const order: string[] = []
    n.on('close', () => order.push('node'))
    d.on('close', () => order.push('dgram'))
    n.close()
    d.close()
    setImmediate(() => order.push('immediate'))
    for (let i = 0; i < 100 && order.length < 3; i++) await sleep(10)
    expect(order).toEqual(['node', 'dgram', 'immediate'])
  })

  for (const who of ['client', 'server'] as const) {
    it(`${who} node: the socket's 'end' and 'close' come before the node's 'close' and the callback`, async () => {
      let accepted: (s: Socket) => void = () => {}
      const got = new Promise<Socket>(resolve => { accepted = resolve })
      const { node: server, port } = await listeningNode(undefined, s => accepted(s))
      const client = makeNode()
      await client.bindAsync(0, '127.0.0.1')
      const c = client.connect(port, '127.0.0.1')
      await once(c, 'connect')
      const s = await got
      c.resume()
      s.resume()
      const [node, local] = who === 'client' ? [client, c] : [server, s]
      const order: string[] = []
      for (const ev of ['end', 'finish', 'close']) local.on(ev, () => order.push(`socket ${ev}`))
      local.on('error', (e: UtpError) => order.push(`socket error ${e.code}`))
      node.on('close', () => order.push('node close'))
      await new Promise<void>(resolve => node.close(() => {
        order.push('callback')
        resolve()
      }))
      expect(order).toEqual(['socket finish', 'socket end', 'socket close', 'node close', 'callback'])
    })
  }

  for (const ioThread of [false, true]) {
    it(`ioThread ${String(ioThread)}: the port is free when 'close' is emitted, after the node's I/O ran on either thread`, async () => {
      // A dgram socket binds the port the instant the node says it closed: the node let go of the descriptor then,
      // not when libuv gets round to freeing its poll handle
      const { node, port } = await listeningNode({ ioThread }, (s) => s.pipe(s))
      const client = makeNode()
      const socket = client.connect(port, '127.0.0.1')
      socket.write(Buffer.alloc(64 * 1024, 1))
      let echoed = 0
      await new Promise<void>((resolve) => socket.on('data', (d: Buffer) => { echoed += d.length; if (echoed === 64 * 1024) resolve() }))
      // Quiet long enough for a node that has the JavaScript-thread loop to be handed back to it
      await sleep(50)
      await new Promise<void>((resolve) => node.close(() => resolve()))
      const d = dgram.createSocket('udp4')
      try {
        await new Promise<void>((resolve, reject) => {
          d.once('error', reject)
          d.bind(port, '127.0.0.1', () => resolve())
        })
      } finally {
        d.close()
      }
    })
  }

  it('a socket whose reader never reads does not hold the close, and keeps its data', async () => {
    let accepted: (s: Socket) => void = () => {}
    const got = new Promise<Socket>(resolve => { accepted = resolve })
    const { node: server, port } = await listeningNode(undefined, s => accepted(s))
    const client = makeNode()
    await client.bindAsync(0, '127.0.0.1')
    const c = client.connect(port, '127.0.0.1')
    c.resume()
    const s = await got
    c.end('unread')
    await sleep(100)
    await Promise.race([server.closeAsync(), sleep(3000).then(() => { throw new Error('close() waited for a socket nobody reads') })])
    const chunks: Buffer[] = []
    s.on('data', (d: Buffer) => chunks.push(d))
    await closed(s)
    expect(Buffer.concat(chunks).toString()).toBe('unread')
  })

  it('close() waits for every connection\'s queued writes, and a repeated close() changes nothing: every byte arrives', async () => {
    const sockets: Socket[] = []
    let accepted: () => void = () => {}
    const both = new Promise<void>(resolve => { accepted = resolve })
    const { port } = await listeningNode(undefined, s => {
      sockets.push(s)
      s.on('end', () => s.end())
      if (sockets.length === 2) accepted()
    })
    // A small send buffer: most of the data still waits in the streams when close() is called
    const n = makeNode({ bufferSize: 16 })
    const clients = [n.connect(port, '127.0.0.1'), n.connect(port, '127.0.0.1')]
    await Promise.all(clients.map(async c => await once(c, 'connect')))
    await both
    const received = sockets.map(s => drainHash(s))
    const errors: string[] = []
    // Different sizes: the smaller finishes first, and the larger must still be waited for
    const data = [randomBytes(100_000), randomBytes(8 << 20)]
    clients.forEach((c, i) => {
      c.resume()
      c.on('error', (e: UtpError) => errors.push(e.code))
      // In 64 KiB writes: the native side takes one write whole, the rest wait in the stream
      for (let at = 0; at < data[i].length; at += 65_536) c.write(data[i].subarray(at, at + 65_536))
    })
    // the case under test: the small write went at once, most of the large one still waits in its stream
    expect(clients.map(c => c.writableLength > 1 << 20)).toEqual([false, true])
    n.close()
    n.close()
    await n.closeAsync()
    let timer: NodeJS.Timeout | undefined
    const stalled = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`the peers read ${sockets.map(s => s.stats()?.bytesReceived).join(' and ')} bytes, not both ends`)), 20_000)
    })
    try {
      const got = await Promise.race([Promise.all(received), stalled])
      const byBytes = new Map(got.map(g => [g.bytes, g.sha256]))
      for (const d of data) expect(byBytes.get(d.length)).toBe(createHash('sha256').update(d).digest('hex'))
    } finally {
      clearTimeout(timer)
    }
    expect(errors).toEqual([])
  })

  it.each([{ ioThread: false }, { ioThread: true }])('close() ends once its connections have, not at the timeout: a node with none, and one whose peer reads everything (%o)', async (mode) => {
    // The timeout bounds a close() that waits on a peer; a node with nothing left to wait for closes at once
    const TIMEOUT = 10_000
    const timed = async (n: Node): Promise<number> => {
      const started = Date.now()
      await n.closeAsync()
      return Date.now() - started
    }
    const idle = makeNode({ ...mode, timeout: TIMEOUT })
    await idle.bindAsync(0, '127.0.0.1')
    expect(await timed(idle), 'ms to close a bound node with no connections').toBeLessThan(3000)

    const { port } = await listeningNode(mode, s => { s.resume(); s.on('end', () => s.end()) })
    const n = makeNode({ ...mode, timeout: TIMEOUT })
    const c = await n.connectAsync(port, '127.0.0.1')
    c.resume()
    c.write(Buffer.alloc(1 << 20))
    expect(await timed(n), 'ms to close a node whose peer reads and ends').toBeLessThan(3000)
    expect(c.destroyed).toBe(true)
  })

  it('a closing node accepts no new connection while it waits for an old one to flush', async () => {
    let connections = 0
    const { node: server, port } = await listeningNode({ bufferSize: 16, timeout: 3000 }, s => {
      connections++
      s.on('error', () => {})
      s.write(Buffer.alloc(4 << 20)) // to a reader that takes nothing: the close must wait for it
    })
    const stuck = makeNode({ bufferSize: 16 }).connect(port, '127.0.0.1')
    stuck.pause()
    stuck.on('error', () => {})
    await once(stuck, 'connect')
    await sleep(100)
    const closing = server.closeAsync()
    const late = makeNode().connect(port, '127.0.0.1')
    const err = await once(late, 'error').catch((e: UtpError) => e)
    expect((err as UtpError).code).toBe('ECONNREFUSED')
    expect(connections).toBe(1)
    await closing
  })

  it('a peer that takes nothing: close() resets the connection once `timeout` has passed, not twice that', async () => {
    // The server never reads and both buffers are small, so the client's write never completes (the native send
    // buffer never has room again): close() first waits for it, then for the FIN exchange, both within one timeout
    const TIMEOUT = 2000
    const serverErrors: string[] = []
    const { port } = await listeningNode({ bufferSize: 16 }, s => {
      s.pause()
      s.on('error', (e: UtpError) => serverErrors.push(e.code))
    })
    const n = makeNode({ timeout: TIMEOUT, bufferSize: 16 })
    const c = n.connect(port, '127.0.0.1')
    const errors: string[] = []
    c.on('error', (e: UtpError) => errors.push(e.code))
    c.write(Buffer.alloc(4 << 20))
    await once(c, 'connect')
    await sleep(200)
    expect(c.writableLength).toBeGreaterThan(0) // not completed: the case under test
    const started = Date.now()
    await n.closeAsync()
    const ms = Date.now() - started
    expect(errors).toEqual([])
    expect(c.destroyed).toBe(true)
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT - 100)
    expect(ms).toBeLessThan(TIMEOUT + 1000)
    await sleep(100)
    expect(serverErrors).toEqual(['ECONNRESET'])
  })

  it('a socket still waiting for its host lookup is destroyed without an error, before the node closes', async () => {
    const { port } = await listeningNode()
    const n = makeNode()
    const s = n.connect(port, 'localhost')
    const order: string[] = []
    s.on('error', (e: UtpError) => order.push(`socket error ${e.code}`))
    s.on('close', () => order.push('socket close'))
    n.on('close', () => order.push('node close'))
    n.close()
    await once(n, 'close')
    expect(order).toEqual(['socket close', 'node close'])
  })

  it('a connection attempt nobody answers ends without an error', async () => {
    // A bound, silent port: a closed one would refuse the attempt at once (ICMP port unreachable)
    const { port, release } = await portInUse()
    onTestFinished(release)
    const n = makeNode({ timeout: 500 })
    await n.bindAsync(0, '127.0.0.1')
    const s = n.connect(port, '127.0.0.1')
    s.resume()
    const errors: string[] = []
    s.on('error', (e: UtpError) => errors.push(e.code))
    await sleep(50)
    await n.closeAsync()
    expect(s.destroyed).toBe(true)
    expect(errors).toEqual([])
  })
})

describe('after close(), and while closing, connect() and punch() throw', () => {
  it('throws ERR_SOCKET_DGRAM_NOT_RUNNING at once; the async forms reject', async () => {
    const n = makeNode()
    await n.bindAsync(0, '127.0.0.1')
    const closing = n.closeAsync()
    for (const when of ['closing', 'closed']) {
      const c = thrown(() => n.connect(1234, '127.0.0.1'))
      expect([when, c.constructor, c.code]).toEqual([when, Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING'])
      const p = thrown(() => n.punch(1, 1234, '127.0.0.1', () => {}))
      expect([when, p.constructor, p.code]).toEqual([when, Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING'])
      await expect(n.connectAsync(1234, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
      await expect(n.punchAsync(1, 1234, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
      await closing
    }
    expect(n.clientConnections).toBe(0)
  })
})

describe('listen()', () => {
  it('twice throws ERR_SERVER_ALREADY_LISTEN, also while the first waits for a bind', async () => {
    const n = makeNode()
    let listening = 0
    n.on('listening', () => listening++)
    n.listen()
    const e = thrown(() => n.listen())
    // net.Server's own error for the same mistake
    const server = net.createServer()
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const netError = thrown(() => server.listen(0, '127.0.0.1'))
    server.close()
    expect([e.constructor, e.code, e.message]).toEqual([Error, 'ERR_SERVER_ALREADY_LISTEN', netError.message])
    n.bind(0, '127.0.0.1')
    await once(n, 'listening')
    expect(thrown(() => n.listen()).code).toBe('ERR_SERVER_ALREADY_LISTEN')
    // The promise form only makes sure: it resolves, and 'listening' is not emitted again
    await n.listenAsync()
    await sleep(20)
    expect(listening).toBe(1)
  })

  it('does not bind by itself: a bind(port) 100 ms later decides the port', async () => {
    const port = await freePort()
    const n = makeNode(s => s.end('hi'))
    const events: string[] = []
    n.on('bound', () => events.push('bound'))
    n.on('listening', () => events.push('listening'))
    n.listen()
    await sleep(100)
    expect(events).toEqual([])
    expect(thrown(() => n.address()).code).toBe('EBADF')
    n.bind(port, '127.0.0.1')
    await once(n, 'listening')
    expect(events).toEqual(['bound', 'listening'])
    expect(n.address().port).toBe(port)
    const c = makeNode().connect(port, '127.0.0.1')
    const data: Buffer[] = []
    c.on('data', (d: Buffer) => data.push(d))
    await closed(c)
    expect(Buffer.concat(data).toString()).toBe('hi')
  })

  it('listenAsync() on an unbound node binds a free port', async () => {
    const n = makeNode()
    const bound = once(n, 'bound')
    await n.listenAsync()
    await bound
    expect(n.stats().listening).toBe(true)
    expect(n.address().port).toBeGreaterThan(0)
  })

  it('listen() after listenAsync() throws ERR_SERVER_ALREADY_LISTEN; a listen() whose node closes before any bind never calls back', async () => {
    const n = makeNode()
    await n.listenAsync()
    expect(thrown(() => n.listen()).code).toBe('ERR_SERVER_ALREADY_LISTEN')
    const unbound = makeNode()
    const heard: string[] = []
    unbound.on('listening', () => heard.push('listening'))
    unbound.listen(() => heard.push('callback'))
    await sleep(50)
    await unbound.closeAsync()
    await sleep(20)
    expect(heard).toEqual([])
  })

  it("bindAsync() emits 'bound' with the address it resolves with, as bind() does", async () => {
    const n = makeNode()
    const heard: unknown[] = []
    n.on('bound', (a) => heard.push(a))
    const address = await n.bindAsync(0, '127.0.0.1')
    expect(heard).toEqual([address])
  })
})

describe('no automatic bind behind a failed bind()', () => {
  it("bind() to a port in use, then listen(): 'error', no random port; a later bind() that works makes it listen", async () => {
    const used = await portInUse()
    try {
      const n = makeNode()
      const events: string[] = []
      n.on('error', (e: UtpError) => events.push(`error ${e.code}`))
      n.on('bound', () => events.push('bound'))
      n.on('listening', () => events.push('listening'))
      n.bind(used.port, '127.0.0.1')
      n.listen()
      await sleep(200)
      expect(events).toEqual(['error EADDRINUSE'])
      expect(thrown(() => n.address()).code).toBe('EBADF')
      n.bind(0, '127.0.0.1')
      await once(n, 'listening')
      expect(events).toEqual(['error EADDRINUSE', 'bound', 'listening'])
    } finally {
      used.release()
    }
  })

  it('connect() and then a failing bind(port) in the same tick: the socket waits for a bind that works', async () => {
    const { port } = await listeningNode()
    const used = await portInUse()
    try {
      const n = makeNode()
      const errors: string[] = []
      n.on('error', (e: UtpError) => errors.push(`node ${e.code}`))
      const c = n.connect(port, '127.0.0.1')
      c.on('error', (e: UtpError) => errors.push(`socket ${e.code}`))
      n.bind(used.port, '127.0.0.1')
      await sleep(200)
      expect(errors).toEqual(['node EADDRINUSE'])
      expect(thrown(() => n.address()).code).toBe('EBADF')
      expect(c.connecting).toBe(true)
      const { port: mine } = await n.bindAsync(0, '127.0.0.1')
      await once(c, 'connect')
      expect(n.address().port).toBe(mine)
    } finally {
      used.release()
    }
  })

  it('without the native addon no bind can work: what waits for one fails with ERR_UTP_NATIVE_MISSING, before or after', async () => {
    // In a child whose require() of the addon's loader fails, as when no binary package is installed
    const run = await finish(spawnScript(`
      const Module = require('module')
      const load = Module._load
      Module._load = function (request, ...rest) {
        if (request.endsWith('binding.js')) throw Object.assign(new Error('not installed'), { code: 'MODULE_NOT_FOUND' })
        return load.call(this, request, ...rest)
      }
      const Node = require('./dist/index.js')
      const seen = []
      const note = (who) => (e) => seen.push(who + ' ' + e.code + (e.syscall === undefined ? '' : ' ' + e.syscall))
      const n = new Node()
      n.on('error', note('node'))
      n.connect(4000, '127.0.0.1').on('error', note('socket before bind'))
      n.bind(0, '127.0.0.1')
      n.connect(4000, '127.0.0.1').on('error', note('socket after bind'))
      const quiet = new Node()
      quiet.on('error', note('quiet node'))
      quiet.connectAsync(4000, '127.0.0.1').catch(note('connectAsync'))
      quiet.listenAsync().catch(note('listenAsync'))
      const puncher = new Node()
      puncher.on('error', note('punching node'))
      puncher.punch(1, 4000, '127.0.0.1').then((ok) => seen.push('punch ' + ok))
      setTimeout(() => console.log(JSON.stringify(seen.sort())), 300)
    `), 10_000)
    expect([run.code, run.stderr]).toEqual([0, ''])
    // No 'bind' syscall: it is not an OS error, and no other bind would do better; the async forms reject instead
    // of emitting 'error'
    expect(JSON.parse(run.stdout)).toEqual([
      'connectAsync ERR_UTP_NATIVE_MISSING', 'listenAsync ERR_UTP_NATIVE_MISSING', 'node ERR_UTP_NATIVE_MISSING',
      'node ERR_UTP_NATIVE_MISSING', 'punch false', 'punching node ERR_UTP_NATIVE_MISSING', 'socket after bind ERR_UTP_NATIVE_MISSING',
      'socket before bind ERR_UTP_NATIVE_MISSING'
    ])
  })

  it('after a bindAsync() refused its port, connect() waits for the program\'s next bind as well', async () => {
    const { port } = await listeningNode()
    const used = await portInUse()
    onTestFinished(used.release)
    const n = makeNode()
    await expect(n.bindAsync(used.port, '127.0.0.1')).rejects.toMatchObject({ code: 'EADDRINUSE' })
    const c = n.connect(port, '127.0.0.1')
    await sleep(200)
    expect(thrown(() => n.address()).code).toBe('EBADF')
    expect(c.connecting).toBe(true)
    await n.bindAsync(0, '127.0.0.1')
    await once(c, 'connect')
  })

  it('connect() on an unbound node still binds a free port when nothing else binds it', async () => {
    const { port } = await listeningNode()
    const n = makeNode()
    const c = await n.connectAsync(port, '127.0.0.1')
    expect(c.connecting).toBe(false)
    expect(n.address().port).toBeGreaterThan(0)
  })
})

describe('errors shaped as dgram shapes them', () => {
  it('a bind failure carries errno, syscall, address and port, as dgram\'s', async () => {
    const used = await portInUse()
    try {
      const n = makeNode()
      const emitted = once<UtpError>(n, 'error')
      n.bind(used.port, '127.0.0.1')
      const e = await emitted
      const d = await new Promise<UtpError>((resolve) => {
        const s = dgram.createSocket('udp4')
        s.once('error', (err) => {
          s.close()
          resolve(err as UtpError)
        })
        s.bind(used.port, '127.0.0.1')
      })
      const shape = (x: UtpError): unknown[] => [x.constructor, x.code, x.errno, x.syscall, x.address, x.port, x.message]
      expect(shape(e)).toEqual(shape(d))
      expect(e.port).toBe(used.port)
      const r = await makeNode().bindAsync(used.port, '127.0.0.1').catch((x: unknown) => x as UtpError)
      expect(shape(r as UtpError)).toEqual(shape(d))
    } finally {
      used.release()
    }
  })

  it('address() before bind() throws EBADF as an unbound dgram socket does; after close(), ERR_SOCKET_DGRAM_NOT_RUNNING', async () => {
    const n = makeNode()
    const e = thrown(() => n.address())
    const d = dgramError(s => s.address())
    expect([e.constructor, e.code, e.errno, e.syscall, e.message]).toEqual([d.constructor, d.code, d.errno, d.syscall, d.message])
    await n.bindAsync(0, '127.0.0.1')
    await n.closeAsync()
    expect(thrown(() => n.address()).code).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING')
  })
})

describe("getUdpSocket(): dgram's socket options on the node's socket", () => {
  async function boundFacade (host?: string): Promise<{ n: Node, u: ReturnType<Node['getUdpSocket']> }> {
    const n = makeNode()
    await n.bindAsync(0, host)
    return { n, u: n.getUdpSocket() }
  }

  it("has every dgram.Socket method but those that would take the node's socket away", () => {
    const u = makeNode().getUdpSocket() as unknown as Record<string, unknown>
    const missing = Object.getOwnPropertyNames(dgram.Socket.prototype)
      .filter(m => m !== 'constructor' && !m.startsWith('_') && typeof u[m] !== 'function')
    expect(missing.sort()).toEqual(['bind', 'connect', 'disconnect', 'remoteAddress', 'sendto'])
  })

  it('buffer sizes are the kernel\'s: what is set is read back (Linux doubles it)', async () => {
    const { u } = await boundFacade('127.0.0.1')
    expect(u.setRecvBufferSize(100_000)).toBeUndefined()
    const a = u.getRecvBufferSize()
    expect(a).toBeGreaterThanOrEqual(100_000)
    u.setRecvBufferSize(50_000)
    const b = u.getRecvBufferSize()
    expect(b).toBeGreaterThanOrEqual(50_000)
    expect(b).toBeLessThan(a)
    u.setSendBufferSize(60_000)
    expect(u.getSendBufferSize()).toBeGreaterThanOrEqual(60_000)
    // 0 reads without changing, as in dgram
    u.setSendBufferSize(0)
    expect(u.getSendBufferSize()).toBeGreaterThanOrEqual(60_000)
    for (const bad of [-1, 1.5, 'x', 2 ** 32]) {
      const e = thrown(() => u.setRecvBufferSize(bad as number))
      expect([e.constructor, e.code]).toEqual([TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE'])
    }
    const e = thrown(() => u.setRecvBufferSize(2 ** 31)) as UtpError & { info?: { code: string } }
    expect([e.code, e.info?.code, e.syscall]).toEqual(['ERR_SOCKET_BUFFER_SIZE', 'EINVAL', 'uv_recv_buffer_size'])
    // The largest int32 is taken (the kernel caps it at its own limit), as dgram takes it
    u.setRecvBufferSize(2 ** 31 - 1)
    u.setSendBufferSize(2 ** 31 - 1)
    expect(u.getRecvBufferSize()).toBeGreaterThanOrEqual(60_000)
  })

  it('multicast memberships are real: a second join is EADDRINUSE, leaving a group not joined EADDRNOTAVAIL', async () => {
    const { u } = await boundFacade('127.0.0.1')
    const d = dgram.createSocket('udp4')
    await new Promise<void>(resolve => d.bind(0, '127.0.0.1', resolve))
    try {
      for (const s of [u, d]) {
        const log: unknown[] = []
        const run = (fn: () => unknown): void => {
          try {
            log.push(['returns', fn()])
          } catch (e) {
            const x = e as UtpError
            log.push(['throws', x.constructor.name, x.code, x.errno, x.syscall, x.message])
          }
        }
        run(() => s.addMembership('239.7.7.7', '127.0.0.1'))
        run(() => s.addMembership('239.7.7.7', '127.0.0.1'))
        run(() => s.dropMembership('239.7.7.7', '127.0.0.1'))
        run(() => s.dropMembership('239.7.7.7', '127.0.0.1'))
        run(() => s.addMembership('10.0.0.1'))
        run(() => s.addMembership('not an address'))
        run(() => s.addMembership('239.7.7.8', 'bogus'))
        run(() => s.addMembership(''))
        run(() => s.addSourceSpecificMembership('127.0.0.1', '232.7.7.7', '127.0.0.1'))
        run(() => s.addSourceSpecificMembership('127.0.0.1', '232.7.7.7', '127.0.0.1'))
        run(() => s.dropSourceSpecificMembership('127.0.0.1', '232.7.7.7', '127.0.0.1'))
        run(() => s.addSourceSpecificMembership(5 as unknown as string, '232.7.7.7'))
        run(() => s.addSourceSpecificMembership('::1', '232.7.7.7'))
        run(() => s.setMulticastTTL(5))
        run(() => s.setMulticastTTL(255))
        run(() => s.setMulticastTTL(256))
        run(() => s.setMulticastTTL(-1))
        run(() => s.setMulticastTTL('5' as unknown as number))
        run(() => s.setMulticastLoopback(false))
        run(() => s.setMulticastInterface('127.0.0.1'))
        run(() => s.setMulticastInterface('bogus'))
        run(() => s.setMulticastInterface(5 as unknown as string))
        run(() => s.setBroadcast(true))
        run(() => s.getSendQueueSize())
        run(() => s.getSendQueueCount())
        ;(s as unknown as { log: unknown[] }).log = log
      }
      const ours = (u as unknown as { log: unknown[] }).log
      const theirs = (d as unknown as { log: unknown[] }).log
      // Same answers as dgram's own socket, call for call (the class names differ: TypeError is TypeError)
      expect(ours).toEqual(theirs)
      expect((ours[1] as unknown[]).slice(0, 3)).toEqual(['throws', 'Error', 'EADDRINUSE'])
    } finally {
      d.close()
    }
  })

  it('on a dual-stack node (bound to ::), IPv6 options and groups work too', async () => {
    const { u } = await boundFacade()
    if (u.address().family !== 'IPv6') return // no IPv6 here: the node fell back to 0.0.0.0
    expect(u.setMulticastTTL(7)).toBe(7)
    expect(u.setMulticastLoopback(true)).toBe(true)
    u.setMulticastInterface('::%lo')
    u.addMembership('ff02::1234', '::%lo')
    expect(thrown(() => u.addMembership('ff02::1234', '::%lo')).code).toBe('EADDRINUSE')
    u.dropMembership('ff02::1234', '::%lo')
    u.addMembership('239.7.7.9')
    u.dropMembership('239.7.7.9')
  })

  it('IPv6 memberships name their interface by zone, name or number, and source-specific ones are real, as dgram\'s (network namespace)', async () => {
    // Two multicast interfaces besides lo, so that an interface taken from the wrong place (none, lo, the other one)
    // joins elsewhere and a second join answers differently. Root only, like the other namespace tests
    removeNamespaces('mc6')
    const ns = nsName('mc6')
    sh('ip', 'netns', 'add', ns)
    try {
      nsSh(ns, 'ip', 'link', 'set', 'lo', 'up')
      // The two ends of one veth pair (this kernel may have no dummy interfaces)
      nsSh(ns, 'ip', 'link', 'add', 'mc0', 'type', 'veth', 'peer', 'name', 'mc1')
      for (const [dev, addr] of [['mc0', 'fd86::1'], ['mc1', 'fd86:1::1']]) {
        nsSh(ns, 'ip', 'link', 'set', dev, 'multicast', 'on', 'up')
        nsSh(ns, 'ip', '-6', 'addr', 'add', `${addr}/64`, 'dev', dev, 'nodad')
      }
      const run = runIn<{ ours: unknown[], theirs: unknown[], numbered: unknown[] }>(ns, MEMBERSHIPS_V6)
      const { ours, theirs, numbered } = await run.line
      expect(ours).toEqual(theirs)
      // What the calls met, so that the comparison means something. Groups: joins on the two interfaces each
      // succeed, the first again (or with none named) is EADDRINUSE, a second leave EADDRNOTAVAIL. Source-specific
      // groups as Linux answers them: the same source joined again is EADDRNOTAVAIL, a leave of a group no longer
      // joined EINVAL, and so is a group that is not one
      const codes = (log: unknown[]): unknown[] => log.map((r) => (r as unknown[])[0] === 'returns' ? 'ok' : (r as unknown[])[1])
      expect(codes(ours)).toEqual([
        'ok', 'ok', 'EADDRINUSE', 'EADDRINUSE', 'ok', 'EADDRNOTAVAIL', 'ok',
        'ok', 'ok', 'EADDRNOTAVAIL', 'ok', 'EINVAL', 'EINVAL'
      ])
      // A zone may also be the interface's number (libuv on Unix takes only names, and makes a number "any"): the
      // same interface's number finds the membership, the other's does not
      expect(codes(numbered)).toEqual(['ok', 'EADDRINUSE', 'ok', 'ok', 'EADDRNOTAVAIL'])
    } finally {
      removeNamespaces('mc6')
    }
  })

  it('setBroadcast is real: a subnet broadcast reaches the next namespace only while it is on (network namespaces)', async () => {
    removeNamespaces('bc-a', 'bc-b')
    const [a, b] = [nsName('bc-a'), nsName('bc-b')]
    try {
      for (const ns of [a, b]) sh('ip', 'netns', 'add', ns)
      sh('ip', 'link', 'add', 'bc-a0', 'netns', a, 'type', 'veth', 'peer', 'name', 'bc-b0', 'netns', b)
      for (const [ns, dev, addr] of [[a, 'bc-a0', '10.87.0.1/24'], [b, 'bc-b0', '10.87.0.2/24']]) {
        nsSh(ns, 'ip', 'addr', 'add', addr, 'dev', dev)
        nsSh(ns, 'ip', 'link', 'set', dev, 'up')
      }
      // Sent with it on, and again after it was turned off: only the first came
      expect(await heard(b, BROADCAST_LISTENER, a, BROADCAST_SENDER)).toEqual([{ got: 'on' }])
    } finally {
      removeNamespaces('bc-a', 'bc-b')
    }
  })

  it('setMulticastLoopback is real: a group member on the same host hears our multicast only while it is on (network namespace)', async () => {
    removeNamespaces('ml')
    const ns = nsName('ml')
    try {
      sh('ip', 'netns', 'add', ns)
      nsSh(ns, 'ip', 'link', 'add', 'ml0', 'type', 'veth', 'peer', 'name', 'ml1')
      nsSh(ns, 'ip', 'addr', 'add', '10.88.0.1/24', 'dev', 'ml0')
      for (const dev of ['ml0', 'ml1']) nsSh(ns, 'ip', 'link', 'set', dev, 'up')
      // Loopback off first (Linux's default is on), then on: only the second came back to this host
      expect(await heard(ns, MULTICAST_MEMBER, ns, MULTICAST_SENDER)).toEqual([{ got: 'on' }])
    } finally {
      removeNamespaces('ml')
    }
  })

  it('before bind: EBADF as on an unbound dgram socket; after close: ERR_SOCKET_DGRAM_NOT_RUNNING', async () => {
    const n = makeNode()
    const u = n.getUdpSocket()
    const ours = thrown(() => u.setBroadcast(true))
    const theirs = dgramError(s => s.setBroadcast(true))
    expect([ours.code, ours.errno, ours.syscall, ours.message]).toEqual([theirs.code, theirs.errno, theirs.syscall, theirs.message])
    expect(thrown(() => u.setMulticastTTL(1)).message).toBe('setMulticastTTL EBADF')
    const buf = thrown(() => u.getRecvBufferSize()) as UtpError & { info?: unknown }
    const dbuf = dgramError(s => s.getRecvBufferSize()) as UtpError & { info?: unknown }
    expect([buf.code, buf.errno, buf.syscall, buf.message, buf.info]).toEqual([dbuf.code, dbuf.errno, dbuf.syscall, dbuf.message, dbuf.info])
    expect(u.getSendQueueSize()).toBe(0)
    await n.bindAsync(0, '127.0.0.1')
    u.setBroadcast(true)
    await n.closeAsync()
    for (const fn of [() => u.setBroadcast(false), () => u.addMembership('239.7.7.7'), () => u.getRecvBufferSize(), () => u.setMulticastTTL(1)]) {
      expect(thrown(fn).code).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING')
    }
  })
})

describe("bind(), connect() and punch(): utp-punch's argument forms", () => {
  it('bind(port, host, cb) (port null: any), bind(port, cb), bind({ port, address }, cb), bind(cb): the callback gets the address, this is the node', async () => {
    const bound = async (call: (n: Node, cb: (this: Node, a: { address: string, port: number }) => void) => void): Promise<[boolean, string, number]> => {
      const n = makeNode()
      return await new Promise(resolve => call(n, function (a) { resolve([this === n, a.address, a.port]) }))
    }
    const free = await freePort()
    const [full, nullPort, noHost, object, onlyCb, nullHost] = await Promise.all([
      bound((n, cb) => n.bind(0, '127.0.0.1', cb)),
      bound((n, cb) => n.bind(null, '127.0.0.1', cb)),
      bound((n, cb) => n.bind(free, cb)),
      bound((n, cb) => n.bind({ port: 0, address: '127.0.0.1' }, cb)),
      bound((n, cb) => n.bind(cb)),
      bound((n, cb) => n.bind(0, null as unknown as string, cb))
    ])
    for (const r of [full, nullPort]) expect(r.slice(0, 2)).toEqual([true, '127.0.0.1'])
    expect(noHost).toEqual([true, '::', free]) // dual-stack by default
    expect(object.slice(0, 2)).toEqual([true, '127.0.0.1'])
    for (const r of [onlyCb, nullHost]) {
      expect(r.slice(0, 2)).toEqual([true, '::']) // host null is the default as well
      expect(r[2]).toBeGreaterThan(0)
    }
  })

  it('connect(port, onconnect) and punch(attempts, port, callback): the callback in the host\'s place, host 127.0.0.1', async () => {
    const { port } = await listeningNode()
    const n = makeNode()
    const connected = await new Promise<Socket>(resolve => n.connect(port, resolve))
    expect([connected.remoteAddress, connected.remotePort]).toEqual(['127.0.0.1', port])
    const { port: other } = await listeningNode()
    const success = await new Promise<boolean>(resolve => { void n.punch(1, other, resolve) })
    expect(success).toBe(true) // an idle node answers probes (test/udp.test.ts)
    // host null is the default too; another host is probed where it is (127.0.0.2 is loopback as well)
    const viaNull = await n.connectAsync(port, null)
    expect([viaNull.remoteAddress, viaNull.remotePort]).toEqual(['127.0.0.1', port])
    viaNull.destroy()
    expect(await n.punch(1, other, null)).toBe(true)
    const elsewhere = makeNode()
    const { port: elsewherePort } = await elsewhere.bindAsync(0, '127.0.0.2')
    expect(await n.punch(1, elsewherePort, '127.0.0.2')).toBe(true)
  })

  it('a bind() to a host that does not resolve fails with the lookup\'s ENOTFOUND', async () => {
    const n = makeNode()
    await expect(n.bindAsync(0, 'no-such-host.invalid')).rejects.toMatchObject({ code: 'ENOTFOUND', syscall: 'getaddrinfo' })
  })

  it('a bind() whose host lookup fails after close(): the node stays closed, and nothing is emitted', async () => {
    const n = makeNode()
    const events: string[] = []
    n.on('error', (e: UtpError) => events.push(`error ${e.code}`))
    n.on('bound', () => events.push('bound'))
    n.bind(0, 'no-such-host.invalid')
    await n.closeAsync()
    // The node's lookup was asked first; when this one has answered, so has it (and its next ticks have run)
    await dns.promises.lookup('no-such-host.invalid').catch(() => {})
    await sleep(50)
    expect(events).toEqual([])
    expect(codeOf(() => n.bind(0))).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING')
  })

  it('a bind() to a host name that close() overtook binds nothing: its port stays free', async () => {
    const port = await freePort()
    const n = makeNode()
    n.bind(port, 'localhost')
    await n.closeAsync()
    // The node's lookup was asked first (both run on libuv's threads: a margin after this one answers)
    const { address } = await dns.promises.lookup('localhost')
    await sleep(50)
    const other = makeNode()
    // Where the node would have bound had close() not come first (::1 where the hosts file says so)
    await expect(other.bindAsync(port, address)).resolves.toMatchObject({ port })
  })

  it('connect() while a bind() waits for its host lookup: the socket connects once it is bound', async () => {
    const { port } = await listeningNode()
    const n = makeNode()
    n.bind(0, 'localhost')
    const c = n.connect(port, '127.0.0.1')
    await once(c, 'connect')
    expect(c.remotePort).toBe(port)
  })

  it('connectAsync() leaves no listener of its own on the socket it resolves with (a later error is the program\'s to handle)', async () => {
    const { port } = await listeningNode()
    const n = makeNode()
    const plain = n.connect(port, '127.0.0.1')
    await once(plain, 'connect')
    const viaPromise = await n.connectAsync(port, '127.0.0.1')
    for (const event of ['connect', 'error', 'close']) expect(viaPromise.listenerCount(event), event).toBe(plain.listenerCount(event))
  })

  it('connectAsync() rejects with ERR_SOCKET_CLOSED when the node closes before the connection is made', async () => {
    const { port, release } = await portInUse()
    onTestFinished(release)
    const n = makeNode()
    await n.bindAsync(0, '127.0.0.1')
    const attempt = n.connectAsync(port, '127.0.0.1')
    await sleep(50)
    n.close()
    await expect(attempt).rejects.toMatchObject({ code: 'ERR_SOCKET_CLOSED', message: 'Socket closed before it connected' })
  })

  it('a punch that waits for a bind that never works resolves false when the node closes', async () => {
    const used = await portInUse()
    onTestFinished(used.release)
    const n = makeNode()
    n.on('error', () => {})
    n.bind(used.port, '127.0.0.1')
    let called: boolean | undefined
    const p = n.punch(20, 4000, '127.0.0.1', (ok) => { called = ok })
    await sleep(50)
    n.close()
    // at once, not after its 20 probes (10 s)
    expect(await Promise.race([p, sleep(2000).then(() => 'still punching')])).toBe(false)
    expect(called).toBe(false)
  })

  it("a host that does not resolve: the socket's 'error' is the lookup's ENOTFOUND, connectAsync() rejects with it", async () => {
    const n = makeNode()
    await n.bindAsync(0, '127.0.0.1')
    const s = n.connect(4000, 'no-such-host.invalid')
    const err = await once(s, 'error').catch((e: UtpError) => e)
    expect([(err as UtpError).code, (err as UtpError).syscall]).toEqual(['ENOTFOUND', 'getaddrinfo'])
    await expect(n.connectAsync(4000, 'no-such-host.invalid')).rejects.toMatchObject({ code: 'ENOTFOUND' })
    expect(n.stats().connectionsOpened).toBe(0)
  })

  it('a socket destroyed while its host is looked up never opens a connection', async () => {
    let incoming = 0
    const { port } = await listeningNode(undefined, () => { incoming++ })
    const n = makeNode()
    await n.bindAsync(0, '127.0.0.1')
    const c = n.connect(port, 'localhost')
    c.destroy()
    await closed(c)
    await sleep(200)
    expect([incoming, n.stats().connectionsOpened, n.clientConnections]).toEqual([0, 0, 0])
  })
})

describe('a listener that throws', () => {
  it('surfaces once as an uncaught exception while the node keeps dispatching: both connections deliver all their data', async () => {
    // In a child: the exception must reach process 'uncaughtException', as any EventEmitter listener's would.
    // 'connection' is emitted from inside the node's dispatch (unlike 'data', which streams defer)
    const run = await finish(spawnScript(`
      const Node = require('./dist/index.js')
      const said = []
      process.on('uncaughtException', (e) => said.push('uncaught ' + e.message))
      let accepted = 0
      let ended = 0
      const server = new Node((s) => {
        let got = 0
        s.on('data', (d) => { got += d.length })
        s.on('end', () => {
          said.push('server read ' + got)
          s.end()
          if (++ended === 2) {
            server.close(() => console.log(JSON.stringify(said)))
            for (const n of clients) n.close()
          }
        })
        if (++accepted === 1) throw new Error('a listener failed')
      })
      const clients = [new Node(), new Node()]
      server.bind(0, '127.0.0.1', () => {
        server.listen()
        for (const n of clients) {
          const c = n.connect(server.address().port, '127.0.0.1')
          c.resume()
          c.end(Buffer.alloc(100_000, 7))
        }
      })
    `), 20_000)
    expect([run.code, run.stderr]).toEqual([0, ''])
    expect(JSON.parse(run.stdout)).toEqual(['uncaught a listener failed', 'server read 100000', 'server read 100000'])
  })
})

// In a namespace with the multicast interfaces mc0 and mc1: the same IPv6 membership calls on the facade and on a
// dgram socket, each call's answer logged (what it returns, or the error's code, errno, syscall and message); then,
// on the facade only, zones given as interface numbers
const MEMBERSHIPS_V6 = `
setTimeout(() => process.exit(3), 20000).unref()
const dgram = require('dgram')
const fs = require('fs')
const Node = require(process.cwd())
;(async () => {
  const node = new Node()
  await node.bindAsync(0, '::1')
  const d = dgram.createSocket('udp6')
  await new Promise((resolve) => d.bind(0, '::1', resolve))
  const logs = []
  const logged = (s, calls) => {
    const log = []
    for (const fn of calls) {
      try {
        log.push(['returns', fn(s)])
      } catch (e) {
        log.push(['throws', e.code, e.errno, e.syscall, e.message])
      }
    }
    return log
  }
  const named = [
    (s) => s.addMembership('ff02::86', '::%mc0'),
    (s) => s.addMembership('ff02::86', '::%mc1'),
    (s) => s.addMembership('ff02::86', '::%mc0'),
    (s) => s.addMembership('ff02::86'),
    (s) => s.dropMembership('ff02::86', '::%mc0'),
    (s) => s.dropMembership('ff02::86', '::%mc0'),
    (s) => s.dropMembership('ff02::86', '::%mc1'),
    (s) => s.addSourceSpecificMembership('fd86::9', 'ff3e::86', '::%mc0'),
    (s) => s.addSourceSpecificMembership('fd86::9', 'ff3e::86', '::%mc1'),
    (s) => s.addSourceSpecificMembership('fd86::9', 'ff3e::86', '::%mc0'),
    (s) => s.dropSourceSpecificMembership('fd86::9', 'ff3e::86', '::%mc0'),
    (s) => s.dropSourceSpecificMembership('fd86::9', 'ff3e::86', '::%mc0'),
    (s) => s.addSourceSpecificMembership('fd86::9', 'fd86::8', '::%mc0')
  ]
  const u = node.getUdpSocket()
  const ours = logged(u, named)
  const theirs = logged(d, named)
  const [mc0, mc1] = ['mc0', 'mc1'].map((dev) => '::%' + Number(fs.readFileSync('/sys/class/net/' + dev + '/ifindex', 'utf8')))
  const numbered = logged(u, [
    (s) => s.addMembership('ff02::87', '::%mc0'),
    (s) => s.addMembership('ff02::87', mc0),
    (s) => s.addMembership('ff02::87', mc1),
    (s) => s.dropMembership('ff02::87', mc0),
    (s) => s.dropMembership('ff02::87', '::%mc0')
  ])
  console.log(JSON.stringify({ ours, theirs, numbered }))
  d.close()
  node.close()
})()
`

// Prints its port, then each datagram that reaches it (bound to every address: broadcasts too)
const BROADCAST_LISTENER = `
setTimeout(() => process.exit(3), 20000).unref()
const s = require('dgram').createSocket('udp4')
s.on('message', (m) => console.log(JSON.stringify({ got: String(m) })))
s.bind(0, '0.0.0.0', () => console.log(JSON.stringify({ port: s.address().port })))
`

// Sends "on" to the subnet's broadcast address with setBroadcast(true), then "off" with it false
const BROADCAST_SENDER = `
setTimeout(() => process.exit(3), 20000).unref()
const Node = require(process.cwd())
const { port } = JSON.parse(process.argv[1])
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
;(async () => {
  const node = new Node()
  await node.bindAsync(0, '10.87.0.1')
  const u = node.getUdpSocket()
  u.setBroadcast(true)
  u.send('on', port, '10.87.0.255')
  await sleep(200)
  u.setBroadcast(false)
  u.send('off', port, '10.87.0.255', () => {})
  await sleep(200)
  console.log(JSON.stringify({ done: true }))
  node.close()
})()
`

// A member of 239.8.8.8 on 10.88.0.1: prints its port, then each datagram that reaches it
const MULTICAST_MEMBER = `
setTimeout(() => process.exit(3), 20000).unref()
const s = require('dgram').createSocket({ type: 'udp4', reuseAddr: true })
s.on('message', (m) => console.log(JSON.stringify({ got: String(m) })))
s.bind(0, '0.0.0.0', () => {
  s.addMembership('239.8.8.8', '10.88.0.1')
  console.log(JSON.stringify({ port: s.address().port }))
})
`

// Sends "off" to the group with multicast loopback off, then "on" with it on
const MULTICAST_SENDER = `
setTimeout(() => process.exit(3), 20000).unref()
const Node = require(process.cwd())
const { port } = JSON.parse(process.argv[1])
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
;(async () => {
  const node = new Node()
  await node.bindAsync(0, '10.88.0.1')
  const u = node.getUdpSocket()
  u.setMulticastInterface('10.88.0.1')
  u.setMulticastLoopback(false)
  u.send('off', port, '239.8.8.8')
  await sleep(200)
  u.setMulticastLoopback(true)
  u.send('on', port, '239.8.8.8')
  await sleep(200)
  console.log(JSON.stringify({ done: true }))
  node.close()
})()
`

/**
 * Starts `listener` in namespace `listenerNs` (it prints its port, then a line for each datagram it hears), then
 * `sender` in `senderNs` with that port (it prints { done: true }); what the listener heard by then
 */
async function heard (listenerNs: string, listener: string, senderNs: string, sender: string): Promise<unknown[]> {
  const children: Array<ReturnType<typeof runIn>> = []
  try {
    const l = runIn<{ port: number }>(listenerNs, listener)
    children.push(l)
    const { port } = await l.line
    const s = runIn<{ done: boolean }>(senderNs, sender, { port })
    children.push(s)
    expect(await s.line).toEqual({ done: true })
    await sleep(200)
    return l.lines.slice(1)
  } finally {
    killAll(...children.map((c) => c.child))
  }
}
