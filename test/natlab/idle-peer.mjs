// A peer that meets the other through node.rendezvous() (the package API, dist/), exchanges ping/pong, then
// stays idle for --idle seconds: only uTP keepalives cross the NATs meanwhile. Afterwards the *accepting* side
// sends --bytes pseudo-random bytes (so the first data packet after the idle period comes in through the
// connecting side's NAT from outside) and the connecting side hashes them.
//
//   node idle-peer.mjs --id A --code C [--server 203.0.113.10:7000 | --dht HOST:PORT,...] [--port 40000] [--idle 60]
//                      [--bytes 1048576] [--relay 0] [--timeout 100] [--meet 20]
// --dht meets on a DHT joined through those nodes (rendezvous({ dht })) instead of the server, with --dht-relay
// HOST:PORT as the relay server when punching fails; --meet bounds the rendezvous, s.
// Prints one JSON line: {id, ok, role, path, remote, remoteAfter, migrations, mtu, pingMs, idleMs, bytes, sha256,
// transferMs, idle: {packetsSent, packetsReceived}, error?}. `idle` counts the uTP packets each way during the
// idle period (keepalives); `migrations` the socket's 'migrate' events (the peer's NAT rebound and we followed).
import { createHash, randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const { Node } = createRequire(import.meta.url)(path.join(here, '..', '..', 'dist', 'index.js'))

const opt = { id: 'A', code: 'idle', server: '203.0.113.10:7000', dht: '', 'dht-relay': '', port: 40000, idle: 60, bytes: 1 << 20, relay: 0, timeout: 100, meet: 20 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const k = argv[i].replace(/^--/, '')
  if (!(k in opt)) throw new Error(`unknown argument ${argv[i]}`)
  const v = argv[++i]
  opt[k] = typeof opt[k] === 'number' ? Number(v) : v
}
const t0 = Date.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const out = { id: opt.id }
let finished = false
let socket = null
/** The uTP socket under the (encrypted) stream: its address, stats and 'migrate' */
let utpSocket = null
const migrations = []
function finish (extra) {
  if (finished) return
  finished = true
  if (utpSocket !== null) Object.assign(out, { remoteAfter: `${utpSocket.remoteAddress}:${utpSocket.remotePort}`, migrations })
  process.stdout.write(JSON.stringify({ ...out, ...extra, ms: Date.now() - t0 }) + '\n')
  process.exit(0)
}
setTimeout(() => finish({ ok: false, error: `overall timeout (${opt.timeout} s)` }), opt.timeout * 1000).unref()
process.on('uncaughtException', (e) => finish({ ok: false, error: `uncaught: ${e?.code ?? ''} ${e?.message ?? e}` }))
process.on('unhandledRejection', (e) => finish({ ok: false, error: `unhandled: ${e?.code ?? ''} ${e?.message ?? e}` }))

const node = new Node()
node.on('error', (err) => finish({ ok: false, error: `node: ${err.message}` }))
await node.bindAsync(opt.port, '0.0.0.0')
let met
try {
  const via = opt.dht === ''
    ? { server: opt.server }
    : { dht: { bootstrap: opt.dht.split(','), ...(opt['dht-relay'] === '' ? {} : { relay: opt['dht-relay'] }) } }
  const m0 = Date.now()
  met = await node.rendezvous({ ...via, code: opt.code, relay: opt.relay !== 0, timeoutMs: opt.meet * 1000 })
  out.meetMs = Date.now() - m0
} catch (e) {
  finish({ ok: false, error: `rendezvous: ${e.code ?? ''} ${e.message}` })
}
socket = met.socket
utpSocket = met.utpSocket ?? met.socket
const { role } = met
utpSocket.on('migrate', (m) => migrations.push({ to: `${m.address}:${m.port}`, atMs: Date.now() - t0, at: Date.now() }))
Object.assign(out, { role, path: met.path, remote: `${met.remote.address}:${met.remote.port}`, encrypted: met.encrypted })
socket.on('error', (e) => finish({ ok: false, phase: out.phase, error: `socket: ${e.code ?? ''} ${e.message}` }))
socket.on('close', () => { if (out.phase !== 'done' && !ended) finish({ ok: false, phase: out.phase, error: 'socket closed early' }) })

// Everything the socket receives, in order
let inbox = Buffer.alloc(0)
let wake = null
let ended = false
socket.on('data', (d) => { inbox = Buffer.concat([inbox, d]); wake?.() })
socket.on('end', () => { ended = true; wake?.() })
async function take (n, what) {
  while (inbox.length < n) {
    if (ended) throw new Error(`peer ended after ${inbox.length} of ${n} bytes (${what})`)
    await new Promise((resolve) => { wake = resolve })
    wake = null
  }
  const b = inbox.subarray(0, n)
  inbox = inbox.subarray(n)
  return b
}
const counters = () => { const s = utpSocket.stats?.(); return s == null ? null : { packetsSent: s.packetsSent, packetsReceived: s.packetsReceived } }

try {
  out.phase = 'ping'
  const p0 = Date.now()
  if (role === 'connect') {
    socket.write('ping')
    const pong = (await take(4, 'pong')).toString()
    if (pong !== 'pong') throw new Error(`expected pong, got ${JSON.stringify(pong)}`)
  } else {
    const ping = (await take(4, 'ping')).toString()
    if (ping !== 'ping') throw new Error(`expected ping, got ${JSON.stringify(ping)}`)
    socket.write('pong')
  }
  out.pingMs = Date.now() - p0

  out.phase = 'idle'
  const before = counters()
  const i0 = Date.now()
  await sleep(opt.idle * 1000)
  out.idleMs = Date.now() - i0
  const after = counters()
  if (before !== null && after !== null) {
    out.idle = { packetsSent: after.packetsSent - before.packetsSent, packetsReceived: after.packetsReceived - before.packetsReceived }
  }
  if (inbox.length > 0) throw new Error(`${inbox.length} unexpected bytes arrived while idle`)

  out.phase = 'transfer'
  out.mtu = utpSocket.stats?.()?.mtu // what path MTU discovery settled on
  const x0 = Date.now()
  const hash = createHash('sha256')
  if (role === 'accept') {
    // The connecting side began idling a one-way trip after us (it waited for our pong) and counts any
    // byte before its own idle ends as unexpected: let it finish first
    await sleep(500)
    const data = randomBytes(opt.bytes)
    hash.update(data)
    if (!socket.write(data)) await new Promise((resolve) => socket.once('drain', resolve))
    socket.end()
    // the connecting side ends after it got everything: wait for that (so our bytes were delivered)
    while (!ended) await new Promise((resolve) => { wake = resolve })
    out.phase = 'done'
    finish({ ok: true, bytes: opt.bytes, sha256: hash.digest('hex'), transferMs: Date.now() - x0 })
  } else {
    while (!ended) await new Promise((resolve) => { wake = resolve })
    const got = inbox
    hash.update(got)
    out.phase = 'done'
    socket.end()
    await sleep(300) // let the FIN out
    finish({ ok: true, bytes: got.length, sha256: hash.digest('hex'), transferMs: Date.now() - x0 })
  }
} catch (e) {
  finish({ ok: false, phase: out.phase, error: e.message })
}
