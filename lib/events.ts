// The events Node and Socket emit, as tuples of listener arguments. lib/node.ts and lib/socket.ts merge typed
// overloads of on/once/off/emit/... into their classes from these maps, so a listener with the wrong
// parameters is a compile error, and events outside the map still take any listener (EventEmitter's own form).

import type { Readable } from 'stream'

import type { UtpError } from './errors'
import type { AddressInfo } from './native'
import type { Socket } from './socket'

/** The argument of a Socket's 'migrate' event */
export interface MigrateInfo {
  /** The peer's new public address: the socket sends there from now on */
  address: string
  port: number
  /** Where the peer was before (null if the socket had no remote address) */
  from: { address: string, port: number } | null
}

/** Node events and their listener arguments */
export interface NodeEvents {
  /** The UDP socket is bound (bind(), bindAsync(), or the automatic bind of connect()/punch()/listenAsync()) */
  bound: [address: AddressInfo]
  /** listen() took effect: incoming connections are accepted from now on */
  listening: []
  /** A peer opened a connection to us (we are listening) */
  connection: [socket: Socket]
  /** One of our outgoing connections completed its handshake */
  connect: [socket: Socket]
  /**
   * A connection's peer went silent for `timeout` ms (a notice: the socket fails with ETIMEDOUT after as long
   * again unless a packet arrives or the application ends or destroys it), or a connection attempt timed out
   */
  timeout: [socket: Socket]
  /** Everything is shut: connections closed, the UDP socket closed */
  close: []
  /** A bind failure (EADDRINUSE, ...) or a fatal socket error (the node closes) */
  error: [err: UtpError]
}

/**
 * Socket events and their listener arguments: those of stream.Duplex, net.Socket's 'connect' and 'timeout',
 * and 'migrate'
 */
export interface SocketEvents {
  /** The outgoing connection completed its handshake (never emitted by incoming sockets, which start connected) */
  connect: []
  /** Received bytes: a Buffer, or a string after setEncoding() (typed `any`, as stream.Readable does) */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data: [chunk: any]
  /** The peer ended its side (FIN) and every byte before it was read */
  end: []
  /** end() was called and every byte was handed to the native send buffer */
  finish: []
  /** The write buffer emptied after write() returned false */
  drain: []
  /** The stream is closed (after 'end'/'finish', or after 'error') */
  close: []
  /**
   * The connection failed; `code` says why (ECONNREFUSED, ECONNRESET, ETIMEDOUT, ...: see UtpError). An error
   * you pass to destroy() yourself arrives as it is
   */
  error: [err: UtpError]
  /**
   * The peer sent nothing (keepalives count) for the socket's timeout (setTimeout(), default the node's
   * `timeout`): a notice, as in utp-punch. Answering it with end() or destroy() closes the socket without an
   * error; otherwise a peer we wait on that stays silent for twice that (and at least the node's `timeout`)
   * fails it with ETIMEDOUT. A connection attempt fails with ETIMEDOUT right after its notice
   */
  timeout: []
  /**
   * The peer's NAT rebound it to a new public address and the socket now talks to that address (only for
   * sockets made by rendezvous() with followMoves, the default)
   */
  migrate: [info: MigrateInfo]
  readable: []
  pause: []
  resume: []
  pipe: [src: Readable]
  unpipe: [src: Readable]
}

/** Any listener (events outside the maps, as EventEmitter allows) */
export type AnyListener = (...args: any[]) => void
