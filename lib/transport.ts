// The seam between the transport (Node, Socket) and what is built on top of it (STUN, rendezvous, the
// punching helpers). Upper layers take a `Transport`, never the Node class: the arrows point one way, and
// index.ts, which knows both, attaches node.stun()/natType()/rendezvous() to Node.prototype.

import type { NodeEvents } from './events'
import type { AddressInfo } from './native'
import type { Socket } from './socket'
import type { UdpSocketFacade } from './udp-facade'

/** The Node methods a protocol on the node's own UDP socket needs (Node implements it) */
export interface Transport {
  /** Names the node in debug lines */
  readonly _debugId: number
  address (): AddressInfo
  bindAsync (port?: number | null, host?: string | null): Promise<AddressInfo>
  listenAsync (): Promise<void>
  connect (port: number, host?: string | null): Socket
  /** The dgram-compatible view: its 'message' event carries every datagram uTP does not take */
  getUdpSocket (): UdpSocketFacade
  /** Send one raw datagram from the node's socket; `ttl` for low-TTL probes */
  _sendRaw (data: Buffer, port: number, host: string | undefined, ttl: number | undefined, cb: (err: Error | null) => void): void
  /** A new, unbound node with this one's options (birthday probing's extra ports) */
  _sibling (): Transport
  ref (): unknown
  unref (): unknown
  close (onClose?: () => void): unknown
  on<E extends keyof NodeEvents> (event: E, listener: (...args: NodeEvents[E]) => void): unknown
  once<E extends keyof NodeEvents> (event: E, listener: (...args: NodeEvents[E]) => void): unknown
  removeListener<E extends keyof NodeEvents> (event: E, listener: (...args: NodeEvents[E]) => void): unknown
}
