// Send a file over uTP and have the receiver confirm its SHA-256.
//
//   node examples/file-transfer.js receive [--port N] [--host ADDR] [--out DIR]
//   node examples/file-transfer.js send FILE HOST:PORT
//   node examples/file-transfer.js                     loopback demo: both sides here, a generated 4 MiB file
//
// The sender writes one JSON header line ({ name, size }), the file's bytes, then ends its side. The receiver
// keeps its side open after that (allowHalfOpen), checks size and hash, answers "ok <sha256>" and ends.
// For peers behind NATs, get the connected socket from node.rendezvous() instead (see chat-across-nats.js).
'use strict'
const crypto = require('crypto')
const fs = require('fs')
const os = require('os')
const path = require('path')
const { Node } = require('utp-punch-rs')

function option (args, name, fallback) {
  const i = args.indexOf(name)
  return i === -1 ? fallback : args[i + 1]
}

/** Listen (onListening gets the address), take one connection and store the file it carries in `outDir` */
async function receive ({ port = 0, host = '127.0.0.1', outDir = '.', onListening }) {
  const node = new Node({ allowHalfOpen: true })
  const address = await node.bindAsync(port, host)
  await node.listenAsync()
  if (onListening !== undefined) onListening(address)
  const socket = await new Promise((resolve) => node.once('connection', resolve))
  const result = await new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256')
    let head = Buffer.alloc(0)
    let header = null
    let out = null
    let received = 0
    socket.on('error', reject)
    socket.on('data', (chunk) => {
      if (header === null) {
        head = Buffer.concat([head, chunk])
        const nl = head.indexOf(10)
        if (nl === -1) return
        header = JSON.parse(head.subarray(0, nl).toString())
        const name = path.basename(String(header.name)) || 'received.bin'
        out = fs.createWriteStream(path.join(outDir, name))
        out.on('error', reject)
        chunk = head.subarray(nl + 1)
      }
      hash.update(chunk)
      received += chunk.length
      // Backpressure: stop reading from the peer while the disk catches up
      if (!out.write(chunk)) {
        socket.pause()
        out.once('drain', () => socket.resume())
      }
    })
    socket.on('end', () => {
      if (header === null) return reject(new Error('the sender ended before its header'))
      out.end(() => {
        const sha256 = hash.digest('hex')
        const ok = received === header.size
        socket.end(ok ? `ok ${sha256}\n` : `short ${received}\n`)
        resolve({ file: out.path, size: received, sha256, ok })
      })
    })
  })
  await node.closeAsync()
  return result
}
/** Send `file` to host:port; resolves once the receiver confirmed the hash */
async function send (file, host, port) {
  const { size } = await fs.promises.stat(file)
  const node = new Node()
  const started = process.hrtime.bigint()
  const socket = await node.connectAsync(port, host)
  const hash = crypto.createHash('sha256')
  let reply = ''
  socket.setEncoding('utf8')
  socket.on('data', (text) => { reply += text })
  const ended = new Promise((resolve, reject) => {
    socket.once('end', resolve)
    socket.once('error', reject)
  })
  socket.write(JSON.stringify({ name: path.basename(file), size }) + '\n')
  const input = fs.createReadStream(file)
  input.on('data', (chunk) => hash.update(chunk))
  input.pipe(socket)
  await ended
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const sha256 = hash.digest('hex')
  await node.closeAsync()
  const confirmed = reply.trim() === `ok ${sha256}`
  return { size, sha256, seconds, confirmed, reply: reply.trim() }
}

function mib (bytes, seconds) {
  return `${(bytes / 1048576).toFixed(1)} MiB in ${seconds.toFixed(2)} s (${(bytes / 1048576 / seconds).toFixed(1)} MiB/s)`
}

async function main () {
  const [command, ...args] = process.argv.slice(2)
  if (command === 'receive') {
    const r = await receive({
      port: Number(option(args, '--port', 0)),
      host: option(args, '--host', '127.0.0.1'),
      outDir: option(args, '--out', '.'),
      onListening: (a) => console.log(`receiving on ${a.address}:${a.port}`)
    })
    console.log(`received ${r.file}: ${r.size} bytes, sha256 ${r.sha256}${r.ok ? '' : ' (INCOMPLETE)'}`)
    if (!r.ok) process.exitCode = 1
  } else if (command === 'send') {
    const [file, target] = args
    const m = /^(.*):(\d+)$/.exec(target ?? '')
    if (file === undefined || m === null) throw new Error('usage: node examples/file-transfer.js send FILE HOST:PORT')
    const r = await send(file, m[1].replace(/^\[|\]$/g, ''), Number(m[2]))
    console.log(`sent ${path.basename(file)}: ${mib(r.size, r.seconds)}, sha256 ${r.sha256}`)
    console.log(r.confirmed ? 'receiver confirmed the sha256' : `receiver answered "${r.reply}"`)
    if (!r.confirmed) process.exitCode = 1
  } else if (command === undefined) {
    await demo()
  } else {
    throw new Error(`unknown command ${command}; use send, receive, or nothing for the loopback demo`)
  }
}

/** Both sides in this process on loopback, with a generated file */
async function demo () {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'utp-file-transfer-'))
  const inbox = path.join(dir, 'inbox')
  await fs.promises.mkdir(inbox)
  const file = path.join(dir, 'random.bin')
  await fs.promises.writeFile(file, crypto.randomBytes(Number(process.env.DEMO_MIB || 4) << 20))
  try {
    let sending
    const got = await receive({
      outDir: inbox,
      onListening: ({ port }) => { sending = send(file, '127.0.0.1', port) }
    })
    const sent = await sending
    console.log(`sent random.bin: ${mib(sent.size, sent.seconds)}`)
    console.log(`received ${path.basename(got.file)}: ${got.size} bytes, sha256 ${got.sha256}`)
    console.log(sent.confirmed ? 'receiver confirmed the sha256' : `receiver answered "${sent.reply}"`)
    if (!sent.confirmed) process.exitCode = 1
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(`file-transfer: ${err.code ?? ''} ${err.message}`)
  process.exit(1)
})
