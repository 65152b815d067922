// Two things loopback never does, on a real kernel path: two network namespaces (root only) joined by a veth pair
// with a rate limit (tbf) each way.
//
//   sl-a (10.79.0.1) ── 8 Mbit/s ──>  sl-b (10.79.0.2)
//                    <── 40 Mbit/s ──
//
// - A sender whose link is slower than it writes: the socket's send buffer fills and sends fail with EAGAIN until
//   the link takes packets off the queue (loopback delivers at once, so its buffer never fills). The driver must
//   then sleep until the socket has room again, not retry in a loop. The sender first gets an ICMP port
//   unreachable: the error wakes the socket in a way tokio never forgets (its "write closed" readiness), and a
//   driver that kept that registration would find the socket writable at every wait, and spin through each
//   stretch the buffer is full.
// - ICMP errors that come back late: on loopback a port unreachable arrives during the send that drew it, but
//   across a link it arrives whenever it does, maybe while the driver is reading the socket. Linux then fails
//   that receive with ECONNREFUSED; the datagrams queued behind it are fine, and so is the socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { killAll, nsName, nsSh, receiveWhileDrawingIcmp, removeNamespaces, runIn, sh } from './helpers/netns'

const SENDER_NS = nsName('sl-a')
const RECEIVER_NS = nsName('sl-b')

beforeAll(() => {
  removeNamespaces('sl-a', 'sl-b')
  sh('ip', 'netns', 'add', SENDER_NS)
  sh('ip', 'netns', 'add', RECEIVER_NS)
  sh('ip', 'link', 'add', 'sl-a0', 'netns', SENDER_NS, 'type', 'veth', 'peer', 'name', 'sl-b0', 'netns', RECEIVER_NS)
  nsSh(SENDER_NS, 'ip', 'addr', 'add', '10.79.0.1/24', 'dev', 'sl-a0')
  nsSh(RECEIVER_NS, 'ip', 'addr', 'add', '10.79.0.2/24', 'dev', 'sl-b0')
  for (const [ns, dev] of [[SENDER_NS, 'sl-a0'], [RECEIVER_NS, 'sl-b0']]) {
    nsSh(ns, 'ip', 'link', 'set', 'lo', 'up')
    nsSh(ns, 'ip', 'link', 'set', dev, 'up')
  }
  // The queues hold a quarter of a second and less: packets wait there, charged to the sending socket, until the
  // link sends them
  nsSh(SENDER_NS, 'tc', 'qdisc', 'add', 'dev', 'sl-a0', 'root', 'tbf', 'rate', '8mbit', 'burst', '16kb', 'limit', '256kb')
  nsSh(RECEIVER_NS, 'tc', 'qdisc', 'add', 'dev', 'sl-b0', 'root', 'tbf', 'rate', '40mbit', 'burst', '32kb', 'limit', '256kb')
  // Linux sends about one port unreachable a second to a host (after a burst of six), and a thousand a second in
  // all; the second test needs one for each datagram to a closed port, so destination unreachable (type 3) leaves
  // the rate mask
  nsSh(RECEIVER_NS, 'sysctl', '-qw', 'net.ipv4.icmp_ratemask=0')
}, 30_000)

afterAll(() => removeNamespaces('sl-a', 'sl-b'))

// Takes one connection and prints the bytes it got once the sender has ended. A script left behind ends itself
const RECEIVER = `
setTimeout(() => process.exit(3), 25000).unref()
const Node = require(process.cwd())
const node = new Node({}, (s) => {
  let bytes = 0
  s.on('data', (d) => { bytes += d.length })
  s.on('end', () => { console.log(JSON.stringify({ bytes })); s.end(); node.close() })
})
node.bindAsync(0, '10.79.0.2').then(() => node.listenAsync()).then(() => console.log(JSON.stringify({ port: node.address().port })))
`

// Draws a port unreachable (nothing listens on the receiver's port 9), shrinks the socket's send buffer to the
// kernel's least, then sends 2 MiB with cubic (which fills the link's queue, where LEDBAT would keep it short).
// Prints the CPU time it used while sending, the time it took, and how many sends the kernel refused for want of
// buffer space (this namespace's SndbufErrors)
const SENDER = `
setTimeout(() => process.exit(3), 25000).unref()
const fs = require('fs')
const Node = require(process.cwd())
const { port, options } = JSON.parse(process.argv[1])
const sndbufErrors = () => {
  const udp = fs.readFileSync('/proc/net/snmp', 'utf8').split('\\n').filter((l) => l.startsWith('Udp: '))
  const [names, values] = udp.map((l) => l.split(/\\s+/))
  return Number(values[names.indexOf('SndbufErrors')])
}
;(async () => {
  const node = new Node({ ...options, congestion: 'cubic' })
  await node.bindAsync(0, '10.79.0.1')
  const refused = await node.connectAsync(9, '10.79.0.2').then(() => 'connected', (e) => e.code)
  node.getUdpSocket().setSendBufferSize(1)
  const s = await node.connectAsync(port, '10.79.0.2')
  s.resume()
  const errorsBefore = sndbufErrors()
  const cpu = process.cpuUsage()
  const started = Date.now()
  s.end(Buffer.alloc(2 << 20, 7))
  await new Promise((resolve) => s.on('close', resolve))
  const used = process.cpuUsage(cpu)
  console.log(JSON.stringify({
    refused,
    cpuMs: (used.user + used.system) / 1000,
    wallMs: Date.now() - started,
    sndbufErrors: sndbufErrors() - errorsBefore
  }))
  node.close()
})()
`

interface Sent { refused: string, cpuMs: number, wallMs: number, sndbufErrors: number }

async function send (options: Record<string, unknown>): Promise<Sent & { bytes: number }> {
  const receiver = runIn<{ port: number }>(RECEIVER_NS, RECEIVER)
  let sender: ReturnType<typeof runIn> | undefined
  try {
    const { port } = await receiver.line
    const s = runIn<Sent>(SENDER_NS, SENDER, { port, options })
    sender = s
    const result = await s.line
    await receiver.exited
    console.log(`MEASURE sending 2 MiB through 8 Mbit/s (${JSON.stringify(options)}): ${JSON.stringify(result)}`)
    const got = (receiver.lines as Array<{ bytes?: number }>).find((r) => r.bytes !== undefined)
    return { ...result, bytes: got?.bytes ?? NaN }
  } finally {
    killAll(receiver.child, ...(sender === undefined ? [] : [sender.child]))
  }
}

describe('a send buffer that fills (network namespaces)', () => {
  it.each([{ ioThread: false }, { ioThread: true }])('the sender sleeps while its socket has no room, also after an ICMP error (%o)', async (mode) => {
    const r = await send(mode)
    expect(r.refused).toBe('ECONNREFUSED')
    expect(r.bytes).toBe(2 << 20)
    // The case under test: the kernel refused sends for want of buffer space, many times
    expect(r.sndbufErrors).toBeGreaterThan(10)
    // 2 MiB at 8 Mbit/s takes over 2 s. Sending it costs a small share of that; a thread that retries while
    // the buffer is full takes a whole core for as long
    expect(r.wallMs).toBeGreaterThan(2000)
    expect(r.cpuMs / r.wallMs, 'share of a core the sender used').toBeLessThan(0.5)
  }, 40_000)
})

describe('ICMP errors that arrive while the socket is read (network namespaces)', () => {
  it.each([{ ioThread: false }, { ioThread: true }])('a node that draws port unreachables while it receives loses no byte and no socket (%o)', async (mode) => {
    // Ten datagrams a millisecond to sl-b's port 9, where nothing listens: each comes back as a port unreachable
    const r = await receiveWhileDrawingIcmp(SENDER_NS, RECEIVER_NS, { options: mode, bind: '10.79.0.1', to: { host: '10.79.0.2', port: 9 }, perMs: 10, bytes: 4 << 20 })
    console.log(`MEASURE receiving 4 MiB while drawing port unreachables (${JSON.stringify(mode)}): ${JSON.stringify(r)}`)
    expect(r?.errors).toEqual([])
    expect(r?.bytes).toBe(4 << 20)
    // The case under test: reports came in all through the transfer, not a handful
    expect(r?.unreachable).toBeGreaterThan(500)
  }, 40_000)
})
