// STUN message codec (RFC 8489 §5, §14; RFC 5780 §7): just what a Binding client needs. Pure functions over
// Buffers, no sockets. decodeStunMessage throws StunDecodeError on malformed input; callers on the network
// path catch it (a bad datagram must never escape an event handler).

import { randomBytes } from 'crypto'
import * as net from 'net'

export const MAGIC_COOKIE = 0x2112a442
export const HEADER_LENGTH = 20

export const StunType = {
  BINDING_REQUEST: 0x0001,
  BINDING_SUCCESS: 0x0101,
  BINDING_ERROR: 0x0111
} as const

export const StunAttr = {
  MAPPED_ADDRESS: 0x0001,
  CHANGE_REQUEST: 0x0003, // RFC 5780 §7.2
  CHANGED_ADDRESS: 0x0005, // RFC 3489, OTHER-ADDRESS's predecessor
  ERROR_CODE: 0x0009,
  XOR_MAPPED_ADDRESS: 0x0020,
  SOFTWARE: 0x8022,
  RESPONSE_ORIGIN: 0x802b, // RFC 5780 §7.3
  OTHER_ADDRESS: 0x802c // RFC 5780 §7.4
} as const

/** CHANGE-REQUEST flag bits (RFC 5780 §7.2) */
const CHANGE_IP = 0x04
const CHANGE_PORT = 0x02

export interface StunAddress {
  address: string
  port: number
  family: 'IPv4' | 'IPv6'
}

export interface StunAttribute {
  type: number
  value: Buffer
}

export interface StunMessage {
  type: number
  transactionId: Buffer
  /** Every attribute in order, known or not */
  attributes: StunAttribute[]
  /** XOR-MAPPED-ADDRESS, else the legacy MAPPED-ADDRESS */
  mapped?: StunAddress
  /** OTHER-ADDRESS, else the legacy CHANGED-ADDRESS */
  otherAddress?: StunAddress
  responseOrigin?: StunAddress
  /** ERROR-CODE of an error response */
  error?: { code: number, reason: string }
}

export class StunDecodeError extends Error {
  readonly code = 'ERR_STUN_MALFORMED'
  override readonly name = 'StunDecodeError'
}

/** A fresh 96-bit transaction id */
export function newTransactionId (): Buffer {
  return randomBytes(12)
}

/**
 * Cheap header check: top two bits zero, magic cookie, length consistent with the datagram and a multiple
 * of 4. What the uTP demultiplexer checks too, so anything passing here reaches 'message' listeners.
 */
export function isStunMessage (buf: Uint8Array): boolean {
  if (buf.length < HEADER_LENGTH || (buf[0] & 0xc0) !== 0) return false
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  const length = b.readUInt16BE(2)
  return b.readUInt32BE(4) === MAGIC_COOKIE && length === b.length - HEADER_LENGTH && length % 4 === 0
}

/** Header, then each attribute as type, length, value and zero padding to 4 bytes */
export function encodeStunMessage (type: number, transactionId: Buffer, attributes: StunAttribute[] = []): Buffer {
  if (transactionId.length !== 12) throw new RangeError('a STUN transaction id is 12 bytes')
  const body = attributes.map(({ type, value }) => {
    const a = Buffer.alloc(4 + pad4(value.length))
    a.writeUInt16BE(type, 0)
    a.writeUInt16BE(value.length, 2)
    value.copy(a, 4)
    return a
  })
  const header = Buffer.alloc(HEADER_LENGTH)
  header.writeUInt16BE(type, 0)
  header.writeUInt16BE(body.reduce((n, a) => n + a.length, 0), 2)
  header.writeUInt32BE(MAGIC_COOKIE, 4)
  transactionId.copy(header, 8)
  return Buffer.concat([header, ...body])
}

/** A Binding request, with a CHANGE-REQUEST attribute when either flag is set */
export function encodeBindingRequest (transactionId: Buffer, opts: { changeIp?: boolean, changePort?: boolean } = {}): Buffer {
  const flags = (opts.changeIp === true ? CHANGE_IP : 0) | (opts.changePort === true ? CHANGE_PORT : 0)
  const attributes: StunAttribute[] = []
  if (flags !== 0) {
    const value = Buffer.alloc(4)
    value.writeUInt32BE(flags)
    attributes.push({ type: StunAttr.CHANGE_REQUEST, value })
  }
  return encodeStunMessage(StunType.BINDING_REQUEST, transactionId, attributes)
}

/** An address attribute (MAPPED-ADDRESS layout, §14.1), XORed as in §14.2 for XOR-MAPPED-ADDRESS */
export function encodeAddressAttribute (type: number, addr: { address: string, port: number }, transactionId: Buffer): StunAttribute {
  const ip = ipToBytes(addr.address)
  const value = Buffer.alloc(4 + ip.length)
  value[1] = ip.length === 4 ? 0x01 : 0x02
  value.writeUInt16BE(addr.port, 2)
  ip.copy(value, 4)
  if (type === StunAttr.XOR_MAPPED_ADDRESS) xorAddress(value, transactionId)
  return { type, value }
}

/** An ERROR-CODE attribute (§14.8): class in the hundreds digit, number below it, UTF-8 reason */
export function encodeErrorCode (code: number, reason: string): StunAttribute {
  const value = Buffer.concat([Buffer.alloc(4), Buffer.from(reason, 'utf8')])
  value[2] = Math.floor(code / 100)
  value[3] = code % 100
  return { type: StunAttr.ERROR_CODE, value }
}

/** Parse a whole STUN message; throws StunDecodeError if it is malformed */
export function decodeStunMessage (buf: Buffer): StunMessage {
  if (buf.length < HEADER_LENGTH) throw new StunDecodeError(`STUN message too short (${buf.length} bytes)`)
  if ((buf[0] & 0xc0) !== 0) throw new StunDecodeError('not a STUN message (top bits set)')
  if (buf.readUInt32BE(4) !== MAGIC_COOKIE) throw new StunDecodeError('wrong STUN magic cookie')
  const length = buf.readUInt16BE(2)
  if (length !== buf.length - HEADER_LENGTH || length % 4 !== 0) {
    throw new StunDecodeError(`STUN length ${length} does not match the ${buf.length - HEADER_LENGTH} bytes after the header`)
  }
  const msg: StunMessage = {
    type: buf.readUInt16BE(0),
    transactionId: Buffer.from(buf.subarray(8, HEADER_LENGTH)),
    attributes: []
  }
  let offset = HEADER_LENGTH
  while (offset < buf.length) {
    if (offset + 4 > buf.length) throw new StunDecodeError('truncated STUN attribute header')
    const type = buf.readUInt16BE(offset)
    const len = buf.readUInt16BE(offset + 2)
    if (offset + 4 + pad4(len) > buf.length) throw new StunDecodeError(`truncated STUN attribute 0x${type.toString(16)}`)
    const value = buf.subarray(offset + 4, offset + 4 + len)
    msg.attributes.push({ type, value })
    offset += 4 + pad4(len)
  }
  // Only the first of a repeated attribute counts (RFC 8489 §14); unknown ones are skipped
  const first = (type: number): Buffer | undefined => msg.attributes.find(a => a.type === type)?.value
  const addr = (type: number): StunAddress | undefined => {
    const v = first(type)
    return v === undefined ? undefined : decodeAddress(v, type, msg.transactionId)
  }
  msg.mapped = addr(StunAttr.XOR_MAPPED_ADDRESS) ?? addr(StunAttr.MAPPED_ADDRESS)
  msg.otherAddress = addr(StunAttr.OTHER_ADDRESS) ?? addr(StunAttr.CHANGED_ADDRESS)
  msg.responseOrigin = addr(StunAttr.RESPONSE_ORIGIN)
  const err = first(StunAttr.ERROR_CODE)
  if (err !== undefined) {
    if (err.length < 4) throw new StunDecodeError('truncated ERROR-CODE')
    msg.error = { code: (err[2] & 0x07) * 100 + err[3], reason: err.subarray(4).toString('utf8') }
  }
  return msg
}

function decodeAddress (v: Buffer, type: number, transactionId: Buffer): StunAddress {
  const family = v.length >= 2 ? v[1] : 0
  const ipLength = family === 0x01 ? 4 : family === 0x02 ? 16 : 0
  if (ipLength === 0 || v.length !== 4 + ipLength) {
    throw new StunDecodeError(`bad address attribute 0x${type.toString(16)} (family ${family}, ${v.length} bytes)`)
  }
  const value = Buffer.from(v)
  if (type === StunAttr.XOR_MAPPED_ADDRESS) xorAddress(value, transactionId)
  return { address: bytesToIp(value.subarray(4)), port: value.readUInt16BE(2), family: ipLength === 4 ? 'IPv4' : 'IPv6' }
}

/** §14.2: port XOR the cookie's top 16 bits; address XOR the cookie (IPv4) or cookie ‖ transaction id (IPv6) */
function xorAddress (value: Buffer, transactionId: Buffer): void {
  const key = Buffer.alloc(16)
  key.writeUInt32BE(MAGIC_COOKIE)
  transactionId.copy(key, 4)
  value[2] ^= key[0]
  value[3] ^= key[1]
  for (let i = 4; i < value.length; i++) value[i] ^= key[i - 4]
}

function pad4 (n: number): number {
  return (n + 3) & ~3
}

/** 4 or 16 bytes to text: IPv6 compressed as RFC 5952 (what URL produces), IPv4-mapped as ::ffff:a.b.c.d */
export function bytesToIp (b: Uint8Array): string {
  if (b.length === 4) return b.join('.')
  if (isV4Mapped(b)) return `::ffff:${b.subarray(12).join('.')}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16))
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)
}

/** An IP literal to its 4 or 16 bytes; throws on anything else */
export function ipToBytes (ip: string): Buffer {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number))
  ip = ip.split('%')[0] // a zone id says which link, not which address
  if (!net.isIPv6(ip)) throw new TypeError(`not an IP address: ${ip}`)
  // URL rewrites an embedded IPv4 tail as hex groups, leaving only '::' to expand
  const [head, tail] = new URL(`http://[${ip}]/`).hostname.slice(1, -1).split('::')
  const groups = (s: string | undefined): string[] => s === undefined || s === '' ? [] : s.split(':')
  const h = groups(head)
  const t = groups(tail)
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  const out = Buffer.alloc(16)
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}

/** The form the Node reports peers in: lower case, IPv6 compressed, IPv4-mapped IPv6 as plain IPv4 */
export function canonicalIp (ip: string): string {
  if (!net.isIPv6(ip)) return ip
  const b = ipToBytes(ip)
  return bytesToIp(isV4Mapped(b) ? b.subarray(12) : b)
}

function isV4Mapped (b: Uint8Array): boolean {
  return b.subarray(0, 10).every(x => x === 0) && b[10] === 0xff && b[11] === 0xff
}
