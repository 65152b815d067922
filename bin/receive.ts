// The receiving side of the transfer format (described at the top of bin/transfer.ts): checks the offer, asks,
// writes each file to its .part (bin/landing.ts) continuing what a failed run kept, checks every file's sha256
// and publishes. On failure the .part files are kept to be continued, unless their data was proven bad.

import { createHash, type Hash } from 'crypto'
import type { Duplex, Writable } from 'stream'

import { CliError } from './args'
import { checkRoom, freeSpace, humanBytes } from './incoming'
import { lostPeer } from './failures'
import { Landing, type ByteSink } from './landing'
import { describe, fileEntries, MAX_OFFER_LINE, readManifest, type FileEntry, type Manifest } from './manifest'
import { noProgress } from './progress'
import { resumePoint } from './resume'
import { TransferGuard } from './transfer-guard'
import { counts, hello, MAX_TEXT, overallSha256, progressText, shortName, type ReceiveOptions, type TransferResult } from './transfer'
import { cancelLine, isCode, LINE_START, MAX_RECORD, peerCancelled, Reader, RECORD_CANCEL, RECORD_DATA, refuse, sendCancel, write, writeLine } from './wire'

/** While a stream of unknown size arrives, free space is checked again after this many bytes */
const SPACE_CHECK_EVERY = 64 << 20

/** Errors after which the sender is not told why: it is gone, or it ended the transfer itself */
const PEER_ENDED = new Set(['ERR_PEER_CANCELLED', 'ERR_PEER_IDLE', 'ERR_TRANSFER_CLOSED'])

/** Errors that prove the received data bad: its .part files are removed instead of kept */
const PROVEN_BAD = new Set(['ERR_SHA256_MISMATCH', 'ERR_TRANSFER_PROTOCOL'])

export async function receiveFiles (socket: Duplex, dir: string, o: ReceiveOptions): Promise<TransferResult> {
  const guard = new TransferGuard({ signal: o.signal, idleMs: o.idleMs })
  const reader = new Reader(socket, () => guard.touch())
  let m: Manifest | undefined
  let landing: Landing | undefined
  let sink: ByteSink | undefined
  let done = 0
  const at = (): string => m === undefined ? 'before the transfer started' : `at ${progressText(done, m.total)}`
  guard.cancelled = () => new CliError('ERR_CANCELLED', `cancelled ${at()}; the sender was told`)
  guard.idle = (s) => new CliError('ERR_PEER_IDLE', m === undefined
    ? `the sender stopped responding before the transfer started (nothing for ${s} s)`
    : `the sender stopped responding after ${progressText(done, m.total)} (nothing for ${s} s)`)
  let progress = noProgress
  let verdictSent = false
  const t0 = Date.now()
  try {
    await hello(socket, reader, guard, 'receive')
    const header = await guard.run(reader.line('offer', MAX_OFFER_LINE)) as { entries?: unknown, total?: unknown, text?: unknown }
    const early = peerCancelled(header, 'sender', null)
    if (early !== null) throw early
    if (header.text !== undefined) return await receiveText(socket, header.text, t0)
    let offered: Manifest
    try {
      offered = readManifest(header.entries, header.total)
      const files = fileEntries(offered)
      if (o.stdout !== undefined && (offered.entries.length !== 1 || files.length !== 1)) {
        throw new CliError('ERR_NOT_A_FILE', `refused ${describe(offered)}: --out - writes a single file to stdout, not directories or several files`)
      }
      const what = files.length === 1 ? 'a file' : `${files.length} files`
      // Hashing what a failed run kept takes a while for big files: that is not the sender going quiet
      if (o.stdout === undefined) landing = await guard.whilePaused(Landing.inspect(dir, offered))
      const kept = landing?.keptBytes() ?? 0
      if (offered.total !== null) await checkRoom(o.stdout === undefined ? dir : '', offered.total, o.maxSize, o.stdout === undefined ? offered.total - kept : 0, what)
      const summary = describe(offered).replace(/\)$/, kept > 0 ? `, ${humanBytes(kept)} kept from before)` : ')')
      if (!await guard.whilePaused(o.accept({ manifest: offered, summary }))) throw new CliError('ERR_DECLINED', `declined ${shortName(offered)}`)
      await landing?.prepare()
    } catch (e) {
      if (!isCode(e, 'ERR_CANCELLED')) await refuse(socket, e)
      throw e
    }
    m = offered
    const files = fileEntries(m)
    await guard.run(writeLine(socket, { accept: true, resume: files.map((_, i) => resumePoint(landing?.slots[i].kept ?? null)) }))
    // The sender hashes its first bytes of each file we have part of before it answers: not idle either
    const starts = readStarts(await guard.whilePaused(reader.line('start', MAX_OFFER_LINE)), files, landing)
    for (const [i, start] of starts.entries()) {
      const kept = landing?.slots[i].kept
      if (kept != null && kept.at > 0 && start === 0) o.note?.(`${landing?.slots[i].shown ?? ''}: the partial copy differs from the sender's file; receiving it from the start`)
    }
    const resumedFrom = starts.reduce((a, b) => a + b, 0)
    done = resumedFrom
    progress = o.makeProgress?.('receiving', shortName(m), m.total, resumedFrom) ?? noProgress
    progress.update(done)
    const digests: string[] = []
    let received = 0
    for (const [i, f] of files.entries()) {
      const start = starts[i]
      const hash = start > 0 ? (landing?.slots[i].kept?.hash as Hash) : createHash('sha256')
      const target = o.stdout === undefined ? await (landing as Landing).open(i, start) : stdoutSink(o.stdout, guard)
      sink = target
      const sha256 = await receiveOne(reader, guard, f, start, hash, async (chunk) => {
        hash.update(chunk)
        done += chunk.length
        received += chunk.length
        progress.update(done)
        if (o.maxSize !== undefined && done > o.maxSize) throw new CliError('ERR_TOO_LARGE', `refused a stream of more than ${humanBytes(o.maxSize)}: larger than --max-size`)
        await target.write(chunk)
      }, o.stdout === undefined ? dir : null, () => ({ at: done, size: (m as Manifest).total }))
      if (sha256.theirs !== sha256.ours) {
        verdictSent = true
        await writeLine(socket, { ok: false, sha256: sha256.ours, code: 'ERR_SHA256_MISMATCH', message: `sha256 mismatch for ${f.path}` })
        throw new CliError('ERR_SHA256_MISMATCH', `sha256 mismatch${files.length > 1 ? ` in ${f.path}` : ''}: the file was corrupted on the way`)
      }
      await target.finish()
      sink = undefined
      digests.push(sha256.ours)
    }
    const sha256 = overallSha256(m, digests)
    progress.update(done, true)
    let saved: string[]
    try {
      saved = landing === undefined ? ['-'] : await landing.publish()
    } catch (e) {
      verdictSent = true
      await writeLine(socket, { ok: false, sha256, code: 'ERR_SAVE', message: 'the receiver could not save the files' }).catch(() => {})
      throw e
    }
    landing = undefined
    await writeLine(socket, { ok: true, sha256 })
    socket.end()
    return { name: shortName(m), bytes: received, resumedFrom, ...counts(m), seconds: (Date.now() - t0) / 1000, sha256, saved }
  } catch (caught) {
    const e = lostPeer(caught, 'sender', m === undefined ? 'before the transfer started' : `after ${progressText(done, m.total)}`)
    if (isCode(e, 'ERR_CANCELLED')) await sendCancel(socket, cancelLine(done))
    else if (m !== undefined && !verdictSent && !PEER_ENDED.has(String((e as { code?: unknown } | null)?.code))) await refuse(socket, e)
    await sink?.abandon()
    if (landing === undefined || m === undefined || !await landing.anyOnDisk()) throw e
    const code = (e as { code?: unknown } | null)?.code
    const why = e instanceof Error ? e.message : String(e)
    // The partial files are never left behind unexplained: kept to be continued, or removed when proven bad
    let message: string
    if (PROVEN_BAD.has(String(code)) || m.total === null) {
      await landing.discard()
      message = `${why}; removed the partial ${landing.partNames()}`
    } else {
      message = `${why}; kept the partial ${landing.partNames()} (${progressText(done, m.total)}): run the same receive again to resume`
    }
    throw new CliError(typeof code === 'string' ? code : 'ERR_FAILED', message)
  } finally {
    progress.end()
    guard.dispose()
  }
}

/** The sender's start line, checked: per file 0, or exactly the resume point we offered */
function readStarts (raw: unknown, files: FileEntry[], landing: Landing | undefined): number[] {
  const starts = (raw as { start?: unknown } | null)?.start
  const bad = new CliError('ERR_TRANSFER_PROTOCOL', 'the sender sent invalid start offsets')
  if (!Array.isArray(starts) || starts.length !== files.length) {
    throw peerCancelled(raw, 'sender', null) ?? bad
  }
  return starts.map((s: unknown, i) => {
    if (s === 0) return 0
    const kept = landing?.slots[i].kept
    if (kept == null || s !== kept.at) throw bad
    return s
  })
}

/** How far the whole transfer has come, for a cancel's message */
type Where = () => { at: number, size: number | null }

/**
 * Receives one file's records into `sink` (never more than its size) and its trailer; returns the sha256 the
 * sender claims and ours. `spaceDir`: where free space is checked again while a stream of unknown size arrives
 */
async function receiveOne (reader: Reader, guard: TransferGuard, f: FileEntry, start: number, hash: Hash, sink: (chunk: Buffer) => Promise<void>, spaceDir: string | null, where: Where): Promise<{ theirs: unknown, ours: string }> {
  const size = f.size
  let got = start
  let nextSpaceCheck = SPACE_CHECK_EVERY
  for (;;) {
    if (size !== null && got >= size) break
    const type = await guard.run(reader.peek('the file'))
    if (type === LINE_START && size === null) break
    if (type !== RECORD_DATA) throw await senderCancel(reader, guard, type, where)
    const len = (await guard.run(reader.take(5, 'the file'))).readUInt32BE(1)
    if (size !== null && len > size - got) throw new CliError('ERR_TRANSFER_PROTOCOL', `the sender sent more than the ${size} bytes it announced`)
    if (len === 0 || len > MAX_RECORD) throw new CliError('ERR_TRANSFER_PROTOCOL', 'the sender sent an invalid record')
    await guard.run(reader.bytes(len, sink, 'the file'))
    got += len
    if (size === null && spaceDir !== null && got >= nextSpaceCheck) {
      nextSpaceCheck = got + SPACE_CHECK_EVERY
      const free = await freeSpace(spaceDir)
      if (free !== null && free < SPACE_CHECK_EVERY) throw new CliError('ERR_NO_SPACE', `stopped a stream after ${humanBytes(got)}: only ${humanBytes(free)} free in ${spaceDir}`, undefined, `stopped a stream after ${humanBytes(got)}: not enough free space`)
    }
  }
  const next = await guard.run(reader.peek('checksum'))
  if (next === RECORD_DATA) throw new CliError('ERR_TRANSFER_PROTOCOL', `the sender sent more than the ${size ?? got} bytes it announced`)
  if (next !== LINE_START) throw await senderCancel(reader, guard, next, where)
  const ours = hash.digest('hex')
  const trailer = await guard.run(reader.line('checksum')) as { sha256?: unknown, size?: unknown, cancel?: unknown }
  const late = peerCancelled(trailer, 'sender', where())
  if (late !== null) throw late
  if (size === null && trailer.size !== got) throw new CliError('ERR_TRANSFER_PROTOCOL', `the sender's stream ended at ${String(trailer.size)} bytes, ${got} arrived`)
  return { theirs: trailer.sha256, ours }
}

/** The sender's cancel (after a cancel record 'X', or a bare line before the data) or a protocol error */
async function senderCancel (reader: Reader, guard: TransferGuard, type: number, where: Where): Promise<CliError> {
  if (type === RECORD_CANCEL) await guard.run(reader.take(1, 'cancel'))
  else if (type !== LINE_START) return new CliError('ERR_TRANSFER_PROTOCOL', 'the sender sent an invalid record')
  const line = await guard.run(reader.line('cancel'))
  return peerCancelled(line, 'sender', where()) ?? new CliError('ERR_TRANSFER_PROTOCOL', 'the sender sent a line where file data belongs')
}

/** A text message: not written anywhere, handed back to be printed */
async function receiveText (socket: Duplex, text: unknown, t0: number): Promise<TransferResult> {
  if (typeof text !== 'string' || Buffer.byteLength(text) > MAX_TEXT) {
    const e = new CliError('ERR_TRANSFER_PROTOCOL', `the sender's text is invalid or longer than ${MAX_TEXT} bytes`)
    await refuse(socket, e)
    throw e
  }
  await writeLine(socket, { ok: true })
  socket.end()
  const sha256 = createHash('sha256').update(text).digest('hex')
  return { name: 'text', bytes: Buffer.byteLength(text), resumedFrom: 0, files: 0, directories: 0, seconds: (Date.now() - t0) / 1000, sha256, text }
}

/**
 * Writes to stdout (receive --out -) as to the connection (`write()`: backpressure, and a reader that went away
 * fails the transfer instead of leaving it waiting for a drain). A slow reader (a pager) is not the sender going
 * quiet, and a cancel must not wait for it: the wait runs through the guard with the idle clock stopped
 */
function stdoutSink (out: NodeJS.WritableStream, guard: TransferGuard): ByteSink {
  return {
    write: async (chunk) => {
      try {
        await guard.whilePaused(write(out as Writable, chunk))
      } catch (e) {
        if (e === guard.error) throw e // a cancel or the peer's silence, as such
        // Said as ours: lostPeer() would take EPIPE or a close for the sender going away
        const code = (e as { code?: string }).code
        const how = code === undefined || code === 'ERR_TRANSFER_CLOSED' ? 'closed' : code
        throw new CliError('ERR_STDOUT_CLOSED', `stdout was closed by its reader (${how})`, undefined, 'the receiver\'s output was closed')
      }
    },
    finish: async () => {},
    abandon: async () => {}
  }
}
