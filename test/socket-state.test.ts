// A Socket's settings and numbers across its life: before the native connection exists (an unbound node binds
// first, a host name is looked up first), while it is open, and after it closed
import { describe, expect, it } from 'vitest'

import { createRelay } from './helpers/relay'
import {
  cleanupNodes, closed, closedUdpPort, codeOf, errorOf, listeningNode, makeNode, once, sleep, type NodeOptions, type Socket, type UtpError
} from './helpers/utp'

/** A listening node; `accepted` is the first socket it accepts, which `prepare` saw first */
async function acceptingServer (options: NodeOptions, prepare: (s: Socket) => void): Promise<{ port: number, accepted: Promise<Socket> }> {
  let accept: (s: Socket) => void = () => {}
  const accepted = new Promise<Socket>(resolve => { accept = resolve })
  const { port } = await listeningNode(options, s => { prepare(s); accept(s) })
  return { port, accepted }
}

/** A server that sends nothing of its own while idle (no keepalives): a client's silence timer runs out */
async function quietServer (): Promise<{ port: number }> {
  return await acceptingServer({ keepAlive: 0 }, s => s.resume())
}

/** Everything `socket` receives, once it ends (reading it from now on, paused or not) */
async function receivedAll (socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.resume()
  await once(socket, 'end')
  return Buffer.concat(chunks)
}

/** Checks `done` every 10 ms until it holds or `ms` pass */
async function waitUntil (done: () => boolean, ms: number): Promise<void> {
  for (const until = Date.now() + ms; !done() && Date.now() < until;) await sleep(10)
}

/** Milliseconds from now until `socket` emits 'timeout' (or `limit` passes: Infinity) */
async function msToTimeout (socket: Socket, limit: number): Promise<number> {
  const start = Date.now()
  const heard = await Promise.race([once(socket, 'timeout').then(() => true), sleep(limit).then(() => false)])
  return heard ? Date.now() - start : Infinity
}

/** `p`, or a rejection once `ms` pass: a missing event fails the test at once instead of at its time limit */
async function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no ${what} in ${ms} ms`)), ms) })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

describe('socket state', () => {
  cleanupNodes()

  it('settings made before the connection exists take effect when it does', async () => {
    const { port } = await quietServer()
    const socket = makeNode({ timeout: 20_000, keepAlive: 0, mtu: 1200, loopbackMtu: 0 }).connect(port, 'localhost')
    socket.on('error', () => {})
    expect(socket.stats()).toBeNull()
    expect(socket.remoteAddress).toBeUndefined()
    expect(socket.getMtu()).toBe(1200)
    socket.setMtu(1100)
    socket.setCongestion('cubic')
    socket.setTimeout(300)
    expect([socket.getMtu(), socket.getTimeout()]).toEqual([1100, 300])
    await once(socket, 'connect')
    expect(socket.remoteAddress).toBe('127.0.0.1')
    expect(socket.remoteFamily).toBe('IPv4')
    const s = socket.stats()
    expect([s?.mtu, s?.congestion, s?.open]).toEqual([1100, 'cubic', true])
    // The node's timeout is 20 s: only the socket's own 300 ms makes it speak up now
    expect(await msToTimeout(socket, 3000)).toBeLessThan(2000)
    socket.destroy()
  })

  it('what is written and ended before the connection exists is sent when it does', async () => {
    const got: Array<Promise<Buffer>> = []
    const { port } = await listeningNode({}, s => { got.push(receivedAll(s)) })
    // Written and ended, then ended alone (the end waits for the connection, not for a write)
    for (const [data, expected] of [['before the connection', 'before the connection'], [undefined, '']] as const) {
      const socket = makeNode().connect(port, 'localhost')
      socket.resume()
      if (data !== undefined) socket.write(data)
      socket.end()
      await once(socket, 'connect')
      await waitUntil(() => got.length > 0, 1000)
      expect(got).toHaveLength(1)
      expect((await within(got.shift() as Promise<Buffer>, 5000, 'end at the server')).toString()).toBe(expected)
      await within(closed(socket), 5000, 'close')
    }
  })

  it('a socket destroyed while its writes wait for room lets the rest drain quietly', async () => {
    const { port, accepted } = await acceptingServer({}, s => s.pause())
    const socket = makeNode().connect(port, '127.0.0.1')
    await once(socket, 'connect')
    const chunk = Buffer.alloc(64 * 1024, 7)
    let queued = 0
    while (socket.write(chunk)) queued += chunk.length
    const server = await within(accepted, 2000, 'accepted connection')
    // Destroyed with writes waiting: what the send buffer holds still goes, then a FIN
    socket.destroy()
    const received = (await within(receivedAll(server), 10_000, 'end at the server')).length
    // Every write the stream took before destroy() reached the peer
    expect(received).toBeGreaterThanOrEqual(queued)
  })

  it('a refused attempt and a reset connection fail with their error alone: no \'timeout\', no longer connecting', async () => {
    const refused = makeNode().connect(await closedUdpPort('127.0.0.1'), '127.0.0.1')
    let timeouts = 0
    refused.on('timeout', () => { timeouts++ })
    expect(refused.connecting).toBe(true)
    const refusal = await within(once<UtpError>(refused, 'error'), 5000, 'refusal')
    expect(refusal.code).toBe('ECONNREFUSED')
    expect(refused.connecting).toBe(false)

    const { port } = await listeningNode({}, s => { s.resetAndDestroy() })
    const reset = makeNode().connect(port, '127.0.0.1')
    reset.on('timeout', () => { timeouts++ })
    reset.write('hello')
    const err = await within(once<UtpError>(reset, 'error'), 5000, 'reset')
    expect(err.code).toBe('ECONNRESET')
    await sleep(100)
    expect(timeouts).toBe(0)
  })

  it('a socket destroyed while its peer is silent says nothing more as its connection gives up', async () => {
    const { port } = await listeningNode({}, s => { s.resume() })
    const relay = await createRelay(port)
    const node = makeNode({ timeout: 400, keepAlive: 200 })
    const socket = node.connect(relay.port, '127.0.0.1')
    await once(socket, 'connect')
    const heard: string[] = []
    socket.on('timeout', () => heard.push('socket timeout'))
    node.on('timeout', () => heard.push('node timeout'))
    socket.on('error', (e: UtpError) => heard.push(`error ${e.code}`))
    relay.faults.blackhole = true
    socket.write('into the void')
    socket.destroy()
    // Its FIN goes unanswered: the native connection gives up after the silence limits
    await waitUntil(() => socket.stats()?.open === false, 5000)
    expect(socket.stats()?.open).toBe(false)
    await sleep(50)
    expect(heard).toEqual([])
    await relay.close()
  })

  it('an attempt nobody answers gets its \'timeout\' notice, then fails with ETIMEDOUT', async () => {
    const { port } = await listeningNode()
    const relay = await createRelay(port, { blackhole: true })
    const socket = makeNode({ timeout: 300 }).connect(relay.port, '127.0.0.1')
    const events: string[] = []
    socket.on('timeout', () => events.push('timeout'))
    const err = await within(once<UtpError>(socket, 'error'), 5000, 'failure')
    expect(err.code).toBe('ETIMEDOUT')
    expect(events).toEqual(['timeout'])
    await relay.close()
  })

  it('the node\'s close() ends a connection whose peer is gone even when nothing reads it', async () => {
    const { port } = await listeningNode()
    const relay = await createRelay(port)
    const node = makeNode({ timeout: 300 })
    const socket = node.connect(relay.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.on('error', () => {})
    relay.faults.blackhole = true
    // The peer's silence was noticed before the node closes
    await within(once(socket, 'timeout'), 5000, 'timeout notice')
    // No 'data' listener, no read(): the stream's end is never consumed
    node.close()
    await within(closed(socket), 5000, 'close of the unread socket')
    expect(socket.destroyed).toBe(true)
    await relay.close()
  })

  it('an attempt the native side refuses fails with its error and is no longer connecting', async () => {
    const node = makeNode()
    await node.bindAsync(0, '127.0.0.1')
    // An IPv4 socket cannot reach an IPv6 address
    const socket = node.connect(9, '::1')
    expect(socket.connecting).toBe(true)
    const err = await within(once<UtpError>(socket, 'error'), 5000, 'failure')
    expect(err.code).toBe('EINVAL')
    expect(socket.connecting).toBe(false)
  })

  it('setters check their argument with its name and range; address() before the peer is known', async () => {
    const { port } = await listeningNode()
    const socket = makeNode().connect(port, 'localhost')
    socket.on('error', () => {})
    expect(socket.address()).toEqual({ address: '', family: 'IPv4', port })
    expect(errorOf(() => socket.setTimeout(2 ** 31 - 1))).toBe('accepted')
    const refusals: Array<[() => unknown, string]> = [
      [() => socket.setTimeout(2 ** 31), "The argument 'msecs' must be an integer >= 0 and <= 2147483647. Received 2147483648"],
      [() => socket.setMtu(63), "The argument 'mtu' must be an integer >= 64 and <= 65000. Received 63"],
      [() => socket.setCongestion('reno' as 'cubic'), "The argument 'mode' must be 'ledbat' or 'cubic'. Received 'reno'"]
    ]
    for (const [call, message] of refusals) {
      expect(codeOf(call)).toBe('ERR_INVALID_ARG_VALUE')
      expect(errorOf(call)).toEqual(['RangeError', message])
    }
    socket.destroy()
  })

  it('address() of a connection over IPv6 says IPv6', async () => {
    const { port } = await listeningNode({}, undefined, '::1')
    const socket = makeNode().connect(port, '::1')
    await once(socket, 'connect')
    expect(socket.address()).toEqual({ address: '::1', family: 'IPv6', port })
    socket.destroy()
  })

  it('a reader that pauses a second time stops the writer a second time', async () => {
    const { port, accepted } = await acceptingServer({}, s => s.pause())
    const socket = makeNode().connect(port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write('x')
    const server = await within(accepted, 2000, 'accepted connection')
    const chunk = Buffer.alloc(16 * 1024, 0xcd)
    /** Writes until the writer has been blocked for a second; what it wrote */
    const fillUntilBlocked = async (): Promise<number> => {
      let written = 0
      for (;;) {
        while (socket.write(chunk)) written += chunk.length
        written += chunk.length
        // Far more than both ends' buffers: a reader that stopped must stop the writer long before
        if (written > 16 * 1024 * 1024) return written
        const drained = once(socket, 'drain').then(() => true)
        if (!await Promise.race([drained, sleep(1000).then(() => false)])) return written
      }
    }
    expect(await fillUntilBlocked()).toBeLessThan(8 * 1024 * 1024)
    server.resume()
    await sleep(300)
    server.pause()
    expect(await fillUntilBlocked()).toBeLessThan(8 * 1024 * 1024)
    socket.destroy()
  })

  it('writes batched by cork() or queued behind a full send buffer arrive whole and in order', async () => {
    const { port, accepted } = await acceptingServer({}, () => {})
    const socket = makeNode().connect(port, '127.0.0.1')
    await once(socket, 'connect')
    socket.resume()
    const sent: Buffer[] = []
    const write = (b: Buffer): boolean => { sent.push(b); return socket.write(b) }
    socket.cork()
    for (const text of ['one ', 'two ', 'three ']) write(Buffer.from(text))
    socket.uncork()
    // Past the point where write() says to wait: the stream queues these and hands them over together
    let n = 0
    while (write(Buffer.alloc(64 * 1024, n & 0xff))) n++
    for (let i = 0; i < 8; i++) write(Buffer.alloc(1000 + i, 0x80 + i))
    socket.end()
    const server = await within(accepted, 2000, 'accepted connection')
    const received = await within(receivedAll(server), 20_000, 'everything at the server')
    expect(received.length).toBe(Buffer.concat(sent).length)
    expect(received.equals(Buffer.concat(sent))).toBe(true)
    await within(closed(socket), 5000, 'close')
  })

  it('setTimeout() on an open connection applies at once, and its callback runs on the peer\'s silence', async () => {
    const { port } = await quietServer()
    const socket = makeNode({ timeout: 20_000, keepAlive: 0 }).connect(port, '127.0.0.1')
    socket.on('error', () => {})
    await once(socket, 'connect')
    let calls = 0
    expect(socket.setTimeout(300, () => { calls++ })).toBe(socket)
    expect(await msToTimeout(socket, 3000)).toBeLessThan(2000)
    expect(calls).toBe(1)
    socket.destroy()
  })

  it('setTimeout(0, callback) turns the notice off and takes the callback back', async () => {
    const { port } = await quietServer()
    const socket = makeNode({ timeout: 300, keepAlive: 0 }).connect(port, '127.0.0.1')
    socket.on('error', () => {})
    await once(socket, 'connect')
    let calls = 0
    const callback = (): void => { calls++ }
    socket.setTimeout(300, callback)
    socket.setTimeout(0, callback)
    expect(socket.getTimeout()).toBe(0)
    expect(socket.listenerCount('timeout')).toBe(0)
    expect(await msToTimeout(socket, 1500)).toBe(Infinity)
    expect(calls).toBe(0)
    socket.destroy()
  })

  it('after the connection closed: the final numbers, marked closed, and settings are harmless', async () => {
    const { port } = await listeningNode({}, s => { s.resume(); s.end() })
    const socket = makeNode().connect(port, '127.0.0.1')
    socket.resume()
    socket.end('bye')
    await closed(socket)
    // The native connection finishes its FIN exchange a moment after the stream's 'close'
    await waitUntil(() => socket.stats()?.open === false, 2000)
    const s = socket.stats()
    expect(s?.open).toBe(false)
    expect(s?.bytesSent).toBeGreaterThanOrEqual(3)
    expect(codeOf(() => socket.setTimeout(100))).toBeUndefined()
    expect(codeOf(() => socket.setMtu(1000))).toBeUndefined()
    expect(codeOf(() => socket.setCongestion('cubic'))).toBeUndefined()
    expect(socket.stats()?.congestion).toBe('ledbat')
  })

  it('a socket destroyed before its connection existed has no numbers', async () => {
    const { port } = await listeningNode()
    const socket = makeNode().connect(port, 'localhost')
    socket.destroy()
    await closed(socket)
    expect(socket.stats()).toBeNull()
    expect(socket.getMtu()).toBeGreaterThan(0)
  })

  it('a socket destroyed after its SYN went out hears nothing of the handshake, nor does its node', async () => {
    const { port, accepted } = await acceptingServer({}, s => s.resume())
    const client = makeNode()
    await client.bindAsync(0, '127.0.0.1')
    const heard: string[] = []
    client.on('connect', () => heard.push('node connect'))
    // Bound, to an address: the native connection exists when connect() returns, and its SYN is on its way
    const socket = client.connect(port, '127.0.0.1')
    socket.on('connect', () => heard.push('socket connect'))
    expect(client.stats().clientConnections).toBe(1)
    socket.destroy()
    // The peer answers the SYN all the same: the handshake completes natively, with nobody to tell
    await within(accepted, 2000, 'accepted connection')
    await sleep(100)
    expect(heard).toEqual([])
  })

  it('an accepted socket is connected from the start (not connecting), as net\'s are', async () => {
    const { port, accepted } = await acceptingServer({}, s => s.resume())
    const socket = await makeNode().connectAsync(port, '127.0.0.1')
    const s = await within(accepted, 2000, 'accepted connection')
    expect(s.connecting).toBe(false)
    socket.destroy()
  })
})
