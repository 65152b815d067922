// Where the server's UDP sockets bind. A socket bound to a wildcard address (0.0.0.0, ::) receives on every
// local address, but its replies leave from whichever source address the kernel's route picks: on a host
// with several addresses that may not be the one the client sent to, and the client's NAT (which only lets
// in replies from the address it sent to) drops them. Node's dgram cannot read a datagram's destination
// address (no IP_PKTINFO) nor choose the source per send, so for a wildcard host we bind one socket per local
// address instead: a datagram arrives on the socket of the address it was sent to, and the reply leaves
// from that same socket, hence from that address. Addresses that appear later are not picked up (restart
// the server, or bind a specific address); IPv6 link-local addresses are skipped (they need a zone and no
// peer reaches a rendezvous server through one).

import * as dgram from 'dgram'
import * as net from 'net'
import * as os from 'os'

/** One bound UDP socket and the local address it answers from */
export interface LocalSocket {
  socket: dgram.Socket
  /** The local address this socket is bound to (the configured one when that is not a wildcard) */
  address: string
}

export function isWildcard (host: string): boolean {
  return host === '0.0.0.0' || host === '::'
}

/** The local addresses to bind for `host`: itself, or every usable local address of its family ('::': both) */
export function localAddresses (host: string, interfaces = os.networkInterfaces()): string[] {
  if (!isWildcard(host)) return [host]
  const out: string[] = []
  for (const list of Object.values(interfaces)) {
    for (const i of list ?? []) {
      if (i.family === 'IPv6' && (host === '0.0.0.0' || i.address.toLowerCase().startsWith('fe80:'))) continue
      if (!out.includes(i.address)) out.push(i.address)
    }
  }
  // No interfaces at all (a bare container): fall back to the wildcard rather than to nothing
  return out.length === 0 ? [host] : out
}

export function bindUdp (address: string, port: number, onError: () => void): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const v6 = net.isIPv6(address)
    // Per-address IPv6 sockets are IPv6 only; the IPv4 addresses have their own sockets. Only the '::'
    // fallback (no interfaces found) keeps dual-stack
    const udp = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 && address !== '::' })
    udp.once('error', reject)
    udp.bind(port, address, () => {
      udp.removeListener('error', reject)
      // ICMP errors from one client must not stop the server
      udp.on('error', onError)
      resolve(udp)
    })
  })
}

/**
 * Bind one socket per address, all on the same port (port 0: whatever the first gets). Rejects (and closes
 * what it bound) when any address cannot be bound
 */
export async function bindAll (addresses: string[], port: number, onError: () => void): Promise<LocalSocket[]> {
  const bound: LocalSocket[] = []
  try {
    for (const address of addresses) {
      const socket = await bindUdp(address, bound.length === 0 ? port : bound[0].socket.address().port, onError)
      bound.push({ socket, address })
    }
    return bound
  } catch (e) {
    closeAll(bound)
    throw e
  }
}

export function closeAll (sockets: LocalSocket[]): Promise<void> {
  return Promise.all(sockets.map(s => new Promise<void>(resolve => {
    try {
      s.socket.close(() => resolve())
    } catch {
      resolve() // already closed
    }
  }))).then(() => {})
}
