// A path in the middle of a rendezvous server's answers, for servers running in the test's own process: the
// test sees each rendezvous message the server sends and may drop it (a lossy path, held until the test says
// so) or change it (a path that rewrites). It patches dgram's send, which only the server uses here: nodes
// send through their native sockets.
import * as dgram from 'dgram'

import type * as ProtocolModule from '../../lib/rendezvous/protocol'
import { requireFromRoot } from './utp'

const protocol = requireFromRoot('./dist/lib/rendezvous/protocol.js') as typeof ProtocolModule

/** Where a datagram of the server's goes, and the server's socket that sends it */
export interface Hop { to: { address: string, port: number }, via: dgram.Socket }

export type Edit = (m: ProtocolModule.Message, hop: Hop) => ProtocolModule.Message | null

/**
 * Route the server's messages through `edit`: it returns the message, a changed copy, or null to drop it.
 * Returns the function that undoes it; paths put in later must be undone first
 */
export function interceptServer (edit: Edit): () => void {
  const proto = dgram.Socket.prototype as unknown as { send: (...args: unknown[]) => void }
  const real = proto.send
  proto.send = function (this: dgram.Socket, ...args: unknown[]): void {
    const [buf, port, address] = args
    const m = Buffer.isBuffer(buf) && typeof port === 'number' && typeof address === 'string' ? protocol.decode(buf) : null
    if (m !== null && !protocol.isDecodeError(m)) {
      const out = edit(m, { to: { address: address as string, port: port as number }, via: this })
      if (out === null) return
      if (out !== m) args[0] = protocol.encode(out)
    }
    real.apply(this, args)
  }
  return () => { proto.send = real }
}
