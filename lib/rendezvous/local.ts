// The local end of a rendezvous: the node's bound address (binding it when nobody did), the server's
// address in a family the node can reach, and the DHT bootstrap nodes' addresses.

import * as dns from 'dns'
import * as net from 'net'

import type { AddressInfo } from '../native'
import { normalizeAddress } from '../options'
import { parseHostPort, type Endpoint } from './protocol'
import type { Transport } from '../transport'

/** Bound address of the node, binding it (to a free port, dual-stack) if nobody did */
export async function ensureBound (node: Transport): Promise<AddressInfo> {
  try {
    return node.address()
  } catch {}
  try {
    return await node.bindAsync()
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_SOCKET_ALREADY_BOUND') throw e
  }
  // Someone else's bind() is in progress
  return await new Promise((resolve, reject) => {
    const onBound = (a: AddressInfo): void => {
      node.removeListener('error', onError)
      resolve(a)
    }
    const onError = (e: Error): void => {
      node.removeListener('bound', onBound)
      reject(e)
    }
    node.once('bound', onBound)
    node.once('error', onError)
  })
}

/** The server's address: an IP literal as is, a name through DNS in the family the node's socket can reach */
export async function lookup (host: string, bound: AddressInfo): Promise<string> {
  if (net.isIP(host) !== 0) return normalizeAddress(host)
  const local = normalizeAddress(bound.address)
  const family = net.isIPv4(local) ? 4 : local === '::' ? 0 : 6
  return normalizeAddress((await dns.promises.lookup(host, { family })).address)
}

/**
 * The IPv4 endpoints of DHT bootstrap entries ("host:port", names resolved; malformed entries, other families
 * and names that do not resolve within `timeoutMs` are left out): nodes at other addresses than a freshly
 * joined node's routing table, worth asking where our socket is seen
 */
export async function bootstrapEndpoints (entries: readonly string[], timeoutMs = 2000): Promise<Endpoint[]> {
  const lists = await Promise.all(entries.map(async (entry): Promise<Endpoint[]> => {
    let host: string, port: number
    try {
      ({ host, port } = parseHostPort(entry))
    } catch {
      return []
    }
    if (net.isIP(host) !== 0) return net.isIPv4(host) ? [{ address: host, port }] : []
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<[]>(resolve => { timer = setTimeout(() => resolve([]), timeoutMs) })
    try {
      const found = dns.promises.lookup(host, { family: 4, all: true }).then(all => all.map(a => ({ address: a.address, port })), () => [])
      return await Promise.race([found, late])
    } finally {
      clearTimeout(timer)
    }
  }))
  return lists.flat()
}
