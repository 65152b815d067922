// What the Node does when the native side fails in ways a test on a healthy machine cannot provoke: a kernel
// without IPv6, a bind that fails for want of file descriptors, a driver that died (its close() throws), and a
// fatal socket error (recvmsg failing for good, reported as SOCKET_ERROR then NODE_CLOSED). The real addon
// runs underneath; a thin stand-in in front of it (helpers/native-stand-in.cjs) fails the one call the test
// names, the way the binding documents (docs/native-binding.md), and everything else goes through.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'

import { afterEach, describe, expect, it } from 'vitest'

import type * as NativeModule from '../lib/native'
import { installStandIn, type Faults, type Made } from './helpers/native-stand-in.cjs'
import { makeNode, requireFromRoot, root, sleep, type Node, type Socket, type UtpError } from './helpers/utp'

const native = requireFromRoot('./dist/lib/native.js') as typeof NativeModule
const { Kind } = native

/** The natives made since install(), to inject events into */
const made: Made[] = []
let restore: (() => void) | null = null

/** Put the stand-in in front of the real addon for nodes made from now on */
function install (faults: Faults): void {
  restore = installStandIn(native, faults, made).restore
}

const nodes: Node[] = []

function node (): Node {
  const n = makeNode()
  nodes.push(n)
  return n
}

/** What the driver reports when recvmsg fails for good (ENOBUFS, 105 on Linux): SOCKET_ERROR, then NODE_CLOSED */
const FATAL_RECV_ERROR = [Kind.SOCKET_ERROR, 0, 105, Kind.NODE_CLOSED, 0, 0]

/**
 * A server node over the stand-in, a client node, and the connection between them, seen from both ends;
 * `fail()` makes the server's socket fail for good
 */
async function connected (): Promise<{ server: Node, c: Socket, s: Socket, fail: () => void }> {
  install({})
  const server = node()
  const client = node()
  await server.bindAsync(0, '127.0.0.1')
  await server.listenAsync()
  const accepted = once(server, 'connection')
  const c = await client.connectAsync(server.address().port, '127.0.0.1')
  const [s] = await accepted as [Socket]
  const own = made.find(m => m.real.address()?.port === server.address().port)
  if (own === undefined) throw new Error('the server\'s native node was not made through the stand-in')
  return { server, c, s, fail: () => own.inject(FATAL_RECV_ERROR) }
}

/**
 * Run `body` in a child process, with the stand-in in front of the addon: the script sees `Node` and `made` (as
 * here). For what only a whole process shows: an uncaught error, a timer that holds it
 */
function inChild (body: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const script = `
    const native = require(${JSON.stringify(path.join(root, 'dist/lib/native.js'))})
    const Node = require(${JSON.stringify(root)})
    const made = []
    require(${JSON.stringify(path.join(root, 'test/helpers/native-stand-in.cjs'))}).installStandIn(native, {}, made)
    ${body}`
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000, env: { ...process.env, ...env } })
}

afterEach(async () => {
  restore?.()
  restore = null
  await Promise.all(nodes.splice(0).map(async (n) => { try { await n.closeAsync() } catch {} }))
  // A real node the stand-in told lib/ was closed, or that lib/ never got to close: close it here
  for (const m of made.splice(0)) {
    try { m.real.close(0) } catch {}
  }
})

describe('a Node over a native side that fails', () => {
  it('without IPv6 (binding :: refused for its family), a default bind falls back to 0.0.0.0', async () => {
    for (const code of ['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EINVAL', 'EPROTONOSUPPORT']) {
      install({ bind: { '::': code } })
      const n = node()
      const address = await n.bindAsync()
      expect(address).toMatchObject({ address: '0.0.0.0', family: 'IPv4' })
      expect(address.port).toBeGreaterThan(0)
      await n.closeAsync()
    }
  })

  it('a default bind refused for another reason is that error (no fallback), with dgram\'s fields', async () => {
    install({ bind: { '::': 'EMFILE' } })
    const n = node()
    const err = await n.bindAsync().then(() => null, (e: UtpError) => e)
    expect(err).toMatchObject({ code: 'EMFILE', syscall: 'bind', address: '::', port: 0 })
    expect(() => n.address()).toThrow()
  })

  it('an explicit bind to :: refused for its family is not moved to IPv4', async () => {
    install({ bind: { '::': 'EAFNOSUPPORT' } })
    const n = node()
    await expect(n.bindAsync(0, '::')).rejects.toMatchObject({ code: 'EAFNOSUPPORT', syscall: 'bind', address: '::' })
  })

  it('a UDP send whose automatic bind fails calls back with the bind\'s error, and the node emits it, as dgram does', async () => {
    install({ bind: { '::': 'EMFILE' } })
    const n = node()
    const emitted: string[] = []
    n.on('error', (e: UtpError) => emitted.push(e.code))
    const udp = n.getUdpSocket()
    const err = await new Promise<Error | null>((resolve) => udp.send(Buffer.from('x'), 9, '127.0.0.1', resolve))
    expect(err).toMatchObject({ code: 'EMFILE', syscall: 'bind' })
    await sleep(20)
    expect(emitted).toEqual(['EMFILE'])
  })

  it('after an automatic bind failed, the next operation binds on its own (it does not wait for the program\'s bind)', async () => {
    // EMFILE, say: out of file descriptors for a moment
    install({ bind: { '::': 'EMFILE' }, bindFailures: 1 })
    const n = node()
    n.on('error', () => {})
    const udp = n.getUdpSocket()
    const send = async (): Promise<Error | null> => await new Promise((resolve) => udp.send(Buffer.from('x'), 9, '127.0.0.1', resolve))
    expect(await send()).toMatchObject({ code: 'EMFILE' })
    expect(await send()).toBeNull()
    expect(n.address()).toMatchObject({ address: '::', family: 'IPv6' })
  })

  it('an automatic bind that failed for connect() (it emits) leaves a later one for connectAsync() silent', async () => {
    install({ bind: { '::': 'EMFILE' }, bindFailures: 2 })
    const n = node()
    const errors: string[] = []
    n.on('error', (e: UtpError) => errors.push(e.code))
    const c = n.connect(9, '127.0.0.1')
    await new Promise<void>((resolve) => c.once('error', () => resolve()))
    expect(errors).toEqual(['EMFILE'])
    await expect(n.connectAsync(9, '127.0.0.1')).rejects.toMatchObject({ code: 'EMFILE' })
    await sleep(20)
    expect(errors).toEqual(['EMFILE'])
  })

  it('a bind() that no bind could mend (not an OS error) fails what waited, and no automatic bind follows it', async () => {
    // connect() asks for an automatic bind on the next tick; the program's bind() in the same tick comes first and
    // fails for a reason no other bind would escape: the connection fails with it, and the node stays unbound
    install({ bind: { '127.0.0.1': 'ERR_UTP_RUNTIME' }, bindFailures: 1 })
    const n = node()
    const errors: string[] = []
    n.on('error', (e: UtpError) => errors.push(`node ${e.code}`))
    const c = n.connect(9, '127.0.0.1')
    c.on('error', (e: UtpError) => errors.push(`socket ${e.code}`))
    n.bind(0, '127.0.0.1')
    await sleep(50)
    expect(errors.sort()).toEqual(['node ERR_UTP_RUNTIME', 'socket ERR_UTP_RUNTIME'])
    expect(() => n.address()).toThrow(expect.objectContaining({ code: 'EBADF' }))
  })

  it('a native close() that throws (a dead driver): the error is emitted, then the node closes anyway', async () => {
    install({ close: true })
    const n = node()
    await n.bindAsync(0, '127.0.0.1')
    const order: string[] = []
    n.on('error', (e: Error) => order.push(`error ${e.message}`))
    n.on('close', () => order.push('close'))
    // (not events.once: it rejects on the 'error' this test expects)
    await new Promise<void>((resolve) => n.close(resolve))
    expect(order).toEqual(['error the driver panicked (from the test)', 'close'])
    expect(() => n.address()).toThrow()
  })

  it('a fatal socket error: \'error\' with recvmsg\'s errno, open connections end, then the node closes', async () => {
    const { server, c, s, fail } = await connected()
    const order: string[] = []
    server.on('error', (e: UtpError) => order.push(`error ${e.code} ${e.syscall} ${e.errno}`))
    server.on('close', () => order.push('node close'))
    s.on('close', () => order.push('socket close'))
    s.on('error', (e: UtpError) => order.push(`socket error ${e.code}`))
    s.resume()
    // (not events.once: it rejects on the 'error' this test expects)
    const closed = new Promise<void>((resolve) => server.once('close', () => resolve()))
    fail()
    await closed
    expect(order[0]).toBe('error ENOBUFS recvmsg -105')
    expect(order).toContain('socket close')
    expect(order.at(-1)).toBe('node close')
    expect(server.stats()).toMatchObject({ serverConnections: 0, listening: false })
    c.destroy()
  })

  it('listeners that throw during one batch: the batch is finished first, then the first error is thrown', () => {
    // Two fatal errors in one batch (as the driver's report of one would not be, but any two events could),
    // each heard by an 'error' listener that throws: the node still closes (the batch's NODE_CLOSED is not
    // lost), and after that the process gets the first error, not the last
    const child = inChild(`
      process.on('uncaughtException', (e) => console.log('uncaught ' + e.message))
      const n = new Node()
      n.on('error', (e) => { throw new Error('listener of ' + e.code) })
      n.on('close', () => console.log('closed'))
      n.bind(0, '127.0.0.1', () => made[0].inject(${JSON.stringify([Kind.SOCKET_ERROR, 0, 105, Kind.SOCKET_ERROR, 0, 104, Kind.NODE_CLOSED, 0, 0])}))`)
    expect(child.status, child.stderr).toBe(0)
    expect(child.stdout.trim().split('\n')).toEqual(['closed', 'uncaught listener of ENOBUFS'])
  })

  it('a fatal socket error while close() waits for writes: one \'error\', the node closes, no timer is left behind, and the debug log says what was lost', () => {
    // close() set a timer for the rest of its timeout (10 s here); the fatal error ended the node, so a timer
    // still running would only hold the process: its exit is measured. With the debug log on: the connection
    // ended without final numbers, and its closing line must say so (not throw)
    const child = inChild(`
      ;(async () => {
        const server = new Node({ timeout: 10000 })
        const client = new Node()
        await server.bindAsync(0, '127.0.0.1')
        await server.listenAsync()
        const accepted = new Promise(resolve => server.once('connection', resolve))
        const c = await client.connectAsync(server.address().port, '127.0.0.1')
        const s = await accepted
        c.pause() // takes nothing: the server's writes wait, and so does its close()
        c.on('error', () => {})
        s.on('error', () => {})
        const errors = []
        server.on('error', (e) => errors.push(e.code))
        for (let i = 0; i < 64; i++) s.write(Buffer.alloc(64 * 1024))
        const closed = new Promise(resolve => server.close(resolve))
        await new Promise(resolve => setTimeout(resolve, 50))
        console.log('errors before: ' + errors.join())
        made[0].inject(${JSON.stringify(FATAL_RECV_ERROR)})
        await closed
        await new Promise(resolve => setTimeout(resolve, 50))
        console.log('errors after: ' + errors.join())
        const at = Date.now()
        process.on('exit', () => console.log('exit ' + (Date.now() - at)))
        c.destroy()
        client.close()
      })()`, { NODE_DEBUG: 'utp-punch-rs' })
    expect(child.status, child.stderr).toBe(0)
    const [before, after, exit] = child.stdout.trim().split('\n')
    expect([before, after]).toEqual(['errors before: ', 'errors after: ENOBUFS'])
    expect(child.stderr).toMatch(/node 1 socket error ENOBUFS: the node closes\n/)
    expect(child.stderr).toMatch(/node 1 connection 1 with 127\.0\.0\.1:\d+ closed: aborted; no stats\n/)
    expect(Number(exit.replace('exit ', ''))).toBeLessThan(2000)
  })
})
