// A multi-homed rendezvous server bound to the wildcard address must answer from the address each request
// arrived at: a NAT lets in replies only from the address it sent to. Two network namespaces (root only):
//
//   srv-c (clients 10.77.9.2, 10.77.9.3)  ── link a: 10.77.1.2 ↔ 10.77.1.1 ──  srv-s (server, 0.0.0.0:7000)
//                                        ── link b: 10.77.2.2 ↔ 10.77.2.1 ──
//
// The clients reach the server at 10.77.2.1 (link b), while the server's route back to them is link a, whose
// address 10.77.1.1 is what the kernel would pick as the source; an nftables rule in srv-c drops UDP from
// 10.77.1.1, standing in for the NAT. The test failed on main: both clients timed out although the server
// paired them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { nsName, nsSh, removeNamespaces, runIn, sh } from './helpers/netns'

const SERVER_NS = nsName('srv-s')
const CLIENT_NS = nsName('srv-c')

function cleanup (): void {
  removeNamespaces('srv-s', 'srv-c')
}

beforeAll(() => {
  cleanup()
  sh('ip', 'netns', 'add', SERVER_NS)
  sh('ip', 'netns', 'add', CLIENT_NS)
  for (const [link, net] of [['a', '10.77.1'], ['b', '10.77.2']]) {
    sh('ip', 'link', 'add', `srv-${link}0`, 'netns', SERVER_NS, 'type', 'veth', 'peer', 'name', `srv-${link}1`, 'netns', CLIENT_NS)
    nsSh(SERVER_NS, 'ip', 'addr', 'add', `${net}.1/24`, 'dev', `srv-${link}0`)
    nsSh(CLIENT_NS, 'ip', 'addr', 'add', `${net}.2/24`, 'dev', `srv-${link}1`)
    nsSh(SERVER_NS, 'ip', 'link', 'set', `srv-${link}0`, 'up')
    nsSh(CLIENT_NS, 'ip', 'link', 'set', `srv-${link}1`, 'up')
  }
  for (const ns of [SERVER_NS, CLIENT_NS]) {
    nsSh(ns, 'ip', 'link', 'set', 'lo', 'up')
    // Asymmetric routes on purpose: no reverse-path filtering
    for (const i of ['all', 'default', 'lo', ns === SERVER_NS ? 'srv-a0' : 'srv-a1', ns === SERVER_NS ? 'srv-b0' : 'srv-b1']) nsSh(ns, 'sysctl', '-qw', `net.ipv4.conf.${i}.rp_filter=0`)
  }
  nsSh(CLIENT_NS, 'ip', 'addr', 'add', '10.77.9.2/32', 'dev', 'lo')
  nsSh(CLIENT_NS, 'ip', 'addr', 'add', '10.77.9.3/32', 'dev', 'lo')
  nsSh(SERVER_NS, 'ip', 'route', 'add', '10.77.9.0/24', 'via', '10.77.1.2', 'dev', 'srv-a0')
  nsSh(CLIENT_NS, 'nft', 'add table inet srv; add chain inet srv in { type filter hook input priority 0; }; add rule inet srv in ip saddr 10.77.1.1 udp sport 7000 drop')
}, 30_000)

afterAll(() => cleanup())

const SERVER = `
const { RendezvousServer } = require(require('path').resolve('dist/lib/server/server.js'))
const server = new RendezvousServer({ port: 7000, host: '0.0.0.0', http: false, mappingCheck: false })
server.on('paired', () => console.error('paired'))
server.listen().then(a => console.log(JSON.stringify(a)))
process.stdin.on('end', () => server.close().then(() => process.exit(0)))
process.stdin.resume()
`

// Two bare clients (10.77.9.2 and .3) register under one key at 10.77.2.1 and wait for 'peer'; a retry is
// answered with the cookie. Prints what each got once both have 'peer' (or 3 s passed).
const CLIENTS = `
const dgram = require('dgram')
const p = require(require('path').resolve('dist/lib/rendezvous/protocol.js'))
const enc = (o) => Buffer.concat([p.MAGIC, Buffer.from([p.VERSION]), Buffer.from(JSON.stringify(o))])
const got = {}
const run = (host, nonce) => new Promise((resolve) => {
  const s = dgram.createSocket('udp4')
  const body = { t: 'register', key: 'n:2718', code: 'n:2718', nonce, lan: [], relay: false, pake: Buffer.alloc(32).toString('base64') }
  got[host] = []
  s.on('message', (buf, rinfo) => {
    const m = p.decode(buf)
    if (m === null || m.error !== undefined) return
    got[host].push(m.t + '@' + rinfo.address)
    if (m.t === 'retry') s.send(enc({ ...body, cookie: m.cookie }), 7000, '10.77.2.1')
    if (m.t === 'peer') { s.close(); resolve() }
  })
  s.bind(0, host, () => s.send(enc(body), 7000, '10.77.2.1'))
  setTimeout(() => { try { s.close() } catch {} resolve() }, 3000)
})
const first = run('10.77.9.2', 'a1'.repeat(8))
const second = new Promise((resolve) => setTimeout(() => run('10.77.9.3', 'b2'.repeat(8)).then(resolve), 100))
Promise.all([first, second]).then(() => console.log(JSON.stringify(got)))
`

describe('multi-homed rendezvous server (network namespaces)', () => {
  it('answers from the address each request arrived at, so clients behind a strict NAT get paired', async () => {
    const server = runIn<Record<string, unknown>>(SERVER_NS, SERVER)
    try {
      expect(await server.line).toMatchObject({ port: 7000 })
      const clients = runIn<Record<string, string[]>>(CLIENT_NS, CLIENTS)
      const got = await clients.line
      console.log(`MEASURE replies each client received (type@source): ${JSON.stringify(got)}`)
      for (const host of ['10.77.9.2', '10.77.9.3']) {
        expect(got[host]).toContain('registered@10.77.2.1')
        expect(got[host]).toContain('peer@10.77.2.1')
      }
    } finally {
      server.child.stdin.end()
      await new Promise(resolve => server.child.once('exit', resolve))
    }
  }, 20_000)
})
