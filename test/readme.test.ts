// The two examples of utp-punch's README, run as written (ports chosen by the OS instead of fixed ones), and
// this package's README quick start
import { spawn } from 'child_process'
import * as dgram from 'dgram'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'

import { describe, expect, it } from 'vitest'

import { cleanupNodes, makeNode, once, root } from './helpers/utp'

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

// This package's own README: its quick-start code, extracted from README.md and run as a program of its own
describe('this README\'s quick start', () => {
  it('runs as written: the three lines it prints, then the program exits by itself', async () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('## Quick start'))
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1] ?? ''
    expect(code).toContain("require('utp-punch-rs')")
    // The one change: a free port instead of the fixed 20000, which another program may hold
    const port = await freeUdpPort()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-readme-'))
    try {
      // require('utp-punch-rs') resolves to this package, as it does for an installed one
      fs.mkdirSync(path.join(dir, 'node_modules'))
      fs.symlinkSync(root, path.join(dir, 'node_modules', 'utp-punch-rs'), 'dir')
      fs.writeFileSync(path.join(dir, 'quickstart.js'), code.replaceAll('20000', String(port)))
      const run = await new Promise<{ code: number | null, out: string }>((resolve) => {
        const child = spawn(process.execPath, ['quickstart.js'], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] })
        let out = ''
        child.stdout.on('data', (d: Buffer) => { out += d.toString() })
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        child.once('close', (exit) => {
          clearTimeout(timer)
          resolve({ code: exit, out })
        })
      })
      expect(run).toEqual({ code: 0, out: "server: ready\nserver: received 'hello'\nclient: received 'world'\n" })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** A UDP port free on 127.0.0.1 a moment ago */
async function freeUdpPort (): Promise<number> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  const port = s.address().port
  await new Promise<void>((resolve) => s.close(resolve))
  return port
}
