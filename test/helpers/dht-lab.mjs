// A Mainline DHT of our own, for tests: the internet's is out of reach here. Nodes of ours (DhtNode, the
// `mainline` crate) and of an independent implementation (webtorrent's bittorrent-dht), all on one host,
// bootstrapped from one another; plus optional hostile nodes:
//   - silent: takes every query and never answers
//   - garbage: answers every query with random bytes
//   - liar: a well-behaved node for routing (it answers ping and find_node), that answers every `get` with a
//     forged item: a value and a signature that no key of the target signed
// Importable (startDhtLab), or run as a program inside a network namespace:
//   node test/helpers/dht-lab.mjs --host 203.0.113.100,203.0.113.101,... --ours 20 --theirs 10 [--hostile]
// which prints one JSON line ({ bootstrap: [...] }) once the network is up and runs until killed.
import { createHash, createPublicKey, randomBytes, verify as edVerify } from 'crypto'
import * as dgram from 'dgram'
import { createRequire } from 'module'
import * as path from 'path'
import { fileURLToPath } from 'url'

import bencode from 'bencode'
import BittorrentDht from 'bittorrent-dht'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const require = createRequire(import.meta.url)

// RFC 8410: an Ed25519 public key in SubjectPublicKeyInfo is this prefix and the 32 raw bytes
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** bittorrent-dht's BEP 44 signature check, with Node's own Ed25519 */
export function ed25519Verify (signature, message, publicKey) {
  try {
    const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
    return edVerify(null, message, key, signature)
  } catch {
    return false
  }
}

/**
 * Start a DHT of `ours` + `theirs` nodes on `host`, or spread over `hosts` in turn (so that a NAT's mapping toward
 * several addresses can be seen; ours first, then theirs: with a host per node, each has an address of its own,
 * as on the internet), plus the hostile ones when asked (on the first host). Resolves when every node is bound and the independent ones have joined; `bootstrap` lists every honest node, the first one
 * first; `hostile` lists the hostile ones (add them to a client's bootstrap to be sure it meets them)
 */
export async function startDhtLab ({ host = '127.0.0.1', hosts = [host], ours = 20, theirs = 10, hostile = false } = {}) {
  host = hosts[0]
  const { DhtNode } = require(path.join(root, 'dist/lib/dht/node.js'))
  // The independent nodes first, joined through the first of them. mainline (8.0.1) drops queries whose
  // transaction id is not 4 bytes, and bittorrent-dht's are 2 (docs/dht.md): ours never answer theirs, so
  // ours must meet theirs by asking them, which is why each of ours joins through some of theirs as well
  const theirNodes = []
  for (let i = 0; i < theirs; i++) {
    const peers = theirNodes.length > 0 ? [`${theirNodes[0].address().address}:${theirNodes[0].address().port}`] : []
    // After ours in the list of hosts: with as many hosts as nodes, every node has an address of its own
    const on = hosts[(ours + i) % hosts.length]
    const dht = new BittorrentDht({ bootstrap: peers, host: on, verify: ed25519Verify })
    await new Promise((resolve, reject) => {
      dht.once('error', reject)
      dht.listen(0, on, resolve)
    })
    theirNodes.push(dht)
  }
  const theirAddresses = theirNodes.map(d => `${d.address().address}:${d.address().port}`)
  const first = await DhtNode.open({ bootstrap: theirAddresses, host, server: true })
  const seed = `${host}:${(await first.info()).port}`
  const ourNodes = [first]
  for (let i = 1; i < ours; i++) {
    const some = theirs > 0 ? [theirAddresses[i % theirs], theirAddresses[(i + 1) % theirs]] : []
    ourNodes.push(await DhtNode.open({ bootstrap: [seed, ...some], host: hosts[i % hosts.length], server: true }))
  }
  await Promise.all(theirNodes.map(d => d.ready ? null : new Promise(resolve => d.once('ready', resolve))))
  const hostileNodes = hostile ? [await silentNode(host), await garbageNode(host), await liarNode(host, seed)] : []
  const bootstrap = [seed]
  for (const n of ourNodes.slice(1)) {
    const info = await n.info()
    bootstrap.push(`${info.address}:${info.port}`)
  }
  bootstrap.push(...theirAddresses)
  return {
    host,
    bootstrap,
    ours: ourNodes,
    theirs: theirNodes,
    /** The independent nodes alone: where a bittorrent-dht client joins */
    theirBootstrap: theirAddresses,
    hostile: hostileNodes.map(h => ({ kind: h.kind, address: `${host}:${h.port}`, queries: () => h.queries, kinds: () => h.kinds })),
    /** Move the liar next to a target id (20 bytes), where lookups for it will ask it */
    aimLiar (target) {
      hostileNodes.find(h => h.kind === 'liar')?.aim(target)
    },
    async close () {
      for (const n of ourNodes) n.close()
      await Promise.all(theirNodes.map(d => new Promise(resolve => d.destroy(resolve))))
      for (const h of hostileNodes) h.close()
    }
  }
}

async function udp (host, onMessage) {
  const socket = dgram.createSocket('udp4')
  const node = { socket, queries: 0, kinds: {}, port: 0, close: () => socket.close() }
  socket.on('message', (msg, rinfo) => { node.queries++; onMessage(msg, rinfo, socket) })
  await new Promise(resolve => socket.bind(0, host, resolve))
  node.port = socket.address().port
  return node
}

async function silentNode (host) {
  return Object.assign(await udp(host, () => {}), { kind: 'silent' })
}

async function garbageNode (host) {
  return Object.assign(await udp(host, (msg, rinfo, socket) => {
    socket.send(randomBytes(1 + Math.floor(Math.random() * 200)), rinfo.port, rinfo.address)
  }), { kind: 'garbage' })
}

/**
 * Answers like a node (so it enters routing tables and lookups), but every value it returns is forged. aim(target)
 * gives it the id next to a target, as an attacker placing a node beside the key it wants to spoil would
 */
async function liarNode (host, seed) {
  let id = randomBytes(20)
  const node = await udp(host, (msg, rinfo, socket) => {
    const { query, q } = queryOf(msg) ?? {}
    if (query === undefined) return
    node.kinds[q] = (node.kinds[q] ?? 0) + 1
    const r = { id }
    // Always the closest node it knows of: itself
    if (q === 'find_node' || q === 'get' || q === 'get_peers') r.nodes = Buffer.concat([id, compact(host, node.port)])
    if (q === 'get' || q === 'get_peers') r.token = createHash('sha1').update(rinfo.address).digest().subarray(0, 8)
    if (q === 'get') {
      r.k = randomBytes(32)
      r.seq = 1e9
      r.sig = randomBytes(64)
      r.v = Buffer.from('forged')
    }
    socket.send(bencode.encode({ t: query.t, y: 'r', r, ip: compact(rinfo.address, rinfo.port) }), rinfo.port, rinfo.address)
  })
  const [h, p] = seed.split(':')
  const announce = () => node.socket.send(bencode.encode({ t: Buffer.from('liar'), y: 'q', q: 'ping', a: { id } }), Number(p), h)
  announce()
  return Object.assign(node, {
    kind: 'liar',
    aim (target) {
      id = Buffer.from(target)
      id[19] ^= 1
      announce()
    }
  })
}

/**
 * A node that holds one BEP 44 item, `{ k, seq, sig, v }` (signed by the test), and answers every `get` with it
 * after `delayMs`; to ping and find_node it answers with itself only. Two of these holding two versions of one item
 * stand for a DHT where a node missed the last update and answers first
 */
export async function itemHolder (host, item, delayMs) {
  const id = randomBytes(20)
  const node = await udp(host, (msg, rinfo, socket) => {
    const { query, q } = queryOf(msg) ?? {}
    if (query === undefined) return
    const r = { id, nodes: Buffer.concat([id, compact(host, node.port)]) }
    if (q === 'get') Object.assign(r, { token: Buffer.from('holder'), ...item })
    const reply = () => {
      // A get answered after close(): nobody is listening any more
      try {
        socket.send(bencode.encode({ t: query.t, y: 'r', r, ip: compact(rinfo.address, rinfo.port) }), rinfo.port, rinfo.address)
      } catch {}
    }
    if (q === 'get') setTimeout(reply, delayMs)
    else reply()
  })
  return Object.assign(node, { address: `${host}:${node.port}` })
}

/** A KRPC query and its name, or undefined for anything else */
function queryOf (msg) {
  let query
  try {
    query = bencode.decode(msg)
  } catch {
    return undefined
  }
  // bencode 4 gives byte strings as Uint8Array
  const text = (b) => b === undefined ? undefined : Buffer.from(b).toString()
  if (text(query?.y) !== 'q' || query.t === undefined) return undefined
  return { query, q: text(query.q) }
}

function compact (address, port) {
  const b = Buffer.alloc(6)
  address.split('.').forEach((x, i) => { b[i] = Number(x) })
  b.writeUInt16BE(port, 4)
  return b
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`)
    return i < 0 ? dflt : process.argv[i + 1]
  }
  const lab = await startDhtLab({
    hosts: arg('host', '127.0.0.1').split(','),
    ours: Number(arg('ours', 20)),
    theirs: Number(arg('theirs', 10)),
    hostile: process.argv.includes('--hostile')
  })
  process.stdout.write(JSON.stringify({ bootstrap: lab.bootstrap, hostile: lab.hostile.map(h => h.address) }) + '\n')
  const stop = () => { lab.close().then(() => process.exit(0), () => process.exit(1)) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
