// Path MTU discovery on a real kernel path: on loopback every peer is special-cased (no probing), so these run
// the two ends in two network namespaces (root only) joined by a veth pair whose MTU the tests set:
//
//   pm-a (sender 10.78.0.1) ── veth, MTU 1500 or 1280 ── pm-b (receiver 10.78.0.2)
//
// A sender starts at `mtu` (1,000 bytes of payload) and, with `probeMtu` (the default), probes larger packets up
// to the path's limit, at most 1,448 bytes; with `probeMtu: false` it stays where it started.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { killAll, nsName, nsSh, removeNamespaces, runIn, sh } from './helpers/netns'

const SENDER_NS = nsName('pm-a')
const RECEIVER_NS = nsName('pm-b')

function cleanup (): void {
  removeNamespaces('pm-a', 'pm-b')
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

// Takes one connection, counts its bytes, and prints them once the sender has ended. A script left behind by a
// failed test ends itself
const RECEIVER = `
setTimeout(() => process.exit(3), 40000).unref()
const Node = require(process.cwd())
const node = new Node({}, (s) => {
  let bytes = 0
  s.on('data', (d) => { bytes += d.length })
  s.on('end', () => { console.log(JSON.stringify({ bytes })); s.end(); node.close() })
})
node.bindAsync(0, '10.78.0.2').then(() => node.listenAsync()).then(() => console.log(JSON.stringify({ port: node.address().port })))
`

// Sends 2 MiB with the options given and keeps the connection open (probing runs on its own timers, from 200 ms
// after the connection opens) until its packet size reaches \`until\` or \`holdMs\` passed; prints the sizes it went
// through
const SENDER = `
setTimeout(() => process.exit(3), 40000).unref()
const Node = require(process.cwd())
const { port, options, until, holdMs } = JSON.parse(process.argv[1])
const node = new Node(options)
const s = node.connect(port, '10.78.0.2')
const sizes = []
const started = Date.now()
s.write(Buffer.alloc(2 << 20, 7))
s.resume()
const watch = setInterval(() => {
  const m = s.getMtu()
  if (sizes[sizes.length - 1] !== m) sizes.push(m)
  if (m !== until && Date.now() - started < holdMs) return
  clearInterval(watch)
  console.log(JSON.stringify({ mtu: m, sizes }))
  s.end()
  s.on('close', () => node.close())
}, 10)
`

/** The sender's packet sizes, and the bytes the receiver got */
async function send (options: Record<string, unknown>, until: number, holdMs: number): Promise<{ mtu: number, sizes: number[], bytes: number }> {
  const receiver = runIn<{ port: number }>(RECEIVER_NS, RECEIVER)
  let sender: ReturnType<typeof runIn> | undefined
  try {
    const { port } = await receiver.line
    const s = runIn<{ mtu: number, sizes: number[] }>(SENDER_NS, SENDER, { port, options, until, holdMs })
    sender = s
    const result = await s.line
    await Promise.all([s.child, receiver.child].map(async (c) => await new Promise((resolve) => c.once('exit', resolve))))
    console.log(`MEASURE path MTU search (${JSON.stringify(options)}): ${result.sizes.join(' -> ')}`)
    const got = (receiver.lines as Array<{ bytes?: number }>).find((r) => r.bytes !== undefined)
    return { ...result, bytes: got?.bytes ?? NaN }
  } finally {
    killAll(receiver.child, ...(sender === undefined ? [] : [sender.child]))
  }
}

describe('path MTU discovery (network namespaces)', () => {
  it('probes up to 1,448 bytes of payload on a 1,500-byte path, and stays at mtu with probeMtu: false', async () => {
    setMtu(1500)
    const probed = await send({}, 1448, 15_000)
    expect(probed.mtu).toBe(1448)
    expect(probed.bytes).toBe(2 << 20)
    // Long enough for the first probe (200 ms in) and its answer many times over
    const fixed = await send({ probeMtu: false }, 0, 2000)
    expect(fixed.sizes).toEqual([1000])
    expect(fixed.bytes).toBe(2 << 20)
  }, 40_000)

  it('on a 1,280-byte path, probes above mtu but never past what the link carries', async () => {
    setMtu(1280)
    // Three unanswered 1,448-byte probes first, then the search settles within 16 bytes
    const r = await send({}, 1224, 15_000)
    // 1,280 less IPv4 (20), UDP (8) and the uTP header with our end-of-write marker (24)
    expect(r.mtu).toBeGreaterThan(1000)
    expect(Math.max(...r.sizes)).toBeLessThanOrEqual(1228)
    expect(r.bytes).toBe(2 << 20)
  }, 40_000)
})
