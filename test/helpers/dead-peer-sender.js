'use strict'
// The sending peer of test/dead-peer.test.ts, in a process of its own so the test can SIGKILL it:
//
//   node dead-peer-sender.js direct PORT KEY BYTES        connect to 127.0.0.1:PORT
//   node dead-peer-sender.js relay  SERVER CODE KEY BYTES  rendezvous through SERVER with forceRelay
//
// Once connected it prints one line, `connected`, then writes BYTES of the AES-128-CTR keystream of KEY
// (hex; zero IV) in 64 KiB writes, honouring backpressure. BYTES 0: write nothing and stay connected.
// It never ends on its own: the test kills it. Any failure prints `error <message>` and exits 1.

const crypto = require('crypto')
const { once } = require('events')
const path = require('path')

const dist = path.join(__dirname, '..', '..', 'dist')
const { Node } = require(path.join(dist, 'index.js'))
const { rendezvous } = require(path.join(dist, 'lib', 'rendezvous', 'client.js'))

const CHUNK = 64 << 10

async function connect (mode, args) {
  const node = new Node()
  node.on('error', (err) => fail(`node error: ${err.message}`))
  if (mode === 'direct') {
    const socket = node.connect(Number(args[0]), '127.0.0.1')
    await once(socket, 'connect')
    return socket
  }
  if (mode === 'relay') {
    await node.bindAsync(0, '127.0.0.1')
    const met = await rendezvous(node, { server: args[0], code: args[1], forceRelay: true, encrypt: false })
    if (met.path !== 'relay') throw new Error(`expected the relay path, got ${met.path}`)
    return met.socket
  }
  throw new Error(`unknown mode ${mode}`)
}

async function main () {
  const [mode, ...rest] = process.argv.slice(2)
  const args = mode === 'relay' ? rest.slice(0, 2) : rest.slice(0, 1)
  const [key, bytes] = rest.slice(args.length)
  const socket = await connect(mode, args)
  socket.on('error', (err) => fail(`socket error: ${err.message}`))
  process.stdout.write('connected\n')
  const total = Number(bytes)
  const stream = crypto.createCipheriv('aes-128-ctr', Buffer.from(key, 'hex'), Buffer.alloc(16))
  for (let at = 0; at < total; at += CHUNK) {
    if (!socket.write(stream.update(Buffer.alloc(Math.min(CHUNK, total - at))))) await once(socket, 'drain')
  }
  // Stay until killed, whether or not there was anything to write
  setInterval(() => {}, 1 << 30)
}

function fail (message) {
  process.stdout.write(`error ${message}\n`)
  process.exit(1)
}

main().catch((err) => fail(err.message))
