// The file transfer the CLI runs over a rendezvous'd connection (a uTP socket, or the encrypted stream on it).
//
// 1. sender → receiver: an offer line `{"name":..., "size":...}\n`.
// 2. receiver → sender: `{"accept":true}\n`, or a refusal `{"ok":false,"code":...,"message":...}\n` and the end.
//    The receiver answers only after checking the name and the room for it and asking its user (bin/cli.ts).
// 3. sender → receiver: exactly `size` bytes, then a trailer line `{"sha256":"<hex>"}\n` (hashed while sending).
// 4. receiver → sender: `{"ok":true,"sha256":"<hex>"}\n` once the file is saved under its final name (hashed
//    while receiving), or `{"ok":false,"sha256"?,"code"?,"message"?}\n`. Both succeed only when the hashes match.
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
import { noProgress, type ProgressSink } from './progress'

const MAX_LINE = 4096

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
}

export interface SendOptions {
  makeProgress?: ProgressFactory
}

/** Reads newline-terminated JSON lines and raw byte runs off a socket, in order */
class Reader {
  private _buf: Buffer = Buffer.alloc(0)
  private _waiter: (() => void) | null = null
  private _ended = false
  private _error: Error | null = null

  constructor (private readonly _socket: Duplex) {
    _socket.on('data', (chunk: Buffer) => {
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

export async function sendFile (socket: Duplex, file: string, o: SendOptions = {}): Promise<TransferResult> {
  const stat = await fs.promises.stat(file)
  if (!stat.isFile()) throw new CliError('ENOENT', `${file} is not a regular file`)
  const name = sendableName(file)
  const size = stat.size
  const reader = new Reader(socket)
  await writeLine(socket, { name, size })
  const answer = await reader.line('answer to the offer') as { accept?: unknown, code?: unknown, message?: unknown }
  if (answer.accept !== true) throw refusal(answer, `the receiver refused ${name}`)
  const progress = o.makeProgress?.('sending', name, size) ?? noProgress
  const t0 = Date.now()
  const hash = createHash('sha256')
  let sent = 0
  try {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 64 * 1024 })) {
      const buf = chunk as Buffer
      if (sent + buf.length > size) throw new CliError('ERR_FILE_CHANGED', `${file} grew while being sent`)
      hash.update(buf)
      sent += buf.length
      await write(socket, buf)
      progress.update(sent)
    }
    if (sent !== size) throw new CliError('ERR_FILE_CHANGED', `${file} shrank while being sent`)
    const sha256 = hash.digest('hex')
    await writeLine(socket, { sha256 })
    progress.update(sent, true)
    const reply = await reader.line('confirmation') as { ok?: unknown, sha256?: unknown, code?: unknown, message?: unknown }
    if (reply.sha256 !== undefined && reply.sha256 !== sha256) throw new CliError('ERR_SHA256_MISMATCH', 'the receiver\'s sha256 does not match: the file was corrupted on the way')
    if (reply.ok !== true) throw refusal(reply, `the receiver could not save ${name}`)
    socket.end()
    return { name, bytes: size, seconds: (Date.now() - t0) / 1000, sha256 }
  } finally {
    progress.end()
  }
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

export async function receiveFile (socket: Duplex, dir: string, o: ReceiveOptions): Promise<TransferResult> {
  const reader = new Reader(socket)
  const header = await reader.line('offer') as { name?: unknown, size?: unknown }
  let offer: Offer
  let part: PartFile
  try {
    offer = readOffer(header)
    await checkRoom(dir, offer.size, o.maxSize)
    if (!await o.accept(offer)) throw new CliError('ERR_DECLINED', `declined ${offer.name}`)
    part = await PartFile.create(dir, offer.name)
  } catch (e) {
    await refuse(socket, e)
    throw e
  }
  const { name, size } = offer
  const progress = o.makeProgress?.('receiving', name, size) ?? noProgress
  const t0 = Date.now()
  const hash = createHash('sha256')
  let got = 0
  try {
    await writeLine(socket, { accept: true })
    // Never more than the size accepted: bytes() hands over exactly `size`, and what follows must be the trailer
    await reader.bytes(size, async (chunk) => {
      hash.update(chunk)
      got += chunk.length
      progress.update(got)
      await part.write(chunk)
    }, 'the file')
    if (await reader.peek('checksum') !== 0x7b) {
      throw new CliError('ERR_TRANSFER_PROTOCOL', `the sender sent more than the ${size} bytes it announced`)
    }
    const sha256 = hash.digest('hex')
    const trailer = await reader.line('checksum') as { sha256?: unknown }
    if (trailer.sha256 !== sha256) {
      await writeLine(socket, { ok: false, sha256 })
      throw new CliError('ERR_SHA256_MISMATCH', 'sha256 mismatch: the file was corrupted on the way')
    }
    progress.update(got, true)
    let file: string
    try {
      file = await part.publish()
    } catch (e) {
      await writeLine(socket, { ok: false, sha256, code: 'ERR_SAVE', message: 'the receiver could not save the file' }).catch(() => {})
      throw e
    }
    await writeLine(socket, { ok: true, sha256 })
    socket.end()
    return { name, bytes: size, seconds: (Date.now() - t0) / 1000, sha256, file }
  } catch (e) {
    await part.discard()
    throw e
  } finally {
    progress.end()
  }
}
