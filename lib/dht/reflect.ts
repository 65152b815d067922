// Where the uTP socket is seen from outside, learned from DHT nodes instead of a STUN server: a KRPC ping sent
// from the socket itself is answered with the `ip` field of BEP 42, the address and port the node saw it
// from. Two nodes at different addresses seeing the same port mean the NAT maps endpoint-independently
// (a cone: a peer can reach that port directly); different ports mean it maps per destination (symmetric:
// only birthday probing can meet it). The DHT node's own socket cannot tell us this: its mapping is another.

import { randomBytes } from 'crypto'
import { isIPv4 } from 'net'

import type { Transport } from '../transport'
import type { RemoteInfo } from '../udp-facade'
import { bdecode, bencode, isDict } from './bencode'

export interface Endpoint { address: string, port: number }

export interface Reflection {
  /** The address most answers saw, if any answered */
  public?: Endpoint
  /** 'dependent' when nodes saw different mappings; 'independent' when nodes at two or more addresses saw one */
  mapping?: 'independent' | 'dependent'
  /** Answers with an `ip` field, from how many distinct node addresses */
  answers: number
  addresses: number
  /** Nodes pinged (reflectUntilKnown only) */
  asked?: number
}

export interface ReflectOptions {
  /** Nodes to ask (at most `maxNodes` of them, preferring distinct addresses). Default 8 */
  maxNodes?: number
  /** Pings go out at 0 and again after this long, ms. Default 400 */
  retryMs?: number
  /** Resolve after this long with what arrived, ms (earlier once every node answered). Default 1,500 */
  timeoutMs?: number
}

/** Ping `nodes` from `node`'s socket and read where they saw us */
export async function reflectAddress (node: Transport, nodes: Endpoint[], opts: ReflectOptions = {}): Promise<Reflection> {
  const targets = pickDistinct(nodes.filter(isIpv4), opts.maxNodes ?? 8)
  return summarize(await ping(node, targets, opts))
}

export interface ReflectUntilKnownOptions extends ReflectOptions {
  /** Give up on learning the mapping after this long in all, ms. Default 3,000 */
  budgetMs?: number
  /** Between rounds, read the nodes again this often until new ones appear, ms. Default 250 */
  pollMs?: number
  /**
   * Give up sooner when no new node has appeared for this long, ms. Default 1,000: a network whose nodes all
   * sit at one address (a test network on one host) cannot tell the mapping however long it is asked
   */
  quietMs?: number
}

/**
 * Like reflectAddress, but in rounds until the mapping is known: each round pings nodes not asked before, from a
 * fresh `nodes()`. A DHT node that has just joined knows only the few nodes that answered its join so far
 * (mainline's `bootstrapped()` resolves while its first lookup still runs: three or four nodes, often at one
 * address), and answers from one address cannot tell a mapping. A peer whose mapping stays unknown loses
 * birthday probing, so waiting a second or two for more nodes is worth it
 */
export async function reflectUntilKnown (node: Transport, nodes: () => Promise<Endpoint[]>, opts: ReflectUntilKnownOptions = {}): Promise<Reflection> {
  const maxNodes = opts.maxNodes ?? 8
  const timeoutMs = opts.timeoutMs ?? 1500
  const pollMs = opts.pollMs ?? 250
  const quietMs = opts.quietMs ?? 1000
  const deadline = Date.now() + (opts.budgetMs ?? 3000)
  const asked = new Set<string>()
  const seen: Seen[] = []
  let lastFresh = Date.now()
  for (;;) {
    const fresh = (await nodes()).filter(n => isIpv4(n) && !asked.has(`${n.address}:${n.port}`))
    if (fresh.length > 0) {
      lastFresh = Date.now()
      // Addresses that have not answered yet first: a second address is what tells the mapping
      const answered = new Set(seen.map(s => s.from.address))
      const targets = pickDistinct([...fresh.filter(n => !answered.has(n.address)), ...fresh.filter(n => answered.has(n.address))], maxNodes)
      for (const t of targets) asked.add(`${t.address}:${t.port}`)
      seen.push(...await ping(node, targets, { ...opts, timeoutMs: Math.max(1, Math.min(timeoutMs, deadline - Date.now())) }))
      const r = summarize(seen)
      if (r.mapping !== undefined) return { ...r, asked: asked.size }
    }
    if (Date.now() + pollMs >= deadline || Date.now() - lastFresh >= quietMs) return { ...summarize(seen), asked: asked.size }
    await new Promise(resolve => setTimeout(resolve, pollMs))
  }
}

interface Seen { from: Endpoint, at: Endpoint }

const isIpv4 = (n: Endpoint): boolean => isIPv4(n.address)

/** KRPC pings to `targets`, sent at 0 and again after retryMs; what the answers said, until all answered or timeoutMs */
async function ping (node: Transport, targets: Endpoint[], opts: ReflectOptions): Promise<Seen[]> {
  const retryMs = opts.retryMs ?? 400
  const timeoutMs = opts.timeoutMs ?? 1500
  const pending = new Map<string, { to: Endpoint, ping: Buffer }>()
  for (const to of targets) {
    const t = randomBytes(4)
    pending.set(t.toString('hex'), { to, ping: bencode({ t, y: Buffer.from('q'), q: Buffer.from('ping'), a: { id: randomBytes(20) } }) })
  }
  const seen: Seen[] = []
  const udp = node.getUdpSocket()
  await new Promise<void>(resolve => {
    const onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
      const m = bdecode(msg)
      if (!isDict(m) || !Buffer.isBuffer(m.t) || !Buffer.isBuffer(m.y) || m.y.toString() !== 'r') return
      const key = m.t.toString('hex')
      const p = pending.get(key)
      // Only the node we asked, answering our transaction, tells us anything
      if (p === undefined || p.to.address !== rinfo.address || p.to.port !== rinfo.port) return
      pending.delete(key)
      const at = Buffer.isBuffer(m.ip) ? compactToEndpoint(m.ip) : null
      if (at !== null) seen.push({ from: p.to, at })
      if (pending.size === 0) done()
    }
    const send = (): void => {
      for (const { to, ping } of pending.values()) node._sendRaw(ping, to.port, to.address, undefined, () => {})
    }
    const retry = setTimeout(send, retryMs)
    const timer = setTimeout(() => done(), timeoutMs)
    const done = (): void => {
      clearTimeout(retry)
      clearTimeout(timer)
      udp.removeListener('message', onMessage)
      resolve()
    }
    udp.on('message', onMessage)
    if (pending.size === 0) done()
    else send()
  })
  return seen
}

function summarize (seen: Seen[]): Reflection {
  const addresses = new Set(seen.map(s => s.from.address)).size
  if (seen.length === 0) return { answers: 0, addresses: 0 }
  const votes = new Map<string, { at: Endpoint, n: number }>()
  for (const s of seen) {
    const k = `${s.at.address}:${s.at.port}`
    const v = votes.get(k)
    if (v === undefined) votes.set(k, { at: s.at, n: 1 })
    else v.n++
  }
  const best = [...votes.values()].sort((a, b) => b.n - a.n)[0]
  const r: Reflection = { public: best.at, answers: seen.length, addresses }
  if (votes.size > 1) {
    // Nodes saw different ports (or addresses): the NAT maps per destination
    r.mapping = 'dependent'
  } else if (addresses >= 2) {
    // The same mapping toward two addresses: endpoint-independent. Toward one address only, a NAT that maps per
    // destination address (not port) would look the same, so that says nothing
    r.mapping = 'independent'
  }
  return r
}

/** Up to `n` nodes, one per address first, then more of the same addresses */
function pickDistinct (nodes: Endpoint[], n: number): Endpoint[] {
  const byAddress = new Map<string, Endpoint[]>()
  for (const e of nodes) {
    const list = byAddress.get(e.address)
    if (list === undefined) byAddress.set(e.address, [e])
    else list.push(e)
  }
  const out: Endpoint[] = []
  for (let round = 0; out.length < n; round++) {
    let added = false
    for (const list of byAddress.values()) {
      if (round < list.length && out.length < n) {
        out.push(list[round])
        added = true
      }
    }
    if (!added) break
  }
  return out
}

/** BEP 42's compact address: 4 bytes IPv4 and 2 bytes port (18 for IPv6, which the Mainline DHT does not use) */
function compactToEndpoint (b: Buffer): Endpoint | null {
  if (b.length !== 6) return null
  return { address: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`, port: b.readUInt16BE(4) }
}
