// Birthday probing: a path between an endpoint-independent NAT (the "easy" side, one public port for every
// destination) and an endpoint-dependent one (the "hard" side, a fresh random public port per destination),
// where ordinary probing cannot work: the easy side never learns which port the hard side's NAT chose.
//
// The hard side opens many extra sockets (`ports`), each probing the easy side's public address, so its NAT
// holds that many random public ports open toward it. The easy side sends probes to random ports of the hard
// side's public IP from its one socket. With n open ports among the ~64,500 a NAT uses and k probes, some
// probe lands on an open port with probability 1 - (1 - n/64512)^k: 256 ports and 2,048 probes give 99.97 %.
// The hard side's socket that hears a probe answers it and becomes the path; the others close.

import { randomInt } from 'crypto'

import type { Socket } from '../socket'
import type { Transport } from '../transport'
import type { PeerAuth } from './auth'
import type { Endpoint, Message } from './protocol'
import { Wire } from './wire'

/** Ports NATs hand out (the unprivileged range) */
const PORT_MIN = 1024
const PORT_MAX = 65535
/** The spray's sending granularity: bursts this often keep the rate smooth without a timer per probe */
const SPRAY_TICK_MS = 10

export type BirthdayRole = 'easy' | 'hard'

/**
 * Which side of birthday probing we are, from both mappings as measured (by the server, or DHT nodes); null: not
 * needed, or cannot help. A mapping not measured (undefined: the checks did not arrive) facing a dependent one
 * counts as independent: ordinary probing cannot reach a dependent mapping unless the other NAT is a full cone,
 * while birthday probing works against any endpoint-independent one, and costs only bounded probes if the
 * unknown side was dependent too. Both peers see the same two mappings, so they pick opposite sides
 */
export function birthdayRole (mine: string | undefined, peer: string | undefined): BirthdayRole | null {
  if (mine !== 'dependent' && peer === 'dependent') return 'easy'
  if (mine === 'dependent' && peer !== 'dependent') return 'hard'
  return null
}

/** The easy side: probes to random distinct ports of the peer's IP, at a bounded rate and count */
export class BirthdaySpray {
  private _timer: NodeJS.Timeout | null = null
  private readonly _tried = new Set<number>()
  private _sent = 0
  private _credit = 0

  constructor (private readonly _o: {
    address: string
    /** Probes in all */
    count: number
    /** Probes per second */
    rate: number
    /** Send one probe to this port of `address` */
    send: (to: Endpoint) => void
  }) {}

  get sent (): number {
    return this._sent
  }

  start (): void {
    if (this._timer !== null || this._sent >= this._o.count) return
    let last = Date.now()
    this._timer = setInterval(() => {
      const now = Date.now()
      this._credit += (now - last) * this._o.rate / 1000
      last = now
      while (this._credit >= 1 && this._sent < this._o.count) {
        this._credit--
        this._sendOne()
      }
      if (this._sent >= this._o.count) this.stop()
    }, SPRAY_TICK_MS)
  }

  stop (): void {
    if (this._timer !== null) clearInterval(this._timer)
    this._timer = null
  }

  private _sendOne (): void {
    let port: number
    // Distinct ports until every one of the range's PORT_MAX - PORT_MIN + 1 was tried; then repeats
    do port = randomInt(PORT_MIN, PORT_MAX + 1)
    while (this._tried.has(port) && this._tried.size <= PORT_MAX - PORT_MIN)
    this._tried.add(port)
    this._sent++
    this._o.send({ address: this._o.address, port })
  }
}

export interface BirthdayHit {
  node: Transport
  wire: Wire
}

/**
 * The hard side: `count` extra nodes, each probing the peer's public address so our NAT keeps a public port
 * open toward it. The first node to hear the peer (a message with a valid MAC) is the hit: the others
 * close and the hit's node and wire are handed over, the handler switched to the caller's.
 */
export class BirthdayPorts {
  private readonly _ports: Array<{ node: Transport, wire: Wire }> = []
  private _timer: NodeJS.Timeout | null = null
  private _closed = false
  private _hit: BirthdayHit | null = null
  private _onMessage: (m: Message, from: Endpoint) => void = () => {}

  constructor (private readonly _o: {
    /** The node whose options and bound address the extra nodes copy */
    parent: Transport
    host: string
    count: number
    /** Checks that what a port hears comes from the peer (a valid MAC under the pairing's probe key) */
    auth: PeerAuth
    target: Endpoint
    /** How often each port probes the target (keeps its NAT mapping and the peer's view fresh) */
    refreshMs: number
    /** TTL of each port's first probe (0: normal) */
    lowTtl: number
    probe: () => Message
    onHit: (hit: BirthdayHit, m: Message, from: Endpoint) => void
  }) {}

  /** Bind the extra nodes; resolves once all have bound (or failed) */
  async open (): Promise<void> {
    const binds = Array.from({ length: this._o.count }, async () => {
      const node = this._o.parent._sibling()
      node.on('error', () => { /* an extra port's trouble only costs one ticket */ })
      try {
        await node.bindAsync(0, this._o.host)
      } catch {
        // Descriptor limits and the like: birthday probing goes on with fewer ports
        node.close()
        return
      }
      if (this._closed) {
        node.close()
        return
      }
      node.unref()
      const port = { node, wire: null as unknown as Wire }
      port.wire = new Wire(node, (m, from) => this._heard(port, m, from))
      this._ports.push(port)
    })
    await Promise.all(binds)
  }

  /** Start probing from every port: the first probe with a low TTL opens our NAT without reaching theirs */
  start (): void {
    if (this._closed || this._timer !== null) return
    for (const p of this._ports) p.wire.send(this._o.probe(), this._o.target, this._o.lowTtl > 0 ? this._o.lowTtl : undefined)
    this._timer = setInterval(() => {
      for (const p of this._ports) p.wire.send(this._o.probe(), this._o.target)
    }, this._o.refreshMs)
  }

  /** The hit's node, if any, is kept (the caller owns it now); every other node closes */
  close (): void {
    if (this._closed) return
    this._closed = true
    if (this._timer !== null) clearInterval(this._timer)
    this._timer = null
    for (const p of this._ports) {
      if (p.node === this._hit?.node) continue
      p.wire.close()
      p.node.close()
    }
    this._ports.length = 0
  }

  private _heard (port: { node: Transport, wire: Wire }, m: Message, from: Endpoint): void {
    if (this._hit !== null) {
      if (port.node === this._hit.node) this._onMessage(m, from)
      return
    }
    if (this._closed || !this._o.auth.verify(m)) return
    this._hit = { node: port.node, wire: port.wire }
    this.close()
    this._o.onHit(this._hit, m, from)
  }

  /** Route the hit node's later messages to `fn` */
  setHandler (fn: (m: Message, from: Endpoint) => void): void {
    this._onMessage = fn
  }
}

/**
 * A birthday port now carries the rendezvous' socket: it lives as long as that socket, and no longer than the
 * node rendezvous() was called on
 */
export function adoptPort (parent: Transport, port: Transport, socket: Socket): void {
  const closePort = (): void => { port.close() }
  port.ref()
  socket.once('close', () => {
    parent.removeListener('close', closePort)
    closePort()
  })
  parent.once('close', closePort)
}
