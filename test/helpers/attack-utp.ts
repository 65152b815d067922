// What the uTP attack tests (test/attack-utp.test.ts) forge and count: BEP 29 headers built byte by byte,
// a listener that counts what reaches a victim address, and a hand-driven initiator whose ids and sequence
// numbers the test knows.

import * as dgram from 'dgram'

export const ST_DATA = 0
export const ST_FIN = 1
export const ST_STATE = 2
export const ST_RESET = 3
export const ST_SYN = 4

export interface UtpHeader {
  type: number
  connId: number
  seqNr: number
  ackNr: number
  /** Advertised window (default 1 MiB) */
  wnd?: number
}

/** A 20-byte BEP 29 header: type and version 1, no extension, timestamps, window, seq_nr, ack_nr */
export function utpHeader (h: UtpHeader): Buffer {
  const b = Buffer.alloc(20)
  b[0] = (h.type << 4) | 1
  b[1] = 0
  b.writeUInt16BE(h.connId & 0xffff, 2)
  b.writeUInt32BE(Math.floor(performance.now() * 1000) >>> 0, 4)
  b.writeUInt32BE(0, 8)
  b.writeUInt32BE(h.wnd ?? 1 << 20, 12)
  b.writeUInt16BE(h.seqNr & 0xffff, 16)
  b.writeUInt16BE(h.ackNr & 0xffff, 18)
  return b
}

export function parseHeader (b: Buffer): UtpHeader | null {
  if (b.length < 20 || (b[0] & 0x0f) !== 1) return null
  return { type: b[0] >> 4, connId: b.readUInt16BE(2), seqNr: b.readUInt16BE(16), ackNr: b.readUInt16BE(18) }
}

/** A UDP socket at a victim's address that counts what arrives */
export class Victim {
  packets = 0
  bytes = 0
  readonly received: Buffer[] = []
  private constructor (readonly socket: dgram.Socket, readonly address: string, readonly port: number) {
    socket.on('message', (msg) => {
      this.packets++
      this.bytes += msg.length
      if (this.received.length < 100_000) this.received.push(msg)
    })
  }

  static async bind (address: string): Promise<Victim> {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 })
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(0, address, () => resolve())
    })
    return new Victim(socket, address, socket.address().port)
  }

  reset (): void {
    this.packets = 0
    this.bytes = 0
    this.received.length = 0
  }

  send (data: Buffer, port: number, address = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(data, port, address, (err) => err === null ? resolve() : reject(err)))
  }

  /** The next datagram (with a deadline) */
  next (ms = 2000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('nothing arrived')), ms)
      this.socket.once('message', (msg) => { clearTimeout(t); resolve(msg) })
    })
  }

  close (): void {
    this.socket.close()
  }
}

/** Opens a uTP connection by hand from `victim`'s socket: returns the ids and sequence numbers in use */
export async function handshake (victim: Victim, port: number, connId = 0x4000, seq = 100): Promise<{ recvId: number, sendId: number, synAckSeq: number, nextSeq: number }> {
  const answer = victim.next()
  await victim.send(utpHeader({ type: ST_SYN, connId, seqNr: seq, ackNr: 0 }), port)
  const synAck = parseHeader(await answer)
  if (synAck === null || synAck.type !== ST_STATE || synAck.ackNr !== seq) throw new Error('no SYN-ACK')
  // The confirmation: a STATE acknowledging the SYN-ACK, sent with id + 1
  await victim.send(utpHeader({ type: ST_STATE, connId: connId + 1, seqNr: seq + 1, ackNr: (synAck.seqNr - 1) & 0xffff }), port)
  return { recvId: connId, sendId: connId + 1, synAckSeq: synAck.seqNr, nextSeq: seq + 1 }
}

/** Resident set size in MiB */
export function rssMiB (): number {
  return process.memoryUsage().rss / (1 << 20)
}
