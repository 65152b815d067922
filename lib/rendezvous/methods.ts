// node.rendezvous(): the rendezvous client as a Node method. index.ts installs it on Node.prototype (the
// transport knows nothing of rendezvous); the public type comes from index.ts's declaration merge.

import { debug, debugEnabled, describeError, hostPort } from '../debug'
import type { Transport } from '../transport'
import { rendezvous as meet, type RendezvousResult } from './client'
import type { RendezvousOptions, RendezvousStatus } from './options'

/**
 * Meet a peer through a rendezvous server under a shared code and end up with a connected Socket,
 * whichever way works: LAN addresses, the public addresses punched from both sides, or the server's
 * relay. Symmetric: both peers make the same call. Rejects with ERR_PUNCH_FAILED (naming the NAT
 * types and candidates) when no path works and `relay` is false, or ERR_RENDEZVOUS_TIMEOUT.
 */
export function rendezvous<N extends Transport> (this: N, options: RendezvousOptions): Promise<RendezvousResult<N>> {
  if (!debugEnabled) return meet<N>(this, options)
  return debugRendezvous(this, options)
}

/** rendezvous() with its start, its phases' timings and its outcome logged (the pairing code is not) */
async function debugRendezvous<N extends Transport> (node: N, options: RendezvousOptions): Promise<RendezvousResult<N>> {
  const o = options as { server?: unknown, dht?: unknown } | null
  const server = o?.dht !== undefined ? 'the DHT' : o?.server
  debug('node %d rendezvous via %s: starting', node._debugId, String(server))
  const onStatus = options?.onStatus
  const logged: RendezvousOptions = {
    ...options,
    onStatus: (s) => {
      debug('node %d rendezvous via %s: %s', node._debugId, String(server), describeStatus(s))
      if (typeof onStatus === 'function') onStatus(s)
    }
  }
  let r: RendezvousResult<N>
  try {
    // Options that are not an object, or an onStatus that is not a function, go as given: rendezvous() rejects them
    r = await meet<N>(node, options === null || typeof options !== 'object' || (onStatus !== undefined && typeof onStatus !== 'function') ? options : logged)
  } catch (e) {
    debug('node %d rendezvous via %s failed: %s', node._debugId, String(server), describeError(e))
    throw e
  }
  const t = r.timings
  const phases = [`registered +${t.registeredMs} ms`, `paired +${t.pairedMs} ms`]
  if (t.punchedMs !== undefined) phases.push(`punched +${t.punchedMs} ms`)
  if (t.relayMs !== undefined) phases.push(`relay ready +${t.relayMs} ms`)
  phases.push(`connected +${t.connectedMs} ms`)
  const mapping = r.mapping === undefined ? 'unmeasured' : `ours ${r.mapping.ours ?? 'unknown'}, peer's ${r.mapping.peer ?? 'unknown'}`
  debug('node %d rendezvous via %s: %s path to %s as %s (connection %d%s%s); %s; server rtt %s; NAT mappings %s', node._debugId, String(server),
    r.path, hostPort(r.remote.address, r.remote.port), r.role, r.utpSocket.id, r.node === node ? '' : ` on node ${r.node._debugId}`, r.encrypted ? ', encrypted' : ', not encrypted',
    phases.join(', '), t.serverRttMs === undefined ? 'unknown' : `${t.serverRttMs} ms`, mapping)
  r.utpSocket.on('migrate', (m) => {
    debug('node %d connection %d: the peer moved from %s to %s', r.node._debugId, r.utpSocket.id,
      m.from === null ? 'unknown' : hostPort(m.from.address, m.from.port), hostPort(m.address, m.port))
  })
  return r
}

/** A status as the debug log shows it */
function describeStatus (s: RendezvousStatus): string {
  switch (s.state) {
    case 'registering': return `registering with ${s.server}`
    case 'joining-dht': return 'joining the DHT'
    case 'published': return `card published on the DHT${s.observed === undefined ? '' : `, DHT nodes see us as ${hostPort(s.observed.address, s.observed.port)}`}; waiting for the peer`
    case 'registered': return `registered, the server sees us as ${hostPort(s.observed.address, s.observed.port)}; waiting for the peer`
    case 'paired': return `paired as ${s.role}; confirming the code`
    case 'punching': return `probing ${s.candidates.length === 0 ? 'no candidates' : s.candidates.join(', ')}`
    case 'relay': return `moving to the relay: ${s.reason}`
  }
}
