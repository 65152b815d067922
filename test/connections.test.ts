// Many connections on one node, and one node acting as server and client on the same port
import { describe, expect, it } from 'vitest'

import { cleanupNodes, closed, listeningNode, makeNode, once, type Socket } from './helpers/utp'

function echoUntilEnd (socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => { text += d })
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
  })
}

describe('connections', () => {
  cleanupNodes()

  it('1,000 concurrent connections to one server node all echo, all open at once', async () => {
    let accepted = 0
    const { node: server, port } = await listeningNode(undefined, socket => {
      accepted++
      socket.setEncoding('utf8')
      // Echo, and end only after the client ended: every connection stays open until all 1,000 echoed
      socket.on('data', (d: string) => socket.write(d))
      socket.on('end', () => socket.end())
    })
    const clients = [makeNode(), makeNode(), makeNode(), makeNode()]
    const sockets: Socket[] = []
    const echoes: Array<Promise<string>> = []
    for (let i = 0; i < 1000; i++) {
      const socket = clients[i % clients.length].connect(port)
      sockets.push(socket)
      socket.setEncoding('utf8')
      const text = `message ${i}`
      echoes.push(new Promise((resolve, reject) => {
        let got = ''
        socket.on('data', (d: string) => {
          got += d
          if (got.length >= text.length) resolve(got)
        })
        socket.once('error', reject)
      }))
      socket.write(text)
    }
    const texts = await Promise.all(echoes)
    texts.forEach((t, i) => expect(t).toBe(`message ${i}`))
    // The peak: all 1,000 open on both sides at the same moment
    expect({ accepted, server: server.serverConnections, clients: clients.reduce((n, c) => n + c.clientConnections, 0) })
      .toEqual({ accepted: 1000, server: 1000, clients: 1000 })
    const ends = sockets.map(echoUntilEnd)
    for (const s of sockets) s.end()
    expect(await Promise.all(ends)).toEqual(sockets.map(() => ''))
    await Promise.all(sockets.map(closed))
    expect(clients.reduce((n, c) => n + c.clientConnections, 0)).toBe(0)
  })

  it('one node is server and client on one port at the same time (A <-> B both ways)', async () => {
    const greet = (name: string) => (socket: Socket): void => {
      socket.setEncoding('utf8')
      socket.on('data', (d: string) => socket.end(`${name} heard ${d}`))
    }
    const a = makeNode(greet('A'))
    const b = makeNode(greet('B'))
    const { port: portA } = await a.bindAsync(0, '127.0.0.1')
    const { port: portB } = await b.bindAsync(0, '127.0.0.1')
    await Promise.all([a.listenAsync(), b.listenAsync()])

    const fromA = a.connect(portB, '127.0.0.1')
    const fromB = b.connect(portA, '127.0.0.1')
    fromA.end('hi from A')
    fromB.end('hi from B')
    const [replyToA, replyToB] = await Promise.all([echoUntilEnd(fromA), echoUntilEnd(fromB)])
    expect(replyToA).toBe('B heard hi from A')
    expect(replyToB).toBe('A heard hi from B')
    expect(a.address().port).toBe(portA)
    expect(fromA.localPort).toBe(portA)
    expect(fromA.address().port).toBe(portB)
    expect(fromB.remotePort).toBe(portA)
    await Promise.all([closed(fromA), closed(fromB)])
  })

  it('connectAsync resolves with a connected socket and Node emits connect', async () => {
    const { port } = await listeningNode(undefined, s => s.pipe(s))
    const client = makeNode()
    const nodeConnect = once<Socket>(client, 'connect')
    const socket = await client.connectAsync(port)
    expect(socket.connecting).toBe(false)
    expect(await nodeConnect).toBe(socket)
    socket.end('x')
    expect(await echoUntilEnd(socket)).toBe('x')
  })

  it('listen() and connect() before bind() wait for that bind (the order utp-punch allowed)', async () => {
    const probe = makeNode()
    const { port } = await probe.bindAsync(0, '127.0.0.1')
    await probe.closeAsync()
    const server = makeNode(s => s.end('early'))
    const order: string[] = []
    server.listen(() => order.push('listening'))
    server.on('bound', () => order.push('bound'))
    server.bind(port, '127.0.0.1') // same tick as listen(): this bind decides the port
    expect(server.address().port).toBe(port)
    const client = makeNode()
    const socket = client.connect(port)
    client.bind(0, '127.0.0.1')
    expect(socket.address().address).toBe('127.0.0.1')
    expect(await echoUntilEnd(socket)).toBe('early')
    expect(order).toEqual(['bound', 'listening'])
  })
})
