// The two examples of utp-punch's README, run as written (ports chosen by the OS instead of fixed ones)
import { describe, expect, it } from 'vitest'

import { cleanupNodes, makeNode, once } from './helpers/utp'

describe('README examples', () => {
  cleanupNodes()

  it('general usage: hello / world, then both nodes close', async () => {
    const log: string[] = []
    const server = makeNode(socket => {
      log.push('server: socket connected')
      socket.on('data', data => {
        log.push(`server: received '${data.toString()}'`)
        socket.write('world')
        socket.end()
      })
      socket.on('end', () => {
        log.push('server: socket disconnected')
        server.close()
      })
    })
    server.bind(0, '127.0.0.1')
    server.listen(() => log.push('server: ready'))
    const port = server.address().port

    const client = makeNode()
    client.bind()
    client.connect(port, '127.0.0.1', socket => {
      log.push('client: socket connected')
      socket.on('data', data => log.push(`client: received '${data.toString()}'`))
      socket.on('end', () => {
        log.push('client: socket disconnected')
        client.close()
      })
      socket.write('hello')
    })

    await Promise.all([once(server, 'close'), once(client, 'close')])
    expect(log).toContain('server: ready')
    expect(log).toContain('server: socket connected')
    expect(log).toContain('client: socket connected')
    expect(log).toContain("server: received 'hello'")
    expect(log).toContain("client: received 'world'")
    expect(log).toContain('server: socket disconnected')
    expect(log).toContain('client: socket disconnected')
    expect(log.indexOf('server: ready')).toBeLessThan(log.indexOf('server: socket connected'))
  })

  it('hole punching: both sides punch, then the client connects', async () => {
    const server = makeNode(socket => {
      socket.on('data', data => {
        socket.end(`pong:${data.toString()}`)
      })
    })
    server.bind(0, '127.0.0.1')
    server.listen()
    const client = makeNode()
    client.bind(0, '127.0.0.1') // the client needs a dedicated port, just as the server
    const serverPort = server.address().port
    const clientPort = client.address().port

    const serverPunched = new Promise<boolean>(resolve => {
      server.punch(10, clientPort, '127.0.0.1', success => resolve(success))
    })
    const reply = new Promise<string>((resolve, reject) => {
      client.punch(10, serverPort, '127.0.0.1', success => {
        if (!success) {
          reject(new Error('client punch failed'))
          return
        }
        client.connect(serverPort, '127.0.0.1', socket => {
          let text = ''
          socket.on('data', d => { text += d.toString() })
          socket.on('end', () => resolve(text))
          socket.on('error', reject)
          socket.write('ping')
        })
        client.on('timeout', () => reject(new Error('timeout')))
      })
    })
    expect(await serverPunched).toBe(true)
    expect(await reply).toBe('pong:ping')
  })
})
