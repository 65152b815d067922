// The framing of the CLI's transfer format (bin/transfer.ts has the whole protocol): JSON lines, data records
// ('D', a 4-byte big-endian length, the bytes) and cancel records ('X' and a cancel line), read off and written to
// the connection with backpressure, and the cancel and refusal messages both sides exchange.

import type { Duplex, Writable } from 'stream'

import { CliError } from './args'
import { peerText } from './filename'
import { mb } from './progress'

/** Longest control line (hello, answers, trailers) */
export const MAX_LINE = 4096
export const RECORD_DATA = 0x44
export const RECORD_CANCEL = 0x58
/** A JSON line starts with '{' where a record may stand (a trailer, or a cancel before the data) */
export const LINE_START = 0x7b
export const MAX_RECORD = 1 << 20
/** How long a cancelling side waits for its cancel message to leave before it closes anyway */
const CANCEL_FLUSH_MS = 2000

/** Reads newline-terminated JSON lines and raw byte runs off a socket, in order */
export class Reader {
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

  /** The next line, parsed as JSON; at most `max` bytes long (without its newline), whether it came whole or in pieces */
  async line (what: string, max = MAX_LINE): Promise<unknown> {
    for (;;) {
      const nl = this._buf.indexOf(10)
      if ((nl < 0 ? this._buf.length : nl) > max) throw new CliError('ERR_TRANSFER_PROTOCOL', `the peer's ${what} is too long`)
      if (nl >= 0) {
        const text = this._buf.toString('utf8', 0, nl)
        this._buf = this._buf.subarray(nl + 1)
        try {
          return JSON.parse(text)
        } catch {
          throw new CliError('ERR_TRANSFER_PROTOCOL', `the peer sent an invalid ${what}`)
        }
      }
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

export function writeLine (socket: Duplex, obj: object): Promise<void> {
  return write(socket, Buffer.from(JSON.stringify(obj) + '\n'))
}

/** Write honouring backpressure; rejects if the socket (or another stream: stdout) fails or closes first */
export function write (socket: Writable, chunk: Buffer): Promise<void> {
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

/** `data` as one data record (one write per record: a cancel written later can never land inside it) */
export function dataRecord (data: Buffer): Buffer {
  const record = Buffer.allocUnsafe(5 + data.length)
  record[0] = RECORD_DATA
  record.writeUInt32BE(data.length, 1)
  data.copy(record, 5)
  return record
}

/** The receiver's refusal as a CliError ERR_REFUSED (its code and message are the peer's: made printable) */
export function refusal (answer: { code?: unknown, message?: unknown }, what: string): CliError {
  const code = typeof answer.code === 'string' && /^E[A-Z0-9_]{1,40}$/.test(answer.code) ? ` (${answer.code})` : ''
  const why = typeof answer.message === 'string' ? `: ${peerText(answer.message)}` : ''
  return new CliError('ERR_REFUSED', `${what}${why}${code}`)
}

/**
 * Tells the sender why we refused (best effort: the connection may be gone already), without telling it about
 * this machine: no paths, no free space, no system errors
 */
export async function refuse (socket: Duplex, e: unknown): Promise<void> {
  const reason = e instanceof CliError
    ? { code: e.code, message: e.peerMessage ?? e.message }
    : { code: 'ERR_FAILED', message: 'the receiver could not create the file' }
  await writeLine(socket, { ok: false, ...reason }).catch(() => {})
  socket.end()
}

/**
 * A cancel line from the peer as the error this side reports, or null when `msg` is not a cancel. `progress`: how
 * far the data had come (null: it had not started; a size of null: a stream of unknown size)
 */
export function peerCancelled (msg: unknown, who: 'sender' | 'receiver', progress: { at: number, size: number | null } | null): CliError | null {
  if ((msg as { cancel?: unknown } | null)?.cancel !== true) return null
  const where = progress === null ? 'before the transfer started' : `at ${mb(progress.at)}${progress.size === null ? '' : ` of ${mb(progress.size)}`} MB`
  return new CliError('ERR_PEER_CANCELLED', `cancelled by the ${who} ${where}`)
}

export function cancelLine (at: number): Buffer {
  return Buffer.from(JSON.stringify({ cancel: true, at }) + '\n')
}

export function isCode (e: unknown, code: string): boolean {
  return (e as { code?: unknown } | null)?.code === code
}

/** Best effort: writes the cancel message and ends our side, waiting until it left (at most CANCEL_FLUSH_MS) */
export async function sendCancel (socket: Duplex, message: Buffer): Promise<void> {
  if (socket.destroyed || socket.writableEnded) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, CANCEL_FLUSH_MS)
    socket.end(message, () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

