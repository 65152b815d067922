// How the rendezvous server's listen() binds its ports and what it does when a bind fails. With port 0 the UDP
// port is chosen first and the HTTP server must then get the same number over TCP, where another program may
// hold it; the server tries another port a bounded number of times. Which port the kernel picks cannot be
// steered, so the test takes the TCP port the moment the UDP bind returns, by wrapping the module's bindAll:
// the failure it injects is a real EADDRINUSE from the kernel, not a fake error.
import * as dgram from 'dgram'
import * as net from 'net'
import { afterEach, describe, expect, it } from 'vitest'

import type * as ServerModule from '../lib/server/server'
import type * as SocketsModule from '../lib/server/sockets'
import { requireFromRoot, udpPortFree } from './helpers/utp'

const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
const sockets = requireFromRoot('./dist/lib/server/sockets.js') as { -readonly [K in keyof typeof SocketsModule]: typeof SocketsModule[K] }
const realBindAll = sockets.bindAll

const servers: ServerModule.RendezvousServer[] = []
const holders: net.Server[] = []

afterEach(async () => {
  sockets.bindAll = realBindAll
  await Promise.all(servers.splice(0).map(async s => await s.close()))
  await Promise.all(holders.splice(0).map(async h => await new Promise<void>(resolve => h.close(() => resolve()))))
})

/** Listen on TCP port `port` of 127.0.0.1, so the server's HTTP cannot */
async function holdTcp (port: number): Promise<void> {
  const h = net.createServer()
  await new Promise<void>((resolve, reject) => { h.once('error', reject); h.listen(port, '127.0.0.1', resolve) })
  holders.push(h)
}

/** Wrap bindAll: record each port it bound, and for the first `failing` calls take that port's TCP number */
function injectTakenTcp (failing: number): number[] {
  const bound: number[] = []
  sockets.bindAll = async (...args) => {
    const main = await realBindAll(...args)
    const port = main[0].socket.address().port
    bound.push(port)
    if (bound.length <= failing) await holdTcp(port)
    return main
  }
  return bound
}

function server (options: ServerModule.RendezvousServerOptions): ServerModule.RendezvousServer {
  const s = new RendezvousServer({ host: '127.0.0.1', httpHost: '127.0.0.1', mappingCheck: false, ...options })
  servers.push(s)
  return s
}

describe('RendezvousServer.listen() when a port is taken', () => {
  it('with port 0, a TCP port taken by another program makes it try another, freeing the UDP port it gave up', async () => {
    const bound = injectTakenTcp(2)
    const s = server({ port: 0 })
    const at = await s.listen()
    expect(bound).toHaveLength(3)
    expect(at.port).toBe(bound[2])
    expect(bound[0]).not.toBe(at.port)
    expect(bound[1]).not.toBe(at.port)
    // The attempts given up closed their UDP sockets; the one kept is bound, and answers HTTP
    expect(await udpPortFree(bound[0])).toBe(true)
    expect(await udpPortFree(bound[1])).toBe(true)
    expect(await udpPortFree(at.port)).toBe(false)
    const res = await fetch(`http://127.0.0.1:${at.port}/healthz`)
    expect(res.status).toBe(200)
  })

  it('gives up after five attempts with the bind\'s error, listening on nothing', async () => {
    const bound = injectTakenTcp(Infinity)
    const s = server({ port: 0 })
    await expect(s.listen()).rejects.toMatchObject({ code: 'EADDRINUSE', syscall: 'listen' })
    expect(bound).toHaveLength(5)
    for (const port of bound) expect(await udpPortFree(port)).toBe(true)
    expect(() => s.address()).toThrow('RendezvousServer is not listening')
  })

  it('a port given by number is not swapped for another: its taken TCP port fails at once', async () => {
    const probe = dgram.createSocket('udp4')
    const port = await new Promise<number>(resolve => probe.bind(0, '127.0.0.1', () => resolve(probe.address().port)))
    probe.close()
    const bound = injectTakenTcp(Infinity)
    await expect(server({ port }).listen()).rejects.toMatchObject({ code: 'EADDRINUSE' })
    expect(bound).toEqual([port])
    expect(await udpPortFree(port)).toBe(true)
  })

  it('an error other than a taken port is not retried', async () => {
    let calls = 0
    sockets.bindAll = async () => {
      calls++
      throw Object.assign(new Error('bind EACCES'), { code: 'EACCES' })
    }
    await expect(server({ port: 0 }).listen()).rejects.toThrow('bind EACCES')
    expect(calls).toBe(1)
  })

  it('a taken check port fails listen() and frees the main port', async () => {
    const taken = dgram.createSocket('udp4')
    const checkPort = await new Promise<number>(resolve => taken.bind(0, '127.0.0.1', () => resolve(taken.address().port)))
    try {
      const bound = injectTakenTcp(0)
      const s = server({ port: 0, mappingCheck: true, checkPort })
      await expect(s.listen()).rejects.toMatchObject({ code: 'EADDRINUSE', syscall: 'bind' })
      expect(bound).toHaveLength(1)
      expect(await udpPortFree(bound[0])).toBe(true)
      expect(() => s.address()).toThrow('RendezvousServer is not listening')
    } finally {
      taken.close()
    }
  })

  it('an error of its HTTP server once listening is counted, and does not take the server down', async () => {
    const s = server({ port: 0 })
    await s.listen()
    const before = s.stats().errors
    const httpServer = (s as unknown as { _http: net.Server })._http
    httpServer.emit('error', new Error('EMFILE: too many open files, accept'))
    expect(s.stats().errors).toBe(before + 1)
  })
})
