// Candidates: the addresses a peer may be reachable at. We report our LAN (host) addresses to the server;
// the server adds the public address it observed. The peer's list is tried in priority order, host before
// server-reflexive (RFC 8445's order), keeping only the families our socket can send to.

import * as net from 'net'
import * as os from 'os'

import type { AddressInfo } from '../native'
import { normalizeAddress } from '../options'
import { endpointKey, MAX_LAN_CANDIDATES, type Endpoint } from './protocol'

/**
 * 'lan': a host address the peer reported; 'public': what the server saw; 'peer': learned from a probe's
 * source; 'birthday': a port found by birthday probing (birthday.ts)
 */
export type CandidateKind = 'lan' | 'public' | 'peer' | 'birthday'

export interface Candidate extends Endpoint {
  kind: CandidateKind
  /** Identifies our probes to this candidate in the peer's acks */
  nonce: string
  /** Probes sent */
  sent: number
  /** The peer answered a probe to this candidate from this very address */
  acked: boolean
}

function isLinkLocal (address: string): boolean {
  return /^fe[89ab]/i.test(address) || address.startsWith('169.254.')
}

/**
 * Our host candidates: the node's port on every non-internal interface address it can use. A node bound to
 * '::' uses both families, to '0.0.0.0' IPv4 only, to one address that address only (none if loopback).
 * Link-local addresses are left out (they need a scope id the peer cannot use).
 */
export function lanCandidates (bound: AddressInfo): Endpoint[] {
  const address = normalizeAddress(bound.address)
  if (address !== '::' && address !== '0.0.0.0') {
    const loopback = address.startsWith('127.') || address === '::1'
    return loopback ? [] : [{ address, port: bound.port }]
  }
  const out: Endpoint[] = []
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) {
      if (i.internal || isLinkLocal(i.address)) continue
      if (address === '0.0.0.0' && i.family !== 'IPv4') continue
      out.push({ address: normalizeAddress(i.address), port: bound.port })
    }
  }
  // IPv4 first: the more likely shared LAN
  out.sort((a, b) => net.isIP(a.address) - net.isIP(b.address))
  return out.slice(0, MAX_LAN_CANDIDATES)
}

/** Whether a socket bound to `bound` can send to `address` (a v4-only socket cannot reach v6, and back) */
export function canReach (bound: AddressInfo, address: string): boolean {
  const local = normalizeAddress(bound.address)
  if (local === '::') return true
  return net.isIPv6(local) === net.isIPv6(address)
}

/** The peer's candidates in the order to try them, deduplicated (a LAN address that is also public stays 'lan') */
export function orderCandidates (
  peer: { public: Endpoint, lan: Endpoint[] },
  bound: AddressInfo,
  lanFirst: boolean,
  makeNonce: () => string
): Candidate[] {
  const lan = peer.lan.map(e => ({ ...e, kind: 'lan' as const }))
  const pub = { ...peer.public, kind: 'public' as const }
  const ordered = lanFirst ? [...lan, pub] : [pub, ...lan]
  const byKey = new Map<string, Candidate>()
  for (const e of ordered) {
    const address = normalizeAddress(e.address)
    if (!canReach(bound, address)) continue
    const key = endpointKey({ address, port: e.port })
    const seen = byKey.get(key)
    if (seen !== undefined) {
      if (e.kind === 'lan') seen.kind = 'lan'
      continue
    }
    byKey.set(key, { address, port: e.port, kind: e.kind, nonce: makeNonce(), sent: 0, acked: false })
  }
  return [...byKey.values()]
}

export function describeCandidate (c: Candidate): string {
  return `${endpointKey(c)} (${c.kind})`
}
