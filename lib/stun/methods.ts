// node.stun() and node.natType(): STUN on the node's own socket, as Node methods. index.ts installs them on
// Node.prototype (the transport knows nothing of STUN); the public types come from index.ts's declaration merge.

import { debug, debugEnabled, describeError, hostPort } from '../debug'
import type { Transport } from '../transport'
import { stunBinding, type StunBindingOptions } from './client'
import type { StunAddress } from './codec'
import { natBehavior, type NatBehaviorResult, type NatDiscoveryOptions } from './discovery'

/**
 * This node's public address as a STUN server ('host:port') sees it, asked from the node's own socket,
 * so it is the mapping peers reach uTP through. Rejects with code ERR_STUN_TIMEOUT or ERR_STUN_ERROR_RESPONSE.
 */
export async function stun (this: Transport, server: string, options?: StunBindingOptions): Promise<StunAddress> {
  if (!debugEnabled) return (await stunBinding(this, server, options)).mapped
  debug('node %d stun %s', this._debugId, server)
  try {
    const r = await stunBinding(this, server, options)
    debug('node %d stun %s: public address %s, rtt %s ms', this._debugId, server, hostPort(r.mapped.address, r.mapped.port), r.rtt.toFixed(1))
    return r.mapped
  } catch (e) {
    debug('node %d stun %s failed: %s', this._debugId, server, describeError(e))
    throw e
  }
}

/**
 * NAT behaviour discovery (RFC 5780: mapping and filtering) against a STUN server that offers
 * OTHER-ADDRESS and CHANGE-REQUEST, such as coturn; 'unknown' parts when the server does not.
 */
export function natType (this: Transport, server: string, options?: NatDiscoveryOptions): Promise<NatBehaviorResult> {
  if (!debugEnabled) return natBehavior(this, server, options)
  debug('node %d NAT discovery via %s', this._debugId, server)
  return natBehavior(this, server, options).then((r) => {
    debug('node %d NAT discovery via %s: %s', this._debugId, server, r.summary)
    return r
  }, (e: unknown) => {
    debug('node %d NAT discovery via %s failed: %s', this._debugId, server, describeError(e))
    throw e
  })
}
