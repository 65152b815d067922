// The libutp side of test/libtorrent/capture.py: a libutp (utp-native) server and a libutp client in
// one process, the client connecting through the capture relay. Driven by lines on stdin, reporting
// by lines on stdout, so the relay knows when each phase starts:
//
//   -> LISTEN <server port>        server bound on 127.0.0.1
//   <- CONNECT <relay port> <idle ms>
//   -> CLIENT <client port>        client bound; it now connects to the relay and sends UP bytes
//   -> IDLE                        both directions done (server answered DOWN bytes); idle starts
//   -> CLOSING                     idle over; the client ends its side (FIN), the server follows
//   -> CLOSED                      both connections closed; the UDP sockets stay bound
//   <- EXIT
//   -> BYE
//
// With arguments `client <port> <hex> <ms>` it is only a libutp client instead: it connects to
// 127.0.0.1:<port>, sends the bytes <hex>, reports DATA <n>, END, ERROR <message> and CLOSE as they
// happen, and exits after <ms> milliseconds (used against a libtorrent session).
import { createRequire } from 'module'
import { createInterface } from 'readline'

const require = createRequire(import.meta.url)
const utp = require('utp-native')

if (process.argv[2] === 'client') {
  const [port, hex, ms] = process.argv.slice(3)
  const say = (line) => process.stdout.write(line + '\n')
  const client = utp()
  await new Promise((resolve) => client.bind(0, '127.0.0.1', resolve))
  say('CLIENT ' + client.address().port)
  const sock = client.connect(Number(port), '127.0.0.1')
  sock.on('data', (chunk) => say('DATA ' + chunk.length))
  sock.on('end', () => say('END'))
  sock.on('error', (err) => say('ERROR ' + err.message))
  sock.on('close', () => say('CLOSE'))
  sock.write(Buffer.from(hex, 'hex'))
  await new Promise((resolve) => setTimeout(resolve, Number(ms)))
  sock.destroy()
  client.close()
  say('BYE')
  process.exit(0)
}

const UP = 48 * 1024
const DOWN = 24 * 1024

const say = (line) => process.stdout.write(line + '\n')
const lines = createInterface({ input: process.stdin })
const next = () => new Promise((resolve) => lines.once('line', resolve))

let serverClosed
const server = utp.createServer((sock) => {
  serverClosed = new Promise((resolve) => sock.once('close', resolve))
  let got = 0
  sock.on('data', (chunk) => {
    got += chunk.length
    // Answer once the whole upload arrived; keep the connection open (no end) until the client ends
    if (got === UP) sock.write(Buffer.alloc(DOWN, 0x5a))
  })
  // Half-close: end our side when the client's FIN arrives
  sock.on('end', () => sock.end())
  sock.on('error', (err) => say('SERVER-ERROR ' + err.message))
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
say('LISTEN ' + server.address().port)

const [cmd, relayPort, idleMs] = (await next()).split(' ')
if (cmd !== 'CONNECT') throw new Error('expected CONNECT, got ' + cmd)

// A UTP instance of its own (not utp.connect), so its UDP socket outlives the connection and can
// answer a stale packet with a RESET
const client = utp()
await new Promise((resolve) => client.bind(0, '127.0.0.1', resolve))
say('CLIENT ' + client.address().port)

const sock = client.connect(Number(relayPort), '127.0.0.1')
sock.on('error', (err) => say('CLIENT-ERROR ' + err.message))
const clientClosed = new Promise((resolve) => sock.once('close', resolve))
let down = 0
const downloaded = new Promise((resolve) => {
  sock.on('data', (chunk) => {
    down += chunk.length
    if (down === DOWN) resolve()
  })
})
sock.on('end', () => say('CLIENT-END'))
sock.write(Buffer.alloc(UP, 0xa5))
await downloaded

say('IDLE')
await new Promise((resolve) => setTimeout(resolve, Number(idleMs)))
say('CLOSING')
sock.end()
await clientClosed
await serverClosed
say('CLOSED')

await next()
client.close()
server.close()
say('BYE')
lines.close()
