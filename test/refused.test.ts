// ICMP port unreachable: a connection attempt to a port where nothing listens fails with ECONNREFUSED at once
// (as net does for TCP's RST) instead of after the timeout, in both I/O modes and over IPv4 and IPv6; an open
// connection ignores the ICMP its vanished peer's host sends (a forged one must not kill it) and ends by the
// timeout. Linux and Android only: elsewhere an unconnected UDP socket hears of no ICMP error.

import { describe, expect, it } from 'vitest'

import { createRelay } from './helpers/relay'
import { cleanupNodes, closed, closedUdpPort, listeningNode, makeNode, Node, once, type Socket, type UtpError } from './helpers/utp'

const supported = process.platform === 'linux' || process.platform === 'android'
const MODES = [{ ioThread: false }, { ioThread: true }]

async function ipv6Available (): Promise<boolean> {
  const n = new Node()
  try {
    await n.bindAsync(0, '::1')
    return true
  } catch {
    return false
  } finally {
    await n.closeAsync()
  }
}

// The default bind, '::', is dual-stack: IPv4 peers are reached through mapped addresses, and their ICMP errors too
const hosts = [{ bind: '127.0.0.1', host: '127.0.0.1' }, { bind: '::1', host: '::1' }, { bind: '::', host: '127.0.0.1' }]

describe.skipIf(!supported)('ICMP unreachable', () => {
  cleanupNodes()

  describe.each(MODES)('%o', (mode) => {
    it.for(hosts)('a connection attempt to a closed port of $host (bound to $bind) fails with ECONNREFUSED at once', async ({ bind, host }, ctx) => {
      if (bind === '::1' && !await ipv6Available()) {
        console.warn('skipping: cannot bind ::1 on this machine')
        ctx.skip()
        return
      }
      const port = await closedUdpPort(host)
      const client = makeNode(mode) // the default timeout: 5000 ms
      await client.bindAsync(0, bind)
      const t0 = Date.now()
      const err = await client.connectAsync(port, host).then(() => null, (e: UtpError) => e)
      const elapsed = Date.now() - t0
      expect(err).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect', address: host, port })
      expect(elapsed).toBeLessThan(1000)
      expect(client.stats().unreachable).toBeGreaterThanOrEqual(1)
      expect(client.stats().clientConnections).toBe(0)
    })

    it('the report fails only the attempts to that address: one to a live port at the same time connects', async () => {
      const { port: live } = await listeningNode(mode, s => s.end('hi'))
      const dead = await closedUdpPort('127.0.0.1')
      const client = makeNode(mode)
      await client.bindAsync(0, '127.0.0.1')
      const [refused, connected] = await Promise.allSettled([client.connectAsync(dead, '127.0.0.1'), client.connectAsync(live, '127.0.0.1')])
      expect(refused.status === 'rejected' && (refused.reason as UtpError).code).toBe('ECONNREFUSED')
      expect(connected.status).toBe('fulfilled')
      const s = (connected as PromiseFulfilledResult<Socket>).value
      s.setEncoding('utf8')
      expect(await once(s, 'data')).toBe('hi')
    })

    it("an open connection ignores the ICMP of its vanished peer's host and ends by the timeout", async () => {
      const timeout = 1000
      const { port } = await listeningNode({ ...mode, timeout }, s => {
        s.on('error', () => {}) // the server side times out too
        s.resume()
      })
      // The client talks to the relay's port; closing the relay's socket makes the peer vanish the way a crashed
      // process does, and the loopback host answers every datagram to that port with a port unreachable
      const relay = await createRelay(port)
      const client = makeNode({ ...mode, timeout })
      const socket = await client.connectAsync(relay.port, '127.0.0.1')
      socket.write('hello')
      await new Promise(resolve => setTimeout(resolve, 50))
      await relay.close()
      const t0 = Date.now()
      const events: string[] = []
      socket.on('timeout', () => events.push('timeout'))
      // The node hears of it too, with the socket (docs/api.md, the node's 'timeout')
      client.on('timeout', (s: Socket) => events.push(s === socket ? 'node timeout' : 'node timeout, another socket'))
      socket.on('error', (e: UtpError) => events.push(`error ${e.code}`))
      socket.write('into the void') // retransmitted until the end: one port unreachable each
      await closed(socket)
      const elapsed = Date.now() - t0
      expect(events).toEqual(['timeout', 'node timeout', 'error ETIMEDOUT'])
      expect(elapsed).toBeGreaterThanOrEqual(1500) // twice the timeout, less slack: not cut short
      expect(client.stats().unreachable).toBeGreaterThanOrEqual(1)
    })
  })
})
