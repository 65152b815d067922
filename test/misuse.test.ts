// Bad arguments and misuse: synchronous throws with Node-style codes, errors on sockets, harmless repeats
import * as dgram from 'dgram'
import { describe, expect, it } from 'vitest'

import { codeOf, cleanupNodes, errorOf, listeningNode, makeNode, Node, once, sleep, type UtpError } from './helpers/utp'

describe('misuse', () => {
  cleanupNodes()

  it('bad ports are RangeErrors with ERR_SOCKET_BAD_PORT', () => {
    for (const port of [-1, 70000, 'abc', 1.5, NaN]) {
      const n = makeNode()
      expect(() => n.bind(port as number)).toThrow(RangeError)
      expect(codeOf(() => n.bind(port as number))).toBe('ERR_SOCKET_BAD_PORT')
      expect(codeOf(() => n.connect(port as number))).toBe('ERR_SOCKET_BAD_PORT')
      expect(codeOf(() => n.punch(3, port as number))).toBe('ERR_SOCKET_BAD_PORT')
    }
    expect(codeOf(() => makeNode().connect(0))).toBe('ERR_SOCKET_BAD_PORT')
    // Port 0 is no destination: punch() and connect() say so as dgram's send() does
    const dgramError = errorOf(() => {
      const d = dgram.createSocket('udp4')
      try {
        d.send('x', 0, '127.0.0.1')
      } finally {
        d.close()
      }
    })
    expect(errorOf(() => makeNode().punch(1, 0))).toEqual(dgramError)
    expect(errorOf(() => makeNode().connect(0))).toEqual(dgramError)
  })

  it("punch()'s attempts: 1 to 2^31 - 1, named in the error", () => {
    const n = makeNode()
    for (const attempts of [0, 2 ** 31, 1.5]) {
      expect(errorOf(() => n.punch(attempts, 1234))).toEqual(['RangeError', `The argument 'attempts' must be an integer >= 1 and <= 2147483647. Received ${attempts}`])
    }
  })

  it('bad options are rejected by the constructor', () => {
    expect(() => new Node({ mtu: 0 })).toThrow(RangeError)
    expect(codeOf(() => new Node({ mtu: 0 }))).toBe('ERR_INVALID_ARG_VALUE')
    expect(codeOf(() => new Node({ timeout: -5 }))).toBe('ERR_INVALID_ARG_VALUE')
    expect(codeOf(() => new Node({ resend: 0 }))).toBe('ERR_INVALID_ARG_VALUE')
    expect(codeOf(() => new Node({ keepAlive: 50 }))).toBe('ERR_INVALID_ARG_VALUE')
    expect(codeOf(() => new Node({ mtu: 1000.5 }))).toBe('ERR_INVALID_ARG_VALUE')
    expect(() => new Node({ bufferSize: 'x' as unknown as number })).toThrow(TypeError)
    expect(codeOf(() => new Node({ bufferSize: 'x' as unknown as number }))).toBe('ERR_INVALID_ARG_TYPE')
    expect(codeOf(() => new Node({ allowHalfOpen: 1 as unknown as boolean }))).toBe('ERR_INVALID_ARG_TYPE')
    expect(codeOf(() => new Node('fast' as unknown as object))).toBe('ERR_INVALID_ARG_TYPE')
    expect(codeOf(() => new Node({ keepAlive: 0, mtu: 64, bufferSize: 2 }))).toBeUndefined()
  })

  it('congestion is \'ledbat\' or \'cubic\', as the node option and per socket', async () => {
    expect(() => new Node({ congestion: 'bbr' as 'cubic' })).toThrow(RangeError)
    expect(codeOf(() => new Node({ congestion: 'bbr' as 'cubic' }))).toBe('ERR_INVALID_ARG_VALUE')
    expect(codeOf(() => new Node({ congestion: 'CUBIC' as 'cubic' }))).toBe('ERR_INVALID_ARG_VALUE')
    expect(codeOf(() => new Node({ congestion: 1 as unknown as 'cubic' }))).toBe('ERR_INVALID_ARG_TYPE')
    expect(codeOf(() => new Node({ congestion: 'cubic' }))).toBeUndefined()
    expect(Node.defaults.congestion).toBe('ledbat')
    const { port } = await listeningNode()
    const socket = makeNode().connect(port, '127.0.0.1')
    socket.on('error', () => {})
    expect(codeOf(() => socket.setCongestion('reno' as 'cubic'))).toBe('ERR_INVALID_ARG_VALUE')
    expect(codeOf(() => socket.setCongestion(undefined as unknown as 'cubic'))).toBe('ERR_INVALID_ARG_TYPE')
    expect(socket.setCongestion('cubic')).toBe(socket)
    socket.destroy()
  })

  it('bind twice throws; bind after close throws', async () => {
    const n = makeNode()
    n.bind(0, '127.0.0.1')
    expect(codeOf(() => n.bind(0))).toBe('ERR_SOCKET_ALREADY_BOUND')
    await once(n, 'bound')
    expect(codeOf(() => n.bind(0))).toBe('ERR_SOCKET_ALREADY_BOUND')
    // Worded as dgram words it
    const d = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => d.bind(0, '127.0.0.1', resolve))
    try {
      expect(errorOf(() => n.bind(0))).toEqual(errorOf(() => d.bind(0)))
    } finally {
      d.close()
    }
    await n.closeAsync()
    expect(codeOf(() => n.bind(0))).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING')
  })

  it('bind to a port in use emits EADDRINUSE asynchronously; bindAsync rejects', async () => {
    const a = makeNode()
    const { port } = await a.bindAsync(0, '127.0.0.1')
    const b = makeNode()
    let sync = true
    const err = new Promise<NodeJS.ErrnoException>(resolve => b.once('error', (e: NodeJS.ErrnoException) => {
      expect(sync).toBe(false)
      resolve(e)
    }))
    b.bind(port, '127.0.0.1')
    sync = false
    expect((await err).code).toBe('EADDRINUSE')
    await expect(makeNode().bindAsync(port, '127.0.0.1')).rejects.toMatchObject({ code: 'EADDRINUSE' })
  })

  it('double close does not throw and calls both callbacks', async () => {
    const n = makeNode()
    n.bind(0, '127.0.0.1')
    const calls: number[] = []
    n.close(() => calls.push(1))
    n.close(() => calls.push(2))
    await once(n, 'close')
    await sleep(10)
    n.close(() => calls.push(3))
    n.close() // and without a callback: nothing to call, nothing thrown later
    await sleep(10)
    expect(calls).toEqual([1, 2, 3])
    // never bound: close still completes
    const m = new Node()
    await new Promise<void>(resolve => m.close(resolve))
  })

  it('connecting to a bound node that does not listen fails with ECONNREFUSED', async () => {
    const deaf = makeNode()
    const { port } = await deaf.bindAsync(0, '127.0.0.1')
    const socket = makeNode({ timeout: 2000 }).connect(port)
    const err = await new Promise<UtpError>(resolve => socket.once('error', resolve))
    expect(err.code).toBe('ECONNREFUSED')
    expect(err.port).toBe(port)
  })

  it('connecting to a port nobody uses fails with ECONNREFUSED or ETIMEDOUT', async () => {
    const probe = makeNode()
    const { port } = await probe.bindAsync(0, '127.0.0.1')
    await probe.closeAsync() // the port is free again
    const client = makeNode({ timeout: 1000 })
    await expect(client.connectAsync(port)).rejects.toSatisfy((e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED' || e.code === 'ETIMEDOUT')
  })

  it('operations on a closed node', async () => {
    const n = makeNode()
    await n.bindAsync(0, '127.0.0.1')
    await n.closeAsync()
    expect(codeOf(() => n.listen())).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING')
    expect(codeOf(() => n.address())).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING')
    // As utp-punch: connect() and punch() on a closed node throw at once
    expect(codeOf(() => n.connect(1234))).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING')
    expect(codeOf(() => n.punch(2, 1234))).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING')
    expect(n.serverConnections).toBe(0)
  })

  it('bad callbacks and hosts are TypeErrors', () => {
    const n = makeNode()
    expect(codeOf(() => n.connect(1234, 42 as unknown as string))).toBe('ERR_INVALID_ARG_TYPE')
    expect(codeOf(() => n.listen('x' as unknown as () => void))).toBe('ERR_INVALID_ARG_TYPE')
    expect(codeOf(() => n.punch(0, 1234))).toBe('ERR_INVALID_ARG_VALUE')
    expect(errorOf(() => n.close(5 as unknown as () => void))).toEqual(['TypeError', 'The "onClose" argument must be of type function. Received type number (5)'])
    // Named as Node names a callback argument (setTimeout's own error is the model); null means none, as undefined
    expect(errorOf(() => n.punch(1, 1234, '127.0.0.1', 5 as unknown as () => void))).toEqual(errorOf(() => setTimeout(5 as unknown as () => void)))
    expect(errorOf(() => n.listen('x' as unknown as () => void))).toEqual(['TypeError', 'The "onListening" argument must be of type function. Received type string (\'x\')'])
    expect(() => n.listen(null as unknown as () => void)).not.toThrow()
    expect(errorOf(() => new Node({}, 5 as unknown as () => void))).toEqual(['TypeError', 'The "onconnection" argument must be of type function. Received type number (5)'])
    expect(errorOf(() => n.connect(1234, '127.0.0.1', 5 as unknown as () => void))).toEqual(['TypeError', 'The "onconnect" argument must be of type function. Received type number (5)'])
  })
})
