// What socket.stats() and node.stats() return. The native side counts per connection (utp-proto's
// ConnectionStats) and per endpoint (EndpointStats); the node adds what only JavaScript sees (raw datagrams,
// totals of connections that closed) and the socket adds its rendezvous path and millisecond forms.

import type { AddressInfo, ConnectionStats as NativeConnectionStats } from './native'

/**
 * How rendezvous() reached the peer: 'lan' (a LAN address), 'direct' (public addresses, punched), 'birthday'
 * (birthday probing through an endpoint-dependent NAT), 'relay' (the server's relay)
 */
export type RendezvousPath = 'lan' | 'direct' | 'birthday' | 'relay'

/** One connection's counters and estimates, as the native core keeps them (declared once, in native.ts) */
export type ConnectionStats = NativeConnectionStats

/** socket.stats(): the native counters plus the path and millisecond forms of the times */
export interface SocketStats extends ConnectionStats {
  /**
   * How rendezvous() reached the peer: 'lan' (a LAN address), 'direct' (public addresses, punched), 'birthday'
   * (birthday probing through an endpoint-dependent NAT), 'relay' (the server's relay); undefined for sockets
   * made by connect() or accepted by listen()
   */
  path: RendezvousPath | undefined
  /**
   * false once the native connection closed, and the numbers are final: after the FIN exchange completed
   * (which may be a moment after the stream's 'close') or the connection failed or was destroyed
   */
  open: boolean
  /** `rtt` in milliseconds */
  rttMs: number
  /** `rttVar` in milliseconds */
  rttVarMs: number
  /** `rto` in milliseconds */
  rtoMs: number
  /** `queuingDelay` in milliseconds */
  queuingDelayMs: number
}

/** node.stats(): the node's socket, its connections and its datagrams */
export interface NodeStats {
  /** The bound address, or null while not bound (before bind, after close) */
  address: AddressInfo | null
  /** Accepting incoming connections (listen() took effect and close() has not begun) */
  listening: boolean
  /** Open connections that peers opened to us */
  serverConnections: number
  /** Open connections we opened */
  clientConnections: number
  /** The connection limit (the `maxConnections` option) */
  maxConnections: number
  /** Connections made since the node was created, both directions (refused and failed attempts included) */
  connectionsOpened: number
  /** uTP payload bytes sent, over every connection the node has had (retransmissions included) */
  bytesSent: number
  /** uTP payload bytes received in order, over every connection */
  bytesReceived: number
  /** uTP packets sent, over every connection */
  packetsSent: number
  /** uTP packets received for a connection, over every connection */
  packetsReceived: number
  /** Retransmitted packets, over every connection */
  retransmits: number
  /** Retransmission timer expiries, over every connection */
  timeouts: number
  /** uTP packets that matched no connection (late packets of closed connections, strays, scans) */
  unmatchedPackets: number
  /** RESETs sent in answer to unmatched packets (rate-limited) */
  resetsSent: number
  /** Incoming connections refused (not listening, or maxConnections reached) */
  refused: number
  /**
   * Incoming connections whose handshake the peer has not confirmed yet: not announced ('connection'), not in
   * serverConnections, sending nothing but SYN-ACKs, forgotten after a few seconds unconfirmed
   */
  pendingHandshakes: number
  /** SYNs dropped unanswered: too many pending handshakes, in all or from their address */
  synsDropped: number
  /**
   * ICMP destination-unreachable reports for datagrams the node sent (Linux; 0 elsewhere). A connection attempt
   * to such an address fails with ECONNREFUSED at once; open connections ignore them
   */
  unreachable: number
  /** Non-uTP datagrams received: punch probes, STUN, rendezvous messages, 'message' of getUdpSocket() */
  rawDatagramsReceived: number
  /**
   * Non-uTP datagrams dropped on arrival because 4,096 of them (or 8 MiB) were waiting for JavaScript to take
   * them (it was busy): a bounded queue, as a socket's receive buffer is
   */
  rawDatagramsDropped: number
  /** Their bytes */
  rawBytesReceived: number
  /** Non-uTP datagrams handed to the socket (punch(), stun(), rendezvous(), getUdpSocket().send()) */
  rawDatagramsSent: number
  /** Their bytes */
  rawBytesSent: number
}

/** What a newer native addon adds to NodeStats (absent from an older binary: read as 0) */
export interface NativeEndpointCounters {
  unmatchedPackets?: number
  resetsSent?: number
  refused?: number
  unreachable?: number
  rawDatagramsDropped?: number
  pendingHandshakes?: number
  synsDropped?: number
}

/** @internal Running totals of closed connections */
export class Totals {
  bytesSent = 0
  bytesReceived = 0
  packetsSent = 0
  packetsReceived = 0
  retransmits = 0
  timeouts = 0

  add (s: Pick<NativeConnectionStats, 'bytesSent' | 'bytesReceived' | 'packetsSent' | 'packetsReceived' | 'retransmits' | 'timeouts'>): void {
    this.bytesSent += s.bytesSent
    this.bytesReceived += s.bytesReceived
    this.packetsSent += s.packetsSent
    this.packetsReceived += s.packetsReceived
    this.retransmits += s.retransmits
    this.timeouts += s.timeouts
  }
}

/** @internal socket.stats() from a native snapshot */
export function socketStats (s: NativeConnectionStats, path: RendezvousPath | undefined, open: boolean): SocketStats {
  return {
    ...s,
    path,
    open,
    rttMs: s.rtt / 1000,
    rttVarMs: s.rttVar / 1000,
    rtoMs: s.rto / 1000,
    queuingDelayMs: s.queuingDelay / 1000
  }
}
