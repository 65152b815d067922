// The file transfer the CLI runs over a rendezvous'd connection (a uTP socket, or the encrypted stream on it).
// Transfer format 3 (the framing is in bin/wire.ts):
//
// 0. both sides, at once: a hello line `{"v":3,"role":"send"|"receive"}\n`, checked before anything else, so
//    two senders (or two receivers) that used one code, or two incompatible versions, fail at once.
// 1. sender → receiver: an offer line `{"entries":[...],"total":N}\n`. Each entry is a directory
//    `{"path":"photos/2024","dir":true}` or a file `{"path":"photos/2024/a.jpg","size":N,"x"?:true}` (x: executable);
//    paths are relative, '/'-separated, each directory listed before what it holds (bin/manifest.ts). A stream of
//    unknown length (stdin) is the one entry `{"path":"stdin","size":null}` with "total":null. A text message is
//    the offer `{"text":"..."}\n` instead (at most 64 KiB), answered `{"ok":true}\n`, and that is all.
// 2. receiver → sender: `{"accept":true,"resume":[...]}\n`, with one resume point per file, null or
//    `{"at":N,"sha256":"<hex of the first N bytes>"}` for a partial copy a failed run kept (bin/resume.ts); or a
//    refusal `{"ok":false,"code":...,"message":...}\n` and the end. The receiver answers only after checking the
//    names and the room and asking its user (bin/cli.ts).
// 3. sender → receiver: `{"start":[...]}\n`, the byte each file starts at: its resume point where the sender's
//    first N bytes hash the same, else 0 (the receiver then truncates its copy).
// 4. sender → receiver, for each file in order: its bytes from `start` in data records ('D', a 4-byte big-endian
//    length of 1 to 1 MiB, the bytes), then a trailer line `{"sha256":"<hex of the whole file>"}\n` (for a stream:
//    records until `{"size":N,"sha256":...}\n`). The sender cancels with a cancel record instead of the next data
//    record: 'X' (0x58) and a line `{"cancel":true,"at":N}\n`. Records (and not a bare byte run) are what makes
//    that possible: in a plain run of bytes a cancel could only be told from file data by closing the stream, and
//    a closed stream looks the same as a crashed sender or a broken path. The receiver cancels with the line
//    `{"cancel":true,"at":N}\n` (it sends nothing else until its verdict, so the sender reads it as the verdict).
// 5. receiver → sender: `{"ok":true,"sha256":"<hex>"}\n` once everything is saved under its final names, or
//    `{"ok":false,"sha256"?,"code"?,"message"?}\n` (at once when a file's sha256 differs). The sha256 is the file's
//    for a single file, else the sha256 of the lines "<file sha256> <path>\n" ("<path>/\n" for a directory).
// A side that cancels writes its cancel and then closes; the other side reports "cancelled by the sender at X
// of Y MB". When the transfer fails (peer gone or silent, a cancel, the receiver killed) the receiver keeps its
// .part files and says so, to continue them next time; when the data was proven bad (a sha256 mismatch, a
// protocol error) it removes them, and says so.
//
// Nothing the sender says is trusted: the receiver writes nothing before it accepted, never more than the size
// it accepted, and never over an existing file (bin/landing.ts); names are checked by bin/filename.ts. The
// sending side is here, the receiving side in bin/receive.ts.

import { createHash, type Hash } from 'crypto'
import * as fs from 'fs'
import type { Duplex, Readable } from 'stream'

import { CliError } from './args'
import { peerText } from './filename'
import { fileEntries, MAX_OFFER_LINE, offerEntries, topNames, type FileEntry, type Manifest } from './manifest'
import { mb, noProgress, type ProgressSink } from './progress'
import { readResumePoints, senderStart } from './resume'
import { TransferGuard } from './transfer-guard'
import { cancelLine, dataRecord, isCode, MAX_RECORD, peerCancelled, Reader, RECORD_CANCEL, refusal, sendCancel, write, writeLine } from './wire'
import { lostPeer } from './failures'

export { sendableName } from './manifest'

/** The transfer format's version, sent in the hello (1 was the format without hello and records, 2 one file) */
export const TRANSFER_VERSION = 3
/** Longest text message, in UTF-8 bytes */
export const MAX_TEXT = 64 * 1024

/** Makes the progress display of one transfer: `label` is 'sending' or 'receiving', `initial` the bytes resumed */
export type ProgressFactory = (label: string, name: string, total: number | null, initial: number) => ProgressSink

export interface TransferResult {
  /** The top-level names, comma-separated ("text" for a message) */
  name: string
  /** Bytes moved by this run (a resumed transfer moves only what was missing) */
  bytes: number
  /** Bytes the receiver already had from an earlier run */
  resumedFrom: number
  files: number
  directories: number
  seconds: number
  sha256: string
  /** receive only: where the items were written ('-': stdout) */
  saved?: string[]
  /** A text message (sent or received) */
  text?: string
}

/** What the receiver's user is asked about */
export interface Offer {
  manifest: Manifest
  /** `"a.bin" (3.00 MB)`, `"photos" (12 files in 3 directories, 40.00 MB, 10.00 MB kept from before)` */
  summary: string
}

export interface ReceiveOptions {
  /** Asked once the offer passed every check: resolves true to receive it, false to decline */
  accept: (offer: Offer) => Promise<boolean>
  /** Refuse offers larger than this many bytes */
  maxSize?: number
  makeProgress?: ProgressFactory
  signal?: AbortSignal
  idleMs?: number
  /** Lines for the user (a resumed file that had to start over) */
  note?: (line: string) => void
  /** Write the one file (or stream) offered here instead of into a directory: no .part, directories refused */
  stdout?: NodeJS.WritableStream
}

export interface SendOptions {
  makeProgress?: ProgressFactory
  /** Aborted when the user cancels (SIGINT, SIGTERM): the peer is told, the transfer fails with ERR_CANCELLED */
  signal?: AbortSignal
  /** Fail with ERR_PEER_IDLE when nothing moves for this long, ms (not while the receiver's user decides, nor while stdin is slow) */
  idleMs?: number
  note?: (line: string) => void
  /** Where an entry with source '-' reads from (default: process.stdin) */
  stdin?: NodeJS.ReadableStream
}

export type Verdict = { ok?: unknown, sha256?: unknown, code?: unknown, message?: unknown, cancel?: unknown }

/** Both sides' hello: fails at once when the peer has the same role or another version of the format */
export async function hello (socket: Duplex, reader: Reader, guard: TransferGuard, role: 'send' | 'receive'): Promise<void> {
  await guard.run(writeLine(socket, { v: TRANSFER_VERSION, role }))
  const peer = await guard.run(reader.line('hello')) as { v?: unknown, role?: unknown, cancel?: unknown }
  const cancel = peerCancelled(peer, role === 'send' ? 'receiver' : 'sender', null)
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

/** The sha256 both sides report: the file's for a single file, else one over every entry's path and hash */
export function overallSha256 (m: Manifest, hashes: string[]): string {
  if (m.entries.length === 1) return hashes[0]
  const all = createHash('sha256')
  let i = 0
  for (const e of m.entries) all.update(e.kind === 'dir' ? `${e.path}/\n` : `${hashes[i++]} ${e.path}\n`)
  return all.digest('hex')
}

export function shortName (m: Manifest): string {
  const tops = topNames(m)
  return tops.length <= 3 ? tops.join(', ') : `${tops.slice(0, 3).join(', ')} and ${tops.length - 3} more`
}

export function counts (m: Manifest): { files: number, directories: number } {
  const files = fileEntries(m).length
  return { files, directories: m.entries.length - files }
}

/** "3.00 of 9.00 MB", or "3.00 MB" when the total is unknown */
export function progressText (done: number, total: number | null): string {
  return total === null ? `${mb(done)} MB` : `${mb(done)} of ${mb(total)} MB`
}

export async function sendText (socket: Duplex, text: string, o: SendOptions = {}): Promise<TransferResult> {
  if (Buffer.byteLength(text) > MAX_TEXT) throw new CliError('ERR_TOO_LARGE', `the text is longer than ${MAX_TEXT} bytes: send it as a file`)
  const guard = new TransferGuard({ signal: o.signal, idleMs: o.idleMs })
  const reader = new Reader(socket, () => guard.touch())
  guard.cancelled = () => new CliError('ERR_CANCELLED', 'cancelled before the text was delivered')
  const t0 = Date.now()
  try {
    await hello(socket, reader, guard, 'send')
    await guard.run(writeLine(socket, { text }))
    const answer = await guard.run(reader.line('answer to the text')) as Verdict
    if (answer.ok !== true) throw refusal(answer, 'the receiver refused the text')
    socket.end()
    const bytes = Buffer.byteLength(text)
    return { name: 'text', bytes, resumedFrom: 0, files: 0, directories: 0, seconds: (Date.now() - t0) / 1000, sha256: createHash('sha256').update(text).digest('hex'), text }
  } finally {
    guard.dispose()
  }
}

export async function sendFiles (socket: Duplex, m: Manifest, o: SendOptions = {}): Promise<TransferResult> {
  const files = fileEntries(m)
  const name = shortName(m)
  const total = m.total
  const guard = new TransferGuard({ signal: o.signal, idleMs: o.idleMs })
  const reader = new Reader(socket, () => guard.touch())
  let phase: 'offer' | 'data' | 'verdict' = 'offer'
  let done = 0
  const at = (): string => progressText(done, total)
  guard.cancelled = () => new CliError('ERR_CANCELLED', phase === 'offer'
    ? `cancelled before sending ${name}; the receiver was told`
    : phase === 'data' ? `cancelled at ${at()}; the receiver was told` : `cancelled while waiting for the receiver's confirmation (all ${at()} sent)`)
  guard.idle = (s) => new CliError('ERR_PEER_IDLE', phase === 'offer'
    ? `the receiver stopped responding before the transfer started (nothing for ${s} s)`
    : `the receiver stopped responding after ${at()} (nothing for ${s} s)`)
  let progress = noProgress
  const t0 = Date.now()
  let sent = 0
  try {
    await hello(socket, reader, guard, 'send')
    const offer = JSON.stringify({ entries: offerEntries(m), total })
    if (Buffer.byteLength(offer) >= MAX_OFFER_LINE) throw new CliError('ERR_TOO_MANY', `the list of files is longer than ${MAX_OFFER_LINE} bytes: send them as an archive`)
    await guard.run(write(socket, Buffer.from(offer + '\n')))
    // The receiver's user may take their time: that is not the peer going quiet
    const answer = await guard.whilePaused(reader.line('answer to the offer', MAX_OFFER_LINE)) as Verdict & { accept?: unknown, resume?: unknown }
    // A cancel in place of the answer: the receiver's user said no to the question by cancelling
    const early = peerCancelled(answer, 'receiver', null)
    if (early !== null) throw early
    if (answer.accept !== true) throw refusal(answer, `the receiver refused ${name}`)
    const points = readResumePoints(answer.resume, files.map(f => f.size))
    const starts: number[] = []
    const hashes: Hash[] = []
    for (const [i, f] of files.entries()) {
      // Hashing our first bytes of a big file takes a while: that is not the receiver going quiet
      const s = f.source === '-' || f.size === null ? { start: 0, hash: createHash('sha256'), differs: false } : await guard.whilePaused(senderStart(f.source as string, f.size, points[i]))
      if (s.differs) o.note?.(`${f.path}: the receiver's partial copy differs from this file; sending it from the start`)
      else if (s.start > 0) o.note?.(`${f.path}: the receiver has ${progressText(s.start, f.size)}; continuing from there`)
      starts.push(s.start)
      hashes.push(s.hash)
    }
    const resumedFrom = starts.reduce((a, b) => a + b, 0)
    await guard.run(writeLine(socket, { start: starts }))
    phase = 'data'
    done = resumedFrom
    progress = o.makeProgress?.('sending', name, total, resumedFrom) ?? noProgress
    progress.update(done)
    // The receiver's next line is its verdict (early when a file arrived damaged), or a cancel at any time
    const verdict = reader.line('confirmation') as Promise<Verdict>
    verdict.then((v) => {
      if (phase === 'verdict') return
      guard.fail(peerCancelled(v, 'receiver', { at: done, size: total }) ?? verdictError(v, name))
    }, (e: Error) => guard.fail(e))
    const digests: string[] = []
    for (const [i, f] of files.entries()) {
      const moved = await sendOne(socket, guard, f, starts[i], hashes[i], o.stdin ?? process.stdin, (n) => {
        done += n
        sent += n
        progress.update(done)
      })
      digests.push(moved)
    }
    const sha256 = overallSha256(m, digests)
    phase = 'verdict'
    progress.update(done, true)
    const reply = await guard.run(verdict)
    const late = peerCancelled(reply, 'receiver', { at: done, size: total })
    if (late !== null) throw late
    if (reply.ok !== true) throw verdictError(reply, name)
    if (reply.sha256 !== sha256) throw new CliError('ERR_SHA256_MISMATCH', 'the receiver\'s sha256 does not match: the file was corrupted on the way')
    socket.end()
    return { name, bytes: sent, resumedFrom, ...counts(m), seconds: (Date.now() - t0) / 1000, sha256 }
  } catch (e) {
    if (isCode(e, 'ERR_CANCELLED') && phase !== 'verdict') {
      await sendCancel(socket, phase === 'data' ? Buffer.concat([Buffer.from([RECORD_CANCEL]), cancelLine(done)]) : cancelLine(0))
    }
    throw lostPeer(e, 'receiver', phase === 'offer' ? 'before the transfer started' : `after ${at()}`)
  } finally {
    progress.end()
    guard.dispose()
  }
}

/** The receiver's failed verdict as this side's error */
function verdictError (v: Verdict, name: string): CliError {
  if (v.code === 'ERR_SHA256_MISMATCH') return new CliError('ERR_SHA256_MISMATCH', 'the receiver\'s sha256 does not match: the file was corrupted on the way')
  return refusal(v, `the receiver could not save ${name}`)
}

/** Sends one file's bytes from `start` and its trailer; returns its sha256 */
async function sendOne (socket: Duplex, guard: TransferGuard, f: FileEntry, start: number, hash: Hash, stdin: NodeJS.ReadableStream, moved: (n: number) => void): Promise<string> {
  const source = f.source as string
  const input = source === '-' ? stdin : fs.createReadStream(source, { start, highWaterMark: 64 * 1024 })
  let pos = start
  const chunks = input[Symbol.asyncIterator]()
  try {
    for (;;) {
      // Waiting for our own input (a slow pipe into stdin) is not the receiver going quiet, and a cancel must not
      // wait for the next chunk: the wait runs through the guard with the idle clock stopped
      const next = await guard.whilePaused(chunks.next())
      if (next.done === true) break
      const chunk: unknown = next.value
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk as Buffer
      if (f.size !== null && pos + buf.length > f.size) throw new CliError('ERR_FILE_CHANGED', `${source} grew while being sent`)
      hash.update(buf)
      for (let off = 0; off < buf.length; off += MAX_RECORD) {
        const piece = buf.subarray(off, off + MAX_RECORD)
        await guard.run(write(socket, dataRecord(piece)))
        guard.touch()
      }
      pos += buf.length
      moved(buf.length)
    }
  } finally {
    // Ends the read at once, stdin too: for-await's return() would wait for a read still pending when a cancel
    // ended the wait, holding stdin open until its producer wrote again
    (input as Readable).destroy()
  }
  if (f.size !== null && pos !== f.size) throw new CliError('ERR_FILE_CHANGED', `${source} shrank while being sent`)
  const sha256 = hash.digest('hex')
  await guard.run(writeLine(socket, f.size === null ? { size: pos, sha256 } : { sha256 }))
  return sha256
}
