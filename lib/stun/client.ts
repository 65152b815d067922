// One STUN Binding transaction over a Node's own UDP socket, so the mapping it learns is the one uTP and
// punching use. Retransmits as RFC 8489 §6.2.1 (RTO 500 ms, doubling), but never past timeoutMs in total.

import * as dns from 'dns'
import * as net from 'net'
import { performance } from 'perf_hooks'

import { createError, notRunning, type UtpError } from '../errors'
import type { AddressInfo } from '../native'
import { invalidType, invalidValue, validateInteger } from '../options'
import type { Transport } from '../transport'
import type { RemoteInfo } from '../udp-facade'
import { canonicalIp, decodeStunMessage, encodeBindingRequest, isStunMessage, newTransactionId, StunType, type StunAddress } from './codec'

/** RFC 8489 §6.2.1 defaults: initial RTO, Rc - 1 retransmissions, Rm */
const RTO_MS = 500
const RETRANSMITS = 6
const RM = 16
const DEFAULT_TIMEOUT_MS = 3000

export interface StunBindingOptions {
  /** The whole transaction's budget in ms, lookups and retransmissions included (default 3000) */
  timeoutMs?: number
  /** Retransmissions after the first request (default 6, so Rc = 7); the time budget still ends it first */
  retransmits?: number
  /** RFC 5780 CHANGE-REQUEST: ask the server to answer from its other IP address */
  changeIp?: boolean
  /** RFC 5780 CHANGE-REQUEST: ask the server to answer from its other port */
  changePort?: boolean
  signal?: AbortSignal
}

export interface StunBindingResult {
  /** Our address as the server saw it (XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS) */
  mapped: StunAddress
  /** The server's alternate address (OTHER-ADDRESS, else CHANGED-ADDRESS), when it supports RFC 5780 */
  otherAddress?: StunAddress
  /** RESPONSE-ORIGIN as the server put it */
  responseOrigin?: StunAddress
  /** Where the response came from, as seen on our socket */
  from: { address: string, port: number }
  /** ms from the first request to the response (so it includes any retransmission wait) */
  rtt: number
}

export interface StunError extends UtpError {
  /** ERR_STUN_ERROR_RESPONSE: the STUN error code (e.g. 420) and reason phrase */
  stunCode?: number
  stunReason?: string
}

/** The Node methods STUN uses (all public) */
export type StunNode = Pick<Transport, 'getUdpSocket' | 'address' | 'bindAsync' | 'once' | 'removeListener'>

/** 'host:port' or '[v6]:port' to its parts; ERR_INVALID_ARG_VALUE otherwise */
export function parseServer (server: string): { host: string, port: number } {
  if (typeof server !== 'string') throw invalidType('server', 'of type string', server)
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(server) ?? /^([^:[\]\s]+):(\d{1,5})$/.exec(server)
  const port = m === null ? 0 : Number(m[2])
  if (m === null || port < 1 || port > 65535 || (server.startsWith('[') && !net.isIPv6(m[1]))) {
    throw invalidValue('server', server, "must be 'host:port' or '[IPv6]:port'")
  }
  return { host: m[1], port }
}

/** 'ip:port', bracketing IPv6 */
export function formatServer (a: { address: string, port: number }): string {
  return net.isIPv6(a.address) ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`
}

/**
 * One Binding request/response with the STUN server at `server` ('host:port' or '[v6]:port'), sent from
 * the node's socket (bound to a free port first if it is not). Only a response with our transaction id
 * from the expected source counts: the server's address, or its other IP and/or port when changeIp /
 * changePort ask for that. Rejects with .code ERR_STUN_TIMEOUT, ERR_STUN_ERROR_RESPONSE (.stunCode,
 * .stunReason), ERR_INVALID_ARG_VALUE (bad server string), ABORT_ERR, or the socket's error.
 */
export async function stunBinding (node: StunNode, server: string, opts: StunBindingOptions = {}): Promise<StunBindingResult> {
  const { host, port } = parseServer(server)
  const timeoutMs = validateInteger('timeoutMs', opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1, 2 ** 31 - 1)
  const retransmits = validateInteger('retransmits', opts.retransmits ?? RETRANSMITS, 0, 100)
  const user = opts.signal
  if (user?.aborted === true) throw abortError(user.reason)

  // One signal ends every wait below: the deadline or the caller's abort, each with its own error
  const ac = new AbortController()
  const timer = setTimeout(() => ac.abort(createError('ERR_STUN_TIMEOUT', `STUN Binding to ${server} timed out after ${timeoutMs} ms`)), timeoutMs)
  const onUserAbort = (): void => ac.abort(abortError(user?.reason))
  user?.addEventListener('abort', onUserAbort, { once: true })
  try {
    const local = await ensureBound(node, ac.signal)
    const address = await abortable(lookup(host, local), ac.signal)
    return await transact(node, server, { address, port }, opts, retransmits, ac.signal)
  } finally {
    clearTimeout(timer)
    user?.removeEventListener('abort', onUserAbort)
  }
}

function transact (node: StunNode, server: string, dest: { address: string, port: number }, opts: StunBindingOptions,
  retransmits: number, signal: AbortSignal): Promise<StunBindingResult> {
  const udp = node.getUdpSocket()
  const id = newTransactionId()
  const request = encodeBindingRequest(id, opts)
  // With CHANGE-REQUEST, the answer must come from the changed IP / port and nowhere else (RFC 5780 §4.4)
  const wantSameIp = opts.changeIp !== true
  const wantSamePort = opts.changePort !== true
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined
    let sent = 0
    let firstSent = 0
    const finish = (err: Error | null, result?: StunBindingResult): void => {
      clearTimeout(timer)
      udp.removeListener('message', onMessage)
      udp.removeListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
      if (err !== null) reject(err)
      else resolve(result as StunBindingResult)
    }
    const onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
      // Cheap checks first: this listener sees every non-uTP datagram on the socket
      if (!isStunMessage(msg) || !msg.subarray(8, 20).equals(id)) return
      const sameIp = canonicalIp(rinfo.address) === dest.address
      const samePort = rinfo.port === dest.port
      let m
      try {
        m = decodeStunMessage(msg)
      } catch {
        return // malformed: as if lost, a retransmission may still be answered properly
      }
      // A server refusing CHANGE-REQUEST (420) answers from where we sent it
      const refusal = m.type === StunType.BINDING_ERROR && sameIp && samePort
      if (!refusal && (sameIp !== wantSameIp || samePort !== wantSamePort)) return
      if (m.type === StunType.BINDING_ERROR) {
        const code = m.error?.code ?? 0
        const reason = m.error?.reason ?? ''
        const err: StunError = createError('ERR_STUN_ERROR_RESPONSE', `STUN server ${server} answered with error ${code} ${reason}`.trimEnd())
        err.stunCode = code
        err.stunReason = reason
        finish(err)
      } else if (m.type === StunType.BINDING_SUCCESS && m.mapped !== undefined) {
        finish(null, {
          mapped: m.mapped,
          otherAddress: m.otherAddress,
          responseOrigin: m.responseOrigin,
          from: { address: canonicalIp(rinfo.address), port: rinfo.port },
          rtt: performance.now() - firstSent
        })
      }
    }
    const onClose = (): void => finish(notRunning())
    const onAbort = (): void => finish(signal.reason as Error)
    const send = (): void => {
      if (sent++ === 0) firstSent = performance.now()
      try {
        udp.send(request, dest.port, dest.address, (err) => {
          if (err !== null) finish(err)
        })
      } catch (e) {
        finish(e as Error)
        return
      }
      // After the last request, Rm x RTO without an answer ends the transaction (if the budget has not)
      timer = sent <= retransmits
        ? setTimeout(send, RTO_MS * 2 ** (sent - 1))
        : setTimeout(() => finish(createError('ERR_STUN_TIMEOUT', `no STUN response from ${server} to ${sent} requests`)), RTO_MS * RM)
    }
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    udp.on('message', onMessage)
    udp.once('close', onClose)
    signal.addEventListener('abort', onAbort)
    send()
  })
}

/** The node's bound address; binds it to a free (dual-stack) port first if it is idle */
async function ensureBound (node: StunNode, signal: AbortSignal): Promise<AddressInfo> {
  try {
    return node.address()
  } catch (e) {
    // EBADF: not bound yet (as dgram says); NOT_RUNNING: closing or closed, which bindAsync reports below
    const code = (e as UtpError).code
    if (code !== 'EBADF' && code !== 'ERR_SOCKET_DGRAM_NOT_RUNNING') throw e
  }
  try {
    return await node.bindAsync(0)
  } catch (e) {
    // Closing or closed: say so. ALREADY_BOUND: someone else's bind is under way, wait for it below
    if ((e as UtpError).code !== 'ERR_SOCKET_ALREADY_BOUND') throw e
  }
  await new Promise<void>((resolve, reject) => {
    const done = (err: Error | null): void => {
      node.removeListener('bound', onBound)
      node.removeListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
      if (err === null) resolve()
      else reject(err)
    }
    const onBound = (): void => done(null)
    const onClose = (): void => done(notRunning())
    const onAbort = (): void => done(signal.reason as Error)
    if (signal.aborted) return onAbort()
    node.once('bound', onBound)
    node.once('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
  return node.address()
}

/** An IP literal as is; a name through dns.lookup, in the family the node can reach (as Node#connect does) */
async function lookup (host: string, local: AddressInfo): Promise<string> {
  if (net.isIP(host) !== 0) return canonicalIp(host)
  const family = local.family === 'IPv4' ? 4 : local.address === '::' ? 0 : 6
  const { address } = await dns.promises.lookup(host, { family })
  return canonicalIp(address)
}

/** p, unless signal aborts first (then its reason) */
function abortable<T> (p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

function abortError (cause: unknown): UtpError {
  const err = createError('ABORT_ERR', 'The operation was aborted')
  err.name = 'AbortError'
  if (cause !== undefined) (err as Error & { cause?: unknown }).cause = cause
  return err
}
