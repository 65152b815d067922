// The client's side of the rendezvous protocol on the Node's own UDP socket: send messages from it (so the
// server and the peer see the NAT mapping uTP will use) and hear the ones that arrive on it.

import type { RemoteInfo } from '../udp-facade'
import type { Transport } from '../transport'
import { decode, encode, isDecodeError, type Endpoint, type Message } from './protocol'

export type WireHandler = (msg: Message, from: Endpoint) => void

export class Wire {
  private readonly _listener: (msg: Buffer, rinfo: RemoteInfo) => void
  private _open = true

  constructor (private readonly _node: Transport, handler: WireHandler) {
    this._listener = (msg, rinfo) => {
      const m = decode(msg)
      // Not ours (other traffic on the socket) or invalid: a peer or server speaking nonsense is ignored
      if (m === null || isDecodeError(m)) return
      handler(m, { address: rinfo.address, port: rinfo.port })
    }
    _node.getUdpSocket().on('message', this._listener)
  }

  /** Fire and forget: a failed send is the same as a lost datagram, which every sender here retries */
  send (msg: Message, to: Endpoint, ttl?: number): void {
    if (!this._open) return
    this._node._sendRaw(encode(msg), to.port, to.address, ttl, () => {})
  }

  close (): void {
    this._open = false
    this._node.getUdpSocket().removeListener('message', this._listener)
  }
}
