// How a connection ends as a program sees it on both sides: destroy() is a TCP socket's close() (the peer sees
// a clean end), resetAndDestroy() is its RST, and a silent peer is a 'timeout' notice before any error.
import { describe, expect, it } from 'vitest'
import { createRelay, onlyTheSyn } from './helpers/relay'
import { cleanupNodes, listeningNode, makeNode, once, sleep, type Socket } from './helpers/utp'

cleanupNodes()

/** Every event a socket emits from now on, with error codes */
function record (s: Socket): string[] {
  const log: string[] = []
  for (const ev of ['end', 'finish', 'close', 'timeout']) s.on(ev, () => log.push(ev))
  s.on('error', (e: NodeJS.ErrnoException) => log.push(`error ${e.code ?? e.message}`))
  return log
}

/** Resolves on 'close' whatever came before it (the helper's once() rejects on 'error') */
function closeOf (s: Socket): Promise<void> {
  return new Promise((resolve) => s.once('close', () => resolve()))
}

async function pair (): Promise<{ client: Socket, server: Socket }> {
  let accepted: (s: Socket) => void = () => {}
  const server = new Promise<Socket>((resolve) => { accepted = resolve })
  const { port } = await listeningNode({}, (s) => accepted(s))
  const node = makeNode()
  await node.bindAsync(0, '127.0.0.1')
  const client = node.connect(port, '127.0.0.1')
  await once(client, 'connect')
  return { client, server: await server }
}

describe('closing', () => {
  it('destroy() sends what was written, then a FIN: the peer reads it all and ends without an error', async () => {
    const { client, server } = await pair()
    const log = record(server)
    const closed = closeOf(server)
    const chunks: Buffer[] = []
    server.on('data', (d: Buffer) => chunks.push(d))
    client.write(Buffer.alloc(50_000, 7))
    client.destroy()
    await closed
    expect(Buffer.concat(chunks).equals(Buffer.alloc(50_000, 7))).toBe(true)
    expect(log).toEqual(['end', 'finish', 'close'])
  })

  it('what the peer sends after destroy() is dropped, and both sides still close cleanly', async () => {
    const { client, server } = await pair()
    const log = record(server)
    const closed = closeOf(server)
    server.resume()
    // The peer is writing when we let go: our side acknowledges and discards what still comes
    server.write(Buffer.alloc(200_000, 1))
    client.destroy()
    for (let i = 0; i < 20 && !server.writableEnded; i++) {
      server.write(Buffer.alloc(10_000, i))
      await sleep(5)
    }
    await closed
    expect(log.filter(e => e.startsWith('error'))).toEqual([])
    expect(client.destroyed).toBe(true)
  })

  it('resetAndDestroy() tells the peer with RESET: ECONNRESET there', async () => {
    const { client, server } = await pair()
    const log = record(server)
    const closed = closeOf(server)
    server.resume()
    expect(client.resetAndDestroy()).toBe(client)
    await closed
    expect(log).toContain('error ECONNRESET')
  })

  /** A connection through a relay that can drop everything: the peer vanishes without a word */
  async function throughRelay (): Promise<{ s: Socket, vanish: () => void }> {
    // The far side times out too, once its peer (us) vanishes behind the relay
    const { port } = await listeningNode({ timeout: 500, keepAlive: 200 }, (far) => far.on('error', () => {}))
    const relay = await createRelay(port, {}, 1)
    const client = makeNode({ timeout: 500, keepAlive: 200 })
    client.once('close', () => { void relay.close() })
    await client.bindAsync(0, '127.0.0.1')
    const s = client.connect(relay.port, '127.0.0.1')
    await once(s, 'connect')
    return { s, vanish: () => { relay.faults.blackhole = true } }
  }

  it('a node that closes with a handshake it answered but never announced: the initiator is reset at once', async () => {
    // The initiator has the SYN-ACK and counts itself connected; its confirmation never reaches the server, so
    // the server's program never hears of the connection. Without the RESET the initiator waited out its timeout
    let announced = false
    const { node: server, port } = await listeningNode({}, () => { announced = true })
    const relay = await createRelay(port, { drop: onlyTheSyn })
    try {
      const node = makeNode({ timeout: 30_000 })
      await node.bindAsync(0, '127.0.0.1')
      const client = await node.connectAsync(relay.port, '127.0.0.1')
      const log = record(client)
      client.resume()
      await sleep(100)
      expect(announced).toBe(false)
      await server.closeAsync()
      await Promise.race([closeOf(client), sleep(3000)])
      expect(log).toEqual(['error ECONNRESET', 'close'])
      expect(server.stats().connectionsOpened).toBe(0)
    } finally {
      await relay.close()
    }
  })

  it("a peer that vanishes: 'timeout' first; end() in answer closes without an error", async () => {
    const { s, vanish } = await throughRelay()
    const log = record(s)
    const closed = closeOf(s)
    s.once('timeout', () => s.end())
    vanish()
    await closed
    expect(log.filter(e => e.startsWith('error'))).toEqual([])
    expect(log[0]).toBe('timeout')
  })

  it("a peer that vanishes while the program ignores 'timeout': ETIMEDOUT after twice the timeout", async () => {
    const { s, vanish } = await throughRelay()
    const log = record(s)
    const closed = closeOf(s)
    vanish()
    const t0 = Date.now()
    await closed
    expect(log).toEqual(['timeout', 'error ETIMEDOUT', 'close'])
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
  })
})
