// ICMP errors from a router, which loopback never sends: hole punching sends datagrams with a short TTL (they open
// the sender's NAT mapping and die before the peer's), and routers answer each with a time exceeded. That report
// names the peer's address as a port unreachable would, but says nothing about the peer: a connection attempt to
// it must go on. Three network namespaces (root only), the middle one forwarding:
//
//   ir-a (node, 10.81.1.1, fd81:1::1) ── ir-r (router: .1.2 and .2.2, fd81:1::2 and fd81:2::2) ── ir-b (peer, 10.81.2.1, fd81:2::1)
//
// The router also refuses to forward to fd81:3::/64 (a "prohibit" route): it answers each datagram sent there with
// an ICMPv6 destination unreachable, administratively prohibited, as a firewall that rejects does. Linux hands that
// to the sender's next receive as EACCES, an error a UDP socket never meets otherwise.
import { execFileSync } from 'child_process'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { killAll, nsName, nsSh, receiveWhileDrawingIcmp, removeNamespaces, runIn, sh } from './helpers/netns'

const NODE_NS = nsName('ir-a')
const ROUTER_NS = nsName('ir-r')
const PEER_NS = nsName('ir-b')

beforeAll(() => {
  removeNamespaces('ir-a', 'ir-r', 'ir-b')
  for (const ns of [NODE_NS, ROUTER_NS, PEER_NS]) {
    sh('ip', 'netns', 'add', ns)
    nsSh(ns, 'ip', 'link', 'set', 'lo', 'up')
  }
  sh('ip', 'link', 'add', 'ir-a0', 'netns', NODE_NS, 'type', 'veth', 'peer', 'name', 'ir-ra', 'netns', ROUTER_NS)
  sh('ip', 'link', 'add', 'ir-b0', 'netns', PEER_NS, 'type', 'veth', 'peer', 'name', 'ir-rb', 'netns', ROUTER_NS)
  nsSh(NODE_NS, 'ip', 'addr', 'add', '10.81.1.1/24', 'dev', 'ir-a0')
  nsSh(ROUTER_NS, 'ip', 'addr', 'add', '10.81.1.2/24', 'dev', 'ir-ra')
  nsSh(ROUTER_NS, 'ip', 'addr', 'add', '10.81.2.2/24', 'dev', 'ir-rb')
  nsSh(PEER_NS, 'ip', 'addr', 'add', '10.81.2.1/24', 'dev', 'ir-b0')
  for (const [ns, dev] of [[NODE_NS, 'ir-a0'], [ROUTER_NS, 'ir-ra'], [ROUTER_NS, 'ir-rb'], [PEER_NS, 'ir-b0']]) {
    nsSh(ns, 'ip', 'link', 'set', dev, 'up')
  }
  for (const [ns, dev, addr] of [[NODE_NS, 'ir-a0', 'fd81:1::1'], [ROUTER_NS, 'ir-ra', 'fd81:1::2'], [ROUTER_NS, 'ir-rb', 'fd81:2::2'], [PEER_NS, 'ir-b0', 'fd81:2::1']]) {
    nsSh(ns, 'ip', '-6', 'addr', 'add', `${addr}/64`, 'dev', dev, 'nodad')
  }
  nsSh(NODE_NS, 'ip', 'route', 'add', 'default', 'via', '10.81.1.2')
  nsSh(PEER_NS, 'ip', 'route', 'add', 'default', 'via', '10.81.2.2')
  nsSh(NODE_NS, 'ip', '-6', 'route', 'add', 'default', 'via', 'fd81:1::2')
  nsSh(PEER_NS, 'ip', '-6', 'route', 'add', 'default', 'via', 'fd81:2::2')
  nsSh(ROUTER_NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1')
  nsSh(ROUTER_NS, 'ip', '-6', 'route', 'add', 'prohibit', 'fd81:3::/64')
  // Linux sends about one ICMPv6 error a second to a host, and a thousand in all: the second test needs one for
  // each datagram, so destination unreachable (type 1) leaves the rate mask
  nsSh(ROUTER_NS, 'sysctl', '-qw', 'net.ipv6.icmp.ratelimit=0', 'net.ipv6.icmp.ratemask=0,3-127')
  // Links at 40 Mbit/s. The peer's 4 MiB take most of a second to come, while the reports keep coming; and the
  // node's datagrams wait in its link's queue, so that each report comes back when the link has sent the datagram,
  // not inside the send that made it (as on loopback, where the node has read its error queue before it reads the
  // socket again)
  nsSh(PEER_NS, 'tc', 'qdisc', 'add', 'dev', 'ir-b0', 'root', 'tbf', 'rate', '40mbit', 'burst', '32kb', 'limit', '256kb')
  nsSh(NODE_NS, 'tc', 'qdisc', 'add', 'dev', 'ir-a0', 'root', 'tbf', 'rate', '40mbit', 'burst', '32kb', 'limit', '256kb')
}, 30_000)

afterAll(() => removeNamespaces('ir-a', 'ir-r', 'ir-b'))

// Holds a UDP port and ignores what arrives: a peer that has not started its uTP side yet. No port unreachable
// comes from it, since the port is open
const SILENT_PEER = `
setTimeout(() => process.exit(3), 25000).unref()
const s = require('dgram').createSocket('udp4')
s.bind(0, '10.81.2.1', () => console.log(JSON.stringify({ port: s.address().port })))
`

// Starts a connection attempt to the silent peer, then sends it three datagrams with a TTL of 1 (as a punch's
// short-TTL probes), which the router answers with time exceeded. Prints what became of the attempt 1.5 s later,
// and the node's count of unreachable reports
const NODE = `
setTimeout(() => process.exit(3), 25000).unref()
const Node = require(process.cwd())
const { port, options } = JSON.parse(process.argv[1])
;(async () => {
  const node = new Node(options)
  await node.bindAsync(0, '10.81.1.1')
  let outcome = 'pending'
  const s = node.connect(port, '10.81.2.1')
  s.on('error', (e) => { outcome = e.code })
  s.on('connect', () => { outcome = 'connected' })
  const udp = node.getUdpSocket()
  udp.setTTL(1)
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    udp.send('short-lived', port, '10.81.2.1')
  }
  await new Promise((resolve) => setTimeout(resolve, 1200))
  console.log(JSON.stringify({ outcome, unreachable: node.stats().unreachable }))
  s.destroy()
  node.close()
})()
`

/** The router's counters that say what became of the short-lived datagrams: dropped for their TTL, answered with a
 *  time exceeded, or not answered because the kernel's ICMP rate limits (per host, global) held the answer back */
function routerCounters (): { ttlDropped: number, timeExceeded: number, limitedHost: number, limitedGlobal: number } {
  const snmp = execFileSync('ip', ['netns', 'exec', ROUTER_NS, 'cat', '/proc/net/snmp'], { encoding: 'utf8' })
  const table = (prefix: string): (name: string) => number => {
    const [names, values] = snmp.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.split(/\s+/))
    return (name) => Number(values[names.indexOf(name)])
  }
  const ip = table('Ip: ')
  const icmp = table('Icmp: ')
  return {
    ttlDropped: ip('InHdrErrors'),
    timeExceeded: icmp('OutTimeExcds'),
    limitedHost: icmp('OutRateLimitHost'),
    limitedGlobal: icmp('OutRateLimitGlobal')
  }
}

describe("a router's ICMP time exceeded (network namespaces)", () => {
  it.each([{ ioThread: false }, { ioThread: true }])('leaves a connection attempt to the same address alone (%o)', async (mode) => {
    const peer = runIn<{ port: number }>(PEER_NS, SILENT_PEER)
    let node: ReturnType<typeof runIn> | undefined
    try {
      const { port } = await peer.line
      const before = routerCounters()
      const n = runIn<{ outcome: string, unreachable: number }>(NODE_NS, NODE, { port, options: mode })
      node = n
      const r = await n.line
      // The case under test: the router did answer the short-lived datagrams
      const after = routerCounters()
      const counted = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof after]]))
      expect(counted.timeExceeded, `the router's counters over the case: ${JSON.stringify(counted)}`).toBeGreaterThanOrEqual(3)
      expect(r).toEqual({ outcome: 'pending', unreachable: 0 })
    } finally {
      killAll(peer.child, ...(node === undefined ? [] : [node.child]))
    }
  }, 30_000)
})

describe('ICMPv6 administratively prohibited (network namespaces)', () => {
  it.each([{ ioThread: false }, { ioThread: true }])('a node whose datagrams a firewall rejects while it receives loses no byte and no socket (%o)', async (mode) => {
    // Twenty datagrams a millisecond into the prohibited network, each answered "administratively prohibited"
    const r = await receiveWhileDrawingIcmp(NODE_NS, PEER_NS, { options: mode, bind: 'fd81:1::1', to: { host: 'fd81:3::1', port: 9 }, perMs: 20, bytes: 8 << 20 })
    console.log(`MEASURE receiving 8 MiB while a firewall rejects datagrams (${JSON.stringify(mode)}): ${JSON.stringify(r)}`)
    expect(r?.errors).toEqual([])
    expect(r?.bytes).toBe(8 << 20)
    // The case under test: the reports kept coming through the transfer
    expect(r?.unreachable).toBeGreaterThan(200)
  }, 30_000)
})
