// What rendezvous() resolves with: the stream, the path it took, and how long each phase lasted.

import type { SecureSocket } from '../secure'
import type { Socket } from '../socket'
import type { RendezvousPath as StatsPath } from '../stats'
import type { Transport } from '../transport'
import type { Mapping } from './protocol'

/**
 * 'lan': a LAN address; 'direct': the public addresses punched; 'birthday': a public port found by birthday
 * probing (one NAT maps per destination); 'relay': through the server's relay
 */
export type RendezvousPath = StatsPath

export interface RendezvousTimings {
  /** Milliseconds from the call until: the server acknowledged our registration */
  registeredMs: number
  /** ... the server paired us with the peer */
  pairedMs: number
  /** ... probing found a path (absent when none did) */
  punchedMs?: number
  /** ... the relay was ready (relay path only) */
  relayMs?: number
  /** ... the uTP connection was up */
  connectedMs: number
  /** Round-trip time to the server, ms, when measured */
  serverRttMs?: number
}

/**
 * What rendezvous() resolves with; `N` is the node's type (Node for node.rendezvous()), `S` the stream's:
 * SecureSocket by default, Socket with `encrypt: false`
 */
export interface RendezvousResult<N extends Transport = Transport, S extends SecureSocket | Socket = SecureSocket | Socket> {
  /**
   * The connected stream to the peer: the encrypted, authenticated SecureSocket over the uTP connection
   * (default), or the uTP Socket itself with `encrypt: false`
   */
  socket: S
  path: RendezvousPath
  /**
   * The node the socket lives on: the one rendezvous() was called on, except on the endpoint-dependent side
   * of a birthday path, where it is one of the extra ports (it closes when the socket closes, or with the
   * node rendezvous() was called on)
   */
  node: N
  /** NAT mappings as the server measured them, when it did */
  mapping?: { ours?: Mapping, peer?: Mapping }
  /** The address the socket talks to (the relay port on the server for the relay path) */
  remote: { address: string, port: number }
  /** 'connect' opened the connection, 'accept' took it */
  role: 'connect' | 'accept'
  timings: RendezvousTimings
  /**
   * Whether `socket` encrypts and authenticates the stream with the key both peers derived from the code
   * (the `encrypt` option). Either way the pairing itself was authenticated by the code
   */
  encrypted: boolean
  /** The uTP connection itself (the same object as `socket` when not encrypted): stats(), 'migrate' */
  utpSocket: Socket
  /**
   * Datagrams that named our pairing but carried no valid MAC (forged probes, acks or selects), dropped while
   * the rendezvous ran
   */
  unauthenticatedDropped: number
}
