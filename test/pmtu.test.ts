// Path MTU discovery on a real kernel path: on loopback every peer is special-cased (no probing), so these run
// the two ends in two network namespaces (root only) joined by a veth pair whose MTU the tests set:
//
//   pm-a (sender 10.78.0.1) ── veth, MTU 1500 or 1280 ── pm-b (receiver 10.78.0.2)
//
// A sender starts at `mtu` (1,000 bytes of payload) and, with `probeMtu` (the default), probes larger packets up
// to the path's limit, at most 1,448 bytes; with `probeMtu: false` it stays where it started.
import { spawn } from 'child_process'
import * as readline from 'readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { nsSh, removeNamespaces, sh } from './helpers/netns'
import { root } from './helpers/utp'

const SENDER_NS = 'pm-a'
const RECEIVER_NS = 'pm-b'

function cleanup (): void {
  removeNamespaces(SENDER_NS, RECEIVER_NS)
}

function setMtu (mtu: number): void {
  nsSh(SENDER_NS, 'ip', 'link', 'set', 'pm-a0', 'mtu', String(mtu))
  nsSh(RECEIVER_NS, 'ip', 'link', 'set', 'pm-b0', 'mtu', String(mtu))
}

beforeAll(() => {
  cleanup()
  sh('ip', 'netns', 'add', SENDER_NS)
  sh('ip', 'netns', 'add', RECEIVER_NS)
  sh('ip', 'link', 'add', 'pm-a0', 'netns', SENDER_NS, 'type', 'veth', 'peer', 'name', 'pm-b0', 'netns', RECEIVER_NS)
  nsSh(SENDER_NS, 'ip', 'addr', 'add', '10.78.0.1/24', 'dev', 'pm-a0')
  nsSh(RECEIVER_NS, 'ip', 'addr', 'add', '10.78.0.2/24', 'dev', 'pm-b0')
  for (const [ns, dev] of [[SENDER_NS, 'pm-a0'], [RECEIVER_NS, 'pm-b0']]) {
    nsSh(ns, 'ip', 'link', 'set', 'lo', 'up')
    nsSh(ns, 'ip', 'link', 'set', dev, 'up')
  }
}, 30_000)

afterAll(() => cleanup())

/** Run a node script in a namespace; resolves with the first JSON line it prints */
function runIn (ns: string, script: string, arg: unknown): { line: Promise<Record<string, number>>, exited: Promise<void> } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, JSON.stringify(arg)], { cwd: root })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const line = new Promise<Record<string, number>>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', (l) => resolve(JSON.parse(l) as Record<string, number>))
    child.once('exit', (code) => reject(new Error(`script in ${ns} exited with ${String(code)}: ${stderr}`)))
  })
  return { line, exited }
}

// Takes one connection, counts its bytes, and ends when the sender has
const RECEIVER = `
const Node = require(process.cwd())
const node = new Node({}, (s) => {
  let bytes = 0
  s.on('data', (d) => { bytes += d.length })
  s.on('end', () => { s.end(); node.close() })
  s.on('close', () => console.error('received ' + bytes))
})
node.bindAsync(0, '10.78.0.2').then(() => node.listenAsync()).then(() => console.log(JSON.stringify({ port: node.address().port })))
`

// Sends 2 MiB with the options given, keeps the connection open for holdMs (probing runs on its own timers, from
// 200 ms after the connection opens), then prints its packet size and the sizes it went through
const SENDER = `
const Node = require(process.cwd())
const { port, options, holdMs } = JSON.parse(process.argv[1])
const node = new Node(options)
const s = node.connect(port, '10.78.0.2')
const sizes = []
s.write(Buffer.alloc(2 << 20, 7))
s.resume()
const watch = setInterval(() => {
  const m = s.getMtu()
  if (sizes[sizes.length - 1] !== m) sizes.push(m)
}, 10)
setTimeout(() => {
  clearInterval(watch)
  const st = s.stats()
  console.log(JSON.stringify({ mtu: st.mtu, sent: st.bytesSent, sizes }))
  s.end()
  s.on('close', () => node.close())
}, holdMs)
`

async function send (options: Record<string, unknown>, holdMs: number): Promise<{ mtu: number, sent: number, sizes: number[] }> {
  const receiver = runIn(RECEIVER_NS, RECEIVER, null)
  const { port } = await receiver.line
  const sender = runIn(SENDER_NS, SENDER, { port, options, holdMs })
  const result = await sender.line as unknown as { mtu: number, sent: number, sizes: number[] }
  console.log(`MEASURE path MTU search, payload sizes over ${holdMs} ms (${JSON.stringify(options)}): ${result.sizes.join(' -> ')}`)
  await Promise.all([sender.exited, receiver.exited])
  return result
}

describe('path MTU discovery (network namespaces)', () => {
  it('probes up to 1,448 bytes of payload on a 1,500-byte path, and stays at mtu with probeMtu: false', async () => {
    setMtu(1500)
    const probed = await send({}, 2000)
    expect(probed.mtu).toBe(1448)
    expect(probed.sent).toBeGreaterThanOrEqual(2 << 20)
    const fixed = await send({ probeMtu: false }, 2000)
    expect(fixed.mtu).toBe(1000)
    expect(fixed.sent).toBeGreaterThanOrEqual(2 << 20)
  }, 30_000)

  it('on a 1,280-byte path, probes above mtu but never past what the link carries', async () => {
    setMtu(1280)
    const r = await send({}, 5000)
    // 1,280 less IPv4 (20), UDP (8) and the uTP header with our end-of-write marker (24)
    expect(r.mtu).toBeGreaterThan(1000)
    expect(r.mtu).toBeLessThanOrEqual(1228)
    expect(r.sent).toBeGreaterThanOrEqual(2 << 20)
  }, 30_000)
})
