// Plain-dgram hole-punching peer for validating the NAT lab itself (no product code).
//
//   node punch.mjs --id A|B --code C [--server 203.0.113.10:7000] [--port 40000] [--window S]
//                  [--idle S] [--keepalive S] [--role sender|receiver]
//   node punch.mjs --echo N [--interval MS] [--server ...] [--port P]
//
// Punch mode: registers with rendezvous.mjs (announcing its LAN address), learns the peer's public and
// LAN candidates, then sends a punch to every candidate every 100 ms for --window seconds. Any punch from
// the peer's id is accepted from whatever source it arrives (a peer-reflexive address, as ICE does) and
// acked. Success = we heard the peer and the peer acked us. path is 'lan' when the working peer address
// is its LAN candidate, else 'public'.
// With --idle S, both sides then stay quiet for S seconds (sending a keepalive every --keepalive seconds
// if given), after which the sender sends 20 datagrams over 2 s and the receiver counts them.
// Echo mode: N echo probes to the server every --interval ms; reports loss, RTTs and reordering.
// Prints exactly one JSON line on stdout.
import dgram from 'node:dgram'
import os from 'node:os'

const opt = { id: 'A', code: 'lab', server: '203.0.113.10:7000', port: 40000, window: 6, idle: 0, keepalive: 0, role: null, echo: 0, interval: 20 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const k = argv[i].replace(/^--/, '')
  if (!(k in opt)) throw new Error(`unknown argument ${argv[i]}`)
  const v = argv[++i]
  opt[k] = typeof opt[k] === 'number' ? Number(v) : v
}
const [srvHost, srvPort] = [opt.server.slice(0, opt.server.lastIndexOf(':')), Number(opt.server.slice(opt.server.lastIndexOf(':') + 1))]
const t0 = Date.now()
const now = () => Date.now() - t0
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const parse = (s) => ({ address: s.slice(0, s.lastIndexOf(':')), port: Number(s.slice(s.lastIndexOf(':') + 1)) })

const sock = dgram.createSocket('udp4')
const send = (obj, port, address) => sock.send(JSON.stringify(obj), port, address)
const result = { id: opt.id, local: null, mapped: null }
function finish (extra) {
  process.stdout.write(JSON.stringify({ ...result, ...extra, ms: now() }) + '\n')
  sock.close()
  process.exit(0)
}
setTimeout(() => finish({ ok: false, error: 'overall timeout' }), (opt.window + opt.idle + 30) * 1000).unref()

function lanAddress () {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return null
}

await new Promise((resolve) => sock.bind(opt.port, '0.0.0.0', resolve))
result.local = `${lanAddress()}:${sock.address().port}`

if (opt.echo > 0) {
  // ---- echo mode: measure what the path does to packets
  const sentAt = new Map()
  const rtts = []
  let maxSeen = -1
  let outOfOrder = 0
  sock.on('message', (buf) => {
    let m
    try { m = JSON.parse(buf.toString()) } catch { return }
    if (m.t !== 'echo' || !sentAt.has(m.n)) return
    rtts.push(Date.now() - sentAt.get(m.n))
    sentAt.delete(m.n)
    result.mapped = m.you
    if (m.n < maxSeen) outOfOrder++
    else maxSeen = m.n
  })
  for (let n = 0; n < opt.echo; n++) {
    sentAt.set(n, Date.now())
    send({ t: 'echo', n }, srvPort, srvHost)
    await sleep(opt.interval)
  }
  await sleep(1500)
  rtts.sort((a, b) => a - b)
  const q = (p) => rtts.length ? rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))] : null
  finish({ ok: true, sent: opt.echo, received: rtts.length, outOfOrder, rtt: { min: rtts[0] ?? null, median: q(0.5), p90: q(0.9), max: rtts.at(-1) ?? null } })
}

// ---- punch mode
let peer = null // {id, pub, lan}
let heard = null // address we heard the peer from
let acked = false
let successAt = null
let received = 0
let keepalivesIn = 0
sock.on('message', (buf, rinfo) => {
  let m
  try { m = JSON.parse(buf.toString()) } catch { return }
  const from = `${rinfo.address}:${rinfo.port}`
  if (m.t === 'reg-ok') result.mapped = m.you
  else if (m.t === 'peer' && peer === null) peer = { id: m.id, pub: m.pub, lan: m.lan }
  else if (m.id !== undefined && m.id !== opt.id && (peer === null || m.id === peer.id)) {
    if (m.t === 'punch') {
      send({ t: 'ack', id: opt.id }, rinfo.port, rinfo.address)
      if (heard === null) heard = from
    } else if (m.t === 'ack') {
      acked = true
      if (heard === null) heard = from
    } else if (m.t === 'ka') {
      keepalivesIn++
    } else if (m.t === 'data') {
      received++
    }
  }
})

// register until the peer is known
const lan = result.local
const regDeadline = Date.now() + 15_000
while (peer === null && Date.now() < regDeadline) {
  send({ t: 'reg', code: opt.code, id: opt.id, lan }, srvPort, srvHost)
  await sleep(200)
}
if (peer === null) finish({ ok: false, error: 'no peer from rendezvous' })

// punch every candidate until both directions work or the window closes
const candidates = [peer.lan, peer.pub].filter((c, i, all) => c && all.indexOf(c) === i).map(parse)
const punchStart = now()
const punchDeadline = Date.now() + opt.window * 1000
let punches = 0
while (Date.now() < punchDeadline && !(heard !== null && acked)) {
  for (const c of candidates) send({ t: 'punch', id: opt.id }, c.port, c.address)
  // a peer-reflexive address (the peer's NAT used a port the rendezvous never saw): punch it too
  if (heard !== null && !candidates.some((c) => `${c.address}:${c.port}` === heard)) candidates.push(parse(heard))
  punches++
  await sleep(100)
}
if (!(heard !== null && acked)) {
  // stay a moment so that a late peer still gets its acks, then report failure
  await sleep(300)
  finish({ ok: false, peer, heard, acked, punches, error: 'punch window closed' })
}
successAt = now()
const target = parse(heard)
const path = peer.lan !== null && heard.startsWith(`${peer.lan.slice(0, peer.lan.lastIndexOf(':'))}:`) ? 'lan' : 'public'
const punchResult = { ok: true, peer, heard, path, punches, punchMs: successAt - punchStart }

if (opt.idle <= 0) {
  await sleep(1000) // keep acking the peer's punches for a moment
  finish(punchResult)
}

// idle (with optional keepalive), then the sender sends and the receiver counts
const idleEnd = Date.now() + opt.idle * 1000
let keepalivesOut = 0
while (Date.now() < idleEnd) {
  const step = opt.keepalive > 0 ? Math.min(opt.keepalive * 1000, idleEnd - Date.now()) : idleEnd - Date.now()
  await sleep(step)
  if (opt.keepalive > 0 && Date.now() < idleEnd) {
    send({ t: 'ka', id: opt.id }, target.port, target.address)
    keepalivesOut++
  }
}
if (opt.role === 'sender') {
  for (let n = 0; n < 20; n++) {
    send({ t: 'data', id: opt.id, n }, target.port, target.address)
    await sleep(100)
  }
  await sleep(1000)
} else {
  await sleep(4000)
}
finish({ ...punchResult, idle: opt.idle, keepalive: opt.keepalive, keepalivesOut, keepalivesIn, role: opt.role, received })
