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
    // A test that resets the connection from this side sees the error on the side under test
    socket.on('error', () => {})
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

/** receiveFiles against a scripted sender, past both hellos */
async function receiving (o: Partial<TransferModule.ReceiveOptions> = {}): Promise<{ peer: Peer, result: Promise<unknown> }> {
  const [ours, theirs] = connection()
  const peer = new Peer(theirs)
  const result = failure(receiveFiles(ours, dir, { accept, ...o }))
  peer.send({ v: 3, role: 'send' })
  expect(await peer.line()).toEqual({ v: 3, role: 'receive' })
  return { peer, result }
}

/** The scripted sender offers `entries` (one file "a.bin" of 5 bytes by default); the receiver's answer */
async function offerTo (peer: Peer, entries: unknown[] = [{ path: 'a.bin', size: 5 }], total: unknown = 5): Promise<Record<string, unknown>> {
  peer.send({ entries, total })
  return await peer.line()
}

/** sendFiles for `m` against a scripted receiver, past both hellos; the offer it sent */
async function sending (m: ManifestModule.Manifest, o: TransferModule.SendOptions = {}): Promise<{ peer: Peer, result: Promise<unknown>, offer: Record<string, unknown> }> {
  const [ours, theirs] = connection()
  const peer = new Peer(theirs)
  const result = failure(sendFiles(ours, m, o))
  expect(await peer.line()).toEqual({ v: 3, role: 'send' })
  peer.send({ v: 3, role: 'receive' })
  return { peer, result, offer: await peer.line() }
}

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
  const offered = async (o: Partial<TransferModule.ReceiveOptions> = {}, entries?: unknown[], total?: unknown): Promise<{ peer: Peer, result: Promise<unknown>, accepted: Record<string, unknown> }> => {
    const { peer, result } = await receiving(o)
    return { peer, result, accepted: await offerTo(peer, entries, total) }
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
  const one = async (text = 'abcde'): Promise<ManifestModule.Manifest> => await walk([fileOf(text)], () => {})

  it('offers, sends from the start, and checks the receiver\'s confirmation', async () => {
    const m = await one()
    const { peer, result, offer } = await sending(m)
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
      const { peer, result } = await sending(m)
      peer.send(reply)
      return await result
    }
    expect(await answer({ ok: false, code: 'ERR_TOO_LARGE', message: 'too big' })).toEqual(['ERR_REFUSED', 'the receiver refused src-5: too big (ERR_TOO_LARGE)'])
    // A cancel in place of the answer comes before any data
    expect(await answer({ cancel: true })).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the receiver before the transfer started'])
    expect(await answer({ accept: true, resume: [null, null] })).toEqual(['ERR_TRANSFER_PROTOCOL', 'the receiver sent invalid resume points'])
    expect(await answer({ accept: 'yes' })).toEqual(['ERR_REFUSED', 'the receiver refused src-5'])
    const verdict = async (reply: unknown): Promise<unknown> => {
      const { peer, result } = await sending(m)
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
      const { peer, result } = await sending(m, { note: l => notes.push(l) })
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
    const g = await sending(grown)
    g.peer.send({ accept: true })
    expect(await g.result).toEqual(['ERR_FILE_CHANGED', `${p} grew while being sent`])
    const shrunk = { entries: [{ kind: 'file', path: 'a', size: 9, exec: false, source: p }], total: 9 } as ManifestModule.Manifest
    const s = await sending(shrunk)
    s.peer.send({ accept: true })
    expect(await s.result).toEqual(['ERR_FILE_CHANGED', `${p} shrank while being sent`])
  })

  it('stdin: records in pieces of at most 1 MiB, a trailer with the size', async () => {
    const stdin = new PassThrough()
    const m = await walk(['-'], () => {}, 'notes.txt')
    const { peer, result, offer } = await sending(m, { stdin })
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
    const e = await sending(m, { signal: early.signal })
    early.abort()
    expect(await e.peer.line()).toEqual({ cancel: true, at: 0 })
    expect(await e.result).toEqual(['ERR_CANCELLED', 'cancelled before sending src-5; the receiver was told'])
    const late = new AbortController()
    const stdin = new PassThrough()
    const l = await sending(await walk(['-'], () => {}), { signal: late.signal, stdin })
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
    // Nothing to refuse yet: no answer goes out
    await new Promise(resolve => setImmediate(resolve))
    expect(peer.unread()).toBe('')
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

  it('the receiver: a reader of stdout that goes away fails the transfer in our words, instead of a wait for ever', async () => {
    const stdout = new Writable({ highWaterMark: 1, write (_chunk: Buffer, _enc, cb) { setImmediate(() => { cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })) }) } })
    stdout.on('error', () => {})
    const { peer, result } = await receiving({ stdout })
    await offerTo(peer)
    peer.send({ start: [0] })
    peer.record('ab')
    expect(await peer.line()).toEqual({ ok: false, code: 'ERR_STDOUT_CLOSED', message: 'the receiver\'s output was closed' })
    expect(await result).toEqual(['ERR_STDOUT_CLOSED', 'stdout was closed by its reader (EPIPE)'])
    // Closed without an error, or with one that has no code: "closed", not our internal code
    for (const end of ['close', 'plain error'] as const) {
      const out = new Writable({ highWaterMark: 1, write (_chunk: Buffer, _enc, cb) { setImmediate(() => { if (end === 'close') out.destroy(); else cb(new Error('gone')) }) } })
      out.on('error', () => {})
      const r = await receiving({ stdout: out })
      await offerTo(r.peer)
      r.peer.send({ start: [0] })
      r.peer.record('ab')
      expect([end, await r.result]).toEqual([end, ['ERR_STDOUT_CLOSED', 'stdout was closed by its reader (closed)']])
    }
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

describe('the receiver: each step\'s details', () => {
  const fsModule = requireFromRoot('fs') as typeof fs
  afterEach(() => { vi.restoreAllMocks(); vi.useRealTimers() })
  /** A progress sink that records its calls, and the factory's arguments */
  const recorder = (): { calls: unknown[], make: TransferModule.ProgressFactory } => {
    const calls: unknown[] = []
    return {
      calls,
      make: (label, name, total, initial) => {
        calls.push(['make', label, name, total, initial])
        return { update: (n: number, force?: boolean) => { calls.push(force === undefined ? n : [n, force]) }, end: () => { calls.push('end') } }
      }
    }
  }

  it('progress from the kept bytes, a final update, the result\'s fields; nothing more said after the verdict', async () => {
    fs.writeFileSync(path.join(dir, 'a.bin.part'), 'abc')
    const p = recorder()
    const summaries: string[] = []
    const { peer, result } = await receiving({ makeProgress: p.make, accept: async (o) => { summaries.push(o.summary); return true } })
    expect(await offerTo(peer)).toEqual({ accept: true, resume: [{ at: 3, sha256: sha('abc') }] })
    expect(summaries).toEqual(['"a.bin" (5 bytes, 3 bytes kept from before)'])
    peer.send({ start: [3] })
    peer.record('de')
    peer.send({ sha256: sha('abcde') })
    expect(await peer.line()).toEqual({ ok: true, sha256: sha('abcde') })
    expect(await result).toBe('no error')
    expect(p.calls).toEqual([['make', 'receiving', 'a.bin', 5, 3], 3, 5, [5, true], 'end'])
    await new Promise(resolve => setImmediate(resolve))
    expect([peer.unread(), peer.ended]).toEqual(['', true])
  })

  it('notes only when a kept copy is thrown away; a name with brackets in the summary; a start line that is not JSON', async () => {
    const notes: string[] = []
    const note = (l: string): void => { notes.push(l) }
    fs.writeFileSync(path.join(dir, 'a (1).bin.part'), 'abc')
    fs.writeFileSync(path.join(dir, 'b.part'), '')
    const summaries: string[] = []
    const k = await receiving({ note, accept: async (o) => { summaries.push(o.summary); return true } })
    expect(await offerTo(k.peer, [{ path: 'a (1).bin', size: 5 }, { path: 'b', size: 1 }], 6)).toEqual({ accept: true, resume: [{ at: 3, sha256: sha('abc') }, null] })
    expect(summaries).toEqual(['"a (1).bin", "b" (2 files, 6 bytes, 3 bytes kept from before)'])
    // The kept copy continued, the empty one started over: neither is news
    k.peer.send({ start: [3, 0] })
    k.peer.record('de')
    k.peer.send({ sha256: sha('abcde') })
    k.peer.record('z')
    k.peer.send({ sha256: sha('z') })
    expect((await k.peer.line()).ok).toBe(true)
    expect([await k.result, notes]).toEqual(['no error', []])
    // Thrown away without a note function: no failure
    fs.writeFileSync(path.join(dir, 'c.part'), 'XY')
    const c = await receiving()
    await offerTo(c.peer, [{ path: 'c', size: 2 }], 2)
    c.peer.send({ start: [0] })
    c.peer.record('cc')
    c.peer.send({ sha256: sha('cc') })
    expect((await c.peer.line()).ok).toBe(true)
    expect(await c.result).toBe('no error')
    const bad = await receiving()
    await offerTo(bad.peer)
    bad.peer.socket.write('{start\n')
    expect(await bad.result).toEqual(['ERR_TRANSFER_PROTOCOL', 'the peer sent an invalid start'])
  })

  it('the result: bytes moved, what was kept, counts, a time, where it went', async () => {
    const [ours, theirs] = connection()
    const peer = new Peer(theirs)
    const out = new PassThrough()
    const result = receiveFiles(ours, dir, { accept, stdout: out })
    peer.send({ v: 3, role: 'send' })
    await peer.line()
    peer.send({ entries: [{ path: 'a', size: 2 }], total: 2 })
    await peer.line()
    peer.send({ start: [0] })
    peer.record('hi')
    peer.send({ sha256: sha('hi') })
    const r = await result
    expect({ ...r, seconds: r.seconds >= 0 && r.seconds < 30 }).toEqual({ name: 'a', bytes: 2, resumedFrom: 0, files: 1, directories: 0, seconds: true, sha256: sha('hi'), saved: ['-'] })
    const [ours2, theirs2] = connection()
    const peer2 = new Peer(theirs2)
    const text = receiveFiles(ours2, dir, { accept })
    peer2.send({ v: 3, role: 'send' })
    await peer2.line()
    await new Promise(resolve => setTimeout(resolve, 20)) // a time to measure, in seconds
    peer2.send({ text: 'yo' })
    const t = await text
    expect({ ...t, seconds: t.seconds >= 0.015 && t.seconds < 30 }).toEqual({ name: 'text', bytes: 2, resumedFrom: 0, files: 0, directories: 0, seconds: true, sha256: sha('yo'), text: 'yo' })
  })

  it('room: --max-size counts the whole offer in words, free space only what is still to come, nothing for stdout', async () => {
    const two = [{ path: 'a', size: 5 }, { path: 'b', size: 5 }]
    const big = await receiving({ maxSize: 9 })
    expect(await offerTo(big.peer, two, 10)).toEqual({ ok: false, code: 'ERR_TOO_LARGE', message: 'refused 2 files of 10 bytes: larger than --max-size 9 bytes' })
    expect(await big.result).toEqual(['ERR_TOO_LARGE', 'refused 2 files of 10 bytes: larger than --max-size 9 bytes'])
    // 3 of 5 bytes kept, 2 bytes free: enough
    fs.writeFileSync(path.join(dir, 'a.bin.part'), 'abc')
    const statfs = vi.spyOn(fsModule.promises, 'statfs').mockResolvedValue({ bavail: 2, bsize: 1 } as never)
    const resumed = await receiving()
    expect(await offerTo(resumed.peer)).toEqual({ accept: true, resume: [{ at: 3, sha256: sha('abc') }] })
    expect(statfs.mock.calls[0][0]).toBe(dir)
    resumed.peer.socket.end()
    await resumed.result
    fs.rmSync(path.join(dir, 'a.bin.part'))
    const short = await receiving()
    expect(await offerTo(short.peer)).toEqual({ ok: false, code: 'ERR_NO_SPACE', message: 'refused a file of 5 bytes: not enough free space' })
    expect(await short.result).toEqual(['ERR_NO_SPACE', `refused a file of 5 bytes: only 2 bytes free in ${dir}`])
    // To stdout nothing is written here
    statfs.mockResolvedValue({ bavail: 0, bsize: 1 } as never)
    const piped = await receiving({ stdout: new PassThrough() })
    expect(await offerTo(piped.peer)).toEqual({ accept: true, resume: [null] })
    piped.peer.socket.end()
    await piped.result
    // --out - takes one file: not a lone directory either
    const lone = await receiving({ stdout: new PassThrough() })
    expect((await offerTo(lone.peer, [{ path: 'd', dir: true }], 0)).code).toBe('ERR_NOT_A_FILE')
  })

  it('what is kept from before and declined stays as it was, without a word about it', async () => {
    fs.writeFileSync(path.join(dir, 'a.bin.part'), 'abc')
    const d = await receiving({ accept: async () => false })
    await offerTo(d.peer)
    expect(await d.result).toEqual(['ERR_DECLINED', 'declined a.bin'])
    // The refusal is said once
    await new Promise(resolve => setImmediate(resolve))
    expect(d.peer.unread()).toBe('')
    expect(fs.readFileSync(path.join(dir, 'a.bin.part'), 'utf8')).toBe('abc')
  })

  it('our cancel while the user decides: the sender gets a cancel, not a refusal', async () => {
    const ac = new AbortController()
    const c = await receiving({ signal: ac.signal, accept: async () => { ac.abort(); return await new Promise<boolean>(() => {}) } })
    c.peer.send({ entries: [{ path: 'a.bin', size: 5 }], total: 5 })
    expect(await c.peer.line()).toEqual({ cancel: true, at: 0 })
    // Nothing was accepted yet: the transfer had not started
    expect(await c.result).toEqual(['ERR_CANCELLED', 'cancelled before the transfer started; the sender was told'])
    const ac2 = new AbortController()
    const early = await receiving({ signal: ac2.signal })
    ac2.abort()
    expect(await early.peer.line()).toEqual({ cancel: true, at: 0 })
    expect(await early.result).toEqual(['ERR_CANCELLED', 'cancelled before the transfer started; the sender was told'])
  })

  it('the sender\'s cancel or silence at each point, and what the user is told', async () => {
    const c = await receiving()
    c.peer.send({ cancel: true })
    expect(await c.result).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender before the transfer started'])
    const [ours, theirs] = connection()
    const hello = failure(receiveFiles(ours, dir, { accept }))
    new Peer(theirs).send({ cancel: true })
    expect(await hello).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender before the transfer started'])
    const gone = await receiving()
    gone.peer.socket.end()
    expect(await gone.result).toEqual(['ERR_TRANSFER_CLOSED', 'the sender closed the connection before the transfer started'])
    // A cancel after the last record, in place of the trailer
    const late = await receiving()
    await offerTo(late.peer)
    late.peer.send({ start: [0] })
    late.peer.record('abcde')
    late.peer.socket.write(Buffer.from([0x58]))
    late.peer.send({ cancel: true, at: 5 })
    expect(await late.result).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender at 0.00 of 0.00 MB; kept the partial a.bin.part (0.00 of 0.00 MB): run the same receive again to resume'])
    fs.rmSync(path.join(dir, 'a.bin.part'))
    const trailer = await receiving()
    await offerTo(trailer.peer)
    trailer.peer.send({ start: [0] })
    trailer.peer.record('abcde')
    trailer.peer.send({ cancel: true, at: 5 })
    expect(await trailer.result).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender at 0.00 of 0.00 MB; kept the partial a.bin.part (0.00 of 0.00 MB): run the same receive again to resume'])
    fs.rmSync(path.join(dir, 'a.bin.part'))
    const badCancel = await receiving()
    await offerTo(badCancel.peer)
    badCancel.peer.send({ start: [0] })
    badCancel.peer.socket.write(Buffer.from([0x58]))
    badCancel.peer.socket.write('{oops\n')
    expect(await badCancel.result).toEqual(['ERR_TRANSFER_PROTOCOL', 'the peer sent an invalid cancel; removed the partial a.bin.part'])
  })

  it('a cancel in the second file says how far the whole transfer came', async () => {
    const c = await receiving()
    await offerTo(c.peer, [{ path: 'a', size: 1.5e6 }, { path: 'b', size: 1.5e6 }], 3e6)
    c.peer.send({ start: [0, 0] })
    const a = Buffer.alloc(1.5e6, 1)
    c.peer.record(a.subarray(0, 1 << 20))
    c.peer.record(a.subarray(1 << 20))
    c.peer.send({ sha256: sha(a) })
    c.peer.record(Buffer.alloc(0.5e6, 2))
    c.peer.socket.write(Buffer.from([0x58]))
    c.peer.send({ cancel: true, at: 2e6 })
    expect(await c.result).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender at 2.00 of 3.00 MB; kept the partial a.part, b.part (2.00 of 3.00 MB): run the same receive again to resume'])
  })

  it('silence: before the offer and during the data, on a fake clock; data arriving in pieces is not silence', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
    const quiet = await receiving({ idleMs: 1000 })
    await vi.advanceTimersByTimeAsync(1000)
    expect(await quiet.result).toEqual(['ERR_PEER_IDLE', 'the sender stopped responding before the transfer started (nothing for 1 s)'])
    const slow = await receiving({ idleMs: 1000 })
    await offerTo(slow.peer, [{ path: 'a.bin', size: 6 }], 6)
    slow.peer.send({ start: [0] })
    for (const piece of ['ab', 'cd', 'ef']) {
      slow.peer.record(piece)
      await vi.advanceTimersByTimeAsync(700)
    }
    slow.peer.send({ sha256: sha('abcdef') })
    expect(await slow.peer.line()).toEqual({ ok: true, sha256: sha('abcdef') })
    expect(await slow.result).toBe('no error')
    const stalled = await receiving({ idleMs: 1000 })
    await offerTo(stalled.peer)
    stalled.peer.send({ start: [0] })
    stalled.peer.record('ab')
    await vi.advanceTimersByTimeAsync(1000)
    expect(await stalled.result).toEqual(['ERR_PEER_IDLE', 'the sender stopped responding after 0.00 of 0.00 MB (nothing for 1 s); kept the partial a.bin.part (0.00 of 0.00 MB): run the same receive again to resume'])
    expect(vi.getTimerCount()).toBe(0)
  })

  it('start offsets that name no kept copy, and record sizes at the bounds', async () => {
    for (const start of [null, [1]]) {
      const s = await receiving()
      await offerTo(s.peer)
      s.peer.socket.write(JSON.stringify(start === null ? null : { start }) + '\n')
      expect([start, await s.result]).toEqual([start, ['ERR_TRANSFER_PROTOCOL', 'the sender sent invalid start offsets']])
    }
    const piped = await receiving({ stdout: new PassThrough() })
    await offerTo(piped.peer)
    piped.peer.send({ start: [3] })
    expect(await piped.result).toEqual(['ERR_TRANSFER_PROTOCOL', 'the sender sent invalid start offsets'])
    // A stream's record of exactly 1 MiB is taken, one byte more is not; --max-size lets a stream reach it exactly
    const mib = Buffer.alloc(1 << 20, 1)
    const ok = await receiving({ maxSize: (1 << 20) + 4, stdout: new PassThrough().resume() })
    await offerTo(ok.peer, [{ path: 's', size: null }], null)
    ok.peer.send({ start: [0] })
    ok.peer.record(mib)
    ok.peer.record('abcd')
    ok.peer.send({ size: (1 << 20) + 4, sha256: sha(Buffer.concat([mib, Buffer.from('abcd')])) })
    expect(await ok.result).toBe('no error')
    const over = await receiving({ stdout: new PassThrough().resume() })
    await offerTo(over.peer, [{ path: 's', size: null }], null)
    over.peer.send({ start: [0] })
    over.peer.record(Buffer.alloc((1 << 20) + 1))
    expect(await over.result).toEqual(['ERR_TRANSFER_PROTOCOL', 'the sender sent an invalid record'])
  })

  it('a stream\'s free space is checked again after each 64 MiB (not for stdout)', async () => {
    const statfs = vi.spyOn(fsModule.promises, 'statfs').mockResolvedValue({ bavail: 1e12, bsize: 1 } as never)
    const s = await receiving()
    await offerTo(s.peer, [{ path: 's', size: null }], null)
    const checks = (): number => statfs.mock.calls.length
    const before = checks()
    s.peer.send({ start: [0] })
    const mib = Buffer.alloc(1 << 20)
    for (let i = 0; i < 63; i++) s.peer.record(mib)
    s.peer.record(Buffer.alloc((1 << 20) - 1))
    // Wait until nearly all of it is on disk (the writer flushes every 256 KiB)
    while (!fs.existsSync(path.join(dir, 's.part')) || fs.statSync(path.join(dir, 's.part')).size < (63 << 20)) await new Promise(resolve => setTimeout(resolve, 5))
    await new Promise(resolve => setTimeout(resolve, 20))
    expect(checks()).toBe(before)
    statfs.mockResolvedValue({ bavail: 1e6, bsize: 1 } as never)
    s.peer.record('x')
    expect(await s.peer.line()).toEqual({ ok: false, code: 'ERR_NO_SPACE', message: 'stopped a stream after 67.11 MB: not enough free space' })
    expect(await s.result).toEqual(['ERR_NO_SPACE', `stopped a stream after 67.11 MB: only 1.00 MB free in ${dir}; removed the partial s.part`])
    expect(statfs.mock.calls.slice(before).map(c => c[0])).toEqual([dir])
    // Exactly 64 MiB free is enough, and a file system that cannot tell does not stop it; the next check is
    // 64 MiB later, not at every record after the first
    for (const answer of [{ bavail: 64 << 20, bsize: 1 }, 'fails'] as const) {
      statfs.mockReset()
      if (answer === 'fails') statfs.mockRejectedValue(Object.assign(new Error('ENOSYS'), { code: 'ENOSYS' }))
      else statfs.mockResolvedValue(answer as never)
      const roomy = await receiving()
      await offerTo(roomy.peer, [{ path: 's', size: null }], null)
      roomy.peer.send({ start: [0] })
      for (let i = 0; i < 66; i++) roomy.peer.record(mib)
      roomy.peer.send({ size: 66 << 20, sha256: 'x' })
      expect([answer, (await roomy.peer.line()).code]).toEqual([answer, 'ERR_SHA256_MISMATCH'])
      expect((await roomy.result as string[])[0]).toBe('ERR_SHA256_MISMATCH')
      expect([answer, statfs.mock.calls.length]).toEqual([answer, 1])
    }
    // To stdout, and for files of a known size, nothing is checked while the data comes
    statfs.mockReset()
    statfs.mockResolvedValue({ bavail: 1e12, bsize: 1 } as never)
    const piped = await receiving({ stdout: new PassThrough().resume() })
    await offerTo(piped.peer, [{ path: 's', size: null }], null)
    piped.peer.send({ start: [0] })
    for (let i = 0; i < 65; i++) piped.peer.record(mib)
    piped.peer.send({ size: 65 << 20, sha256: 'x' })
    await piped.peer.line()
    expect(statfs).not.toHaveBeenCalled()
    const sized = await receiving()
    await offerTo(sized.peer, [{ path: 'f', size: 65 << 20 }], 65 << 20)
    expect(statfs).toHaveBeenCalledTimes(1)
    sized.peer.send({ start: [0] })
    for (let i = 0; i < 65; i++) sized.peer.record(mib)
    sized.peer.send({ sha256: 'x' })
    await sized.peer.line()
    expect(statfs).toHaveBeenCalledTimes(1)
  })

  it('a damaged file in a tree names it; the save failing tells the sender and keeps the files', async () => {
    const tree = [{ path: 'd', dir: true }, { path: 'd/x', size: 1 }, { path: 'd/y', size: 1 }]
    const m = await receiving()
    await offerTo(m.peer, tree, 2)
    m.peer.send({ start: [0, 0] })
    m.peer.record('x')
    m.peer.send({ sha256: sha('x') })
    m.peer.record('y')
    m.peer.send({ sha256: sha('Y') })
    expect(await m.peer.line()).toEqual({ ok: false, sha256: sha('y'), code: 'ERR_SHA256_MISMATCH', message: 'sha256 mismatch for d/y' })
    expect(await m.result).toEqual(['ERR_SHA256_MISMATCH', 'sha256 mismatch in d/y: the file was corrupted on the way; removed the partial d.part'])
    await new Promise(resolve => setImmediate(resolve))
    expect(m.peer.unread()).toBe('')
    const landing = requireFromRoot('./dist/bin/landing.js') as typeof import('../bin/landing')
    vi.spyOn(landing.Landing.prototype, 'publish').mockRejectedValue(Object.assign(new Error('EACCES: permission denied, link'), { code: 'EACCES' }))
    const s = await receiving()
    await offerTo(s.peer)
    s.peer.send({ start: [0] })
    s.peer.record('abcde')
    s.peer.send({ sha256: sha('abcde') })
    expect(await s.peer.line()).toEqual({ ok: false, sha256: sha('abcde'), code: 'ERR_SAVE', message: 'the receiver could not save the files' })
    expect(await s.result).toEqual(['EACCES', 'EACCES: permission denied, link; kept the partial a.bin.part (0.00 of 0.00 MB): run the same receive again to resume'])
    await new Promise(resolve => setImmediate(resolve))
    expect(s.peer.unread()).toBe('')
  })

  it('a failure without a code while writing: ERR_FAILED, the partial file kept', async () => {
    const landing = requireFromRoot('./dist/bin/landing.js') as typeof import('../bin/landing')
    vi.spyOn(landing.FileWriter.prototype, 'write').mockRejectedValue(new Error('disk on fire'))
    const s = await receiving()
    await offerTo(s.peer)
    s.peer.send({ start: [0] })
    s.peer.record('ab')
    expect(await s.peer.line()).toEqual({ ok: false, code: 'ERR_FAILED', message: 'the receiver could not create the file' })
    expect(await s.result).toEqual(['ERR_FAILED', 'disk on fire; kept the partial a.bin.part (0.00 of 0.00 MB): run the same receive again to resume'])
  })
})

describe('the sender: each step\'s details', () => {
  afterEach(() => { vi.restoreAllMocks(); vi.useRealTimers() })
  const src = (text: string | Buffer, name = 'a.bin'): string => {
    const p = path.join(dir, name)
    fs.writeFileSync(p, text)
    return p
  }

  it('progress from the resumed byte with a final update, notes only when there is news, the result\'s fields', async () => {
    const m = await walk([src('abcde')], () => {})
    const calls: unknown[] = []
    const notes: string[] = []
    const [ours, theirs] = connection()
    const peer = new Peer(theirs)
    const transfer = sendFiles(ours, m, { note: l => notes.push(l), makeProgress: (label, name, total, initial) => { calls.push(['make', label, name, total, initial]); return { update: (n: number, f?: boolean) => { calls.push(f === undefined ? n : [n, f]) }, end: () => { calls.push('end') } } } })
    await peer.line()
    peer.send({ v: 3, role: 'receive' })
    await peer.line()
    peer.send({ accept: true, resume: [{ at: 2, sha256: sha('ab') }] })
    await peer.line()
    expect((await peer.records()).data.toString()).toBe('cde')
    await peer.line()
    peer.send({ ok: true, sha256: sha('abcde') })
    const r = await transfer
    expect({ ...r, seconds: r.seconds >= 0 && r.seconds < 30 }).toEqual({ name: 'a.bin', bytes: 3, resumedFrom: 2, files: 1, directories: 0, seconds: true, sha256: sha('abcde') })
    expect(calls).toEqual([['make', 'sending', 'a.bin', 5, 2], 2, 5, [5, true], 'end'])
    expect(notes).toEqual(['a.bin: the receiver has 0.00 of 0.00 MB; continuing from there'])
    // Without a note function, and with nothing to resume: no note, no failure
    for (const resume of [[{ at: 2, sha256: sha('ab') }], [{ at: 2, sha256: sha('XX') }], [null]]) {
      const quiet: string[] = []
      const b = await sending(m, resume[0] === null ? { note: l => quiet.push(l) } : {})
      b.peer.send({ accept: true, resume })
      await b.peer.line()
      await b.peer.records()
      await b.peer.line()
      b.peer.send({ ok: true, sha256: sha('abcde') })
      expect([resume, await b.result, quiet]).toEqual([resume, 'no error', []])
    }
  })

  it('a resume point past the file, an answer that is not one: refused; after a refusal nothing more is sent', async () => {
    const m = await walk([src('abcde')], () => {})
    const past = await sending(m)
    past.peer.send({ accept: true, resume: [{ at: 6, sha256: sha('abcdef') }] })
    expect(await past.result).toEqual(['ERR_TRANSFER_PROTOCOL', 'the receiver sent invalid resume points'])
    const refused = await sending(m)
    refused.peer.send({ ok: false, message: 'no' })
    expect(await refused.result).toEqual(['ERR_REFUSED', 'the receiver refused a.bin: no'])
    await new Promise(resolve => setImmediate(resolve))
    expect([refused.peer.unread(), refused.peer.ended]).toEqual(['', false])
  })

  it('the receiver\'s verdict, cancel or close in the middle of the data ends the send at once', async () => {
    for (const [what, act, expected] of [
      ['a damaged file', (p: Peer) => { p.send({ ok: false, sha256: 'x', code: 'ERR_SHA256_MISMATCH', message: 'sha256 mismatch for stdin' }) }, ['ERR_SHA256_MISMATCH', 'the receiver\'s sha256 does not match: the file was corrupted on the way']],
      ['a cancel', (p: Peer) => { p.send({ cancel: true, at: 3 }) }, ['ERR_PEER_CANCELLED', 'cancelled by the receiver at 0.00 MB']],
      ['a close', (p: Peer) => { p.socket.end() }, ['ERR_TRANSFER_CLOSED', 'the receiver closed the connection after 0.00 MB']],
      ['a reset', (p: Peer) => { p.socket.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })) }, ['ECONNRESET', 'the receiver closed the connection after 0.00 MB']]
    ] as const) {
      const stdin = new PassThrough()
      const b = await sending(await walk(['-'], () => {}), { stdin })
      b.peer.send({ accept: true })
      await b.peer.line()
      stdin.write('abc')
      await b.peer.take(8)
      act(b.peer)
      expect([what, await b.result]).toEqual([what, expected])
      // Stdin is let go at once, not held open until its producer writes again
      expect([what, stdin.destroyed]).toEqual([what, true])
    }
  })

  it('our cancel while the receiver confirms: said as such, and nothing sent after the data', async () => {
    const ac = new AbortController()
    const b = await sending(await walk([src('abcde')], () => {}), { signal: ac.signal })
    b.peer.send({ accept: true })
    await b.peer.line()
    await b.peer.records()
    await b.peer.line()
    ac.abort()
    expect(await b.result).toEqual(['ERR_CANCELLED', 'cancelled while waiting for the receiver\'s confirmation (all 0.00 of 0.00 MB sent)'])
    await new Promise(resolve => setImmediate(resolve))
    expect(b.peer.unread()).toBe('')
  })

  it('silence before the transfer, on a fake clock; the receiver\'s answer arriving in pieces is not silence', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
    const m = await walk([src('abcde')], () => {})
    const [ours, theirs] = connection()
    const quiet = failure(sendFiles(ours, m, { idleMs: 1000 }))
    await new Peer(theirs).line()
    await vi.advanceTimersByTimeAsync(1000)
    expect(await quiet).toEqual(['ERR_PEER_IDLE', 'the receiver stopped responding before the transfer started (nothing for 1 s)'])
    const b = await sending(m, { idleMs: 1000 })
    b.peer.send({ accept: true })
    await b.peer.line()
    await b.peer.records()
    await b.peer.line()
    const verdict = JSON.stringify({ ok: true, sha256: sha('abcde') }) + '\n'
    for (const piece of [verdict.slice(0, 10), verdict.slice(10, 20)]) {
      b.peer.socket.write(piece)
      await vi.advanceTimersByTimeAsync(700)
    }
    b.peer.socket.write(verdict.slice(20))
    expect(await b.result).toBe('no error')
    expect(vi.getTimerCount()).toBe(0)
  })

  it('stdin as text, chunks of exactly 1 MiB, and a file\'s read stream closed when the send fails', async () => {
    const stdin = new PassThrough()
    stdin.setEncoding('utf8')
    const notes: string[] = []
    const b = await sending(await walk(['-'], () => {}), { stdin, note: l => notes.push(l) })
    b.peer.send({ accept: true })
    await b.peer.line()
    stdin.end('héllo')
    expect((await b.peer.records()).data.toString()).toBe('héllo')
    expect(await b.peer.line()).toEqual({ size: 6, sha256: sha('héllo') })
    b.peer.send({ ok: true, sha256: sha('héllo') })
    expect([await b.result, notes]).toEqual(['no error', []])
    const exact = new PassThrough({ highWaterMark: 4 << 20 })
    const e = await sending(await walk(['-'], () => {}), { stdin: exact })
    e.peer.send({ accept: true })
    await e.peer.line()
    exact.end(Buffer.alloc(1 << 20, 9))
    expect((await e.peer.records()).sizes).toEqual([1 << 20])
    // A file that grew: its stream is destroyed, not left open
    const fsModule = requireFromRoot('fs') as typeof fs
    const streams: fs.ReadStream[] = []
    const create = fsModule.createReadStream
    vi.spyOn(fsModule, 'createReadStream').mockImplementation(((...args: Parameters<typeof create>) => { const s = create(...args); streams.push(s); return s }) as never)
    const p = src('abcdef')
    const grown = await sending({ entries: [{ kind: 'file', path: 'g', size: 3, exec: false, source: p }], total: 3 } as ManifestModule.Manifest)
    grown.peer.send({ accept: true })
    expect(await grown.result).toEqual(['ERR_FILE_CHANGED', `${p} grew while being sent`])
    expect(streams.map(s => s.destroyed)).toEqual([true])
  })

  it('an offer line of 16 MiB or more is refused before it is sent', async () => {
    const entries = (n: number, pad: number): ManifestModule.Manifest => ({
      entries: Array.from({ length: n }, (_, i) => ({ kind: 'file' as const, path: `${i === 0 ? 'p'.repeat(pad) : 'f'}${i}`, size: 0, exec: false, source: '/dev/null' })),
      total: 0
    })
    const offerLength = (m: ManifestModule.Manifest): number => Buffer.byteLength(JSON.stringify({ entries: m.entries.map(e => ({ path: e.path, size: 0 })), total: 0 }))
    const n = 90_000
    const pad = (16 << 20) - offerLength(entries(n, 0))
    const atLimit = entries(n, pad)
    expect(offerLength(atLimit)).toBe(16 << 20)
    const [ours, theirs] = connection()
    const peer = new Peer(theirs)
    const result = failure(sendFiles(ours, atLimit))
    await peer.line()
    peer.send({ v: 3, role: 'receive' })
    expect(await result).toEqual(['ERR_TOO_MANY', 'the list of files is longer than 16777216 bytes: send them as an archive'])
    await new Promise(resolve => setImmediate(resolve))
    expect(peer.unread()).toBe('')
    const under = entries(n, pad - 1)
    const [ours2, theirs2] = connection()
    const peer2 = new Peer(theirs2)
    const underLimit = failure(sendFiles(ours2, under))
    await peer2.line()
    peer2.send({ v: 3, role: 'receive' })
    expect(Buffer.byteLength(JSON.stringify(await peer2.line()))).toBe((16 << 20) - 1)
    peer2.send({ ok: false })
    await underLimit
  })

  it('texts: the size bound, a cancel, the result', async () => {
    const [a, b] = connection()
    const peer = new Peer(b)
    const exact = sendText(a, 'x'.repeat(64 * 1024))
    await peer.line()
    peer.send({ v: 3, role: 'receive' })
    expect((await peer.line()).text).toHaveLength(64 * 1024)
    peer.send({ ok: true })
    const r = await exact
    expect({ ...r, text: r.text?.length, seconds: r.seconds >= 0 && r.seconds < 30 }).toEqual({ name: 'text', bytes: 65536, resumedFrom: 0, files: 0, directories: 0, seconds: true, sha256: sha('x'.repeat(65536)), text: 65536 })
    const ac = new AbortController()
    const [c, d] = connection()
    const cancelled = failure(sendText(c, 'hi', { signal: ac.signal, idleMs: 60_000 }))
    await new Peer(d).line()
    ac.abort()
    expect(await cancelled).toEqual(['ERR_CANCELLED', 'cancelled before the text was delivered'])
  })

  it('the receiver closing before the data: said as before the transfer started', async () => {
    for (const when of ['after hello', 'after the offer']) {
      const [ours, theirs] = connection()
      const peer = new Peer(theirs)
      const result = failure(sendFiles(ours, await walk([src('abc')], () => {})))
      await peer.line()
      if (when === 'after the offer') {
        peer.send({ v: 3, role: 'receive' })
        await peer.line()
      }
      peer.socket.end()
      expect([when, await result]).toEqual([when, ['ERR_TRANSFER_CLOSED', 'the receiver closed the connection before the transfer started']])
    }
  })

  it('a text\'s answer in pieces is not silence; the guard\'s clock is stopped afterwards', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
    const [a, b] = connection()
    const peer = new Peer(b)
    const texting = failure(sendText(a, 'hi', { idleMs: 1000 }))
    await peer.line()
    peer.send({ v: 3, role: 'receive' })
    await peer.line()
    for (const piece of ['{"o', 'k":tr']) {
      peer.socket.write(piece)
      await vi.advanceTimersByTimeAsync(700)
    }
    peer.socket.write('ue}\n')
    expect(await texting).toBe('no error')
    expect(vi.getTimerCount()).toBe(0)
  })

  it('the receiver\'s hello as a cancel names the receiver; the sender\'s names the sender', async () => {
    const [a, b] = connection()
    const s = failure(sendFiles(a, await walk([src('x')], () => {})))
    const p = new Peer(b)
    await p.line()
    p.send({ cancel: true })
    expect(await s).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the receiver before the transfer started'])
  })
})
