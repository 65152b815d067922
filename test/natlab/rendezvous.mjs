// Tiny UDP rendezvous + echo server for validating the NAT lab itself (plain dgram, no product code).
//
//   node rendezvous.mjs --bind 203.0.113.10:7000 [--bind 203.0.113.11:7000 ...] [--duration S]
//
// JSON datagrams:
//   {t:'reg', code, id, lan}  -> {t:'reg-ok', you:'ip:port'}; once two ids registered the same code, every
//                                further reg also gets {t:'peer', id, pub:'ip:port', lan} about the other one
//   {t:'echo', n}             -> {t:'echo', n, you:'ip:port'} (same socket)
// Prints one JSON line per event to stdout and exits by itself after --duration seconds.
import dgram from 'node:dgram'

const args = process.argv.slice(2)
const binds = []
let duration = 60
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--bind') binds.push(args[++i])
  else if (args[i] === '--duration') duration = Number(args[++i])
  else throw new Error(`unknown argument ${args[i]}`)
}
if (binds.length === 0) binds.push('203.0.113.10:7000')

const codes = new Map() // code -> Map(id -> {pub, lan})
const log = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const sockets = []

for (const b of binds) {
  const i = b.lastIndexOf(':')
  const host = b.slice(0, i)
  const port = Number(b.slice(i + 1))
  const sock = dgram.createSocket('udp4')
  sockets.push(sock)
  const reply = (obj, rinfo) => sock.send(JSON.stringify(obj), rinfo.port, rinfo.address)
  sock.on('message', (buf, rinfo) => {
    let msg
    try { msg = JSON.parse(buf.toString()) } catch { return }
    const you = `${rinfo.address}:${rinfo.port}`
    if (msg.t === 'echo') {
      reply({ t: 'echo', n: msg.n, you }, rinfo)
    } else if (msg.t === 'reg' && typeof msg.code === 'string' && typeof msg.id === 'string') {
      let peers = codes.get(msg.code)
      if (peers === undefined) codes.set(msg.code, peers = new Map())
      const prev = peers.get(msg.id)
      if (prev === undefined || prev.pub !== you) log({ ev: 'reg', code: msg.code, id: msg.id, pub: you, lan: msg.lan, via: b })
      peers.set(msg.id, { pub: you, lan: msg.lan ?? null })
      reply({ t: 'reg-ok', you }, rinfo)
      for (const [id, p] of peers) {
        if (id !== msg.id) reply({ t: 'peer', id, pub: p.pub, lan: p.lan }, rinfo)
      }
    }
  })
  sock.bind(port, host, () => log({ ev: 'listening', addr: b }))
}

const stop = () => {
  for (const s of sockets) s.close()
  process.exit(0)
}
setTimeout(stop, duration * 1000)
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
