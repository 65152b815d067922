// Who does the I/O: the JS thread's event loop (quiet nodes, the default), the native driver thread (busy
// nodes, and always with ioThread: true), and the hand-offs between them in the middle of a transfer
import { execFileSync } from 'child_process'
import { once } from 'events'
import { readdirSync, readFileSync } from 'fs'
import { Worker } from 'worker_threads'

import { describe, expect, it } from 'vitest'

import { cleanupNodes, closed, closedUdpPort, drainHash, listeningNode, makeNode, root, sleep, udpPortFree, writeRandom, type Socket } from './helpers/utp'

const MiB = 1024 * 1024
// The stall test runs in both modes: the driver thread has to cope with the same stalls
const MODES = [{ ioThread: false }, { ioThread: true }]

async function echoRounds (socket: Socket, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    const message = Buffer.from(`ping ${i}`)
    const back = new Promise<Buffer>(resolve => socket.once('data', resolve))
    socket.write(message)
    expect((await back).toString()).toBe(message.toString())
  }
}

/** How many times this process's threads have gone to sleep (voluntary context switches), all threads summed */
function threadSleeps (): number {
  let total = 0
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8')
      total += Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0)
    } catch {
      // the thread ended meanwhile
    }
  }
  return total
}

function blockFor (ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) {
    // the event loop (and with it loop-mode I/O) is stuck here, as in an application doing heavy work
  }
}

describe('I/O modes', () => {
  cleanupNodes()

  it('ioThread: true moves 16 MiB each way and echoes small messages on the native thread', async () => {
    const size = 16 * MiB
    const options = { allowHalfOpen: true, ioThread: true }
    let serverSide: Promise<[string, { bytes: number, sha256: string }]> | undefined
    const { port } = await listeningNode(options, socket => {
      serverSide = Promise.all([writeRandom(socket, size), drainHash(socket)])
    })
    const socket = makeNode(options).connect(port)
    const [sent, received] = await Promise.all([writeRandom(socket, size), drainHash(socket)])
    const [serverSent, serverReceived] = await (serverSide as NonNullable<typeof serverSide>)
    expect(received).toEqual({ bytes: size, sha256: serverSent })
    expect(serverReceived).toEqual({ bytes: size, sha256: sent })
    await closed(socket)

    const { port: echoPort } = await listeningNode(options, s => s.pipe(s))
    const echo = makeNode(options).connect(echoPort)
    await echoRounds(echo, 50)
    echo.end()
    await closed(echo)
  })

  it.each(MODES)('a JavaScript thread that blocks mid-transfer loses nothing, and echo works after (%o)', async (MODE) => {
    const size = 24 * MiB
    let received: Promise<{ bytes: number, sha256: string }> | undefined
    const { port } = await listeningNode(MODE, socket => { received = drainHash(socket) })
    const socket = makeNode(MODE).connect(port)
    socket.resume() // the server ends its side too: reading ours lets 'close' come
    // Stall the event loop a few times while the transfer runs: the receiving socket piles up datagrams, the
    // next loop turn meets a backlog and hands the node to the driver, which hands it back once traffic stops
    const stalls = setInterval(() => blockFor(60), 40)
    let sent: string
    try {
      sent = await writeRandom(socket, size)
      expect(await (received as NonNullable<typeof received>)).toEqual({ bytes: size, sha256: sent })
    } finally {
      clearInterval(stalls)
    }
    await closed(socket)

    const { port: echoPort } = await listeningNode({}, s => s.pipe(s))
    const echo = makeNode().connect(echoPort)
    await echoRounds(echo, 50)
    // Quiet for longer than the driver's 2 ms hand-back delay, then the same again
    await new Promise(resolve => setTimeout(resolve, 20))
    await echoRounds(echo, 50)
    echo.end()
    await closed(echo)
  })

  it('closed nodes are garbage collected in either mode, bound or not, or after a refused bind', () => {
    // The native side keeps a reference to the wake callback, which closes over the Node: it must let go
    const script = `
      const Node = require(${JSON.stringify(root)})
      const collected = []
      const registry = new FinalizationRegistry(k => collected.push(k))
      async function make (k, opts, bind) {
        const n = new Node(opts)
        registry.register(n, k)
        if (bind) await n.bindAsync(bind, '127.0.0.1').catch(() => {})
        await new Promise(resolve => n.close(resolve))
      }
      ;(async () => {
        await make('loop', {}, 0)
        await make('thread', { ioThread: true }, 0)
        await make('unbound', {}, false)
        // A bind refused its port made a native node of its own, closed again at once
        const taken = require('dgram').createSocket('udp4')
        await new Promise(resolve => taken.bind(0, '127.0.0.1', resolve))
        await make('refused', {}, taken.address().port)
        taken.close()
        for (let i = 0; i < 20 && collected.length < 4; i++) {
          await new Promise(resolve => setTimeout(resolve, 20))
          global.gc()
        }
        console.log(collected.sort().join(','))
      })()`
    const out = execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 20000 })
    expect(out.trim()).toBe('loop,refused,thread,unbound')
  })

  it('a node still bound when its worker ends (unref()ed, never closed) lets its port go, in either mode', async () => {
    // The worker's end collects the node; its native side must wind down then, not leave the socket and the driver
    // running in the process for good. A node of ours stays bound meanwhile, as in a program that uses workers: the
    // native runtime then outlives the worker, and so would a driver nobody stopped
    await makeNode().bindAsync(0, '127.0.0.1')
    const portFreed = async (port: number): Promise<boolean> => {
      for (let i = 0; i < 100; i++) {
        if (await udpPortFree(port)) return true
        await sleep(20)
      }
      return false
    }
    for (const ioThread of [false, true]) {
      const worker = new Worker(`
        const { parentPort } = require('worker_threads')
        const Node = require(${JSON.stringify(root)})
        const n = new Node({ ioThread: ${String(ioThread)} })
        n.bindAsync(0, '127.0.0.1').then(() => { n.unref(); parentPort.postMessage(n.address().port) })`, { eval: true })
      try {
        // once() rejects if the worker's script throws
        const [port] = await once(worker, 'message') as [number]
        await once(worker, 'exit')
        expect(await portFreed(port), `ioThread: ${String(ioThread)}`).toBe(true)
      } finally {
        await worker.terminate()
      }
    }
  })

  // Linux: the ICMP error (the other systems tell an unconnected socket of none) and the thread counts (/proc)
  it.runIf(process.platform === 'linux').each(MODES)('an idle node sleeps: no CPU with an open connection, nor after an ICMP error (%o)', async (MODE) => {
    // Whoever does the I/O must wait on the socket and the next timer, not poll: a busy node costs a core, and
    // a node that wakes every few milliseconds costs a few percent of one, for each node. The ICMP error
    // matters: it leaves readiness behind that the driver has to start afresh from
    const { port } = await listeningNode(MODE, s => s.pipe(s))
    const client = makeNode(MODE)
    await client.bindAsync(0, '127.0.0.1')
    const refused = await client.connectAsync(await closedUdpPort('127.0.0.1'), '127.0.0.1').then(() => null, (e: { code?: string }) => e)
    expect(refused).toMatchObject({ code: 'ECONNREFUSED' })
    const socket = await client.connectAsync(port, '127.0.0.1')
    await echoRounds(socket, 5)
    await sleep(100) // the last acks and the driver's hand-back
    const before = process.cpuUsage()
    const sleepsBefore = threadSleeps()
    await sleep(1000)
    const used = process.cpuUsage(before)
    const sleeps = threadSleeps() - sleepsBefore
    // The keepalive and the other timers cost microseconds; a spinning thread, most of the second. Each timer
    // that fires wakes a thread: about 10 do in this second, a 2 ms poll would be 500
    expect((used.user + used.system) / 1000, 'CPU ms while idle for 1000 ms').toBeLessThan(200)
    expect(sleeps, 'times a thread woke and slept again while idle for 1000 ms').toBeLessThan(100)
    await echoRounds(socket, 5)
  })

  it('on the JavaScript-thread loop, a reply written in the \'data\' handler leaves with the ACK of what it answers', async () => {
    // A quiet node's I/O runs on this thread (the default, ioThread: false): the loop callback that reads a message
    // hands it to JavaScript, and what the handler writes goes out in the same callback, in the packet that carries
    // the ACK. Delivered later (the threadsafe function's wake), the ACK would leave alone first: two packets each
    let server: Socket | undefined
    const { port } = await listeningNode({}, (s) => {
      server = s
      s.on('data', (d: Buffer) => s.write(d))
    })
    const client = makeNode()
    const socket = client.connect(port, '127.0.0.1')
    await once(socket, 'connect')
    const pings = 20
    for (let i = 0; i < pings; i++) {
      // Quiet long enough for the node to be handed back to its loop (2 ms)
      await sleep(20)
      socket.write(`ping ${i}`)
      await once(socket, 'data')
    }
    const sent = (server as Socket).stats()?.packetsSent ?? 0
    // The SYN-ACK and one packet per echo; a bare ACK now and then is not one per message
    expect(sent).toBeLessThan(pings + 6)
  })

  it('ioThread must be a boolean', () => {
    expect(() => makeNode({ ioThread: 'yes' as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })
})
