// secureSocket()'s handshake at its edges: the arguments it refuses and how it says so, a connection that ends or
// fails before the handshake is done, a socket that was closed or ending before it was secured, and what the
// handshake leaves on the inner socket (its own listeners removed; an error after a failure caught)
import * as crypto from 'crypto'
import { describe, expect, it } from 'vitest'

import { pskOptions as psk, settle } from './helpers/secure'
import { cleanupNodes, errorOf, listeningNode, makeNode, once, sleep, utp, type NodeOptions, type Socket } from './helpers/utp'

import type { Node as NodeClass } from '../lib/node'

type SecureOptions = NodeClass.SecureOptions

const { secureSocket } = utp

/** Events secureSocket() listens to on the inner socket while the handshake runs */
const HANDSHAKE_EVENTS = ['data', 'end', 'close', 'error'] as const

function listenerCounts (socket: Socket): Record<string, number> {
  return Object.fromEntries(HANDSHAKE_EVENTS.map((e) => [e, socket.listenerCount(e)]))
}

/** A connected pair of plain sockets: the client's, and the server's once it was accepted */
async function plainPair (serverOptions?: NodeOptions): Promise<{ client: Socket, server: Socket }> {
  let accepted!: (s: Socket) => void
  const server = new Promise<Socket>((resolve) => { accepted = resolve })
  const { port } = await listeningNode(serverOptions, (s) => accepted(s))
  const client = makeNode().connect(port, '127.0.0.1')
  await once(client, 'connect')
  return { client, server: await server }
}

describe("secureSocket()'s arguments", () => {
  cleanupNodes()

  it('timeoutMs must be a positive integer that a timer can hold; the error names the value given', async () => {
    const { port } = await listeningNode()
    const socket = makeNode().connect(port, '127.0.0.1')
    socket.on('error', () => {})
    for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 31, '1000']) {
      expect(errorOf(() => secureSocket(socket, psk.client, bad as number)), String(bad))
        .toEqual(['RangeError', `timeoutMs must be a positive integer, got ${String(bad)}`])
    }
    // The largest a timer holds is taken: the handshake then fails on the socket's end, not on the argument
    const p = settle(secureSocket(socket, psk.client, 2 ** 31 - 1))
    socket.destroy()
    expect(await p).toMatchObject({ ok: false, error: { code: 'ERR_HANDSHAKE_CLOSED' } })
  })

  it('bad options are refused with errors that say which option and why', async () => {
    const { port } = await listeningNode()
    const socket = makeNode().connect(port, '127.0.0.1')
    const cases: Array<[unknown, [string, string]]> = [
      ['correct horse', ['TypeError', 'options must be { role, key } or { role, psk }']],
      [null, ['TypeError', 'options must be { role, key } or { role, psk }']],
      [{ role: 'server', psk: 'a' }, ['RangeError', "options.role must be 'initiator' or 'responder', got server"]],
      [{ role: 'initiator' }, ['TypeError', 'pass exactly one of options.key and options.psk']],
      [{ role: 'initiator', psk: 'a', key: crypto.randomBytes(32) }, ['TypeError', 'pass exactly one of options.key and options.psk']],
      [{ role: 'initiator', key: 'k'.repeat(32) }, ['TypeError', 'options.key must be a Buffer']],
      [{ role: 'initiator', key: crypto.randomBytes(31) }, ['RangeError', 'options.key must be 32 bytes, got 31']],
      [{ role: 'initiator', psk: 7 }, ['TypeError', 'options.psk must be a string or a Buffer']],
      [{ role: 'initiator', psk: Buffer.alloc(0) }, ['RangeError', 'options.psk must not be empty']]
    ]
    for (const [options, expected] of cases) {
      expect(errorOf(() => secureSocket(socket, options as SecureOptions)), JSON.stringify(options)).toEqual(expected)
    }
    expect(socket.stats()?.bytesSent ?? 0).toBe(0)
  })
})

describe('secureSocket() when the connection ends or fails first', () => {
  cleanupNodes()

  it('a peer that ends its side before answering fails the handshake at once with ERR_HANDSHAKE_CLOSED', async () => {
    // allowHalfOpen: the connection stays open after the peer's FIN, so only its 'end' can tell the handshake
    const { client, server } = await plainPair({ allowHalfOpen: true })
    const p = settle(secureSocket(server, psk.server, 5000))
    client.on('data', () => {})
    client.end()
    const r = await p
    expect(r).toMatchObject({ ok: false, error: { code: 'ERR_HANDSHAKE_CLOSED' } })
    // from the peer's FIN, not from the 5 s timeout
    expect(!r.ok && r.ms).toBeLessThan(2000)
  })

  it('the socket destroyed during the handshake (without an error) fails it at once with ERR_HANDSHAKE_CLOSED', async () => {
    const { client } = await plainPair()
    const p = settle(secureSocket(client, psk.client, 5000))
    client.destroy()
    const r = await p
    expect(r).toMatchObject({ ok: false, error: { code: 'ERR_HANDSHAKE_CLOSED', message: 'the peer closed the connection during the encryption handshake' } })
    expect(!r.ok && r.ms).toBeLessThan(2000)
  })

  it('a peer that never answers fails the handshake after timeoutMs, saying how long it waited', async () => {
    const { server } = await plainPair()
    const r = await settle(secureSocket(server, psk.server, 300))
    expect(r).toMatchObject({ ok: false, error: { code: 'ERR_HANDSHAKE_TIMEOUT', message: 'the peer did not complete the encryption handshake within 300 ms' } })
    expect(server.destroyed).toBe(true)
  })

  it("the socket's own error fails the handshake with that error", async () => {
    const { client } = await plainPair()
    const p = settle(secureSocket(client, psk.client, 5000))
    const cause = new Error('the test destroyed the socket')
    client.destroy(cause)
    const r = await p
    expect(!r.ok && r.error).toBe(cause)
  })

  it('a socket destroyed, ended for writing, or ended for reading is refused at once with ERR_HANDSHAKE_CLOSED', async () => {
    const destroyed = (await plainPair()).client
    destroyed.destroy()
    const ended = (await plainPair()).client
    ended.on('data', () => {})
    ended.end()
    // The peer ended and this side read its end, but can still write (allowHalfOpen)
    const halfOpen = await plainPair({ allowHalfOpen: true })
    halfOpen.server.resume()
    halfOpen.client.end()
    await once(halfOpen.server, 'end')
    expect(halfOpen.server.writable).toBe(true)

    for (const [name, socket] of [['destroyed', destroyed], ['ended', ended], ['read to its end', halfOpen.server]] as const) {
      const sent = socket.stats()?.bytesSent ?? 0
      const r = await settle(secureSocket(socket, psk.client, 5000))
      expect(r, name).toMatchObject({ ok: false, error: { code: 'ERR_HANDSHAKE_CLOSED', message: 'the socket is closed or ending: secure it before using it' } })
      expect(!r.ok && r.ms, name).toBeLessThan(1000)
      // Nothing of the handshake went out
      await sleep(50)
      expect(socket.stats()?.bytesSent ?? 0, name).toBe(sent)
    }
  })
})

describe('what the handshake leaves on the inner socket', () => {
  cleanupNodes()

  it('after success only the SecureSocket listens: one listener of each kind, none of the handshake', async () => {
    const { client, server } = await plainPair()
    const before = { client: listenerCounts(client), server: listenerCounts(server) }
    const [a, b] = await Promise.all([secureSocket(client, psk.client), secureSocket(server, psk.server)])
    for (const [side, socket] of [['client', client], ['server', server]] as const) {
      for (const e of HANDSHAKE_EVENTS) expect(socket.listenerCount(e), `${side} '${e}'`).toBe(before[side][e] + 1)
    }
    // and the stream works
    a.write('ping')
    const got = await once<Buffer>(b, 'data')
    expect(String(got)).toBe('ping')
  })

  it('after a failure the inner socket is closed, and an error it reports later is not an uncaught exception', async () => {
    const { client, server } = await plainPair()
    const [c, s] = await Promise.all([
      settle(secureSocket(client, psk.client)),
      settle(secureSocket(server, { role: 'responder', psk: 'another psk' }))
    ])
    expect(c).toMatchObject({ ok: false, error: { code: 'ERR_WRONG_CODE' } })
    expect(s).toMatchObject({ ok: false, error: { code: 'ERR_WRONG_CODE' } })
    for (const socket of [client, server]) {
      expect(socket.destroyed).toBe(true)
      // The program had no 'error' listener of its own: nobody is left to tell, and nothing may throw
      expect(() => socket.emit('error', Object.assign(new Error('late'), { code: 'ETIMEDOUT' }))).not.toThrow()
    }
  })
})
