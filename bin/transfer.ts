// The file transfer the CLI runs over a rendezvous'd uTP socket.
//
// sender → receiver: a header line `{"name":..., "size":...}\n`, then exactly `size` bytes, then a trailer
// line `{"sha256":"<hex>"}\n` (hashed while sending). receiver → sender: `{"ok":bool,"sha256":"<hex>"}\n`
// (hashed while receiving). Both sides succeed only when the two hashes match.

import { createHash } from 'crypto'
import * as fs from 'fs'
import * as path from 'path'
import type { Duplex } from 'stream'

import { CliError } from './args'
import { noProgress, type ProgressSink } from './progress'

/** What a transfer runs over: the encrypted stream rendezvous() returns, or a plain uTP Socket */
type Socket = Duplex

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

/** The last path component, without control characters or separators; never '', '.' or '..' */
export function safeName (name: string): string {
  const base = (name.split(/[/\\]/).pop() ?? '')
    .replace(/[\x00-\x1f\x7f]/g, '')
    .replace(/[<>:"|?*]/g, '_')
    .trim()
    .slice(0, 200)
  return base === '' || base === '.' || base === '..' ? 'received-file' : base
}

/** name, or name-1.ext, name-2.ext... whichever does not exist yet in dir */
async function freshPath (dir: string, name: string): Promise<string> {
  const ext = path.extname(name)
  const stem = ext === '' || ext === name ? name : name.slice(0, -ext.length)
  for (let i = 0; ; i++) {
    const candidate = path.join(dir, i === 0 ? name : `${stem}-${i}${ext}`)
    try {
      await fs.promises.access(candidate)
    } catch {
      return candidate
    }
  }
}

/** Reads newline-terminated JSON lines and raw byte runs off a socket, in order */
class Reader {
  private _buf: Buffer = Buffer.alloc(0)
  private _waiter: (() => void) | null = null
  private _ended = false
  private _error: Error | null = null

  constructor (private readonly _socket: Socket) {
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

function writeLine (socket: Socket, obj: object): Promise<void> {
  return write(socket, Buffer.from(JSON.stringify(obj) + '\n'))
}

/** Write honouring backpressure; rejects if the socket fails or closes first */
function write (socket: Socket, chunk: Buffer): Promise<void> {
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

export async function sendFile (socket: Socket, file: string, makeProgress?: ProgressFactory): Promise<TransferResult> {
  const stat = await fs.promises.stat(file)
  if (!stat.isFile()) throw new CliError('ENOENT', `${file} is not a regular file`)
  const name = safeName(path.basename(file))
  const size = stat.size
  const reader = new Reader(socket)
  const progress = makeProgress?.('sending', name, size) ?? noProgress
  const t0 = Date.now()
  const hash = createHash('sha256')
  let sent = 0
  await writeLine(socket, { name, size })
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
    const reply = await reader.line('confirmation') as { ok?: unknown, sha256?: unknown }
    if (reply.ok !== true || reply.sha256 !== sha256) throw new CliError('ERR_SHA256_MISMATCH', 'the receiver\'s sha256 does not match: the file was corrupted on the way')
    socket.end()
    return { name, bytes: size, seconds: (Date.now() - t0) / 1000, sha256 }
  } finally {
    progress.end()
  }
}

export async function receiveFile (socket: Socket, dir: string, makeProgress?: ProgressFactory): Promise<TransferResult> {
  const reader = new Reader(socket)
  const header = await reader.line('header') as { name?: unknown, size?: unknown }
  if (typeof header.name !== 'string' || typeof header.size !== 'number' || !Number.isSafeInteger(header.size) || header.size < 0) {
    throw new CliError('ERR_TRANSFER_PROTOCOL', 'the sender\'s header is invalid')
  }
  const name = safeName(header.name)
  const size = header.size
  const target = await freshPath(dir, name)
  const partial = `${target}.part`
  const out = fs.createWriteStream(partial, { flags: 'wx' })
  const progress = makeProgress?.('receiving', name, size) ?? noProgress
  const t0 = Date.now()
  const hash = createHash('sha256')
  let got = 0
  let outError: Error | null = null
  out.on('error', (err) => { outError = err })
  try {
    await reader.bytes(size, async (chunk) => {
      if (outError !== null) throw outError
      hash.update(chunk)
      got += chunk.length
      progress.update(got)
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve))
    }, 'the file')
    const sha256 = hash.digest('hex')
    const trailer = await reader.line('checksum') as { sha256?: unknown }
    const ok = trailer.sha256 === sha256
    await writeLine(socket, { ok, sha256 })
    socket.end()
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => err == null ? resolve() : reject(err)))
    if (!ok) throw new CliError('ERR_SHA256_MISMATCH', 'sha256 mismatch: the file was corrupted on the way')
    progress.update(got, true)
    await fs.promises.rename(partial, target)
    return { name, bytes: size, seconds: (Date.now() - t0) / 1000, sha256, file: target }
  } catch (e) {
    out.destroy()
    await fs.promises.rm(partial, { force: true })
    throw e
  } finally {
    progress.end()
  }
}
