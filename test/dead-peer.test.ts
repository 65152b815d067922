// A sender that vanishes mid-stream (SIGKILL: no FIN, no RESET) must end the receiving connection (issue 11,
// item 0). The sender is a child process (helpers/dead-peer-sender.js, or the CLI) killed once the receiver
// holds some but not all of the data; the receiver must notice by its unanswered keepalives alone.
//
// docs/api.md, Node options: a peer silent for `timeout` ms while we wait on it (a keepalive, sent after
// `keepAlive` ms of idle sending) makes the socket emit 'timeout'; it fails with ETIMEDOUT once twice `timeout`
// passed without a packet, counted from the first unanswered keepalive (so up to `keepAlive` later). Counted
// from the kill (taken once the process is gone, so after its last packet): 'timeout' within
// timeout + keepAlive, ETIMEDOUT within 2 × timeout + keepAlive. SLACK_MS covers timer and scheduling lateness.
import { spawn, type ChildProcess } from 'child_process'
import { createCipheriv, randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

import type * as ClientModule from '../lib/rendezvous/client'
import type * as ServerModule from '../lib/server/server'
import { cleanupNodes, listeningNode, makeNode, requireFromRoot, root, sleep, type Socket } from './helpers/utp'

const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
const { rendezvous } = requireFromRoot('./dist/lib/rendezvous/client.js') as typeof ClientModule

const SENDER = path.join(__dirname, 'helpers', 'dead-peer-sender.js')
const CLI = path.join(root, 'bin', 'utp-punch-rs.js')
const SLACK_MS = 500
/**
 * The receiver's options in the library cases: a short silence limit, and keepalives well inside it, so a live
 * peer's answers never let the silence reach `timeout` (with keepAlive = timeout a live idle peer trips the
 * 'timeout' notice every other second) and only a dead one can produce 'timeout'
 */
const TIMEOUT_MS = 1000
const KEEPALIVE_MS = 250
/**
 * What the CLI's Node runs with: the documented defaults (the CLI has no flag for them; --timeout is the
 * rendezvous's). A failed transfer exits at once (its node closes with no connection left to finish), so
 * SLACK_MS covers that too
 */
const CLI_TIMEOUT_MS = 5000
const CLI_KEEPALIVE_MS = 1000
/** Far more than any test can move before it is killed, so the kill always lands mid-stream */
const TOTAL = 1 << 30
/** The receiver holds at least this much before the sender is killed */
const SOME = 1 << 20

const children = new Set<ChildProcess>()
let tmp = ''

cleanupNodes()

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-dead-peer-'))
})

afterEach(() => {
  // Only the processes this file started, and only those still running (a failed test may leave one)
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  children.clear()
})

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true })
})

interface Child {
  child: ChildProcess
  /** Resolves on the child's `connected` line; rejects on its `error` line or an early exit */
  connected: Promise<void>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }>
}

function run (file: string, args: string[]): Child {
  const child = spawn(process.execPath, [file, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  let pending = ''
  let onLine = (_line: string): void => {}
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString()
    const lines = (pending + d.toString()).split('\n')
    pending = lines.pop() as string
    for (const line of lines) onLine(line)
  })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  const connected = new Promise<void>((resolve, reject) => {
    onLine = (line) => {
      if (line === 'connected') resolve()
      else if (line.startsWith('error ')) reject(new Error(`the sender failed: ${line.slice(6)}`))
    }
    void exited.then((r) => reject(new Error(`the sender exited (${String(r.code ?? r.signal)}) before connecting: ${r.stdout}${r.stderr}`)))
  })
  connected.catch(() => { /* only the helper prints `connected`: the CLI's children are never asked */ })
  return { child, connected, exited }
}

/** SIGKILL by PID; resolves once the process is gone (so the clock starts with the peer really dead) */
async function kill (c: Child): Promise<number> {
  expect(c.child.pid).toBeTypeOf('number')
  process.kill(c.child.pid as number, 'SIGKILL')
  const r = await c.exited
  expect(r.signal).toBe('SIGKILL')
  return Date.now()
}

interface Seen { event: string, atMs: number, code?: string }

/** What a receiving socket does after `since()`: 'timeout', 'error' (with code), 'end', 'close', with times */
function watch (socket: Socket, since: () => number): { seen: Seen[], closed: Promise<void> } {
  const seen: Seen[] = []
  const at = (): number => Date.now() - since()
  socket.on('timeout', () => seen.push({ event: 'timeout', atMs: at() }))
  socket.on('error', (err: NodeJS.ErrnoException) => seen.push({ event: 'error', atMs: at(), code: err.code }))
  socket.on('end', () => seen.push({ event: 'end', atMs: at() }))
  const closed = new Promise<void>(resolve => socket.once('close', () => {
    seen.push({ event: 'close', atMs: at() })
    resolve()
  }))
  return { seen, closed }
}

/**
 * Waits (at most the ETIMEDOUT limit past the kill, plus a little to see what comes late) for the socket to
 * fail, then checks it said 'timeout' within timeout + keepAlive and then failed with ETIMEDOUT within
 * 2 × timeout + keepAlive (each plus SLACK_MS). The events and their times are in the assertion, so a failure
 * shows what happened instead.
 */
async function expectTimedOut (w: { seen: Seen[], closed: Promise<void> }): Promise<string> {
  const noticeLimitMs = TIMEOUT_MS + KEEPALIVE_MS + SLACK_MS
  const errorLimitMs = 2 * TIMEOUT_MS + KEEPALIVE_MS + SLACK_MS
  await Promise.race([w.closed, sleep(errorLimitMs + 2000)])
  const events = w.seen.filter(s => s.event !== 'close').map(s => s.code === undefined ? s.event : `${s.event} ${s.code}`)
  const notice = w.seen.find(s => s.event === 'timeout')
  const error = w.seen.find(s => s.event === 'error')
  expect({
    events,
    noticeWithinLimit: notice !== undefined && notice.atMs <= noticeLimitMs,
    errorWithinLimit: error !== undefined && error.atMs <= errorLimitMs,
    seen: w.seen
  }).toMatchObject({ events: ['timeout', 'error ETIMEDOUT'], noticeWithinLimit: true, errorWithinLimit: true })
  return w.seen.map(s => `${s.event}${s.code === undefined ? '' : ` ${s.code}`} at ${s.atMs} ms`).join(', ')
}

/** `n` bytes of the AES-128-CTR keystream the sender writes for `key` */
function keystream (key: Buffer, n: number): Buffer {
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n))
}

/**
 * Reads `socket`, kills `sender` once SOME bytes arrived, then checks the socket fails in time and that what
 * arrived (before and after the kill) is a prefix of what was sent
 */
async function killMidStreamAndExpectTimeout (socket: Socket, sender: Child, key: Buffer): Promise<{ bytes: number, events: string }> {
  let killedAt = 0
  const w = watch(socket, () => killedAt)
  const chunks: Buffer[] = []
  let got = 0
  const some = new Promise<void>(resolve => socket.on('data', (d: Buffer) => {
    chunks.push(d)
    got += d.length
    if (got >= SOME) resolve()
  }))
  await Promise.race([some, w.closed])
  expect({ got: got >= SOME, seen: w.seen }).toEqual({ got: true, seen: [] })
  killedAt = await kill(sender)
  const events = await expectTimedOut(w)
  const received = Buffer.concat(chunks)
  expect(received.length).toBeLessThan(TOTAL)
  expect(received.equals(keystream(key, received.length))).toBe(true)
  return { bytes: received.length, events }
}

describe('a receiver whose sender is SIGKILLed', () => {
  it('mid-stream on a plain connection: \'timeout\', then ETIMEDOUT within 2 × timeout + keepAlive, data intact', async () => {
    let onConnection = (_s: Socket): void => {}
    const accepted = new Promise<Socket>(resolve => { onConnection = resolve })
    const { port } = await listeningNode({ timeout: TIMEOUT_MS, keepAlive: KEEPALIVE_MS }, (s) => onConnection(s))
    const key = randomBytes(16)
    const sender = run(SENDER, ['direct', String(port), key.toString('hex'), String(TOTAL)])
    await sender.connected
    const r = await killMidStreamAndExpectTimeout(await accepted, sender, key)
    console.log(`plain connection: ${r.bytes} bytes received; after the kill: ${r.events}`)
  }, 30_000)

  it('idle since it connected: \'timeout\', then ETIMEDOUT within 2 × timeout + keepAlive', async () => {
    let onConnection = (_s: Socket): void => {}
    const accepted = new Promise<Socket>(resolve => { onConnection = resolve })
    const { port } = await listeningNode({ timeout: TIMEOUT_MS, keepAlive: KEEPALIVE_MS }, (s) => onConnection(s))
    const sender = run(SENDER, ['direct', String(port), '00'.repeat(16), '0'])
    await sender.connected
    const socket = await accepted
    let killedAt = 0
    const w = watch(socket, () => killedAt)
    let got = 0
    socket.on('data', (d: Buffer) => { got += d.length })
    killedAt = await kill(sender)
    const events = await expectTimedOut(w)
    expect(got).toBe(0)
    console.log(`idle connection; after the kill: ${events}`)
  }, 30_000)

  describe('through a rendezvous server', () => {
    let server: ServerModule.RendezvousServer
    let addr = ''

    beforeAll(async () => {
      // The relay is capped, as it is in the CLI tests, so the kill still lands mid-stream
      server = new RendezvousServer({ port: 0, host: '127.0.0.1', relayRate: 20_000_000 })
      const { port } = await server.listen()
      addr = `127.0.0.1:${port}`
    })

    afterAll(async () => {
      await server.close()
    })

    it('mid-stream on the relay path: \'timeout\', then ETIMEDOUT within 2 × timeout + keepAlive, data intact', async () => {
      const node = makeNode({ timeout: TIMEOUT_MS, keepAlive: KEEPALIVE_MS })
      await node.bindAsync(0, '127.0.0.1')
      const key = randomBytes(16)
      const code = `relay-${randomBytes(4).toString('hex')}`
      const sender = run(SENDER, ['relay', addr, code, key.toString('hex'), String(TOTAL)])
      // Plain uTP on both sides: this is about the connection's dead-peer clock, not the stream on top
      const met = await rendezvous(node, { server: addr, code, forceRelay: true, encrypt: false })
      expect(met.path).toBe('relay')
      await sender.connected
      const r = await killMidStreamAndExpectTimeout(met.socket, sender, key)
      console.log(`relay path: ${r.bytes} bytes received; after the kill: ${r.events}`)
    }, 30_000)

    /**
     * `send` and `receive` CLIs; kills the sender once the receiver's partial file holds SOME bytes and expects
     * the receiver to exit 1 saying the sender stopped responding (ETIMEDOUT), within 2 × timeout + keepAlive of its default Node
     * options (plus SLACK_MS)
     */
    async function cliKilledMidStream (relay: boolean): Promise<{ ms: number, lastLine: string }> {
      const extra = relay ? ['--force-relay'] : []
      const relaysBefore = server.stats().relays
      const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
      const src = path.join(tmp, `big-${randomBytes(4).toString('hex')}.bin`)
      // Sparse: the sender reads 1 GiB of zeros without it taking disk space
      fs.closeSync(fs.openSync(src, 'w'))
      fs.truncateSync(src, TOTAL)
      const code = `cli-${randomBytes(4).toString('hex')}`
      const receiver = run(CLI, ['receive', '--rendezvous', addr, '--code', code, '--out', dir, '--yes', ...extra])
      const sender = run(CLI, ['send', src, '--rendezvous', addr, '--code', code, ...extra])
      const partial = path.join(dir, `${path.basename(src)}.part`)
      const size = (): number => fs.statSync(partial, { throwIfNoEntry: false })?.size ?? 0
      // Evidence of progress: the receiver's partial file grows past SOME (polled; bounded by the test's timeout)
      let receiverDone = false
      void receiver.exited.then(() => { receiverDone = true })
      while (size() < SOME && !receiverDone && sender.child.exitCode === null) await sleep(10)
      expect({ partial: size() >= SOME, receiverDone }).toEqual({ partial: true, receiverDone: false })
      const killedAt = await kill(sender)
      const limitMs = 2 * CLI_TIMEOUT_MS + CLI_KEEPALIVE_MS + SLACK_MS
      const r = await Promise.race([receiver.exited, sleep(limitMs + 2000).then(() => null)])
      const ms = Date.now() - killedAt
      const lastLine = r?.stderr.trimEnd().split('\n').pop()
      expect({ exited: r !== null, ms: ms <= limitMs ? 'within limit' : ms, code: r?.code, lastLine, stderr: r?.stderr })
        .toMatchObject({ exited: true, ms: 'within limit', code: 1, lastLine: expect.stringMatching(/^utp-punch-rs: the sender stopped responding after [\d.]+ of [\d.]+ MB \(the connection timed out\); kept the partial \S+\.part \([\d.]+ of [\d.]+ MB\): run the same receive again to resume$/) })
      // The partial file is kept to be resumed (issue 13), nothing else is left behind
      expect(fs.readdirSync(dir)).toEqual([path.basename(partial)])
      fs.rmSync(src)
      // The path the test names is the one the bytes took
      expect(server.stats().relays - relaysBefore).toBe(relay ? 1 : 0)
      return { ms, lastLine: lastLine as string }
    }

    it('the CLI: a receive whose send is killed mid-transfer exits 1: the sender stopped responding (punched path, no relay)', async () => {
      const r = await cliKilledMidStream(false)
      console.log(`CLI, punched path: receive exited ${r.ms} ms after the kill: ${r.lastLine}`)
    }, 30_000)

    it('the CLI: a receive whose send is killed mid-transfer exits 1: the sender stopped responding (relay path)', async () => {
      const r = await cliKilledMidStream(true)
      console.log(`CLI, relay path: receive exited ${r.ms} ms after the kill: ${r.lastLine}`)
    }, 30_000)
  })
})
