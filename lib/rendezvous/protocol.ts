// The rendezvous wire format: encode and strictly validate every datagram the rendezvous server, its
// relay ports and two punching peers exchange.
//
// ## Rendezvous protocol, version 2
//
// Every datagram is `'UTPRV'` (0x55 0x54 0x50 0x52 0x56) | version byte (0x02) | a UTF-8 JSON object.
// Byte 0 (0x55) has low nibble 5, never uTP's version 1, and the fifth byte differs from the punch
// probes' `UTPRS`, so the Node's demux hands these datagrams to JavaScript as raw messages. The server
// refuses anything larger than 1,200 bytes (it answers ERR_TOO_LARGE). The object's `t` names its type;
// unknown fields are ignored, missing or ill-typed fields make the message malformed. A version-1 datagram
// gets `error ERR_VERSION` when that reply is not larger than it, else nothing.
//
// An endpoint is `{ "address": IP literal, "port": 1..65535 }`. `nonce` is the registration id a client
// picks (16..64 hex digits) and every later message about that registration repeats. `pair` is the id
// (32 hex digits) the server gives a pairing. Sizes: at most 16 LAN endpoints, nat at most 32 characters.
//
// Codes and keys. The user's code never reaches the server. A code `<nameplate>-<secret>` (/^(\d{1,6})-(.+)$/,
// e.g. "4127-purple-sausage-tiger") is registered under `key = "n:" + nameplate`; any other code under
// `key = "h:" + hex(SHA-256("utp-punch-rs code v2\0" + code))` (weaker: the server could guess it offline).
// Both peers run symmetric SPAKE2 with the whole code as password (`pake` carries the messages through the
// server) and prove they derived the same key with `confirm` MACs before probing; every probe, ack and
// select carries a MAC under a key derived from it, so only the two peers can steer the connection.
//
// Return routability: the server keeps no state for a source address it has not verified. A request that
// creates or changes state (register, keepalive from a new address, relay-request, check) without a valid
// `cookie` for its source (32 hex digits: HMAC of the server's secret, the source address and a 30 s time
// bucket; the current and the previous bucket are valid) is answered only with `retry { cookie }`, never
// larger than the request; the client repeats the request with it at once and keeps it for later requests.
// No reply to an unverified source is ever larger than the datagram that caused it.
//
// Flow: both peers register (→ retry → register with cookie), then send `check` to the server's second port
// (checkPort): the server compares the source port it saw there with the one on its main port to learn each
// NAT's mapping behaviour, and holds a new pairing (up to 1 s) for both checks. It sends `peer` (with the
// other's `pake`) to each; each finishes the PAKE and sends `confirm`, which the server forwards as
// `peer-confirm`. A wrong MAC makes that peer send `pake-failed`: the server burns the key (ERR_CODE_BURNED
// for 10 minutes). A key pairs once: a third registrant is refused, and the key is burned when its pairing
// ends. After the confirm both probe every candidate of the other every 200 ms; the 'connect' peer sends
// `select` to the first candidate that acked (a LAN one preferred) and opens uTP there, while the 'accept'
// peer takes the connection that comes from an address its peer probed from; both send `bye`. When no probe
// is answered within 5 s (or the direct uTP connect fails) a peer sends relay-request: the server binds two
// UDP ports, sends relay-allocated to both ('connect' gets port A, 'accept' port B), each peer sends
// relay-hello to its port (accepted only from the IP of its registration) until an ack says ready, then
// 'connect' opens uTP to server:A and 'accept' takes it from server:B. A relay port forwards only between
// the two learned addresses, under a byte-rate cap per allocation and a global byte budget; the allocation
// lives only as long as its pairing.
// Birthday probing (birthday.ts): when one peer's mapping is endpoint-dependent and the other's is not (or
// was not measured), the endpoint-dependent peer also probes from many extra ports and the other sprays probes (one nonce for
// all) at random ports of its public IP; an authenticated ack to a sprayed probe, or a probe on an extra
// port, is a path. After connecting, peers stay registered while their socket lives (keepalives); when a
// paired peer's source address changes (its NAT rebound, proven by a cookie for the new address), the server
// tells the other with `peer-moved`; that peer re-aims only after an authenticated probe-ack from there.
//
// Client → server (the server's UDP port, sent from the client's uTP socket so the server sees the NAT
// mapping uTP will use):
//   register       { key, nonce, lan: endpoint[], relay: bool, nat?, rtt?: ms, pake, side?, cookie? }
//                  pake: base64 of the client's SPAKE2 message (at most 64 bytes decoded). Sent every 500 ms
//                  until answered; repeating it is harmless (same nonce = same registration). side: what the
//                  application does in the pairing ("send", "receive": a lowercase token); a register whose side
//                  equals the side of the one waiting under the key is refused with ERR_SAME_ROLE, and the
//                  waiting one keeps waiting (no side on either: no check)
//   keepalive      { nonce, rtt?, cookie? }   every 15 s while registered (also while connected): refreshes
//                  the registration and the NAT mapping; from a new source address it moves the registration
//                  only with a valid cookie for that address
//   peer-ack       { nonce }          stops the server repeating `peer`
//   confirm        { nonce, mac }     mac: 64 hex digits, HMAC-SHA256(confirmKey, "confirm|" + role + "|" + pair);
//                  repeated until peer-confirm arrives (idempotent)
//   peer-confirm-ack { nonce }        stops the server repeating peer-confirm
//   pake-failed    { nonce }          the peer's confirm MAC was wrong: burn the key, drop both registrations
//   relay-request  { nonce, cookie? } asks for a relay for the pairing; idempotent, either peer may ask
//   bye            { nonce, gaveUp? } drops the registration (only from its current address). gaveUp: the error code
//                  this peer failed with (ABORT_ERR, ERR_PUNCH_FAILED...): a bye without it is the end of a
//                  connection; with it, the server tells a paired peer that this one gave up
//   check          { nonce, cookie? } to checkPort, a few times until check-ack: measures our NAT's mapping
//   peer-moved-ack { nonce, seq }     stops the server repeating peer-moved
// Server → client:
//   retry          { cookie }         repeat the request with this cookie
//   registered     { nonce, observed: endpoint, expiresInMs, checkPort? }   observed = the client's public
//                  address; checkPort: the server's second port for mapping checks (absent: no checks)
//   check-ack      { nonce, observed }   (from checkPort) the client's address as the second port saw it
//   keepalive-ack  { nonce, observed: endpoint }
//   peer           { nonce, pair, role: 'connect'|'accept', startInMs, public: endpoint, lan: endpoint[],
//                    peerNat?, relay: bool, mapping?, peerMapping?, pake }   mappings: 'independent'|'dependent'
//                  the other peer's candidates and SPAKE2 message. The first registrant gets role 'connect'
//                  and opens the uTP connection, the other 'accept'. Both start probing startInMs after
//                  receipt (relative, since clocks differ; the server subtracts each peer's half RTT).
//                  relay: both peers allow a relay and the server has one. Repeated every 500 ms (up to 6
//                  times) until peer-ack.
//   peer-confirm   { nonce, mac }     the other peer's confirm MAC; repeated every 500 ms (up to 10) until acked
//   relay-allocated { nonce, port, token }   this peer's relay port on the server's host, and its hello token
//   peer-moved     { nonce, public: endpoint, seq }   the paired peer's public address changed; repeated
//                  every 300 ms (up to 10 times) until peer-moved-ack with the same seq
//   peer-gone      { nonce, code }    the paired peer gave up (code: its gaveUp) before a connection was made: sent
//                  when its bye comes, and again in answer to each confirm, relay-request or keepalive of this peer
//   error          { code, message, nonce? }   nonce when the request named one. Codes: see ERROR_CODES.
//                  Datagrams without the magic, and anything beyond a rate limit, are dropped without a reply.
// Peer ↔ peer (to each candidate; the first probe to a public candidate leaves with a low TTL). mac: 32 hex
// digits, the first 16 bytes of HMAC-SHA256(probeKey, label + "|" + fields joined by "|"), compared in
// constant time; a message whose MAC does not verify is dropped:
//   probe          { pair, nonce, mac }   mac over "probe|" + pair + "|" + nonce; answered with
//   probe-ack      { pair, nonce, mac }   mac over "probe-ack|" + pair + "|" + nonce, to the probe's source
//   select         { pair, path: 'lan'|'direct'|'birthday', mac }   mac over "select|" + pair + "|" + path; the
//                  'connect' peer's choice, sent to the winning candidate just before its uTP SYN
// Peer ↔ relay port (TURN-like; the relay forwards every other datagram raw to the other peer):
//   relay-hello    { token }          teaches the relay port this peer's address and opens its NAT toward it
//   relay-hello-ack { token, ready }  ready: the relay knows both peers' addresses, connect now

import * as net from 'net'

export const MAGIC = Buffer.from('UTPRV', 'latin1')
export const VERSION = 2
export const HEADER_LEN = MAGIC.length + 1
/** Largest datagram the server accepts: fits any path MTU after IP/UDP headers */
export const MAX_MESSAGE_SIZE = 1200
export const MAX_LAN_CANDIDATES = 16
/** Largest SPAKE2 message a register may carry, bytes (decoded) */
export const MAX_PAKE_BYTES = 64
/** Hex digits of a cookie (16 bytes), a confirm MAC (32 bytes) and a probe/ack/select MAC (16 bytes) */
export const COOKIE_HEX = 32
export const CONFIRM_MAC_HEX = 64
export const PROBE_MAC_HEX = 32
/** A key as the server sees it: a nameplate ("n:4127") or the hash of a free-text code ("h:" + 64 hex) */
export const KEY_PATTERN = /^(n:\d{1,6}|h:[0-9a-f]{64})$/
/** An error code a peer reports in bye's gaveUp and the server passes on in peer-gone ("ABORT_ERR", "ERR_PUNCH_FAILED") */
export const ERROR_CODE_PATTERN = /^[A-Z][A-Z0-9_]*$/
export const ERROR_CODE_MAX = 40
/** A register's side: a short lowercase token ("send", "receive") */
export const SIDE_PATTERN = /^[a-z][a-z0-9-]{0,15}$/

/** Every `error` code a server sends, and what each means */
export const ERROR_CODES = {
  ERR_MALFORMED: 'a field is missing, ill-typed or out of range, or the body is not a JSON object',
  ERR_VERSION: 'the datagram speaks another protocol version',
  ERR_TOO_LARGE: 'the datagram exceeds the server\'s size limit',
  ERR_UNKNOWN_TYPE: 'no such message type',
  ERR_UNEXPECTED: 'a type servers do not take',
  ERR_NOT_REGISTERED: 'unknown or expired nonce (or not from the registration\'s address): register again',
  ERR_NONCE_IN_USE: 'the nonce is registered under another key',
  ERR_SAME_ROLE: 'the peer waiting under this key declared the same side (two senders or two receivers): it keeps waiting',
  ERR_CODE_BURNED: 'the key was used (paired, or a PAKE failed on it): make a new code',
  ERR_RATE_LIMITED: 'too many new registrations or relays from this address prefix (/24, /64) or in total',
  ERR_FULL: 'the registration table is full',
  ERR_NOT_PAIRED: 'no peer yet: a relay needs a pairing',
  ERR_RELAY_UNAVAILABLE: 'a peer opted out of relaying, the server does not relay, or ports could not be bound',
  ERR_RELAY_FULL: 'no relay allocation left',
  ERR_RELAY_BUDGET: 'the server\'s relay byte budget is spent'
} as const
export type ErrorCode = keyof typeof ERROR_CODES

export interface Endpoint { address: string, port: number }
export type Role = 'connect' | 'accept'
/** The paths probing can find: a LAN address, the public address, or a port found by birthday probing */
export type DirectPath = 'lan' | 'direct' | 'birthday'
/** NAT mapping behaviour as the server measured it (RFC 4787): one public port for every destination, or not */
export type Mapping = 'independent' | 'dependent'
const MAPPINGS = ['independent', 'dependent'] as const

export interface RegisterMsg {
  t: 'register'
  /** "n:" + nameplate, or "h:" + hash of a free-text code; never the code itself */
  key: string
  nonce: string
  lan: Endpoint[]
  relay: boolean
  nat?: string
  rtt?: number
  /** This client's SPAKE2 message, base64 */
  pake: string
  /** What the application does in the pairing ("send", "receive"); two registrations with equal sides never pair */
  side?: string
  cookie?: string
}
export interface RetryMsg { t: 'retry', cookie: string }
export interface RegisteredMsg { t: 'registered', nonce: string, observed: Endpoint, expiresInMs: number, checkPort?: number }
export interface CheckMsg { t: 'check', nonce: string, cookie?: string }
export interface CheckAckMsg { t: 'check-ack', nonce: string, observed: Endpoint }
export interface KeepaliveMsg { t: 'keepalive', nonce: string, rtt?: number, cookie?: string }
export interface KeepaliveAckMsg { t: 'keepalive-ack', nonce: string, observed: Endpoint }
export interface PeerMsg {
  t: 'peer'
  nonce: string
  pair: string
  role: Role
  startInMs: number
  public: Endpoint
  lan: Endpoint[]
  peerNat?: string
  relay: boolean
  /** This peer's NAT mapping, and the other's, when the server measured them */
  mapping?: Mapping
  peerMapping?: Mapping
  /** The other peer's SPAKE2 message, base64 */
  pake: string
}
export interface ConfirmMsg { t: 'confirm', nonce: string, mac: string }
export interface PeerConfirmMsg { t: 'peer-confirm', nonce: string, mac: string }
export interface PeerConfirmAckMsg { t: 'peer-confirm-ack', nonce: string }
export interface PakeFailedMsg { t: 'pake-failed', nonce: string }
export interface PeerMovedMsg { t: 'peer-moved', nonce: string, public: Endpoint, seq: number }
export interface PeerMovedAckMsg { t: 'peer-moved-ack', nonce: string, seq: number }
export interface PeerAckMsg { t: 'peer-ack', nonce: string }
export interface RelayRequestMsg { t: 'relay-request', nonce: string, cookie?: string }
export interface RelayAllocatedMsg { t: 'relay-allocated', nonce: string, port: number, token: string }
export interface ByeMsg { t: 'bye', nonce: string, gaveUp?: string }
export interface PeerGoneMsg { t: 'peer-gone', nonce: string, code: string }
export interface ErrorMsg { t: 'error', code: string, message: string, nonce?: string }
export interface ProbeMsg { t: 'probe', pair: string, nonce: string, mac: string }
export interface ProbeAckMsg { t: 'probe-ack', pair: string, nonce: string, mac: string }
export interface SelectMsg { t: 'select', pair: string, path: DirectPath, mac: string }
export interface RelayHelloMsg { t: 'relay-hello', token: string }
export interface RelayHelloAckMsg { t: 'relay-hello-ack', token: string, ready: boolean }

export type Message = RegisterMsg | RetryMsg | RegisteredMsg | CheckMsg | CheckAckMsg | KeepaliveMsg | KeepaliveAckMsg |
PeerMsg | PeerAckMsg | ConfirmMsg | PeerConfirmMsg | PeerConfirmAckMsg | PakeFailedMsg | PeerMovedMsg | PeerMovedAckMsg |
RelayRequestMsg | RelayAllocatedMsg | ByeMsg | PeerGoneMsg | ErrorMsg | ProbeMsg | ProbeAckMsg | SelectMsg | RelayHelloMsg | RelayHelloAckMsg

/** A datagram that carries our magic but is not a valid message: the error code and reason to answer with */
export interface DecodeError { error: string, message: string }

export function encode (msg: Message): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([VERSION]), Buffer.from(JSON.stringify(msg), 'utf8')])
}

/** Whether a datagram is ours at all (starts with the magic); anything else is someone else's traffic */
export function isRendezvous (buf: Buffer): boolean {
  return buf.length >= MAGIC.length && buf.compare(MAGIC, 0, MAGIC.length, 0, MAGIC.length) === 0
}

/** Parse and validate; null when the datagram is not ours, a DecodeError when it is ours but invalid */
export function decode (buf: Buffer): Message | DecodeError | null {
  if (!isRendezvous(buf)) return null
  if (buf.length < HEADER_LEN) return bad('ERR_MALFORMED', 'truncated header')
  if (buf[MAGIC.length] !== VERSION) return bad('ERR_VERSION', `unsupported version ${buf[MAGIC.length]}, expected ${VERSION}`)
  let body: unknown
  try {
    body = JSON.parse(buf.toString('utf8', HEADER_LEN))
  } catch {
    return bad('ERR_MALFORMED', 'body is not JSON')
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return bad('ERR_MALFORMED', 'body is not an object')
  try {
    return validate(body as Record<string, unknown>)
  } catch (e) {
    if (e instanceof FieldError) return bad('ERR_MALFORMED', e.message)
    throw e
  }
}

export function isDecodeError (m: Message | DecodeError): m is DecodeError {
  return (m as DecodeError).error !== undefined
}

function bad (error: string, message: string): DecodeError {
  return { error, message }
}

class FieldError extends Error {}

// ---- field validators: each throws FieldError naming the field ----------------------------------------------

function str (o: Record<string, unknown>, k: string, min: number, max: number, pattern?: RegExp): string {
  const v = o[k]
  if (typeof v !== 'string' || v.length < min || v.length > max || (pattern !== undefined && !pattern.test(v))) {
    throw new FieldError(`field "${k}" must be a string of ${min}..${max} characters${pattern === undefined ? '' : ` matching ${String(pattern)}`}`)
  }
  return v
}

function optStr (o: Record<string, unknown>, k: string, max: number): string | undefined {
  return o[k] === undefined ? undefined : str(o, k, 0, max)
}

function int (o: Record<string, unknown>, k: string, min: number, max: number): number {
  const v = o[k]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new FieldError(`field "${k}" must be an integer in ${min}..${max}`)
  return v
}

function optInt (o: Record<string, unknown>, k: string, min: number, max: number): number | undefined {
  return o[k] === undefined ? undefined : int(o, k, min, max)
}

function bool (o: Record<string, unknown>, k: string): boolean {
  if (typeof o[k] !== 'boolean') throw new FieldError(`field "${k}" must be a boolean`)
  return o[k] as boolean
}

function oneOf<T extends string> (o: Record<string, unknown>, k: string, values: readonly T[]): T {
  const v = o[k]
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw new FieldError(`field "${k}" must be one of ${values.join(', ')}`)
  return v as T
}

function endpointOf (v: unknown, k: string): Endpoint {
  if (v === null || typeof v !== 'object') throw new FieldError(`field "${k}" must be an endpoint`)
  const o = v as Record<string, unknown>
  const address = str(o, 'address', 2, 64)
  if (net.isIP(address) === 0) throw new FieldError(`field "${k}.address" must be an IP address`)
  return { address, port: int(o, 'port', 1, 65535) }
}

function endpoint (o: Record<string, unknown>, k: string): Endpoint {
  return endpointOf(o[k], k)
}

function endpoints (o: Record<string, unknown>, k: string): Endpoint[] {
  const v = o[k]
  if (!Array.isArray(v) || v.length > MAX_LAN_CANDIDATES) throw new FieldError(`field "${k}" must be an array of at most ${MAX_LAN_CANDIDATES} endpoints`)
  return v.map((e, i) => endpointOf(e, `${k}[${i}]`))
}

const HEX_ID = /^[0-9a-f]+$/
const nonce = (o: Record<string, unknown>): string => str(o, 'nonce', 16, 64, HEX_ID)
const pair = (o: Record<string, unknown>): string => str(o, 'pair', 16, 64, HEX_ID)
const token = (o: Record<string, unknown>): string => str(o, 'token', 16, 64, HEX_ID)
const hexOf = (len: number): RegExp => new RegExp(`^[0-9a-f]{${len}}$`)
const COOKIE = hexOf(COOKIE_HEX)
const CONFIRM_MAC = hexOf(CONFIRM_MAC_HEX)
const PROBE_MAC = hexOf(PROBE_MAC_HEX)
const probeMac = (o: Record<string, unknown>): string => str(o, 'mac', PROBE_MAC_HEX, PROBE_MAC_HEX, PROBE_MAC)
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

/** A SPAKE2 message: base64 of 1..MAX_PAKE_BYTES bytes */
function pake (o: Record<string, unknown>): string {
  const v = str(o, 'pake', 4, Math.ceil(MAX_PAKE_BYTES / 3) * 4, BASE64)
  if (v.length % 4 !== 0 || Buffer.byteLength(v, 'base64') > MAX_PAKE_BYTES) throw new FieldError(`field "pake" must be padded base64 of at most ${MAX_PAKE_BYTES} bytes`)
  return v
}

/** Copy an optional cookie over, validated */
function withCookie<T extends { cookie?: string }> (msg: T, o: Record<string, unknown>): T {
  if (o.cookie !== undefined) msg.cookie = str(o, 'cookie', COOKIE_HEX, COOKIE_HEX, COOKIE)
  return msg
}
const MAX_MS = 600_000

/** Rebuild the message from validated fields only, so nothing unexpected travels further */
function validate (o: Record<string, unknown>): Message | DecodeError {
  const t = o.t
  // Checked before anything turns it into text: String() throws on an object whose toString is not callable
  // ({"t":{"toString":1}}), and an exception here would escape into a socket's 'message' handler
  if (typeof t !== 'string') throw new FieldError('field "t" must be a string')
  switch (t) {
    case 'register': {
      const msg: RegisterMsg = { t, key: str(o, 'key', 3, 66, KEY_PATTERN), nonce: nonce(o), lan: endpoints(o, 'lan'), relay: bool(o, 'relay'), pake: pake(o) }
      const nat = optStr(o, 'nat', 32)
      const rtt = optInt(o, 'rtt', 0, MAX_MS)
      const side = o.side === undefined ? undefined : str(o, 'side', 1, 16, SIDE_PATTERN)
      if (nat !== undefined) msg.nat = nat
      if (rtt !== undefined) msg.rtt = rtt
      if (side !== undefined) msg.side = side
      return withCookie(msg, o)
    }
    case 'retry':
      return { t, cookie: str(o, 'cookie', COOKIE_HEX, COOKIE_HEX, COOKIE) }
    case 'registered': {
      const msg: RegisteredMsg = { t, nonce: nonce(o), observed: endpoint(o, 'observed'), expiresInMs: int(o, 'expiresInMs', 0, 86_400_000) }
      const checkPort = optInt(o, 'checkPort', 1, 65535)
      if (checkPort !== undefined) msg.checkPort = checkPort
      return msg
    }
    case 'check':
    case 'relay-request':
      return withCookie<CheckMsg | RelayRequestMsg>({ t, nonce: nonce(o) }, o)
    case 'check-ack':
      return { t, nonce: nonce(o), observed: endpoint(o, 'observed') }
    case 'peer-moved':
      return { t, nonce: nonce(o), public: endpoint(o, 'public'), seq: int(o, 'seq', 0, 1e9) }
    case 'peer-moved-ack':
      return { t, nonce: nonce(o), seq: int(o, 'seq', 0, 1e9) }
    case 'keepalive': {
      const msg: KeepaliveMsg = { t, nonce: nonce(o) }
      const rtt = optInt(o, 'rtt', 0, MAX_MS)
      if (rtt !== undefined) msg.rtt = rtt
      return withCookie(msg, o)
    }
    case 'keepalive-ack':
      return { t, nonce: nonce(o), observed: endpoint(o, 'observed') }
    case 'peer': {
      const msg: PeerMsg = {
        t,
        nonce: nonce(o),
        pair: pair(o),
        role: oneOf(o, 'role', ['connect', 'accept'] as const),
        startInMs: int(o, 'startInMs', 0, MAX_MS),
        public: endpoint(o, 'public'),
        lan: endpoints(o, 'lan'),
        relay: bool(o, 'relay'),
        pake: pake(o)
      }
      const peerNat = optStr(o, 'peerNat', 32)
      if (peerNat !== undefined) msg.peerNat = peerNat
      if (o.mapping !== undefined) msg.mapping = oneOf(o, 'mapping', MAPPINGS)
      if (o.peerMapping !== undefined) msg.peerMapping = oneOf(o, 'peerMapping', MAPPINGS)
      return msg
    }
    case 'peer-ack':
    case 'peer-confirm-ack':
    case 'pake-failed':
      return { t, nonce: nonce(o) }
    case 'bye': {
      const msg: ByeMsg = { t, nonce: nonce(o) }
      if (o.gaveUp !== undefined) msg.gaveUp = str(o, 'gaveUp', 1, ERROR_CODE_MAX, ERROR_CODE_PATTERN)
      return msg
    }
    case 'peer-gone':
      return { t, nonce: nonce(o), code: str(o, 'code', 1, ERROR_CODE_MAX, ERROR_CODE_PATTERN) }
    case 'confirm':
    case 'peer-confirm':
      return { t, nonce: nonce(o), mac: str(o, 'mac', CONFIRM_MAC_HEX, CONFIRM_MAC_HEX, CONFIRM_MAC) }
    case 'relay-allocated':
      return { t, nonce: nonce(o), port: int(o, 'port', 1, 65535), token: token(o) }
    case 'error': {
      const msg: ErrorMsg = { t, code: str(o, 'code', 1, 64), message: str(o, 'message', 0, 512) }
      if (o.nonce !== undefined) msg.nonce = nonce(o)
      return msg
    }
    case 'probe':
    case 'probe-ack':
      return { t, pair: pair(o), nonce: nonce(o), mac: probeMac(o) }
    case 'select':
      return { t, pair: pair(o), path: oneOf(o, 'path', ['lan', 'direct', 'birthday'] as const), mac: probeMac(o) }
    case 'relay-hello':
      return { t, token: token(o) }
    case 'relay-hello-ack':
      return { t, token: token(o), ready: bool(o, 'ready') }
    default:
      return bad('ERR_UNKNOWN_TYPE', `unknown message type ${JSON.stringify(t.slice(0, 40))}`)
  }
}

/** "host:port" or "[v6]:port" → parts; throws a TypeError-free Error with a readable reason */
export function parseHostPort (s: string): { host: string, port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s)
  const port = m === null ? NaN : Number(m[2])
  if (m === null || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`expected host:port (or [ipv6]:port), got ${JSON.stringify(s)}`)
  return { host: m[1], port }
}

export function endpointKey (e: Endpoint): string {
  return net.isIPv6(e.address) ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`
}
