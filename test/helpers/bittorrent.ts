// A minimal BitTorrent peer (BEP 3: handshake, bitfield, interested/unchoke, request/piece) over any Duplex,
// enough to download a torrent from a real client or seed one to it, and a builder for single-file v1
// torrents. No extensions are announced (reserved bytes all zero), so a conforming client sends only
// BEP 3 messages: no fast-extension, extended or DHT messages to understand.
import { createHash, randomBytes } from 'crypto'
import type { Duplex } from 'stream'

export const BLOCK_SIZE = 16 * 1024
const PROTOCOL = Buffer.from('BitTorrent protocol')
const HANDSHAKE_LEN = 1 + PROTOCOL.length + 8 + 20 + 20
// The largest message a BEP 3 peer sends is a piece message with one block (or a bitfield); anything much
// larger means the stream lost its framing
const MAX_MESSAGE_LEN = 9 + 4 * BLOCK_SIZE

export const MessageId = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  notInterested: 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8
} as const

// ---------------------------------------------------------------------------------------------------------
// bencode and torrents

export type Bencodable = number | string | Buffer | Bencodable[] | { [key: string]: Bencodable }

export function bencode (value: Bencodable): Buffer {
  const parts: Buffer[] = []
  const put = (v: Bencodable): void => {
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) throw new TypeError(`bencode: ${v} is not an integer`)
      parts.push(Buffer.from(`i${v}e`))
    } else if (typeof v === 'string' || Buffer.isBuffer(v)) {
      const bytes = Buffer.isBuffer(v) ? v : Buffer.from(v)
      parts.push(Buffer.from(`${bytes.length}:`), bytes)
    } else if (Array.isArray(v)) {
      parts.push(Buffer.from('l'))
      v.forEach(put)
      parts.push(Buffer.from('e'))
    } else {
      // Dictionary keys in the order of their raw bytes, as BEP 3 requires (the info hash depends on it)
      parts.push(Buffer.from('d'))
      for (const key of Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
        put(key)
        put(v[key])
      }
      parts.push(Buffer.from('e'))
    }
  }
  put(value)
  return Buffer.concat(parts)
}

export interface Torrent {
  name: string
  length: number
  pieceLength: number
  /** SHA-1 of each piece */
  pieces: Buffer[]
  /** SHA-1 of the bencoded info dictionary (v1) */
  infoHash: Buffer
  /** The .torrent file */
  metainfo: Buffer
}

export const sha1 = (b: Buffer): Buffer => createHash('sha1').update(b).digest()
export const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** A single-file v1 torrent of `data`, without trackers (peers are given to the client directly) */
export function makeTorrent (name: string, data: Buffer, pieceLength: number): Torrent {
  const pieces: Buffer[] = []
  for (let at = 0; at < data.length; at += pieceLength) pieces.push(sha1(data.subarray(at, at + pieceLength)))
  const info = bencode({ length: data.length, name, 'piece length': pieceLength, pieces: Buffer.concat(pieces) })
  // The info dictionary is spliced in as encoded so that its hash is exactly what the client computes
  const metainfo = Buffer.concat([Buffer.from('d4:info'), info, Buffer.from('e')])
  return { name, length: data.length, pieceLength, pieces, infoHash: sha1(info), metainfo }
}

export function pieceSize (t: Pick<Torrent, 'length' | 'pieceLength'>, index: number): number {
  return Math.min(t.pieceLength, t.length - index * t.pieceLength)
}

// ---------------------------------------------------------------------------------------------------------
// The wire

export interface Handshake {
  reserved: Buffer
  infoHash: Buffer
  peerId: Buffer
}

/** A message; `id` null is a keep-alive */
export interface Message {
  id: number | null
  payload: Buffer
}

export function newPeerId (): Buffer {
  return Buffer.concat([Buffer.from('-UP0001-'), randomBytes(12)])
}

export function encodeHandshake (infoHash: Buffer, peerId: Buffer): Buffer {
  return Buffer.concat([Buffer.from([PROTOCOL.length]), PROTOCOL, Buffer.alloc(8), infoHash, peerId])
}

export function encodeMessage (id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.allocUnsafe(5)
  head.writeUInt32BE(1 + payload.length, 0)
  head.writeUInt8(id, 4)
  return Buffer.concat([head, payload])
}

export function encodeRequest (index: number, begin: number, length: number): Buffer {
  const p = Buffer.allocUnsafe(12)
  p.writeUInt32BE(index, 0)
  p.writeUInt32BE(begin, 4)
  p.writeUInt32BE(length, 8)
  return encodeMessage(MessageId.request, p)
}

/** A bitfield with every one of `numPieces` pieces (spare bits of the last byte stay clear) */
export function fullBitfield (numPieces: number): Buffer {
  const bits = Buffer.alloc(Math.ceil(numPieces / 8))
  for (let i = 0; i < numPieces; i++) bits[i >> 3] |= 0x80 >> (i & 7)
  return bits
}

export class ProtocolError extends Error {}

/**
 * Frames a Duplex's bytes into the handshake and then messages, handed out in order by receive().
 * The stream is read as fast as it delivers (flowing mode), so the uTP receive window never closes because
 * of us.
 */
export class PeerWire {
  readonly socket: Duplex
  /** Bytes received, handshake and framing included */
  bytesIn = 0
  bytesOut = 0
  private pending: Buffer = Buffer.alloc(0)
  private gotHandshake = false
  private queue: Array<Handshake | Message> = []
  private waiter: { resolve: (m: Handshake | Message | null) => void, reject: (err: Error) => void } | undefined
  private ended = false
  private failure: Error | undefined

  constructor (socket: Duplex) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('end', () => {
      this.ended = true
      this.wake()
    })
    socket.on('error', (err: Error) => this.fail(err))
    socket.on('close', () => {
      this.ended = true
      this.wake()
    })
  }

  write (bytes: Buffer): boolean {
    this.bytesOut += bytes.length
    return this.socket.write(bytes)
  }

  /** Write, then wait for 'drain' if the stream's buffer is full (rejects if the stream fails or closes) */
  async writeAndDrain (bytes: Buffer): Promise<void> {
    if (this.write(bytes)) return
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        this.socket.off('drain', onDrain)
        this.socket.off('close', onClose)
        this.socket.off('error', onClose)
        if (err === undefined) resolve()
        else reject(err)
      }
      const onDrain = (): void => done()
      const onClose = (err?: Error): void => done(err ?? new Error('the stream closed while we waited for it to drain'))
      this.socket.once('drain', onDrain)
      this.socket.once('close', onClose)
      this.socket.once('error', onClose)
    })
  }

  send (id: number, payload?: Buffer): boolean {
    return this.write(encodeMessage(id, payload))
  }

  sendHandshake (infoHash: Buffer, peerId: Buffer): void {
    this.write(encodeHandshake(infoHash, peerId))
  }

  async receiveHandshake (): Promise<Handshake> {
    const m = await this.receive()
    if (m === null) throw new ProtocolError('the peer closed the connection before its handshake')
    if (!('infoHash' in m)) throw new ProtocolError('expected the handshake')
    return m
  }

  /** The next message, or null once the peer ended the stream; rejects with the stream's error */
  async receiveMessage (): Promise<Message | null> {
    const m = await this.receive()
    if (m !== null && !('id' in m)) throw new ProtocolError('a second handshake')
    return m
  }

  private receive (): Promise<Handshake | Message | null> {
    const next = this.queue.shift()
    if (next !== undefined) return Promise.resolve(next)
    if (this.failure !== undefined) return Promise.reject(this.failure)
    if (this.ended) return Promise.resolve(null)
    if (this.waiter !== undefined) return Promise.reject(new Error('PeerWire: one receive() at a time'))
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject }
    })
  }

  private wake (): void {
    const w = this.waiter
    if (w === undefined) return
    const next = this.queue.shift()
    if (next !== undefined) {
      this.waiter = undefined
      w.resolve(next)
    } else if (this.failure !== undefined) {
      this.waiter = undefined
      w.reject(this.failure)
    } else if (this.ended) {
      this.waiter = undefined
      w.resolve(null)
    }
  }

  private fail (err: Error): void {
    this.failure ??= err
    this.wake()
  }

  private onData (chunk: Buffer): void {
    this.bytesIn += chunk.length
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    try {
      this.parse()
    } catch (err) {
      this.fail(err as Error)
    }
    this.wake()
  }

  private parse (): void {
    let at = 0
    const buf = this.pending
    if (!this.gotHandshake) {
      if (buf.length < HANDSHAKE_LEN) return
      if (buf[0] !== PROTOCOL.length || !buf.subarray(1, 1 + PROTOCOL.length).equals(PROTOCOL)) {
        throw new ProtocolError(`not a BitTorrent handshake: ${buf.subarray(0, 20).toString('hex')}`)
      }
      at = 1 + PROTOCOL.length
      this.queue.push({
        reserved: Buffer.from(buf.subarray(at, at + 8)),
        infoHash: Buffer.from(buf.subarray(at + 8, at + 28)),
        peerId: Buffer.from(buf.subarray(at + 28, at + 48))
      })
      at = HANDSHAKE_LEN
      this.gotHandshake = true
    }
    while (buf.length - at >= 4) {
      const len = buf.readUInt32BE(at)
      if (len > MAX_MESSAGE_LEN) {
        throw new ProtocolError(`message of ${len} bytes at stream offset ${this.bytesIn - (buf.length - at)}: the stream lost its framing (bytes ${buf.subarray(at, at + 16).toString('hex')})`)
      }
      if (buf.length - at < 4 + len) break
      if (len === 0) this.queue.push({ id: null, payload: Buffer.alloc(0) })
      else this.queue.push({ id: buf[at + 4], payload: Buffer.from(buf.subarray(at + 5, at + 4 + len)) })
      at += 4 + len
    }
    this.pending = at === buf.length ? Buffer.alloc(0) : buf.subarray(at)
  }
}

// ---------------------------------------------------------------------------------------------------------
// Downloading

/** Where a download stands: read by a test's failure message when the transfer stalls */
export interface DownloadProgress {
  phase: 'handshake' | 'bitfield' | 'unchoke' | 'blocks' | 'done'
  piecesVerified: number
  blocksReceived: number
  blocksRequested: number
  outstanding: number
  chokes: number
  /** Messages received that a BEP 3 seed with nothing to download has no reason to send */
  unexpected: string[]
}

export interface DownloadOptions {
  /** Requests kept outstanding */
  pipeline: number
  /** Send the first `pipeline` requests in one write() (one application write spanning many packets) */
  oneWrite?: boolean
  /** Called with the block list's position after every block, e.g. to end the stream after the last */
  onBlock?: (received: number, total: number) => void
}

interface Block { index: number, begin: number, length: number }

function blocksOf (t: Pick<Torrent, 'length' | 'pieceLength' | 'pieces'>): Block[] {
  const blocks: Block[] = []
  for (let index = 0; index < t.pieces.length; index++) {
    const size = pieceSize(t, index)
    for (let begin = 0; begin < size; begin += BLOCK_SIZE) blocks.push({ index, begin, length: Math.min(BLOCK_SIZE, size - begin) })
  }
  return blocks
}

/**
 * Download every piece of `torrent` from a seed over `wire`, after our handshake: handshake, bitfield,
 * interested, unchoke, then 16 KiB requests. Every piece is checked against its SHA-1 as it completes;
 * a mismatch or a protocol violation rejects at once.
 */
export async function downloadTorrent (wire: PeerWire, torrent: Torrent, options: DownloadOptions, progress: DownloadProgress = newProgress()): Promise<Buffer> {
  const data = Buffer.alloc(torrent.length)
  const blocks = blocksOf(torrent)
  const missingInPiece = torrent.pieces.map((_, i) => Math.ceil(pieceSize(torrent, i) / BLOCK_SIZE))
  const outstanding = new Map<string, Block>()
  const key = (index: number, begin: number): string => `${index}:${begin}`
  // Blocks to ask for: initially all; requests lost to a choke go back in
  const toRequest = [...blocks]
  let seedHasAll = false
  let unchoked = false

  progress.phase = 'handshake'
  wire.sendHandshake(torrent.infoHash, newPeerId())
  const hs = await wire.receiveHandshake()
  if (!hs.infoHash.equals(torrent.infoHash)) throw new ProtocolError(`the seed answered for info hash ${hs.infoHash.toString('hex')}`)
  wire.send(MessageId.interested)
  progress.phase = 'bitfield'

  const requestMore = (firstBatch: boolean): void => {
    const batch: Buffer[] = []
    while (toRequest.length > 0 && outstanding.size < options.pipeline) {
      const b = toRequest.shift() as Block
      outstanding.set(key(b.index, b.begin), b)
      batch.push(encodeRequest(b.index, b.begin, b.length))
    }
    progress.blocksRequested += batch.length
    progress.outstanding = outstanding.size
    if (batch.length === 0) return
    if (firstBatch && options.oneWrite === true) wire.write(Buffer.concat(batch))
    else for (const r of batch) wire.write(r)
  }

  let received = 0
  let first = true
  while (received < blocks.length) {
    const m = await wire.receiveMessage()
    if (m === null) throw new ProtocolError(`the seed closed the connection after ${received} of ${blocks.length} blocks`)
    switch (m.id) {
      case null:
        break
      case MessageId.bitfield: {
        const want = fullBitfield(torrent.pieces.length)
        if (!m.payload.equals(want)) throw new ProtocolError(`the seed's bitfield is ${m.payload.toString('hex')}, not complete`)
        seedHasAll = true
        break
      }
      case MessageId.have:
        break
      case MessageId.choke:
        progress.chokes++
        unchoked = false
        // Without the fast extension a choke discards every pending request: ask again after the unchoke
        toRequest.unshift(...outstanding.values())
        outstanding.clear()
        break
      case MessageId.unchoke:
        unchoked = true
        break
      case MessageId.piece: {
        const index = m.payload.readUInt32BE(0)
        const begin = m.payload.readUInt32BE(4)
        const block = m.payload.subarray(8)
        const b = outstanding.get(key(index, begin))
        if (b === undefined || b.length !== block.length) {
          throw new ProtocolError(`piece message for a block we did not request: piece ${index} offset ${begin} length ${block.length}`)
        }
        outstanding.delete(key(index, begin))
        block.copy(data, index * torrent.pieceLength + begin)
        received++
        progress.blocksReceived = received
        if (--missingInPiece[index] === 0) {
          const start = index * torrent.pieceLength
          const got = sha1(data.subarray(start, start + pieceSize(torrent, index)))
          if (!got.equals(torrent.pieces[index])) {
            throw new ProtocolError(`piece ${index} failed its SHA-1 check (${got.toString('hex')}, want ${torrent.pieces[index].toString('hex')}) after ${received} blocks`)
          }
          progress.piecesVerified++
        }
        options.onBlock?.(received, blocks.length)
        break
      }
      default:
        progress.unexpected.push(`message ${m.id} (${m.payload.length} bytes)`)
    }
    if (seedHasAll && progress.phase === 'bitfield') progress.phase = 'unchoke'
    if (seedHasAll && unchoked) {
      progress.phase = 'blocks'
      requestMore(first)
      first = false
    }
  }
  progress.phase = 'done'
  progress.outstanding = 0
  return data
}

export function newProgress (): DownloadProgress {
  return { phase: 'handshake', piecesVerified: 0, blocksReceived: 0, blocksRequested: 0, outstanding: 0, chokes: 0, unexpected: [] }
}

// ---------------------------------------------------------------------------------------------------------
// Seeding

export interface SeedProgress {
  handshake: boolean
  interested: boolean
  requests: number
  blocksSent: number
  bytesSent: number
  unexpected: string[]
}

/**
 * Seed `data` to a peer that connected to us: answer its handshake, send a full bitfield, unchoke it once
 * it is interested, answer every request with its block. Resolves when the peer ends the stream.
 */
export async function seedTorrent (wire: PeerWire, torrent: Torrent, data: Buffer, progress: SeedProgress = newSeedProgress()): Promise<SeedProgress> {
  const hs = await wire.receiveHandshake()
  if (!hs.infoHash.equals(torrent.infoHash)) throw new ProtocolError(`the peer asked for info hash ${hs.infoHash.toString('hex')}`)
  wire.sendHandshake(torrent.infoHash, newPeerId())
  progress.handshake = true
  wire.send(MessageId.bitfield, fullBitfield(torrent.pieces.length))
  for (;;) {
    const m = await wire.receiveMessage()
    if (m === null) return progress
    switch (m.id) {
      // Requests are answered as they arrive: a cancel finds nothing left to cancel
      case null:
      case MessageId.have:
      case MessageId.notInterested:
      case MessageId.cancel:
        break
      case MessageId.interested:
        if (!progress.interested) wire.send(MessageId.unchoke)
        progress.interested = true
        break
      case MessageId.request: {
        progress.requests++
        const index = m.payload.readUInt32BE(0)
        const begin = m.payload.readUInt32BE(4)
        const length = m.payload.readUInt32BE(8)
        if (index >= torrent.pieces.length || length > BLOCK_SIZE || begin + length > pieceSize(torrent, index)) {
          throw new ProtocolError(`bad request: piece ${index} offset ${begin} length ${length}`)
        }
        const start = index * torrent.pieceLength + begin
        const head = Buffer.allocUnsafe(8)
        head.writeUInt32BE(index, 0)
        head.writeUInt32BE(begin, 4)
        await wire.writeAndDrain(encodeMessage(MessageId.piece, Buffer.concat([head, data.subarray(start, start + length)])))
        progress.blocksSent++
        progress.bytesSent += length
        break
      }
      default:
        progress.unexpected.push(`message ${m.id} (${m.payload.length} bytes)`)
    }
  }
}

export function newSeedProgress (): SeedProgress {
  return { handshake: false, interested: false, requests: 0, blocksSent: 0, bytesSent: 0, unexpected: [] }
}
