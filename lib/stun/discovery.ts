// NAT behaviour discovery (RFC 5780 §4.3 mapping, §4.4 filtering) from a Node's own socket, against an
// RFC 5780 server (two IPs, two ports, OTHER-ADDRESS). mappingFromServers is the weaker check that plain
// STUN servers allow: does our public port change with the destination?

import * as os from 'os'

import type { UtpError } from '../errors'
import type { AddressInfo } from '../native'
import { invalidType, invalidValue } from '../options'
import { formatServer, parseServer, stunBinding, type StunBindingOptions, type StunBindingResult, type StunNode } from './client'
import { canonicalIp, type StunAddress } from './codec'

export type NatBehavior = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent' | 'unknown'

/** Options for each Binding transaction (timeoutMs is per request, so negative filtering tests take that long) */
export type NatDiscoveryOptions = Pick<StunBindingOptions, 'timeoutMs' | 'retransmits' | 'signal'>

export interface NatBehaviorResult {
  mapping: NatBehavior
  filtering: NatBehavior
  /** Our mapped address as the primary server address saw it */
  publicAddress: StunAddress
  /** False when the mapped address is our own socket's address (no NAT between us and the server) */
  natted: boolean
  /** Hairpinning (RFC 5780 §4.5) is not tested yet */
  hairpin?: undefined
  summary: string
}

export interface MappingFromServersResult {
  /** 'endpoint-dependent': the mapping changed; plain servers cannot tell address- from address-and-port-dependent */
  mapping: 'endpoint-independent' | 'endpoint-dependent' | 'unknown'
  /** Our mapped address as the first server that answered saw it */
  publicAddress?: StunAddress
  /** One entry per server, in order */
  results: Array<{ server: string, mapped?: StunAddress, error?: Error }>
  summary: string
}

/**
 * Classify the NAT in front of the node's socket with the RFC 5780 server at `server`. Filtering is tested
 * before mapping tests II and III, whose requests to the other address would open a filtering NAT to it.
 * If the server gives no OTHER-ADDRESS, both behaviours are 'unknown'. Rejects if test I gets no answer.
 */
export async function natBehavior (node: StunNode, server: string, opts: NatDiscoveryOptions = {}): Promise<NatBehaviorResult> {
  const o = { timeoutMs: opts.timeoutMs, retransmits: opts.retransmits, signal: opts.signal }
  const t1 = await stunBinding(node, server, o)
  const publicAddress = t1.mapped
  const natted = !isLocal(publicAddress, node.address())
  const where = `public address ${formatServer(publicAddress)}${natted ? '' : ' (our own: no NAT)'}`
  const other = t1.otherAddress
  if (other === undefined || canonicalIp(other.address) === t1.from.address) {
    const why = other === undefined ? 'gives no OTHER-ADDRESS (no RFC 5780 support)' : 'has no second IP address'
    return { mapping: 'unknown', filtering: 'unknown', publicAddress, natted, summary: `${where}; mapping and filtering unknown: ${server} ${why}` }
  }

  // §4.4: ask for an answer from the other IP and port (test II), else from the other port only (test III)
  const answered = async (change: { changeIp?: boolean, changePort?: boolean }): Promise<boolean> => {
    try {
      await stunBinding(node, server, { ...o, ...change })
      return true
    } catch (e) {
      if ((e as UtpError).code === 'ERR_STUN_TIMEOUT') return false
      throw e
    }
  }
  let filtering: NatBehavior
  try {
    filtering = await answered({ changeIp: true, changePort: true })
      ? 'endpoint-independent'
      : await answered({ changePort: true }) ? 'address-dependent' : 'address-and-port-dependent'
  } catch (e) {
    if ((e as UtpError).code !== 'ERR_STUN_ERROR_RESPONSE') throw e
    filtering = 'unknown' // the server refused CHANGE-REQUEST
  }

  // §4.3: the other IP with the primary port (test II), then the other IP and port (test III)
  let mapping: NatBehavior = 'unknown'
  const optional = (p: Promise<StunBindingResult>): Promise<StunBindingResult | null> => p.catch((e: UtpError) => {
    if (e.code === 'ERR_STUN_TIMEOUT' || e.code === 'ERR_STUN_ERROR_RESPONSE') return null
    throw e
  })
  const t2 = await optional(stunBinding(node, formatServer({ address: other.address, port: t1.from.port }), o))
  if (t2 !== null && sameAddress(t2.mapped, publicAddress)) mapping = 'endpoint-independent'
  else if (t2 !== null) {
    const t3 = await optional(stunBinding(node, formatServer(other), o))
    if (t3 !== null) mapping = sameAddress(t3.mapped, t2.mapped) ? 'address-dependent' : 'address-and-port-dependent'
  }
  return { mapping, filtering, publicAddress, natted, summary: `${where}; mapping ${mapping}, filtering ${filtering}${natted ? nickname(mapping, filtering) : ''}` }
}

/**
 * Ask several plain STUN servers (at least two, concurrently) for our mapping: the same public address
 * and port from all of them means endpoint-independent mapping, which hole punching relies on.
 */
export async function mappingFromServers (node: StunNode, servers: string[], opts: NatDiscoveryOptions = {}): Promise<MappingFromServersResult> {
  if (!Array.isArray(servers)) throw invalidType('servers', 'an instance of Array', servers)
  if (servers.length < 2) throw invalidValue('servers', servers, 'must name at least two STUN servers')
  servers.forEach(s => parseServer(s)) // a bad one fails the call up front
  const o = { timeoutMs: opts.timeoutMs, retransmits: opts.retransmits, signal: opts.signal }
  const settled = await Promise.allSettled(servers.map(s => stunBinding(node, s, o)))
  const results = settled.map((r, i) => r.status === 'fulfilled'
    ? { server: servers[i], mapped: r.value.mapped }
    : { server: servers[i], error: r.reason as Error })
  const mapped = results.flatMap(r => r.mapped === undefined ? [] : [r.mapped])
  const publicAddress = mapped[0]
  if (mapped.length < 2) {
    return { mapping: 'unknown', publicAddress, results, summary: `only ${mapped.length} of ${servers.length} STUN servers answered; mapping unknown` }
  }
  const distinct = [...new Set(mapped.map(formatServer))]
  if (distinct.length === 1) {
    return { mapping: 'endpoint-independent', publicAddress, results, summary: `${mapped.length} STUN servers all saw ${distinct[0]}: mapping endpoint-independent` }
  }
  return { mapping: 'endpoint-dependent', publicAddress, results, summary: `STUN servers saw different mappings (${distinct.join(', ')}): mapping endpoint-dependent (a symmetric NAT)` }
}

function sameAddress (a: StunAddress, b: StunAddress): boolean {
  return canonicalIp(a.address) === canonicalIp(b.address) && a.port === b.port
}

/** Is the mapped address our socket's own (so no NAT)? A wildcard bind matches any local interface */
function isLocal (mapped: StunAddress, local: AddressInfo): boolean {
  if (mapped.port !== local.port) return false
  const ip = canonicalIp(mapped.address)
  if (local.address !== '::' && local.address !== '0.0.0.0') return canonicalIp(local.address) === ip
  return Object.values(os.networkInterfaces()).some(list => list?.some(i => canonicalIp(i.address) === ip) === true)
}

/** The RFC 3489 names people still use */
function nickname (mapping: NatBehavior, filtering: NatBehavior): string {
  if (mapping === 'address-dependent' || mapping === 'address-and-port-dependent') return ' (a "symmetric" NAT)'
  if (mapping !== 'endpoint-independent') return ''
  switch (filtering) {
    case 'endpoint-independent': return ' (a "full cone" NAT)'
    case 'address-dependent': return ' (a "restricted cone" NAT)'
    case 'address-and-port-dependent': return ' (a "port-restricted cone" NAT)'
    default: return ''
  }
}
