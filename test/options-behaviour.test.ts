// The node options do what docs/api.md says they do, seen from the outside (issue 14: with `ioThread`,
// `keepAlive`, `maxConnections` or `bufferSize` ignored and their defaults used instead, every test passed).
// Each test tells the option's value from the default by behaviour a user can observe: refused connections,
// packets counted on an idle connection, bytes a non-reading receiver takes, and answers while JavaScript blocks.
import { spawn } from 'child_process'
import * as path from 'path'

import { describe, expect, it } from 'vitest'

import { cleanupNodes, listeningNode, makeNode, once, root, sleep, type Node, type Socket, type UtpError } from './helpers/utp'

/** Connects a fresh node to port, writes one byte and waits until the server side read it (the server counts it open) */
async function openConnection (port: number, serverRead: Promise<unknown>): Promise<Socket> {
  const socket = makeNode().connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('x')
  await serverRead
  return socket
}

describe('maxConnections', () => {
  cleanupNodes()

  it('maxConnections: 2 refuses the third incoming connection with ECONNREFUSED and counts it in stats().refused', async () => {
    const reads: Array<() => void> = []
    const { node, port } = await listeningNode({ maxConnections: 2 }, (s) => {
      s.once('data', () => reads.shift()?.())
    })
    for (let i = 0; i < 2; i++) {
      await openConnection(port, new Promise<void>((resolve) => { reads.push(resolve) }))
    }
    const third = makeNode().connect(port, '127.0.0.1')
    const outcome = await new Promise<string>((resolve) => {
      third.once('connect', () => resolve('connect'))
      third.once('error', (err: UtpError) => resolve(String(err.code)))
      setTimeout(() => resolve('nothing within 3 s'), 3000)
    })
    // Before (maxConnections ignored: 32768 in force): 'connect'
    expect(outcome).toBe('ECONNREFUSED')
    expect(node.stats()).toMatchObject({ serverConnections: 2, maxConnections: 2, refused: 1 })
  })

  it('maxConnections: 1 fails a second outgoing connect() with ERR_UTP_TOO_MANY_CONNECTIONS', async () => {
    // timeout 1000: closing the node after the test does not wait 5 s for the destroyed connection
    const { port } = await listeningNode({ timeout: 1000 })
    const client = makeNode({ maxConnections: 1, timeout: 1000 })
    const first = client.connect(port, '127.0.0.1')
    await once(first, 'connect')
    const second = client.connect(port, '127.0.0.1')
    const outcome = await new Promise<string>((resolve) => {
      second.once('connect', () => resolve('connect'))
      second.once('error', (err: UtpError) => resolve(String(err.code)))
      setTimeout(() => resolve('nothing within 3 s'), 3000)
    })
    first.destroy()
    // Before (maxConnections ignored): 'connect'
    expect(outcome).toBe('ERR_UTP_TOO_MANY_CONNECTIONS')
  })
})

describe('keepAlive', () => {
  cleanupNodes()

  /** Packets each side sends on a connection left idle for `idleMs` after one exchange */
  async function idlePackets (client: number, server: number, idleMs: number): Promise<{ client: number, server: number }> {
    let accepted: Socket | undefined
    const { node } = await listeningNode({ keepAlive: server }, (s) => { accepted = s })
    const socket = makeNode({ keepAlive: client }).connect((node.address() as { port: number }).port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write('x')
    await sleep(300) // the exchange and its ACKs are over
    const before = { client: socket.stats()?.packetsSent ?? NaN, server: accepted?.stats()?.packetsSent ?? NaN }
    await sleep(idleMs)
    return { client: (socket.stats()?.packetsSent ?? NaN) - before.client, server: (accepted?.stats()?.packetsSent ?? NaN) - before.server }
  }

  it('keepAlive: 0 on both sides: not one packet in 2.5 s (2.5 default keepalive periods) of idleness', async () => {
    // Before (keepAlive ignored: 1000 ms in force): { client: 4, server: 4 } (2 keepalives, 2 answers each)
    expect(await idlePackets(0, 0, 2500)).toEqual({ client: 0, server: 0 })
  })

  it('keepAlive: 200 on one side: a keepalive every 200 ms (each answered), not every 1000 ms', async () => {
    const sent = await idlePackets(200, 0, 2000)
    // Before (keepAlive ignored): 4 each way in 2 s (2 keepalives and 2 answers)
    expect(sent.client).toBeGreaterThanOrEqual(7)
    expect(sent.client).toBeLessThanOrEqual(11)
    expect(sent.server).toBe(sent.client) // the peer answers each; it sends none of its own (keepAlive: 0)
  })
})

describe('bufferSize', () => {
  cleanupNodes()

  /**
   * Bytes a receiver with `bufferSize` holds for a socket it never reads: what arrived minus what JavaScript's
   * stream buffered (the native receive buffer and the one batch on its way to JavaScript)
   */
  async function heldUnread (bufferSize: number): Promise<number> {
    let accepted: Socket | undefined
    // mtu 1000 everywhere (loopback too): buffers are bufferSize × 1000 bytes (toward loopback at most 64 packets)
    const { port } = await listeningNode({ bufferSize, mtu: 1000 }, (s) => { accepted = s })
    const socket = makeNode({ mtu: 1000 }).connect(port, '127.0.0.1')
    await once(socket, 'connect')
    const chunk = Buffer.alloc(64 * 1024)
    const until = Date.now() + 1500
    while (Date.now() < until) {
      while (socket.write(chunk)) { /* fill the send buffer */ }
      await sleep(20)
    }
    const s = accepted as Socket
    const held = (s.stats()?.bytesReceived ?? NaN) - s.readableLength
    socket.destroy()
    s.destroy()
    return held
  }

  it('a non-reading receiver takes about bufferSize × mtu bytes: 8 and 48 packets differ by 40 packets', async () => {
    const small = await heldUnread(8)
    const large = await heldUnread(48)
    // Before (bufferSize ignored: 1024, capped to 64 toward loopback): both about 78000
    const batch = 16 * 1024 // the batch already handed to JavaScript when it stopped reading
    expect({ small: small <= 8 * 1000 + batch, large: large <= 48 * 1000 + batch }, `held ${small} and ${large} bytes`).toEqual({ small: true, large: true })
    expect(Math.abs((large - small) - 40 * 1000)).toBeLessThanOrEqual(3000)
  })
})

describe('coalesceWrites', () => {
  cleanupNodes()

  /** 200 writes of 10 bytes in one tick: the 'data' events the receiver got, and the packets the sender sent */
  async function tinyWrites (coalesceWrites: boolean): Promise<{ chunks: number[], packets: number }> {
    const chunks: number[] = []
    let ended!: () => void
    const done = new Promise<void>((resolve) => { ended = resolve })
    const { port } = await listeningNode({}, (s) => {
      s.on('data', (d: Buffer) => chunks.push(d.length))
      s.on('end', () => ended())
    })
    const socket = makeNode({ coalesceWrites }).connect(port, '127.0.0.1')
    await once(socket, 'connect')
    const before = socket.stats()?.packetsSent ?? NaN
    for (let i = 0; i < 200; i++) socket.write(Buffer.alloc(10, i))
    socket.end()
    await done
    return { chunks, packets: (socket.stats()?.packetsSent ?? NaN) - before }
  }

  it('by default each short write is a packet and a \'data\' event of its own; coalesceWrites: true packs them together', async () => {
    const apart = await tinyWrites(false)
    expect(apart.chunks).toEqual(new Array(200).fill(10))
    expect(apart.packets).toBeGreaterThanOrEqual(200)
    const packed = await tinyWrites(true)
    console.log(`MEASURE 200 writes of 10 bytes: apart ${apart.chunks.length} data events in ${apart.packets} packets; coalesced ${packed.chunks.length} in ${packed.packets}`)
    expect(packed.chunks.reduce((a, b) => a + b, 0)).toBe(2000)
    expect(packed.chunks.length).toBeLessThan(20)
    expect(packed.packets).toBeLessThan(20)
  })
})

describe('ioThread', () => {
  cleanupNodes()

  /**
   * Blocks this process's JavaScript for 1.5 s while a peer in a child process connects to `node` (300 ms into
   * the block); returns how long the child's connect took, ms
   */
  async function connectWhileBlocked (node: Node): Promise<number> {
    const port = (node.address() as { port: number }).port
    const script = `
      const { Node } = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))})
      const n = new Node()
      n.bind(0, '127.0.0.1', () => {
        process.stdout.write('ready\\n')
        setTimeout(() => {
          const t0 = Date.now()
          const s = n.connect(${port}, '127.0.0.1')
          s.on('error', (e) => { process.stdout.write('error ' + e.code + '\\n'); process.exit(1) })
          s.once('connect', () => { process.stdout.write('connect ' + (Date.now() - t0) + '\\n'); process.exit(0) })
        }, 300)
      })`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await new Promise<void>((resolve) => {
      const check = (): void => { if (out.includes('ready\n')) resolve() }
      child.stdout.on('data', check)
    })
    const until = Date.now() + 1500
    while (Date.now() < until) { /* JavaScript busy, as in an application doing heavy work */ }
    await new Promise((resolve) => child.once('close', resolve))
    clearTimeout(timer)
    const m = /connect (\d+)/.exec(out)
    if (m === null) throw new Error(`the child did not connect: ${out}`)
    return Number(m[1])
  }

  it('ioThread: true answers a handshake while JavaScript is blocked; the default waits for the event loop', async () => {
    const threaded = await connectWhileBlocked((await listeningNode({ ioThread: true })).node)
    const loop = await connectWhileBlocked((await listeningNode({ ioThread: false })).node)
    // Before (ioThread ignored, loop mode in force): threaded about 1200 ms, as the loop
    expect({ threaded: threaded < 300, loop: loop > 800 }, `threaded ${threaded} ms, loop ${loop} ms`).toEqual({ threaded: true, loop: true })
  })
})
