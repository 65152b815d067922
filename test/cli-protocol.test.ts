// The CLI's transfer format in-process (bin/transfer.ts, bin/receive.ts): each side against a scripted peer over
// an in-memory connection, so every step can be answered wrongly on purpose. What each side says back, the error
// its user sees, and what is left on disk (kept to resume, or removed when proven bad). Both real sides together
// run first. The same over real connections and child processes is in cli-integrity.test.ts and cli-resume.test.ts.
import { createHash } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { Duplex, PassThrough, Writable } from 'stream'
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type * as ManifestModule from '../bin/manifest'
import type * as ReceiveModule from '../bin/receive'
import type * as TransferModule from '../bin/transfer'
import { requireFromRoot } from './helpers/utp'

const { sendFiles, sendText, overallSha256, shortName, progressText } = requireFromRoot('./dist/bin/transfer.js') as typeof TransferModule
const { receiveFiles } = requireFromRoot('./dist/bin/receive.js') as typeof ReceiveModule
const { walk, readManifest } = requireFromRoot('./dist/bin/manifest.js') as typeof ManifestModule

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-protocol-'))
afterAll(() => { fs.rmSync(base, { recursive: true, force: true }) })
let dir: string
let dirs = 0
beforeEach(() => { dir = path.join(base, String(++dirs)); fs.mkdirSync(dir) })

const sha = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex')
const failure = async (p: Promise<unknown>): Promise<unknown> => await p.then(() => 'no error', (e: Error & { code?: string }) => [e.code, e.message])

/** Two connected in-memory sockets */
function connection (): [Duplex, Duplex] {
  const aToB = new PassThrough()
  const bToA = new PassThrough()
  return [Duplex.from({ readable: bToA, writable: aToB }), Duplex.from({ readable: aToB, writable: bToA })]
}

/** The scripted other side: writes lines and records as given, reads lines and records with its own parser */
class Peer {
  private _buf = Buffer.alloc(0)
  private _wake: (() => void) | null = null
  ended = false
  constructor (readonly socket: Duplex) {
    socket.on('data', (d: Buffer) => { this._buf = Buffer.concat([this._buf, d]); this._wake?.() })
    socket.on('end', () => { this.ended = true; this._wake?.() })
  }

  private async _need (test: () => boolean): Promise<void> {
    while (!test()) {
      if (this.ended) throw new Error('the side under test closed the connection')
      await new Promise<void>(resolve => { this._wake = resolve })
    }
  }

  async line (): Promise<Record<string, unknown>> {
    await this._need(() => this._buf.includes(10))
    const nl = this._buf.indexOf(10)
    const text = this._buf.toString('utf8', 0, nl)
    this._buf = this._buf.subarray(nl + 1)
    return JSON.parse(text) as Record<string, unknown>
  }

  async take (n: number): Promise<Buffer> {
    await this._need(() => this._buf.length >= n)
    const out = this._buf.subarray(0, n)
    this._buf = this._buf.subarray(n)
    return out
  }

  /** Data records until the next line: their payloads joined, and the record sizes */
  async records (): Promise<{ data: Buffer, sizes: number[] }> {
    const parts: Buffer[] = []
    for (;;) {
      await this._need(() => this._buf.length > 0)
      if (this._buf[0] !== 0x44) return { data: Buffer.concat(parts), sizes: parts.map(p => p.length) }
      const head = await this.take(5)
      parts.push(Buffer.from(await this.take(head.readUInt32BE(1))))
    }
  }

  /** What arrived and was not read yet, as text */
  unread (): string {
    return this._buf.toString()
  }

  send (obj: unknown): void { this.socket.write(JSON.stringify(obj) + '\n') }
  record (data: Buffer | string, type = 0x44, length?: number): void {
    const body = Buffer.from(data)
    const head = Buffer.alloc(5)
    head[0] = type
    head.writeUInt32BE(length ?? body.length, 1)
    this.socket.write(Buffer.concat([head, body]))
  }
}

const accept = async (): Promise<boolean> => true

describe('both sides together, in-process', () => {
  it('a file and a tree arrive whole under their names; a second run resumes what a failed one kept', async () => {
    const src = path.join(base, `src-${dirs}`)
    fs.mkdirSync(path.join(src, 'tree', 'sub'), { recursive: true })
    const big = Buffer.alloc(3 << 20)
    for (let i = 0; i < big.length; i += 997) big[i] = i & 0xff
    fs.writeFileSync(path.join(src, 'big.bin'), big)
    fs.writeFileSync(path.join(src, 'tree', 'sub', 'x.txt'), 'x')
    const m = await walk([path.join(src, 'big.bin'), path.join(src, 'tree')], () => {})
    const [a, b] = connection()
    const offers: string[] = []
    const [sent, got] = await Promise.all([
      sendFiles(a, m),
      receiveFiles(b, dir, { accept: async (o) => { offers.push(o.summary); return true } })
    ])
    expect(offers).toEqual(['"big.bin", "tree" (2 files in 2 directories, 3.15 MB)'])
    expect(Buffer.compare(fs.readFileSync(path.join(dir, 'big.bin')), big)).toBe(0)
    expect(fs.readFileSync(path.join(dir, 'tree', 'sub', 'x.txt'), 'utf8')).toBe('x')
    const expectedSha = overallSha256(m, [sha(big), sha('x')])
    expect([sent.sha256, got.sha256, sent.bytes, got.bytes, got.files, got.directories, got.saved]).toEqual([expectedSha, expectedSha, big.length + 1, big.length + 1, 2, 2, [path.join(dir, 'big.bin'), path.join(dir, 'tree')]])
    // Resume: a kept copy of the first 1 MiB
    const dir2 = path.join(base, `resume-${dirs}`)
    fs.mkdirSync(dir2)
    fs.writeFileSync(path.join(dir2, 'big.bin.part'), big.subarray(0, 1 << 20))
    const one = await walk([path.join(src, 'big.bin')], () => {})
    const [c, d] = connection()
    const notes: string[] = []
    const [sent2, got2] = await Promise.all([sendFiles(c, one, { note: l => notes.push(l) }), receiveFiles(d, dir2, { accept })])
    expect([sent2.bytes, sent2.resumedFrom, got2.bytes, got2.resumedFrom, got2.sha256]).toEqual([(3 << 20) - (1 << 20), 1 << 20, (3 << 20) - (1 << 20), 1 << 20, sha(big)])
    expect(notes).toEqual(['big.bin: the receiver has 1.05 of 3.15 MB; continuing from there'])
    expect(Buffer.compare(fs.readFileSync(path.join(dir2, 'big.bin')), big)).toBe(0)
  })

  it('a text message', async () => {
    const [a, b] = connection()
    const [sent, got] = await Promise.all([sendText(a, 'hello there'), receiveFiles(b, dir, { accept })])
    expect([sent.text, got.text, got.name, got.bytes, got.sha256]).toEqual(['hello there', 'hello there', 'text', 11, sha('hello there')])
    expect(fs.readdirSync(dir)).toEqual([])
  })
})

describe('the receiver against a scripted sender', () => {
  /** Starts receiveFiles; the peer says hello and offers `entries` (one file "a.bin" of 5 bytes by default) */
  const offered = async (o: Partial<TransferModule.ReceiveOptions> = {}, entries: unknown[] = [{ path: 'a.bin', size: 5 }], total: unknown = 5): Promise<{ peer: Peer, result: Promise<unknown>, accepted: Record<string, unknown> }> => {
    const [ours, theirs] = connection()
    const peer = new Peer(theirs)
    const result = failure(receiveFiles(ours, dir, { accept, ...o }))
    peer.send({ v: 3, role: 'send' })
    expect(await peer.line()).toEqual({ v: 3, role: 'receive' })
    peer.send({ entries, total })
    const accepted = await peer.line()
    return { peer, result, accepted }
  }
  const part = (): string | null => fs.existsSync(path.join(dir, 'a.bin.part')) ? fs.readFileSync(path.join(dir, 'a.bin.part'), 'utf8') : null

  it('accepts, takes the records and the trailer, publishes, and confirms with the sha256', async () => {
    const { peer, result, accepted } = await offered()
    expect(accepted).toEqual({ accept: true, resume: [null] })
    peer.send({ start: [0] })
    peer.record('ab')
    peer.record('cde')
    peer.send({ sha256: sha('abcde') })
    expect(await peer.line()).toEqual({ ok: true, sha256: sha('abcde') })
    expect(await result).toBe('no error')
    expect(fs.readFileSync(path.join(dir, 'a.bin'), 'utf8')).toBe('abcde')
  })

  it('data the sender never announced is refused, the sender told, the partial file removed', async () => {
    const cases: Array<[string, (p: Peer) => void, string]> = [
      ['a record past the size', p => { p.record('abc'); p.record('def') }, 'the sender sent more than the 5 bytes it announced'],
      ['an empty record', p => { p.record('') }, 'the sender sent an invalid record'],
      ['a record over 1 MiB', p => { p.record('', 0x44, (1 << 20) + 1) }, 'the sender sent more than the 5 bytes it announced'],
      ['an unknown record type', p => { p.record('abc', 0x5a) }, 'the sender sent an invalid record'],
      ['a record after the whole file', p => { p.record('abcde'); p.record('f') }, 'the sender sent more than the 5 bytes it announced'],
      ['a line where data belongs', p => { p.record('ab'); p.send({ sha256: sha('ab') }) }, 'the sender sent a line where file data belongs'],
      ['junk where the trailer belongs', p => { p.record('abcde'); p.record('x', 0x5a) }, 'the sender sent an invalid record'],
      ['a trailer that is not JSON', p => { p.record('abcde'); p.socket.write('{oops\n') }, 'the peer sent an invalid checksum']
    ]
    for (const [what, script, message] of cases) {
      const { peer, result } = await offered()
      peer.send({ start: [0] })
      script(peer)
      const told = await peer.line()
      expect([what, await result]).toEqual([what, ['ERR_TRANSFER_PROTOCOL', `${message}; removed the partial a.bin.part`]])
      expect([what, told]).toEqual([what, { ok: false, code: 'ERR_TRANSFER_PROTOCOL', message }])
      expect([what, part()]).toEqual([what, null])
    }
  })

  it('a damaged file: the sender is told at once with our sha256, the partial file removed', async () => {
    const { peer, result } = await offered()
    peer.send({ start: [0] })
    peer.record('abcde')
    peer.send({ sha256: sha('abcdX') })
    expect(await peer.line()).toEqual({ ok: false, sha256: sha('abcde'), code: 'ERR_SHA256_MISMATCH', message: 'sha256 mismatch for a.bin' })
    expect(await result).toEqual(['ERR_SHA256_MISMATCH', 'sha256 mismatch: the file was corrupted on the way; removed the partial a.bin.part'])
    expect(part()).toBeNull()
  })

  it('the sender cancelling or vanishing mid-file: the partial file kept to resume, the sender not answered', async () => {
    const cancelled = await offered()
    cancelled.peer.send({ start: [0] })
    cancelled.peer.record('abc')
    cancelled.peer.socket.write(Buffer.from([0x58]))
    cancelled.peer.send({ cancel: true, at: 3 })
    expect(await cancelled.result).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender at 0.00 of 0.00 MB; kept the partial a.bin.part (0.00 of 0.00 MB): run the same receive again to resume'])
    await new Promise(resolve => setImmediate(resolve))
    expect(cancelled.peer.unread()).toBe('')
    expect(part()).toBe('abc')
    fs.rmSync(path.join(dir, 'a.bin.part'))
    const gone = await offered()
    gone.peer.send({ start: [0] })
    gone.peer.record('ab')
    gone.peer.socket.end()
    expect(await gone.result).toEqual(['ERR_TRANSFER_CLOSED', 'the sender closed the connection after 0.00 of 0.00 MB; kept the partial a.bin.part (0.00 of 0.00 MB): run the same receive again to resume'])
    expect(part()).toBe('ab')
  })

  it('the sender\'s start offsets: only 0, or exactly the resume point offered', async () => {
    fs.writeFileSync(path.join(dir, 'a.bin.part'), 'abc')
    for (const start of [[1], [3, 0], [], 'x', [5], [-0 - 1]]) {
      const { peer, result, accepted } = await offered()
      expect(accepted).toEqual({ accept: true, resume: [{ at: 3, sha256: sha('abc') }] })
      peer.send({ start })
      expect([start, await peer.line()]).toEqual([start, { ok: false, code: 'ERR_TRANSFER_PROTOCOL', message: 'the sender sent invalid start offsets' }])
      expect([start, await result]).toEqual([start, ['ERR_TRANSFER_PROTOCOL', 'the sender sent invalid start offsets; removed the partial a.bin.part']])
      fs.writeFileSync(path.join(dir, 'a.bin.part'), 'abc')
    }
    // A cancel in place of the offsets
    const c = await offered()
    c.peer.send({ cancel: true, at: 0 })
    expect(await c.result).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender before the transfer started; kept the partial a.bin.part (0.00 of 0.00 MB): run the same receive again to resume'])
    // Continued from the kept bytes; or from 0, truncated, with a note, when the sender's bytes differ
    const resumed = await offered()
    resumed.peer.send({ start: [3] })
    resumed.peer.record('de')
    resumed.peer.send({ sha256: sha('abcde') })
    expect(await resumed.peer.line()).toEqual({ ok: true, sha256: sha('abcde') })
    expect(await resumed.result).toBe('no error')
    expect(fs.readFileSync(path.join(dir, 'a.bin'), 'utf8')).toBe('abcde')
    fs.rmSync(path.join(dir, 'a.bin'))
    fs.writeFileSync(path.join(dir, 'a.bin.part'), 'XYZ')
    const notes: string[] = []
    const over = await offered({ note: l => notes.push(l) })
    over.peer.send({ start: [0] })
    over.peer.record('abcde')
    over.peer.send({ sha256: sha('abcde') })
    expect(await over.peer.line()).toEqual({ ok: true, sha256: sha('abcde') })
    expect(await over.result).toBe('no error')
    expect(notes).toEqual(['a.bin.part: the partial copy differs from the sender\'s file; receiving it from the start'])
    expect(fs.readFileSync(path.join(dir, 'a.bin'), 'utf8')).toBe('abcde')
  })

  it('a stream of unknown size: records until its trailer, which must count what arrived; --max-size holds', async () => {
    const s = await offered({}, [{ path: 'stdin', size: null }], null)
    expect(s.accepted).toEqual({ accept: true, resume: [null] })
    s.peer.send({ start: [0] })
    s.peer.record('abc')
    s.peer.record('de')
    s.peer.send({ size: 5, sha256: sha('abcde') })
    expect(await s.peer.line()).toEqual({ ok: true, sha256: sha('abcde') })
    expect(await s.result).toBe('no error')
    expect(fs.readFileSync(path.join(dir, 'stdin'), 'utf8')).toBe('abcde')
    fs.rmSync(path.join(dir, 'stdin'))
    const wrong = await offered({}, [{ path: 'stdin', size: null }], null)
    wrong.peer.send({ start: [0] })
    wrong.peer.record('abc')
    wrong.peer.send({ size: 7, sha256: sha('abc') })
    expect(await wrong.peer.line()).toEqual({ ok: false, code: 'ERR_TRANSFER_PROTOCOL', message: 'the sender\'s stream ended at 7 bytes, 3 arrived' })
    expect(await wrong.result).toEqual(['ERR_TRANSFER_PROTOCOL', 'the sender\'s stream ended at 7 bytes, 3 arrived; removed the partial stdin.part'])
    const big = await offered({ maxSize: 4 }, [{ path: 'stdin', size: null }], null)
    big.peer.send({ start: [0] })
    big.peer.record('abc')
    big.peer.record('de')
    expect(await big.peer.line()).toEqual({ ok: false, code: 'ERR_TOO_LARGE', message: 'refused a stream of more than 4 bytes: larger than --max-size' })
    // A stream cannot be resumed: what arrived is removed whatever the failure
    expect(await big.result).toEqual(['ERR_TOO_LARGE', 'refused a stream of more than 4 bytes: larger than --max-size; removed the partial stdin.part'])
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('refusals before anything is written: declined, too large, not for stdout; the sender told why', async () => {
    const declined = await offered({ accept: async () => false })
    expect(declined.accepted).toEqual({ ok: false, code: 'ERR_DECLINED', message: 'declined a.bin' })
    expect(await declined.result).toEqual(['ERR_DECLINED', 'declined a.bin'])
    const large = await offered({ maxSize: 4 })
    expect(large.accepted).toEqual({ ok: false, code: 'ERR_TOO_LARGE', message: 'refused a file of 5 bytes: larger than --max-size 4 bytes' })
    expect(await large.result).toEqual(['ERR_TOO_LARGE', 'refused a file of 5 bytes: larger than --max-size 4 bytes'])
    const tree = await offered({ stdout: new PassThrough() }, [{ path: 'd', dir: true }, { path: 'd/x', size: 5 }], 5)
    expect(tree.accepted).toEqual({ ok: false, code: 'ERR_NOT_A_FILE', message: 'refused "d" (1 file in 1 directory, 5 bytes): --out - writes a single file to stdout, not directories or several files' })
    const unsafe = await offered({}, [{ path: '.bashrc', size: 5 }], 5)
    expect(unsafe.accepted).toEqual({ ok: false, code: 'ERR_UNSAFE_NAME', message: 'refused the name ".bashrc": it starts with a dot (a hidden or configuration file)' })
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('--out -: the one file to stdout, nothing on disk', async () => {
    const out = new PassThrough()
    const { peer, result } = await offered({ stdout: out })
    peer.send({ start: [0] })
    peer.record('abcde')
    peer.send({ sha256: sha('abcde') })
    expect(await peer.line()).toEqual({ ok: true, sha256: sha('abcde') })
    expect(await result).toBe('no error')
    expect(String(out.read())).toBe('abcde')
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('texts: accepted and confirmed; one too long or not a string refused', async () => {
    for (const [text, ok] of [['hi', true], ['x'.repeat(64 * 1024), true], ['x'.repeat(64 * 1024 + 1), false], [5, false]] as const) {
      const [ours, theirs] = connection()
      const peer = new Peer(theirs)
      const result = failure(receiveFiles(ours, dir, { accept }))
      peer.send({ v: 3, role: 'send' })
      await peer.line()
      peer.send({ text })
      const answer = await peer.line()
      if (ok) {
        expect([answer, await result]).toEqual([{ ok: true }, 'no error'])
      } else {
        const message = 'the sender\'s text is invalid or longer than 65536 bytes'
        expect([answer, await result]).toEqual([{ ok: false, code: 'ERR_TRANSFER_PROTOCOL', message }, ['ERR_TRANSFER_PROTOCOL', message]])
      }
    }
  })

  it('our own cancel: the sender is told where, the partial file kept', async () => {
    const ac = new AbortController()
    let done = 0
    const { peer, result } = await offered({ signal: ac.signal, makeProgress: () => ({ update: (n: number) => { done = n }, end: () => {} }) })
    peer.send({ start: [0] })
    peer.record('ab')
    while (done < 2) await new Promise(resolve => setImmediate(resolve))
    ac.abort()
    expect(await peer.line()).toEqual({ cancel: true, at: 2 })
    expect(await result).toEqual(['ERR_CANCELLED', 'cancelled at 0.00 of 0.00 MB; the sender was told; kept the partial a.bin.part (0.00 of 0.00 MB): run the same receive again to resume'])
    expect(part()).toBe('ab')
  })
})

describe('the sender against a scripted receiver', () => {
  const fileOf = (text: string): string => {
    const p = path.join(dir, `src-${text.length}`)
    fs.writeFileSync(p, text)
    return p
  }
  /** Starts sendFiles for `m`; the peer says hello and reads the offer */
  const offering = async (m: ManifestModule.Manifest, o: TransferModule.SendOptions = {}): Promise<{ peer: Peer, result: Promise<unknown>, offer: Record<string, unknown> }> => {
    const [ours, theirs] = connection()
    const peer = new Peer(theirs)
    const result = failure(sendFiles(ours, m, o))
    expect(await peer.line()).toEqual({ v: 3, role: 'send' })
    peer.send({ v: 3, role: 'receive' })
    return { peer, result, offer: await peer.line() }
  }
  const one = async (text = 'abcde'): Promise<ManifestModule.Manifest> => await walk([fileOf(text)], () => {})

  it('offers, sends from the start, and checks the receiver\'s confirmation', async () => {
    const m = await one()
    const { peer, result, offer } = await offering(m)
    expect(offer).toEqual({ entries: [{ path: 'src-5', size: 5 }], total: 5 })
    peer.send({ accept: true, resume: [null] })
    expect(await peer.line()).toEqual({ start: [0] })
    expect((await peer.records()).data.toString()).toBe('abcde')
    expect(await peer.line()).toEqual({ sha256: sha('abcde') })
    peer.send({ ok: true, sha256: sha('abcde') })
    expect(await result).toBe('no error')
  })

  it('the receiver\'s answers, each as the sender\'s user hears it', async () => {
    const m = await one()
    const answer = async (reply: unknown): Promise<unknown> => {
      const { peer, result } = await offering(m)
      peer.send(reply)
      return await result
    }
    expect(await answer({ ok: false, code: 'ERR_TOO_LARGE', message: 'too big' })).toEqual(['ERR_REFUSED', 'the receiver refused src-5: too big (ERR_TOO_LARGE)'])
    expect(await answer({ cancel: true })).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the receiver at 0.00 of 0.00 MB'])
    expect(await answer({ accept: true, resume: [null, null] })).toEqual(['ERR_TRANSFER_PROTOCOL', 'the receiver sent invalid resume points'])
    expect(await answer({ accept: 'yes' })).toEqual(['ERR_REFUSED', 'the receiver refused src-5'])
    const verdict = async (reply: unknown): Promise<unknown> => {
      const { peer, result } = await offering(m)
      peer.send({ accept: true })
      await peer.line()
      await peer.records()
      await peer.line()
      peer.send(reply)
      return await result
    }
    expect(await verdict({ ok: true, sha256: sha('other') })).toEqual(['ERR_SHA256_MISMATCH', 'the receiver\'s sha256 does not match: the file was corrupted on the way'])
    expect(await verdict({ ok: false, code: 'ERR_SHA256_MISMATCH' })).toEqual(['ERR_SHA256_MISMATCH', 'the receiver\'s sha256 does not match: the file was corrupted on the way'])
    expect(await verdict({ ok: false, code: 'ERR_SAVE', message: 'the receiver could not save the files' })).toEqual(['ERR_REFUSED', 'the receiver could not save src-5: the receiver could not save the files (ERR_SAVE)'])
    expect(await verdict({ cancel: true, at: 5 })).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the receiver at 0.00 of 0.00 MB'])
  })

  it('resume points: continued where the bytes match, from 0 where they differ, each with a note', async () => {
    const m = await one()
    for (const [point, start, sent, note] of [
      [{ at: 3, sha256: sha('abc') }, 3, 'de', 'src-5: the receiver has 0.00 of 0.00 MB; continuing from there'],
      [{ at: 3, sha256: sha('abX') }, 0, 'abcde', 'src-5: the receiver\'s partial copy differs from this file; sending it from the start']
    ] as const) {
      const notes: string[] = []
      const { peer, result } = await offering(m, { note: l => notes.push(l) })
      peer.send({ accept: true, resume: [point] })
      expect(await peer.line()).toEqual({ start: [start] })
      expect((await peer.records()).data.toString()).toBe(sent)
      expect(await peer.line()).toEqual({ sha256: sha('abcde') })
      peer.send({ ok: true, sha256: sha('abcde') })
      expect(await result).toBe('no error')
      expect(notes).toEqual([note])
    }
  })

  it('a file that changes while it is sent fails the transfer', async () => {
    const p = fileOf('abcde')
    const grown = { entries: [{ kind: 'file', path: 'a', size: 3, exec: false, source: p }], total: 3 } as ManifestModule.Manifest
    const g = await offering(grown)
    g.peer.send({ accept: true })
    expect(await g.result).toEqual(['ERR_FILE_CHANGED', `${p} grew while being sent`])
    const shrunk = { entries: [{ kind: 'file', path: 'a', size: 9, exec: false, source: p }], total: 9 } as ManifestModule.Manifest
    const s = await offering(shrunk)
    s.peer.send({ accept: true })
    expect(await s.result).toEqual(['ERR_FILE_CHANGED', `${p} shrank while being sent`])
  })

  it('stdin: records in pieces of at most 1 MiB, a trailer with the size', async () => {
    const stdin = new PassThrough()
    const m = await walk(['-'], () => {}, 'notes.txt')
    const { peer, result, offer } = await offering(m, { stdin })
    expect(offer).toEqual({ entries: [{ path: 'notes.txt', size: null }], total: null })
    peer.send({ accept: true, resume: [null] })
    expect(await peer.line()).toEqual({ start: [0] })
    const data = Buffer.alloc((2 << 20) + 5, 7)
    stdin.end(data)
    const got = await peer.records()
    expect(got.sizes.every(n => n <= 1 << 20)).toBe(true)
    expect(Buffer.compare(got.data, data)).toBe(0)
    expect(await peer.line()).toEqual({ size: data.length, sha256: sha(data) })
    peer.send({ ok: true, sha256: sha(data) })
    expect(await result).toBe('no error')
  })

  it('our own cancel: before the data a cancel line, during it a cancel record; the message says where', async () => {
    const m = await one()
    const early = new AbortController()
    const e = await offering(m, { signal: early.signal })
    early.abort()
    expect(await e.peer.line()).toEqual({ cancel: true, at: 0 })
    expect(await e.result).toEqual(['ERR_CANCELLED', 'cancelled before sending src-5; the receiver was told'])
    const late = new AbortController()
    const stdin = new PassThrough()
    const l = await offering(await walk(['-'], () => {}), { signal: late.signal, stdin })
    l.peer.send({ accept: true })
    await l.peer.line()
    stdin.write('abc')
    expect((await l.peer.take(8)).subarray(5).toString()).toBe('abc')
    late.abort()
    expect([...await l.peer.take(1)]).toEqual([0x58])
    expect(await l.peer.line()).toEqual({ cancel: true, at: 3 })
    expect(await l.result).toEqual(['ERR_CANCELLED', 'cancelled at 0.00 MB; the receiver was told'])
  })

  it('hello: an older version, another version, the same role or a bad role fail at once', async () => {
    for (const [hello, expected] of [
      [{ role: 'receive' }, ['ERR_VERSION', 'the other side runs an older utp-punch-rs (transfer format 1, this one speaks 3): run the same version on both sides']],
      [{ v: 2, role: 'receive' }, ['ERR_VERSION', 'the other side speaks transfer format 2, this one speaks 3: run the same utp-punch-rs version on both sides']],
      [{ v: '3\u001b[2J', role: 'receive' }, ['ERR_VERSION', 'the other side speaks transfer format 3_[2J, this one speaks 3: run the same utp-punch-rs version on both sides']],
      [{ v: 3, role: 'send' }, ['ERR_SAME_ROLE', 'the other side is also sending: one side must run receive']],
      [{ v: 3, role: 'relay' }, ['ERR_TRANSFER_PROTOCOL', 'the peer sent an invalid hello']],
      [{ cancel: true }, ['ERR_PEER_CANCELLED', 'cancelled by the receiver before the transfer started']]
    ] as const) {
      const [ours, theirs] = connection()
      const peer = new Peer(theirs)
      const result = failure(sendFiles(ours, await one()))
      await peer.line()
      peer.send(hello)
      expect([hello, await result]).toEqual([hello, expected])
    }
    const [ours, theirs] = connection()
    const peer = new Peer(theirs)
    const result = failure(receiveFiles(ours, dir, { accept }))
    await peer.line()
    peer.send({ v: 3, role: 'receive' })
    expect(await result).toEqual(['ERR_SAME_ROLE', 'the other side is also receiving: one side must run send'])
  })

  it('texts: too long before anything is sent; refused; confirmed', async () => {
    const [a] = connection()
    expect(await failure(sendText(a, 'x'.repeat(64 * 1024 + 1)))).toEqual(['ERR_TOO_LARGE', 'the text is longer than 65536 bytes: send it as a file'])
    const [ours, theirs] = connection()
    const peer = new Peer(theirs)
    const result = failure(sendText(ours, 'hi'))
    await peer.line()
    peer.send({ v: 3, role: 'receive' })
    expect(await peer.line()).toEqual({ text: 'hi' })
    peer.send({ ok: false, message: 'no texts here' })
    expect(await result).toEqual(['ERR_REFUSED', 'the receiver refused the text: no texts here'])
  })
})

describe('waiting on our own side is neither the peer\'s silence nor deaf to a cancel', () => {
  afterEach(() => { vi.useRealTimers() })
  // Only the guard's clock is faked: the streams keep their real ticks
  const fakeClock = (): void => { vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] }) }
  const tick = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

  it('the sender: a slow pipe into stdin', async () => {
    fakeClock()
    const stdin = new PassThrough()
    const [ours, theirs] = connection()
    const peer = new Peer(theirs)
    const result = failure(sendFiles(ours, await walk(['-'], () => {}), { stdin, idleMs: 1000 }))
    await peer.line()
    peer.send({ v: 3, role: 'receive' })
    await peer.line()
    peer.send({ accept: true })
    await peer.line()
    stdin.write('abc')
    await peer.take(8)
    // Our producer says nothing for 5 s: the receiver is not to blame
    await vi.advanceTimersByTimeAsync(5000)
    stdin.end('def')
    expect((await peer.records()).data.toString()).toBe('def')
    expect(await peer.line()).toEqual({ size: 6, sha256: sha('abcdef') })
    peer.send({ ok: true, sha256: sha('abcdef') })
    expect(await result).toBe('no error')
    // Silence from the receiver still counts: everything sent, no confirmation
    const [ours2, theirs2] = connection()
    const peer2 = new Peer(theirs2)
    const silent = failure(sendFiles(ours2, await walk(['-'], () => {}), { stdin: new PassThrough().end('x'), idleMs: 1000 }))
    await peer2.line()
    peer2.send({ v: 3, role: 'receive' })
    await peer2.line()
    peer2.send({ accept: true })
    await peer2.line()
    await peer2.records()
    await peer2.line()
    await vi.advanceTimersByTimeAsync(1000)
    expect(await silent).toEqual(['ERR_PEER_IDLE', 'the receiver stopped responding after 0.00 MB (nothing for 1 s)'])
  })

  it('the receiver: a slow reader of stdout; a cancel while it waits ends at once', async () => {
    fakeClock()
    for (const cancel of [false, true]) {
      const callbacks: Array<() => void> = []
      const got: Buffer[] = []
      const stdout = new Writable({ highWaterMark: 1, write (chunk: Buffer, _enc, cb) { got.push(chunk); callbacks.push(cb) } })
      const ac = new AbortController()
      const [ours, theirs] = connection()
      const peer = new Peer(theirs)
      const result = failure(receiveFiles(ours, dir, { accept, stdout, idleMs: 1000, signal: ac.signal }))
      peer.send({ v: 3, role: 'send' })
      await peer.line()
      peer.send({ entries: [{ path: 'a', size: 5 }], total: 5 })
      await peer.line()
      peer.send({ start: [0] })
      peer.record('ab')
      peer.record('cde')
      while (got.length === 0) await tick()
      await vi.advanceTimersByTimeAsync(5000)
      if (cancel) {
        ac.abort()
        expect(await peer.line()).toEqual({ cancel: true, at: 2 })
        expect(await result).toEqual(['ERR_CANCELLED', 'cancelled at 0.00 of 0.00 MB; the sender was told'])
        continue
      }
      peer.send({ sha256: sha('abcde') })
      while (callbacks.length > 0) {
        callbacks.shift()?.()
        await tick()
      }
      expect(await peer.line()).toEqual({ ok: true, sha256: sha('abcde') })
      expect([await result, Buffer.concat(got).toString()]).toEqual(['no error', 'abcde'])
    }
  })
})

describe('names and numbers both sides print', () => {
  it('shortName, progressText, overallSha256', () => {
    const m = (paths: string[]): ManifestModule.Manifest => readManifest(paths.map(p => ({ path: p, size: 0 })), 0)
    expect([shortName(m(['a'])), shortName(m(['a', 'b', 'c'])), shortName(m(['a', 'b', 'c', 'd', 'e']))]).toEqual(['a', 'a, b, c', 'a, b, c and 2 more'])
    expect([progressText(1.5e6, 3e6), progressText(1.5e6, null)]).toEqual(['1.50 of 3.00 MB', '1.50 MB'])
    const tree = readManifest([{ path: 'd', dir: true }, { path: 'd/x', size: 1 }, { path: 'y', size: 2 }], 3)
    expect(overallSha256(tree, ['h1', 'h2'])).toBe(sha('d/\nh1 d/x\nh2 y\n'))
    expect(overallSha256(m(['only']), ['h'])).toBe('h')
  })
})
