// IPv6: bind ::1, connect over the IPv6 loopback; and dual-stack default binds reaching IPv4 peers
import { describe, expect, it } from 'vitest'

import { cleanupNodes, makeNode, Node, once, type Socket } from './helpers/utp'

async function ipv6Available (): Promise<boolean> {
  const n = new Node()
  try {
    await n.bindAsync(0, '::1')
    return true
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT') return false
    throw e
  } finally {
    await n.closeAsync()
  }
}

describe('IPv6', () => {
  cleanupNodes()

  it('connects over ::1', async (ctx) => {
    if (!await ipv6Available()) {
      console.warn('skipping: cannot bind ::1 on this machine (EADDRNOTAVAIL)')
      ctx.skip()
      return
    }
    let serverSocket!: Socket
    const server = makeNode(s => {
      serverSocket = s
      s.setEncoding('utf8')
      s.on('data', (d: string) => s.end(`v6 ${d}`))
    })
    const { port, family, address } = await server.bindAsync(0, '::1')
    expect(family).toBe('IPv6')
    expect(address).toBe('::1')
    await server.listenAsync()
    const client = makeNode()
    await client.bindAsync(0, '::1')
    const socket = client.connect(port, '::1')
    expect(socket.remoteFamily).toBe('IPv6')
    socket.end('hello')
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => { text += d })
    await once(socket, 'end')
    expect(text).toBe('v6 hello')
    expect(serverSocket.remoteAddress).toBe('::1')
    expect(serverSocket.remoteFamily).toBe('IPv6')
    expect(serverSocket.remotePort).toBe(client.address().port)
  })

  it('a default (dual-stack) bind talks to IPv4 peers and shows them as IPv4', async () => {
    let serverSocket!: Socket
    const server = makeNode(s => {
      serverSocket = s
      s.resume()
      s.end('ok')
    })
    const { port } = await server.bindAsync() // '::' when the OS allows, else 0.0.0.0
    await server.listenAsync()
    const client = makeNode()
    await client.bindAsync(0, '127.0.0.1')
    const socket = client.connect(port, '127.0.0.1')
    socket.resume()
    await once(socket, 'end')
    expect(serverSocket.remoteAddress).toBe('127.0.0.1')
    expect(serverSocket.remoteFamily).toBe('IPv4')
  })

  it('host names are looked up (localhost)', async () => {
    const server = makeNode(s => s.end('named'))
    const { port } = await server.bindAsync(0, 'localhost')
    await server.listenAsync()
    const bound = server.address().address
    const socket = makeNode().connect(port, 'localhost')
    let text = ''
    socket.on('data', (d: Buffer) => { text += d.toString() })
    await once(socket, 'end')
    expect(text).toBe('named')
    expect(['127.0.0.1', '::1']).toContain(bound)
  })
})
