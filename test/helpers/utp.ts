// The package under test, loaded the way users load it (CommonJS require of the build), plus cleanup helpers
import { createHash, randomBytes } from 'crypto'
import * as dgram from 'dgram'
import { createRequire } from 'module'
import * as path from 'path'
import { afterEach, beforeEach, vi } from 'vitest'

export const root = path.join(__dirname, '..', '..')
export const requireFromRoot = createRequire(path.join(root, 'package.json'))

// Types come from the sources (index.ts is `export =` of lib/api's Node, which tsc cannot check as ESM)
import type { Node as NodeClass } from '../../lib/api'

export type NodeOptions = NodeClass.NodeOptions
export type Node = NodeClass
export type Socket = NodeClass.Socket
export type UtpError = NodeClass.UtpError
export const utp = requireFromRoot('./dist/index.js') as typeof NodeClass
export const Node = utp.Node
export const Socket = utp.Socket

/** The `.code` of what fn throws synchronously (undefined when it does not throw) */
export function codeOf (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    return (e as NodeJS.ErrnoException).code
  }
  return undefined
}

/** [class name, message] of what fn throws synchronously, or 'accepted' when it does not throw */
export function errorOf (fn: () => unknown): [string, string] | 'accepted' {
  try {
    fn()
  } catch (e) {
    return [(e as Error).constructor.name, (e as Error).message]
  }
  return 'accepted'
}

const live = new Set<Node>()

/** A Node closed automatically after the current test */
export function makeNode (options?: NodeOptions | ((s: Socket) => void), onconnection?: (s: Socket) => void): Node {
  const n = new Node(options, onconnection)
  live.add(n)
  return n
}

/** The tests of the file (or of the describe block it is called in) on vitest's fake clock, timers and Date, from 0 */
export function fakeClockFromZero (): void {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] })
    vi.setSystemTime(0)
  })
  afterEach(() => { vi.useRealTimers() })
}

/** Close every node made with makeNode(); call once per test file */
export function cleanupNodes (): void {
  afterEach(async () => {
    const nodes = [...live]
    live.clear()
    await Promise.all(nodes.map(async (n) => {
      // Quick teardown: abort what a test left open, then close the node
      await new Promise<void>((resolve) => {
        n.close(() => resolve())
      })
    }))
  })
}

/** A listening server node on 127.0.0.1 (port 0) and its port */
export async function listeningNode (options?: NodeOptions, onconnection?: (s: Socket) => void, host = '127.0.0.1'): Promise<{ node: Node, port: number }> {
  const node = makeNode(options, onconnection)
  const addr = await node.bindAsync(0, host)
  await node.listenAsync()
  return { node, port: addr.port }
}

export function once<T = unknown> (emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      emitter.removeListener(event, onEvent)
      reject(err)
    }
    const onEvent = (value: T): void => {
      if (event !== 'error') emitter.removeListener('error', onError)
      resolve(value)
    }
    emitter.once(event, onEvent)
    if (event !== 'error') emitter.once('error', onError)
  })
}

/** Read a stream to its end: total bytes and sha256 computed as chunks arrive */
export function drainHash (stream: NodeJS.ReadableStream): Promise<{ bytes: number, sha256: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    let bytes = 0
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      hash.update(chunk)
    })
    stream.once('end', () => resolve({ bytes, sha256: hash.digest('hex') }))
    stream.once('error', reject)
  })
}

/**
 * Write `total` pseudo-random bytes in `chunkSize` chunks honouring backpressure, hashing as they are made.
 * Resolves with the sha256 once everything is handed to the stream (end() is called when `end` is true).
 */
export async function writeRandom (stream: NodeJS.WritableStream, total: number, chunkSize = 64 * 1024, end = true): Promise<string> {
  const hash = createHash('sha256')
  // One random block, varied per chunk by a counter, keeps generation cheap and data non-repeating
  const block = randomBytes(chunkSize)
  let sent = 0
  let n = 0
  while (sent < total) {
    const len = Math.min(chunkSize, total - sent)
    const chunk = Buffer.allocUnsafe(len)
    block.copy(chunk, 0, 0, len)
    if (len >= 4) chunk.writeUInt32BE(n++ >>> 0, 0)
    hash.update(chunk)
    sent += len
    if (!stream.write(chunk)) {
      // Ended or closed already (a peer's end without allowHalfOpen ends this side too): no 'drain' or 'close' will come
      const { destroyed, writableEnded } = stream as { destroyed?: boolean, writableEnded?: boolean }
      if (destroyed === true || writableEnded === true) {
        throw new Error(`stream ${destroyed === true ? 'closed' : 'ended'} after ${sent - len} of ${total} bytes were written`)
      }
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error): void => {
          stream.removeListener('drain', onDrain)
          stream.removeListener('error', onErr)
          stream.removeListener('close', onClose)
          if (err === undefined) resolve()
          else reject(err)
        }
        const onDrain = (): void => done()
        const onErr = (err: Error): void => done(err)
        const onClose = (): void => done(new Error(`stream closed after ${sent} of ${total} bytes were written`))
        stream.once('drain', onDrain)
        stream.once('error', onErr)
        stream.once('close', onClose)
      })
    }
  }
  if (end) stream.end()
  return hash.digest('hex')
}

/** Whether UDP `port` of `host` can be bound now, i.e. nothing holds it */
export async function udpPortFree (port: number, host = '127.0.0.1'): Promise<boolean> {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
  return await new Promise(resolve => {
    s.once('error', () => { s.close(); resolve(false) })
    s.bind(port, host, () => { s.close(); resolve(true) })
  })
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Resolves once the stream has emitted 'close' (at once if it already has) */
export function closed (stream: NodeJS.ReadableStream & { closed?: boolean }): Promise<void> {
  if (stream.closed === true) return Promise.resolve()
  return new Promise((resolve) => stream.once('close', () => resolve()))
}

/** A UDP port on `host` that was bound a moment ago and is free now: datagrams to it draw an ICMP port unreachable */
export async function closedUdpPort (host: string): Promise<number> {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
  await new Promise<void>(resolve => s.bind(0, host, resolve))
  const { port } = s.address()
  await new Promise<void>(resolve => s.close(resolve))
  return port
}
