// Where the uTP socket is seen from outside, learned from DHT nodes instead of a STUN server: a KRPC ping sent
// from the socket itself is answered with the `ip` field of BEP 42, the address and port the node saw it
// from. Two nodes at different addresses seeing the same port mean the NAT maps endpoint-independently
// (a cone: a peer can reach that port directly); different ports mean it maps per destination (symmetric:
// only birthday probing can meet it). The DHT node's own socket cannot tell us this: its mapping is another.

import { randomBytes } from 'crypto'

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
  const maxNodes = opts.maxNodes ?? 8
  const retryMs = opts.retryMs ?? 400
  const timeoutMs = opts.timeoutMs ?? 1500
  const targets = pickDistinct(nodes.filter(n => /^\d+\.\d+\.\d+\.\d+$/.test(n.address)), maxNodes)
  const pending = new Map<string, { to: Endpoint, ping: Buffer }>()
  for (const to of targets) {
    const t = randomBytes(4)
    pending.set(t.toString('hex'), { to, ping: bencode({ t, y: Buffer.from('q'), q: Buffer.from('ping'), a: { id: randomBytes(20) } }) })
  }
  const seen: Array<{ from: Endpoint, at: Endpoint }> = []
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
  return summarize(seen)
}

function summarize (seen: Array<{ from: Endpoint, at: Endpoint }>): Reflection {
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
