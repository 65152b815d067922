// A peer that uses the package itself (dist/, the compiled Node API) across the NAT lab: it learns the
// other peer's public address from rendezvous.mjs, punches with node.punch() on the uTP socket, then the
// sender connect()s and streams --bytes pseudo-random bytes while the receiver hashes what arrives.
//
//   node utp-peer.mjs --id A --role send    --code C --bytes 8388608 [--server 203.0.113.10:7000] [--port 40000]
//   node utp-peer.mjs --id B --role receive --code C [...]
// Prints one JSON line: {ok, role, bytes, sha256, punchMs, transferMs, peer, stats}.
import { createHash, randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const { Node } = createRequire(import.meta.url)(path.join(here, '..', '..', 'dist', 'index.js'))

const opt = { id: 'A', role: 'send', code: 'utp', server: '203.0.113.10:7000', port: 40000, bytes: 8 << 20, attempts: 20, timeout: 120 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const k = argv[i].replace(/^--/, '')
  if (!(k in opt)) throw new Error(`unknown argument ${argv[i]}`)
  const v = argv[++i]
  opt[k] = typeof opt[k] === 'number' ? Number(v) : v
}
const split = (s) => ({ address: s.slice(0, s.lastIndexOf(':')), port: Number(s.slice(s.lastIndexOf(':') + 1)) })
const srv = split(opt.server)
const t0 = Date.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const out = { id: opt.id, role: opt.role }
function finish (extra) {
  process.stdout.write(JSON.stringify({ ...out, ...extra, ms: Date.now() - t0 }) + '\n')
  process.exit(0)
}
setTimeout(() => finish({ ok: false, error: 'overall timeout' }), opt.timeout * 1000).unref()

let incoming = null
const node = new Node({ timeout: 10000 }, (socket) => { incoming ??= socket })
node.on('error', (err) => finish({ ok: false, error: `node: ${err.message}` }))
await node.bindAsync(opt.port, '0.0.0.0')
if (opt.role === 'receive') await node.listenAsync()
const udp = node.getUdpSocket()

let peer = null
udp.on('message', (msg) => {
  let m
  try { m = JSON.parse(msg.toString()) } catch { return }
  if (m.t === 'reg-ok') out.mapped = m.you
  else if (m.t === 'peer' && peer === null) peer = split(m.pub)
})
const regEnd = Date.now() + 15_000
while (peer === null && Date.now() < regEnd) {
  udp.send(Buffer.from(JSON.stringify({ t: 'reg', code: opt.code, id: opt.id, lan: null })), srv.port, srv.address)
  await sleep(200)
}
if (peer === null) finish({ ok: false, error: 'no peer from rendezvous' })
out.peer = `${peer.address}:${peer.port}`

const p0 = Date.now()
const punched = await node.punch(opt.attempts, peer.port, peer.address)
out.punchMs = Date.now() - p0
if (!punched) finish({ ok: false, error: 'punch failed' })

const x0 = Date.now()
if (opt.role === 'send') {
  const socket = await node.connectAsync(peer.port, peer.address)
  socket.resume() // the receiver sends nothing, but its FIN must be read for 'close'
  const hash = createHash('sha256')
  const block = randomBytes(64 * 1024)
  let sent = 0
  for (let n = 0; sent < opt.bytes; n++) {
    const chunk = Buffer.from(block.subarray(0, Math.min(block.length, opt.bytes - sent)))
    if (chunk.length >= 4) chunk.writeUInt32BE(n, 0)
    hash.update(chunk)
    sent += chunk.length
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve))
  }
  socket.end()
  await new Promise((resolve, reject) => { socket.once('close', resolve); socket.once('error', reject) })
  const stats = socket.stats?.()
  node.close()
  finish({ ok: true, bytes: sent, sha256: hash.digest('hex'), transferMs: Date.now() - x0, stats })
} else {
  while (incoming === null) await sleep(20)
  const socket = incoming
  const hash = createHash('sha256')
  let bytes = 0
  socket.on('data', (d) => { bytes += d.length; hash.update(d) })
  await new Promise((resolve, reject) => { socket.once('end', resolve); socket.once('error', reject) })
  const stats = socket.stats?.()
  // Exit only once our FIN is through: on a lossy link it may need resending, and a sender that never
  // gets it waits for it (like TCP's FIN_WAIT_2)
  await new Promise((resolve) => node.close(resolve))
  finish({ ok: true, bytes, sha256: hash.digest('hex'), transferMs: Date.now() - x0, stats })
}
