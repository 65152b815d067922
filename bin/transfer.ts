// The file transfer the CLI runs over a rendezvous'd connection (a uTP socket, or the encrypted stream on it).
//
// 0. both sides, at once: a hello line `{"v":2,"role":"send"|"receive"}\n`, checked before anything else, so
//    two senders (or two receivers) that used one code, or two incompatible versions, fail at once.
// 1. sender → receiver: an offer line `{"name":..., "size":...}\n`.
// 2. receiver → sender: `{"accept":true}\n`, or a refusal `{"ok":false,"code":...,"message":...}\n` and the end.
//    The receiver answers only after checking the name and the room for it and asking its user (bin/cli.ts).
// 3. sender → receiver: the `size` bytes in data records, a type byte 'D' (0x44), a 4-byte big-endian length
//    (1 to 1 MiB) and that many bytes; then a trailer line `{"sha256":"<hex>"}\n` (hashed while sending).
//    The sender cancels with a cancel record instead of the next data record: 'X' (0x58) and a line
//    `{"cancel":true,"at":N}\n`. Records (and not a bare byte run) are what makes that possible: in a plain run
//    of `size` bytes a cancel could only be told from file data by closing the stream, and a closed stream
//    looks the same as a crashed sender or a broken path. The receiver cancels with the line
//    `{"cancel":true,"at":N}\n` (it sends nothing else until its verdict, so the sender reads it as the verdict).
// 4. receiver → sender: `{"ok":true,"sha256":"<hex>"}\n` once the file is saved under its final name (hashed
//    while receiving), or `{"ok":false,"sha256"?,"code"?,"message"?}\n`. Both succeed only when the hashes match.
// A side that cancels writes its cancel and then closes; the other side reports "cancelled by the sender at X
// of Y MB". The receiver removes its .part file on every failure, a cancel included, and says so.
//
// Nothing the sender says is trusted: the receiver writes nothing before it accepted, never more than the size
// it accepted, and never over an existing file (bin/incoming.ts); names are checked by bin/filename.ts.

import { createHash } from 'crypto'
import * as fs from 'fs'
import * as path from 'path'
import type { Duplex } from 'stream'

import { CliError } from './args'
import { peerText, receivedName } from './filename'
import { checkRoom, PartFile } from './incoming'
import { mb, noProgress, type ProgressSink } from './progress'
import { TransferGuard } from './transfer-guard'

const MAX_LINE = 4096
/** The transfer format's version, sent in the hello (1 was the format without hello and records) */
export const TRANSFER_VERSION = 2
const RECORD_DATA = 0x44
const RECORD_CANCEL = 0x58
const MAX_RECORD = 1 << 20
/** How long a cancelling side waits for its cancel message to leave before it closes anyway */
const CANCEL_FLUSH_MS = 2000

/** Makes the progress display of one transfer: `label` is 'sending' or 'receiving' */
export type ProgressFactory = (label: string, name: string, total: number) => ProgressSink

export interface TransferResult {
  name: string
  bytes: number
  seconds: number
  sha256: string
  /** receive only: where the file was written */
  file?: string
}

/** What the sender offers: the name (as the receiver will save it) and the size in bytes */
export interface Offer {
  name: string
  size: number
}

export interface ReceiveOptions {
  /** Asked once the offer passed every check: resolves true to receive it, false to decline */
  accept: (offer: Offer) => Promise<boolean>
  /** Refuse offers larger than this many bytes */
  maxSize?: number
  makeProgress?: ProgressFactory
  signal?: AbortSignal
  idleMs?: number
}

export interface SendOptions {
  makeProgress?: ProgressFactory
  /** Aborted when the user cancels (SIGINT, SIGTERM): the peer is told, the transfer fails with ERR_CANCELLED */
  signal?: AbortSignal
  /** Fail with ERR_PEER_IDLE when nothing moves for this long, ms (not while the receiver's user decides) */
  idleMs?: number
}

/** Reads newline-terminated JSON lines and raw byte runs off a socket, in order */
class Reader {
  private _buf: Buffer = Buffer.alloc(0)
  private _waiter: (() => void) | null = null
  private _ended = false
  private _error: Error | null = null

  constructor (private readonly _socket: Duplex, private readonly _onData: () => void = () => {}) {
    _socket.on('data', (chunk: Buffer) => {
      this._onData()
      this._buf = this._buf.length === 0 ? chunk : Buffer.concat([this._buf, chunk])
      // Hold the socket while we have a backlog: its receive window closes, the sender waits
      if (this._buf.length > 1 << 20) _socket.pause()
      this._wake()
    })
    _socket.once('end', () => {
      this._ended = true
      this._wake()
    })
    _socket.on('error', (err) => {
      this._error = err
      this._wake()
    })
    _socket.once('close', () => {
      this._ended = true
      this._wake()
    })
  }

  private _wake (): void {
    const w = this._waiter
    this._waiter = null
    w?.()
  }

  private async _more (what: string): Promise<void> {
    if (this._error !== null) throw this._error
    if (this._ended) throw new CliError('ERR_TRANSFER_CLOSED', `the connection closed while waiting for ${what}`)
    this._socket.resume()
    await new Promise<void>(resolve => { this._waiter = resolve })
  }

  /** The next byte, without taking it */
  async peek (what: string): Promise<number> {
    while (this._buf.length === 0) await this._more(what)
    return this._buf[0]
  }

  async line (what: string): Promise<unknown> {
    for (;;) {
      const nl = this._buf.indexOf(10)
      if (nl >= 0) {
        const text = this._buf.toString('utf8', 0, nl)
        this._buf = this._buf.subarray(nl + 1)
        try {
          return JSON.parse(text)
        } catch {
          throw new CliError('ERR_TRANSFER_PROTOCOL', `the peer sent an invalid ${what}`)
        }
      }
      if (this._buf.length > MAX_LINE) throw new CliError('ERR_TRANSFER_PROTOCOL', `the peer's ${what} is too long`)
      await this._more(what)
    }
  }

  /** The next n bytes, in one buffer */
  async take (n: number, what: string): Promise<Buffer> {
    const parts: Buffer[] = []
    await this.bytes(n, (chunk) => { parts.push(chunk) }, what)
    return Buffer.concat(parts, n)
  }

  /** Hand exactly n bytes to `sink` chunk by chunk (awaiting it, for backpressure) */
  async bytes (n: number, sink: (chunk: Buffer) => Promise<void> | void, what: string): Promise<void> {
    let left = n
    while (left > 0) {
      if (this._buf.length === 0) {
        await this._more(`${what} (${n - left} of ${n} bytes arrived)`)
        continue
      }
      const take = Math.min(left, this._buf.length)
      const chunk = this._buf.subarray(0, take)
      this._buf = this._buf.subarray(take)
      left -= take
      await sink(chunk)
    }
  }
}

function writeLine (socket: Duplex, obj: object): Promise<void> {
  return write(socket, Buffer.from(JSON.stringify(obj) + '\n'))
}

/** Write honouring backpressure; rejects if the socket fails or closes first */
function write (socket: Duplex, chunk: Buffer): Promise<void> {
  if (socket.destroyed) return Promise.reject(new CliError('ERR_TRANSFER_CLOSED', 'the connection closed'))
  if (socket.write(chunk)) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      socket.removeListener('drain', onDrain)
      socket.removeListener('error', onError)
      socket.removeListener('close', onClose)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onDrain = (): void => done()
    const onError = (err: Error): void => done(err)
    const onClose = (): void => done(new CliError('ERR_TRANSFER_CLOSED', 'the connection closed while sending'))
    socket.once('drain', onDrain)
    socket.once('error', onError)
    socket.once('close', onClose)
  })
}

/**
 * The name FILE is offered under: its base name, checked here as the receiver will check it, so a name every
 * receiver refuses (".bashrc") fails before the code is spent
 */
export function sendableName (file: string): string {
  try {
    return receivedName(path.basename(file))
  } catch (e) {
    const why = e instanceof Error ? e.message.replace(/^refused the name/, 'receivers refuse the name') : String(e)
    throw new CliError('ERR_UNSAFE_NAME', `cannot send ${file}: ${why}; copy it to a name without that first`)
  }
}

/** The receiver's refusal as a CliError ERR_REFUSED (its code and message are the peer's: made printable) */
function refusal (answer: { code?: unknown, message?: unknown }, what: string): CliError {
  const code = typeof answer.code === 'string' && /^E[A-Z0-9_]{1,40}$/.test(answer.code) ? ` (${answer.code})` : ''
  const why = typeof answer.message === 'string' ? `: ${peerText(answer.message)}` : ''
  return new CliError('ERR_REFUSED', `${what}${why}${code}`)
}

/** The sender's offer line, checked: a valid name (made safe) and a size that is a non-negative safe integer */
function readOffer (header: { name?: unknown, size?: unknown }): Offer {
  if (typeof header.name !== 'string' || typeof header.size !== 'number' || !Number.isSafeInteger(header.size) || header.size < 0) {
    throw new CliError('ERR_TRANSFER_PROTOCOL', 'the sender\'s offer is invalid')
  }
  return { name: receivedName(header.name), size: header.size }
}

/**
 * Tells the sender why we refused (best effort: the connection may be gone already), without telling it about
 * this machine: no paths, no free space, no system errors
 */
async function refuse (socket: Duplex, e: unknown): Promise<void> {
  const reason = e instanceof CliError
    ? { code: e.code, message: e.peerMessage ?? e.message }
    : { code: 'ERR_FAILED', message: 'the receiver could not create the file' }
  await writeLine(socket, { ok: false, ...reason }).catch(() => {})
  socket.end()
}

/** A cancel line from the peer as the error this side reports, or null when `msg` is not a cancel */
function peerCancelled (msg: unknown, who: 'sender' | 'receiver', at: number, size: number | undefined): CliError | null {
  if ((msg as { cancel?: unknown } | null)?.cancel !== true) return null
  const where = size === undefined ? 'before the transfer started' : `at ${mb(at)} of ${mb(size)} MB`
  return new CliError('ERR_PEER_CANCELLED', `cancelled by the ${who} ${where}`)
}

function cancelLine (at: number): Buffer {
  return Buffer.from(JSON.stringify({ cancel: true, at }) + '\n')
}

function isCode (e: unknown, code: string): boolean {
  return (e as { code?: unknown } | null)?.code === code
}

/** Best effort: writes the cancel message and ends our side, waiting until it left (at most CANCEL_FLUSH_MS) */
async function sendCancel (socket: Duplex, message: Buffer): Promise<void> {
  if (socket.destroyed || socket.writableEnded) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, CANCEL_FLUSH_MS)
    socket.end(message, () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/** Both sides' hello: fails at once when the peer has the same role or another version of the format */
async function hello (socket: Duplex, reader: Reader, guard: TransferGuard, role: 'send' | 'receive'): Promise<void> {
  await guard.run(writeLine(socket, { v: TRANSFER_VERSION, role }))
  const peer = await guard.run(reader.line('hello')) as { v?: unknown, role?: unknown, cancel?: unknown }
  const cancel = peerCancelled(peer, role === 'send' ? 'receiver' : 'sender', 0, undefined)
  if (cancel !== null) throw cancel
  if (peer.v === undefined) {
    throw new CliError('ERR_VERSION', `the other side runs an older utp-punch-rs (transfer format 1, this one speaks ${TRANSFER_VERSION}): run the same version on both sides`)
  }
  if (peer.v !== TRANSFER_VERSION) {
    throw new CliError('ERR_VERSION', `the other side speaks transfer format ${peerText(String(peer.v))}, this one speaks ${TRANSFER_VERSION}: run the same utp-punch-rs version on both sides`)
  }
  if (peer.role === role) {
    throw new CliError('ERR_SAME_ROLE', role === 'send'
      ? 'the other side is also sending: one side must run receive'
      : 'the other side is also receiving: one side must run send')
  }
  if (peer.role !== 'send' && peer.role !== 'receive') throw new CliError('ERR_TRANSFER_PROTOCOL', 'the peer sent an invalid hello')
}

export async function sendFile (socket: Duplex, file: string, o: SendOptions = {}): Promise<TransferResult> {
  const stat = await fs.promises.stat(file)
  if (!stat.isFile()) throw new CliError('ENOENT', `${file} is not a regular file`)
  const name = sendableName(file)
  const size = stat.size
  const guard = new TransferGuard({ signal: o.signal, idleMs: o.idleMs })
  const reader = new Reader(socket, () => guard.touch())
  let phase: 'offer' | 'data' | 'verdict' = 'offer'
  let sent = 0
  const at = (): string => `${mb(sent)} of ${mb(size)} MB`
  guard.cancelled = () => new CliError('ERR_CANCELLED', phase === 'offer'
    ? `cancelled before sending ${name}; the receiver was told`
    : phase === 'data' ? `cancelled at ${at()}; the receiver was told` : `cancelled while waiting for the receiver's confirmation (all ${mb(size)} MB sent)`)
  guard.idle = (s) => new CliError('ERR_PEER_IDLE', phase === 'offer'
    ? `the receiver stopped responding before the transfer started (nothing for ${s} s)`
    : `the receiver stopped responding after ${at()} (nothing for ${s} s)`)
  let progress = noProgress
  const t0 = Date.now()
  try {
    await hello(socket, reader, guard, 'send')
    await guard.run(writeLine(socket, { name, size }))
    // The receiver's user may take their time: that is not the peer going quiet
    const answer = await guard.whilePaused(reader.line('answer to the offer')) as { accept?: unknown, code?: unknown, message?: unknown }
    const early = peerCancelled(answer, 'receiver', 0, size)
    if (early !== null) throw early
    if (answer.accept !== true) throw refusal(answer, `the receiver refused ${name}`)
    phase = 'data'
    progress = o.makeProgress?.('sending', name, size) ?? noProgress
    // The receiver's next line is its verdict, or a cancel at any time: read it from now on
    const verdict = reader.line('confirmation') as Promise<{ ok?: unknown, sha256?: unknown, code?: unknown, message?: unknown, cancel?: unknown }>
    verdict.then((v) => {
      const cancel = peerCancelled(v, 'receiver', sent, size)
      if (cancel !== null) guard.fail(cancel)
    }, (e: Error) => guard.fail(e))
    const hash = createHash('sha256')
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 64 * 1024 })) {
      const buf = chunk as Buffer
      if (sent + buf.length > size) throw new CliError('ERR_FILE_CHANGED', `${file} grew while being sent`)
      hash.update(buf)
      const head = Buffer.alloc(5)
      head[0] = RECORD_DATA
      head.writeUInt32BE(buf.length, 1)
      // One write per record: a cancel written later can never land inside a record
      await guard.run(write(socket, Buffer.concat([head, buf])))
      guard.touch()
      sent += buf.length
      progress.update(sent)
    }
    if (sent !== size) throw new CliError('ERR_FILE_CHANGED', `${file} shrank while being sent`)
    const sha256 = hash.digest('hex')
    phase = 'verdict'
    await guard.run(writeLine(socket, { sha256 }))
    progress.update(sent, true)
    const reply = await guard.run(verdict)
    const late = peerCancelled(reply, 'receiver', sent, size)
    if (late !== null) throw late
    if (reply.sha256 !== undefined && reply.sha256 !== sha256) throw new CliError('ERR_SHA256_MISMATCH', 'the receiver\'s sha256 does not match: the file was corrupted on the way')
    if (reply.ok !== true) throw refusal(reply, `the receiver could not save ${name}`)
    socket.end()
    return { name, bytes: size, seconds: (Date.now() - t0) / 1000, sha256 }
  } catch (e) {
    if (isCode(e, 'ERR_CANCELLED') && phase !== 'verdict') {
      await sendCancel(socket, phase === 'data' ? Buffer.concat([Buffer.from([RECORD_CANCEL]), cancelLine(sent)]) : cancelLine(0))
    }
    throw e
  } finally {
    progress.end()
    guard.dispose()
  }
}

/** The sender's cancel (after a cancel record 'X', or a bare line before the data) or a protocol error */
async function senderCancel (reader: Reader, guard: TransferGuard, type: number, got: number, size: number): Promise<CliError> {
  if (type === RECORD_CANCEL) await guard.run(reader.take(1, 'cancel'))
  else if (type !== 0x7b) return new CliError('ERR_TRANSFER_PROTOCOL', 'the sender sent an invalid record')
  const line = await guard.run(reader.line('cancel'))
  return peerCancelled(line, 'sender', got, size) ?? new CliError('ERR_TRANSFER_PROTOCOL', 'the sender sent a line where file data belongs')
}

export async function receiveFile (socket: Duplex, dir: string, o: ReceiveOptions): Promise<TransferResult> {
  const guard = new TransferGuard({ signal: o.signal, idleMs: o.idleMs })
  const reader = new Reader(socket, () => guard.touch())
  let offer: Offer | undefined
  let part: PartFile | undefined
  let got = 0
  const at = (): string => offer === undefined ? 'before the transfer started' : `at ${mb(got)} of ${mb(offer.size)} MB`
  guard.cancelled = () => new CliError('ERR_CANCELLED', `cancelled ${at()}; the sender was told`)
  guard.idle = (s) => new CliError('ERR_PEER_IDLE', offer === undefined
    ? `the sender stopped responding before the transfer started (nothing for ${s} s)`
    : `the sender stopped responding after ${mb(got)} of ${mb(offer.size)} MB (nothing for ${s} s)`)
  let progress = noProgress
  const t0 = Date.now()
  try {
    await hello(socket, reader, guard, 'receive')
    const header = await guard.run(reader.line('offer')) as { name?: unknown, size?: unknown }
    const early = peerCancelled(header, 'sender', 0, undefined)
    if (early !== null) throw early
    try {
      offer = readOffer(header)
      await checkRoom(dir, offer.size, o.maxSize)
      if (!await guard.whilePaused(o.accept(offer))) throw new CliError('ERR_DECLINED', `declined ${offer.name}`)
      part = await PartFile.create(dir, offer.name)
    } catch (e) {
      if (!isCode(e, 'ERR_CANCELLED')) await refuse(socket, e)
      throw e
    }
    const { name, size } = offer
    const file = part
    progress = o.makeProgress?.('receiving', name, size) ?? noProgress
    const hash = createHash('sha256')
    await guard.run(writeLine(socket, { accept: true }))
    const sink = async (chunk: Buffer): Promise<void> => {
      hash.update(chunk)
      got += chunk.length
      progress.update(got)
      await file.write(chunk)
    }
    // Never more than the size accepted: each record must fit in what is left, and what follows is the trailer
    while (got < size) {
      const type = await guard.run(reader.peek('the file'))
      if (type !== RECORD_DATA) throw await senderCancel(reader, guard, type, got, size)
      const len = (await guard.run(reader.take(5, 'the file'))).readUInt32BE(1)
      if (len > size - got) throw new CliError('ERR_TRANSFER_PROTOCOL', `the sender sent more than the ${size} bytes it announced`)
      if (len === 0 || len > MAX_RECORD) throw new CliError('ERR_TRANSFER_PROTOCOL', 'the sender sent an invalid record')
      await guard.run(reader.bytes(len, sink, 'the file'))
    }
    const next = await guard.run(reader.peek('checksum'))
    if (next === RECORD_DATA) throw new CliError('ERR_TRANSFER_PROTOCOL', `the sender sent more than the ${size} bytes it announced`)
    if (next !== 0x7b) throw await senderCancel(reader, guard, next, got, size)
    const sha256 = hash.digest('hex')
    const trailer = await guard.run(reader.line('checksum')) as { sha256?: unknown, cancel?: unknown }
    const late = peerCancelled(trailer, 'sender', got, size)
    if (late !== null) throw late
    if (trailer.sha256 !== sha256) {
      await writeLine(socket, { ok: false, sha256 })
      throw new CliError('ERR_SHA256_MISMATCH', 'sha256 mismatch: the file was corrupted on the way')
    }
    progress.update(got, true)
    let saved: string
    try {
      saved = await file.publish()
    } catch (e) {
      await writeLine(socket, { ok: false, sha256, code: 'ERR_SAVE', message: 'the receiver could not save the file' }).catch(() => {})
      throw e
    }
    part = undefined
    await writeLine(socket, { ok: true, sha256 })
    socket.end()
    return { name, bytes: size, seconds: (Date.now() - t0) / 1000, sha256, file: saved }
  } catch (e) {
    if (isCode(e, 'ERR_CANCELLED')) await sendCancel(socket, cancelLine(got))
    if (part === undefined) throw e
    // The partial file is never left behind unexplained: it is removed, and the message says so
    await part.discard()
    const code = (e as { code?: unknown } | null)?.code
    const message = `${e instanceof Error ? e.message : String(e)}; removed the partial ${path.basename(part.partPath)}`
    throw new CliError(typeof code === 'string' ? code : 'ERR_FAILED', message)
  } finally {
    progress.end()
    guard.dispose()
  }
}
