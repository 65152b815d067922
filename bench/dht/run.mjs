// Time to pair by code through the Mainline DHT, against pairing through our rendezvous server in the same run.
// A local DHT of 20 nodes of ours and 10 of bittorrent-dht on loopback (test/helpers/dht-lab.mjs; the internet's
// is out of reach here), and N pairings one after another with the CLI's sides and N without, each with a fresh
// code and two fresh Nodes; then N
// through a RendezvousServer on loopback. Prints median, worst and mean of each, and the phases of the DHT ones.
//
//   npm run bench:dht [-- --runs 20]
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { startDhtLab } from '../../test/helpers/dht-lab.mjs'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const Node = createRequire(import.meta.url)(path.join(root, 'dist', 'index.js'))
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 20) || 20

async function pairOnce (via, sides = [undefined, undefined]) {
  const a = new Node()
  const b = new Node()
  await Promise.all([a.bindAsync(0, '127.0.0.1'), b.bindAsync(0, '127.0.0.1')])
  const code = Node.generateCode()
  const t0 = Date.now()
  try {
    const opts = (side) => ({ ...via, code, timeoutMs: 60_000, ...(side === undefined ? {} : { side }) })
    const [ra, rb] = await Promise.all([a.rendezvous(opts(sides[0])), b.rendezvous(opts(sides[1]))])
    const ms = Date.now() - t0
    ra.socket.destroy()
    rb.socket.destroy()
    return { ms, path: ra.path, timings: ra.role === 'accept' ? ra.timings : rb.timings }
  } finally {
    await Promise.all([a, b].map(n => new Promise(resolve => n.close(resolve))))
  }
}

function stats (xs) {
  const s = [...xs].sort((x, y) => x - y)
  const median = s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
  return { median, worst: s[s.length - 1], best: s[0], mean: Math.round(s.reduce((x, y) => x + y, 0) / s.length) }
}

const lab = await startDhtLab({ host: '127.0.0.1', ours: 20, theirs: 10 })
// With the CLI's sides (each has a slot of its own), and without sides (the slots are claimed in turn)
const dht = []
const claimed = []
try {
  for (const [list, sides, what] of [[dht, ['receive', 'send'], 'sides'], [claimed, [undefined, undefined], 'no sides']]) {
    for (let i = 0; i < runs; i++) {
      const r = await pairOnce({ dht: { bootstrap: lab.bootstrap.slice(0, 3) } }, sides)
      list.push(r)
      process.stderr.write(`dht pairing (${what}) ${i + 1}/${runs}: ${r.ms} ms via ${r.path} (published +${r.timings.registeredMs}, met +${r.timings.pairedMs}, connected +${r.timings.connectedMs} ms)\n`)
    }
  }
} finally {
  await lab.close()
}
const server = new Node.RendezvousServer({ host: '127.0.0.1', port: 0 })
await server.listen()
const viaServer = []
try {
  for (let i = 0; i < runs; i++) viaServer.push(await pairOnce({ server: `127.0.0.1:${server.address().port}` }))
} finally {
  await server.close()
}
const d = stats(dht.map(r => r.ms))
const c = stats(claimed.map(r => r.ms))
const s = stats(viaServer.map(r => r.ms))
const phase = (k) => stats(dht.map(r => r.timings[k])).median
console.log(`pairing time, ${runs} pairings each, loopback, 30-node local DHT (20 mainline + 10 bittorrent-dht)`)
console.log('| via | median ms | worst ms | best ms | mean ms |')
console.log('|---|---:|---:|---:|---:|')
console.log(`| DHT, sides send and receive (the CLI) | ${d.median} | ${d.worst} | ${d.best} | ${d.mean} |`)
console.log(`| DHT, no sides (slots claimed) | ${c.median} | ${c.worst} | ${c.best} | ${c.mean} |`)
console.log(`| rendezvous server | ${s.median} | ${s.worst} | ${s.best} | ${s.mean} |`)
console.log(`DHT (sides) / server, median: ${(d.median / Math.max(1, s.median)).toFixed(1)}x`)
console.log(`DHT phases with sides (median of the accepting side): card published +${phase('registeredMs')} ms, peer's card read +${phase('pairedMs')} ms, connected +${phase('connectedMs')} ms`)
