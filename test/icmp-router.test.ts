// ICMP errors from a router, which loopback never sends: hole punching sends datagrams with a short TTL (they open
// the sender's NAT mapping and die before the peer's), and routers answer each with a time exceeded. That report
// names the peer's address as a port unreachable would, but says nothing about the peer: a connection attempt to
// it must go on. Three network namespaces (root only), the middle one forwarding:
//
//   ir-a (node, 10.81.1.1) ── ir-r (router: 10.81.1.2, 10.81.2.2) ── ir-b (peer, 10.81.2.1)
import { execFileSync } from 'child_process'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { killAll, nsName, nsSh, removeNamespaces, runIn, sh } from './helpers/netns'

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
  nsSh(NODE_NS, 'ip', 'route', 'add', 'default', 'via', '10.81.1.2')
  nsSh(PEER_NS, 'ip', 'route', 'add', 'default', 'via', '10.81.2.2')
  nsSh(ROUTER_NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
}, 30_000)

afterAll(() => removeNamespaces('ir-a', 'ir-r', 'ir-b'))

// Holds a UDP port and ignores what arrives: a peer that has not started its uTP side yet. No port unreachable
// comes from it, since the port is open
const SILENT_PEER = `
setTimeout(() => process.exit(3), 30000).unref()
const s = require('dgram').createSocket('udp4')
s.bind(0, '10.81.2.1', () => console.log(JSON.stringify({ port: s.address().port })))
`

// Starts a connection attempt to the silent peer, then sends it three datagrams with a TTL of 1 (as a punch's
// short-TTL probes), which the router answers with time exceeded. Prints what became of the attempt 1.5 s later,
// and the node's count of unreachable reports
const NODE = `
setTimeout(() => process.exit(3), 30000).unref()
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

/** The router's count of time exceeded messages sent, from its namespace's /proc/net/snmp */
function timeExceededSent (): number {
  const snmp = execFileSync('ip', ['netns', 'exec', ROUTER_NS, 'cat', '/proc/net/snmp'], { encoding: 'utf8' })
  const icmp = snmp.split('\n').filter((l) => l.startsWith('Icmp: ')).map((l) => l.split(/\s+/))
  return Number(icmp[1][icmp[0].indexOf('OutTimeExcds')])
}

describe("a router's ICMP time exceeded (network namespaces)", () => {
  it.each([{ ioThread: false }, { ioThread: true }])('leaves a connection attempt to the same address alone (%o)', async (mode) => {
    const peer = runIn<{ port: number }>(PEER_NS, SILENT_PEER)
    let node: ReturnType<typeof runIn> | undefined
    try {
      const { port } = await peer.line
      const before = timeExceededSent()
      const n = runIn<{ outcome: string, unreachable: number }>(NODE_NS, NODE, { port, options: mode })
      node = n
      const r = await n.line
      // The case under test: the router did answer the short-lived datagrams
      expect(timeExceededSent() - before).toBeGreaterThanOrEqual(3)
      expect(r).toEqual({ outcome: 'pending', unreachable: 0 })
    } finally {
      killAll(peer.child, ...(node === undefined ? [] : [node.child]))
    }
  }, 30_000)
})
