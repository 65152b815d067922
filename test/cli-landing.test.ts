// Where received files land, on its own (bin/landing.ts, bin/resume.ts) over a real directory: batched writes,
// what a failed run kept and what is in the way instead, the private tree and its modes, publishing under a free
// name (link, or a copy where links fail), discarding; the resume points both ends exchange. The CLI's use of them
// is in cli-resume.test.ts and cli-receive-safety.test.ts.
import { createHash } from 'crypto'
import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type * as LandingModule from '../bin/landing'
import type * as ManifestModule from '../bin/manifest'
import type * as ResumeModule from '../bin/resume'
import { requireFromRoot } from './helpers/utp'

const { Landing, FileWriter } = requireFromRoot('./dist/bin/landing.js') as typeof LandingModule
const { readManifest } = requireFromRoot('./dist/bin/manifest.js') as typeof ManifestModule
const { inspectKept, inspectKeptDir, openForWriting, hashPrefix, resumePoint, senderStart, readResumePoints } = requireFromRoot('./dist/bin/resume.js') as typeof ResumeModule
// The module object the CLI calls, so that a spy on it is seen there
const fsModule = requireFromRoot('fs') as typeof fs

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-landing-'))
let dir: string
let dirs = 0
beforeEach(() => { dir = path.join(base, String(++dirs)); fs.mkdirSync(dir) })
afterEach(() => { vi.restoreAllMocks() })
afterAll(() => { fs.rmSync(base, { recursive: true, force: true }) })

const umask = process.umask()
const modeOf = (p: string): number => fs.lstatSync(p).mode & 0o7777
const sha = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')
const errno = (code: string | undefined): Error => Object.assign(new Error(`scripted ${code ?? 'no code'}`), code === undefined ? {} : { code })

/** [code, message] of what `fn` rejects with, or 'no error' */
const failure = async (fn: () => Promise<unknown>): Promise<unknown> => await fn().then(() => 'no error', (e: Error & { code?: string, peerMessage?: string }) =>
  e.peerMessage === undefined ? [e.code, e.message] : [e.code, e.message, e.peerMessage])
/** What is in the way of a receive: the user sees where and why; the sender learns only that something is */
const inTheWay = (shown: string, why: string): [string, string, string] =>
  ['ERR_PART_EXISTS', `${shown} exists and is not a partial copy this receive can continue (${why}): move it away, or receive into another directory`,
    'the receiver has a partial file in the way that it cannot continue']

/** The file handles fs.promises.open() gives from now on, to see that each was closed */
const trackHandles = (): fs.promises.FileHandle[] => {
  const handles: fs.promises.FileHandle[] = []
  const open = fsModule.promises.open
  vi.spyOn(fsModule.promises, 'open').mockImplementation(async (...args: Parameters<typeof open>) => {
    const fh = await open(...args)
    handles.push(fh)
    return fh
  })
  return handles
}

/** A file, a tree with a subdirectory, and a second file: the offer most tests receive */
const offer = (): ManifestModule.Manifest => readManifest([
  { path: 'a.bin', size: 10 },
  { path: 'd', dir: true },
  { path: 'd/x', size: 4, x: true },
  { path: 'd/sub', dir: true },
  { path: 'd/sub/y', size: 2 }
], 16)

describe('FileWriter', () => {
  const BATCH = 256 * 1024

  it('gathers writes into batches of 256 KiB from its start, copying each chunk; finish flushes, syncs and closes', async () => {
    const file = path.join(dir, 'f')
    fs.writeFileSync(file, 'HEAD.')
    const fh = await fs.promises.open(file, 'r+')
    const sync = vi.spyOn(fh, 'sync')
    const w = new FileWriter(fh, 5)
    const chunk = Buffer.alloc(BATCH / 2 - 1, 'a')
    await w.write(chunk)
    chunk.fill('z') // the writer holds its own copy
    await w.write(Buffer.alloc(BATCH / 2, 'b'))
    expect(fs.statSync(file).size).toBe(5) // one byte short of a batch: nothing written yet
    await w.write(Buffer.from('c'))
    expect(fs.statSync(file).size).toBe(5 + BATCH)
    await w.write(Buffer.from('tail'))
    expect(fs.statSync(file).size).toBe(5 + BATCH)
    expect(sync).not.toHaveBeenCalled()
    await w.finish()
    expect(sync).toHaveBeenCalledTimes(1)
    expect(fh.fd).toBe(-1)
    expect(fs.readFileSync(file).equals(Buffer.concat([Buffer.from('HEAD.'), Buffer.alloc(BATCH / 2 - 1, 'a'), Buffer.alloc(BATCH / 2, 'b'), Buffer.from('ctail')]))).toBe(true)
  })

  it('writes nothing when nothing is pending; abandon keeps what arrived and closes, and never throws', async () => {
    const file = path.join(dir, 'f')
    const fh = await fs.promises.open(file, 'w')
    const write = vi.spyOn(fh, 'write')
    const w = new FileWriter(fh, 0)
    await w.write(Buffer.from('kept'))
    await w.abandon()
    expect([fs.readFileSync(file, 'utf8'), fh.fd, write.mock.calls.length]).toEqual(['kept', -1, 1])
    await w.abandon() // closed already: nothing to flush, nothing thrown
    expect(write).toHaveBeenCalledTimes(1)
    const fh2 = await fs.promises.open(path.join(dir, 'g'), 'w')
    const write2 = vi.spyOn(fh2, 'write')
    await new FileWriter(fh2, 0).finish()
    expect([write2.mock.calls.length, fh2.fd]).toEqual([0, -1])
    // A write that fails on abandon is swallowed, and the handle still closed
    const fh3 = await fs.promises.open(path.join(dir, 'h'), 'w')
    vi.spyOn(fh3, 'write').mockRejectedValue(errno('EIO'))
    const w3 = new FileWriter(fh3, 0)
    await w3.write(Buffer.from('lost'))
    await w3.abandon()
    expect(fh3.fd).toBe(-1)
  })
})

describe('Landing.inspect', () => {
  it('nothing kept: one .part per top-level item, every file to write from the start', async () => {
    const l = await Landing.inspect(dir, offer())
    expect(l.tops).toEqual([
      { name: 'a.bin', kind: 'file', partPath: path.join(dir, 'a.bin.part') },
      { name: 'd', kind: 'dir', partPath: path.join(dir, 'd.part') }
    ])
    expect(l.slots.map(s => [s.entry.path, s.file, s.shown, s.kept])).toEqual([
      ['a.bin', path.join(dir, 'a.bin.part'), 'a.bin.part', null],
      ['d/x', path.join(dir, 'd.part', 'x'), 'd.part/x', null],
      ['d/sub/y', path.join(dir, 'd.part', 'sub', 'y'), 'd.part/sub/y', null]
    ])
    expect([l.keptBytes(), l.partNames(), l.files.map(f => f.path), await l.anyOnDisk()]).toEqual([0, 'a.bin.part, d.part', ['a.bin', 'd/x', 'd/sub/y'], false])
  })

  it('finds what a failed run kept, with the hash of its bytes', async () => {
    fs.writeFileSync(path.join(dir, 'a.bin.part'), 'abc')
    fs.mkdirSync(path.join(dir, 'd.part', 'sub'), { recursive: true, mode: 0o700 })
    fs.chmodSync(path.join(dir, 'd.part'), 0o700)
    fs.chmodSync(path.join(dir, 'd.part', 'sub'), 0o777) // inside the private tree, any mode is ours
    fs.writeFileSync(path.join(dir, 'd.part', 'sub', 'y'), 'y')
    const l = await Landing.inspect(dir, offer())
    expect(l.slots.map(s => s.kept === null ? null : [s.kept.at, s.kept.sha256])).toEqual([[3, sha('abc')], null, [1, sha('y')]])
    expect([l.keptBytes(), await l.anyOnDisk()]).toEqual([4, true])
  })

  it('refuses what is in the way and not ours to continue, naming it as the user sees it', async () => {
    fs.mkdirSync(path.join(dir, 'a.bin.part'))
    expect(await failure(async () => await Landing.inspect(dir, offer()))).toEqual(inTheWay('a.bin.part', 'not a regular file'))
    fs.rmdirSync(path.join(dir, 'a.bin.part'))
    fs.mkdirSync(path.join(dir, 'd.part'), { mode: 0o700 })
    fs.chmodSync(path.join(dir, 'd.part'), 0o770)
    expect(await failure(async () => await Landing.inspect(dir, offer()))).toEqual(inTheWay('d.part', 'writable by other users'))
    fs.chmodSync(path.join(dir, 'd.part'), 0o700)
    fs.writeFileSync(path.join(dir, 'd.part', 'sub'), 'a file where a directory goes')
    expect(await failure(async () => await Landing.inspect(dir, offer()))).toEqual(inTheWay('d.part/sub', 'not a directory'))
    fs.rmSync(path.join(dir, 'd.part', 'sub'))
    fs.symlinkSync('/tmp', path.join(dir, 'd.part', 'x'))
    expect(await failure(async () => await Landing.inspect(dir, offer()))).toEqual(inTheWay('d.part/x', 'a symbolic link'))
  })
})

describe('Landing.prepare and open', () => {
  it('creates the top directory private to us and the ones inside it with the usual mode', async () => {
    const l = await Landing.inspect(dir, offer())
    await l.prepare()
    expect([modeOf(path.join(dir, 'd.part')), modeOf(path.join(dir, 'd.part', 'sub'))]).toEqual([0o700, 0o777 & ~umask])
    // A second prepare finds its own directories and checks them as inspect() does
    await l.prepare()
    fs.chmodSync(path.join(dir, 'd.part'), 0o770)
    expect(await failure(async () => await l.prepare())).toEqual(inTheWay('d.part', 'writable by other users'))
    fs.chmodSync(path.join(dir, 'd.part'), 0o700)
    fs.rmdirSync(path.join(dir, 'd.part', 'sub'))
    fs.writeFileSync(path.join(dir, 'd.part', 'sub'), 'appeared since')
    expect(await failure(async () => await l.prepare())).toEqual(inTheWay('d.part/sub', 'not a directory'))
    vi.spyOn(fsModule.promises, 'mkdir').mockRejectedValue(errno('EACCES'))
    expect(await failure(async () => await l.prepare())).toEqual(['EACCES', 'scripted EACCES'])
  })

  it('opens new files exclusively with the sender\'s executable bit, and continues a kept copy from a given byte', async () => {
    fs.writeFileSync(path.join(dir, 'a.bin.part'), '0123456')
    const l = await Landing.inspect(dir, offer())
    await l.prepare()
    const fresh = await l.open(1, 0)
    await fresh.write(Buffer.from('xxxx'))
    await fresh.finish()
    expect(modeOf(path.join(dir, 'd.part', 'x'))).toBe(0o777 & ~umask)
    const y = await l.open(2, 0)
    await y.finish()
    expect(modeOf(path.join(dir, 'd.part', 'sub', 'y'))).toBe(0o666 & ~umask)
    // Opened once: a second open would write over what the first wrote, and fails
    expect(await failure(async () => await l.open(1, 0))).toEqual(inTheWay('d.part/x', 'it appeared after the offer was checked'))
    // The kept copy from byte 4 (the sender's first 7 bytes differ past it): what lies beyond is cut off
    const kept = await l.open(0, 4)
    await kept.write(Buffer.from('ABCDEF'))
    await kept.finish()
    expect(fs.readFileSync(path.join(dir, 'a.bin.part'), 'utf8')).toBe('0123ABCDEF')
  })

  it('continues a kept copy at its end without cutting, and from 0 when the sender\'s bytes differ', async () => {
    fs.writeFileSync(path.join(dir, 'a.bin.part'), '0123456')
    const l = await Landing.inspect(dir, readManifest([{ path: 'a.bin', size: 10 }], 10))
    const probe = await fs.promises.open(path.join(dir, 'probe'), 'w')
    await probe.close()
    const truncate = vi.spyOn(Object.getPrototypeOf(probe) as fs.promises.FileHandle, 'truncate')
    const w = await l.open(0, 7)
    await w.write(Buffer.from('789'))
    await w.finish()
    expect([fs.readFileSync(path.join(dir, 'a.bin.part'), 'utf8'), truncate.mock.calls.length]).toEqual(['0123456789', 0])
    fs.writeFileSync(path.join(dir, 'b.part'), 'old')
    const l2 = await Landing.inspect(dir, readManifest([{ path: 'b', size: 5 }], 5))
    const w2 = await l2.open(0, 0)
    await w2.finish()
    expect(fs.readFileSync(path.join(dir, 'b.part'), 'utf8')).toBe('')
  })
})

describe('Landing.publish, discard', () => {
  const received = async (): Promise<LandingModule.Landing> => {
    const l = await Landing.inspect(dir, offer())
    await l.prepare()
    for (const [i, text] of ['0123456789', 'xxxx', 'yy'].entries()) {
      const w = await l.open(i, 0)
      await w.write(Buffer.from(text))
      await w.finish()
    }
    return l
  }

  it('publishes each top-level item under its name: the file by link, the tree by rename with a new directory\'s mode', async () => {
    const l = await received()
    const partIno = fs.statSync(path.join(dir, 'a.bin.part')).ino
    expect(await l.publish()).toEqual([path.join(dir, 'a.bin'), path.join(dir, 'd')])
    expect(fs.readdirSync(dir).sort()).toEqual(['a.bin', 'd'])
    expect(fs.statSync(path.join(dir, 'a.bin')).ino).toBe(partIno) // linked, not copied
    expect(fs.statSync(path.join(dir, 'a.bin')).nlink).toBe(1)
    expect([fs.readFileSync(path.join(dir, 'd', 'x'), 'utf8'), fs.readFileSync(path.join(dir, 'd', 'sub', 'y'), 'utf8')]).toEqual(['xxxx', 'yy'])
    expect(modeOf(path.join(dir, 'd'))).toBe(0o777 & ~umask)
    expect(await l.anyOnDisk()).toBe(false)
  })

  it('takes the next free numbered name, never overwriting', async () => {
    fs.writeFileSync(path.join(dir, 'a.bin'), 'mine')
    fs.writeFileSync(path.join(dir, 'a (1).bin'), 'mine too')
    fs.mkdirSync(path.join(dir, 'd'))
    const l = await received()
    expect(await l.publish()).toEqual([path.join(dir, 'a (2).bin'), path.join(dir, 'd (1)')])
    expect([fs.readFileSync(path.join(dir, 'a.bin'), 'utf8'), fs.readdirSync(path.join(dir, 'd'))]).toEqual(['mine', []])
  })

  it('copies where the file system cannot link, from the same name on', async () => {
    for (const code of ['EPERM', 'ENOTSUP', 'ENOSYS', 'EOPNOTSUPP']) {
      fs.rmSync(dir, { recursive: true })
      fs.mkdirSync(dir)
      const l = await received()
      const partIno = fs.statSync(path.join(dir, 'a.bin.part')).ino
      const link = vi.spyOn(fsModule.promises, 'link').mockRejectedValue(errno(code))
      expect([code, await l.publish()]).toEqual([code, [path.join(dir, 'a.bin'), path.join(dir, 'd')]])
      expect(link).toHaveBeenCalledTimes(1) // once refused, links are not tried again
      expect([fs.readFileSync(path.join(dir, 'a.bin'), 'utf8'), fs.statSync(path.join(dir, 'a.bin')).ino === partIno, fs.existsSync(path.join(dir, 'a.bin.part'))]).toEqual(['0123456789', false, false])
      vi.restoreAllMocks()
    }
  })

  it('fails on other errors, and when every numbered name is taken', async () => {
    const l = await received()
    vi.spyOn(fsModule.promises, 'link').mockRejectedValue(errno('EACCES'))
    expect(await failure(async () => await l.publish())).toEqual(['EACCES', 'scripted EACCES'])
    vi.restoreAllMocks()
    // "a (999).bin" is the last name tried
    const link = fsModule.promises.link
    const onlyLast = (last: string) => async (from: fs.PathLike, to: fs.PathLike): Promise<void> => {
      if (to !== path.join(dir, last)) throw errno('EEXIST')
      await link(from, to)
    }
    vi.spyOn(fsModule.promises, 'link').mockImplementation(onlyLast('a (999).bin') as never)
    const mkdir = fsModule.promises.mkdir
    vi.spyOn(fsModule.promises, 'mkdir').mockImplementation((async (p: string, o?: fs.MakeDirectoryOptions) => {
      if (p !== path.join(dir, 'd (999)')) throw errno('EEXIST')
      return await mkdir(p, o)
    }) as never)
    expect(await l.publish()).toEqual([path.join(dir, 'a (999).bin'), path.join(dir, 'd (999)')])
    vi.restoreAllMocks()
    const l2 = await received()
    vi.spyOn(fsModule.promises, 'link').mockRejectedValue(errno('EEXIST'))
    expect(await failure(async () => await l2.publish())).toEqual(['ERR_EXISTS', `a.bin and a (1).bin to a (999).bin all exist in ${dir}`])
    vi.restoreAllMocks()
    const l3 = await Landing.inspect(dir, readManifest([{ path: 'e', dir: true }], 0))
    await l3.prepare()
    vi.spyOn(fsModule.promises, 'mkdir').mockRejectedValue(errno('EEXIST'))
    expect(await failure(async () => await l3.publish())).toEqual(['ERR_EXISTS', `e and e (1) to e (999) all exist in ${dir}`])
    vi.spyOn(fsModule.promises, 'mkdir').mockRejectedValue(errno('EROFS'))
    expect(await failure(async () => await l3.publish())).toEqual(['EROFS', 'scripted EROFS'])
  })

  it('a placeholder filled meanwhile is left alone, and the tree stays in its .part', async () => {
    const l = await Landing.inspect(dir, readManifest([{ path: 'e', dir: true }], 0))
    await l.prepare()
    for (const code of ['ENOTEMPTY', undefined]) {
      vi.spyOn(fsModule.promises, 'rename').mockRejectedValueOnce(errno(code))
      const target = path.join(dir, code === undefined ? 'e (1)' : 'e')
      expect(await failure(async () => await l.publish())).toEqual(['ERR_EXISTS',
        `${target} was filled by someone else while e was being published (${code ?? 'failed'}): nothing was overwritten, the received files are in ${path.join(dir, 'e.part')}`])
    }
    expect(fs.existsSync(path.join(dir, 'e.part'))).toBe(true)
  })

  it('discard removes every .part of the offer, files and trees, and ignores what is gone', async () => {
    const l = await received()
    fs.writeFileSync(path.join(dir, 'unrelated.part'), 'not ours')
    await l.discard()
    expect(fs.readdirSync(dir)).toEqual(['unrelated.part'])
    expect(await l.anyOnDisk()).toBe(false)
    await l.discard()
  })
})

describe('resume: what was kept, and the points both ends exchange', () => {
  it('inspectKept: the length and hash state of a partial copy of ours; null when none; the hash continues', async () => {
    const file = path.join(dir, 'k')
    expect(await inspectKept(file, 10, 'k')).toBeNull()
    fs.writeFileSync(file, 'abc')
    const handles = trackHandles()
    const kept = await inspectKept(file, 3, 'k')
    expect(handles.map(h => h.fd)).toEqual([-1])
    const st = fs.statSync(file)
    expect(kept === null ? null : [kept.at, kept.sha256, kept.ino, kept.dev, kept.hash.copy().update('def').digest('hex')]).toEqual([3, sha('abc'), st.ino, st.dev, sha('abcdef')])
    expect(await failure(async () => await inspectKept(path.join(file, 'under-a-file'), 3, 'k'))).toEqual(['ENOTDIR', expect.stringContaining('ENOTDIR')])
  })

  it('inspectKept refuses anything not plainly ours to continue', async () => {
    const file = path.join(dir, 'k')
    fs.writeFileSync(file, 'abcd')
    expect(await failure(async () => await inspectKept(file, 3, 'k.part'))).toEqual(inTheWay('k.part', 'larger than the 3 bytes offered'))
    expect(await failure(async () => await inspectKept(file, null, 'k.part'))).toEqual(inTheWay('k.part', 'a stream of unknown size cannot be continued'))
    fs.linkSync(file, path.join(dir, 'k2'))
    expect(await failure(async () => await inspectKept(file, 10, 'k.part'))).toEqual(inTheWay('k.part', 'it has other hard links'))
    fs.rmSync(path.join(dir, 'k2'))
    fs.chownSync(file, 4321, 4321)
    expect(await failure(async () => await inspectKept(file, 10, 'k.part'))).toEqual(inTheWay('k.part', 'owned by another user'))
    fs.chownSync(file, process.getuid?.() ?? 0, process.getgid?.() ?? 0)
    fs.symlinkSync(file, path.join(dir, 'l'))
    expect(await failure(async () => await inspectKept(path.join(dir, 'l'), 10, 'l.part'))).toEqual(inTheWay('l.part', 'a symbolic link'))
    execFileSync('mkfifo', [path.join(dir, 'fifo')])
    expect(await failure(async () => await inspectKept(path.join(dir, 'fifo'), 10, 'fifo.part'))).toEqual(inTheWay('fifo.part', 'not a regular file'))
    // Swapped for another file between the look and the open
    const open = fsModule.promises.open
    vi.spyOn(fsModule.promises, 'open').mockImplementationOnce(async () => await open(path.join(dir, 'fifo'), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK))
    expect(await failure(async () => await inspectKept(file, 10, 'k.part'))).toEqual(inTheWay('k.part', 'it was replaced while being read'))
    // The same inode number on another device
    vi.spyOn(fsModule.promises, 'lstat').mockResolvedValueOnce(Object.assign(fs.lstatSync(file), { dev: fs.lstatSync(file).dev + 1 }))
    expect(await failure(async () => await inspectKept(file, 10, 'k.part'))).toEqual(inTheWay('k.part', 'it was replaced while being read'))
    // Cut short while being read
    vi.spyOn(fsModule.promises, 'lstat').mockResolvedValueOnce(Object.assign(fs.lstatSync(file), { size: 8 }))
    expect(await failure(async () => await inspectKept(file, 10, 'k.part'))).toEqual(inTheWay('k.part', 'it shrank while being read'))
  })

  it('hashPrefix reads in chunks up to n bytes, and says when there are fewer', async () => {
    const data = Buffer.alloc(2.5 * 2 ** 20 + 3)
    for (let i = 0; i < data.length; i += 4096) data[i] = i & 0xff
    const file = path.join(dir, 'big')
    fs.writeFileSync(file, data)
    const fh = await fs.promises.open(file, 'r')
    const read = vi.spyOn(fh, 'read')
    try {
      expect((await hashPrefix(fh, data.length))?.digest('hex')).toBe(sha(data))
      // At most 1 MiB in memory, however large the file
      expect(read.mock.calls.map(c => { const [buf, , length] = c as unknown as [Buffer, number, number]; return [buf.length, length] })).toEqual([[2 ** 20, 2 ** 20], [2 ** 20, 2 ** 20], [2 ** 20, 2 ** 19 + 3]])
      expect((await hashPrefix(fh, 2 ** 20 + 1))?.digest('hex')).toBe(sha(data.subarray(0, 2 ** 20 + 1)))
      expect((await hashPrefix(fh, 0))?.digest('hex')).toBe(sha(''))
      expect(await hashPrefix(fh, data.length + 1)).toBeNull()
    } finally {
      await fh.close()
    }
  })

  it('inspectKeptDir: none, ours, or refused; only the top one must be writable by us alone', async () => {
    const d = path.join(dir, 't')
    expect(await inspectKeptDir(d, 't.part', true)).toBe(false)
    fs.mkdirSync(d, { mode: 0o700 })
    expect(await inspectKeptDir(d, 't.part', true)).toBe(true)
    for (const mode of [0o720, 0o702]) {
      fs.chmodSync(d, mode)
      expect(await failure(async () => await inspectKeptDir(d, 't.part', true))).toEqual(inTheWay('t.part', 'writable by other users'))
    }
    fs.chmodSync(d, 0o755)
    expect(await inspectKeptDir(d, 't.part', true)).toBe(true)
    fs.chmodSync(d, 0o777)
    expect(await inspectKeptDir(d, 't.part/sub', false)).toBe(true)
    fs.chownSync(d, 4321, 4321)
    expect(await failure(async () => await inspectKeptDir(d, 't.part', false))).toEqual(inTheWay('t.part', 'owned by another user'))
    fs.symlinkSync(d, path.join(dir, 'l'))
    expect(await failure(async () => await inspectKeptDir(path.join(dir, 'l'), 'l.part', false))).toEqual(inTheWay('l.part', 'a symbolic link'))
    fs.writeFileSync(path.join(dir, 'f'), '')
    expect(await failure(async () => await inspectKeptDir(path.join(dir, 'f'), 'f.part', false))).toEqual(inTheWay('f.part', 'not a directory'))
    expect((await failure(async () => await inspectKeptDir(path.join(dir, 'f', 'x'), 'x', false)) as string[])[0]).toBe('ENOTDIR')
  })

  it('openForWriting: a new file exclusively and never through a link; a kept one only if it is still the same file', async () => {
    const file = path.join(dir, 'n')
    fs.symlinkSync(path.join(dir, 'target'), file)
    expect(await failure(async () => await openForWriting(file, null, false, 'n.part'))).toEqual(inTheWay('n.part', 'it appeared after the offer was checked'))
    expect(fs.existsSync(path.join(dir, 'target'))).toBe(false)
    expect((await failure(async () => await openForWriting(path.join(dir, 'none', 'n'), null, false, 'n.part')) as string[])[0]).toBe('ENOENT')
    const k = path.join(dir, 'k')
    fs.writeFileSync(k, 'abc')
    const kept = await inspectKept(k, 10, 'k.part')
    if (kept === null) throw new Error('kept expected')
    const fh = await openForWriting(k, kept, false, 'k.part')
    await fh.close()
    // Another file renamed over it (both exist at once: the inode numbers differ)
    fs.writeFileSync(path.join(dir, 'k2'), 'abc')
    fs.renameSync(path.join(dir, 'k2'), k)
    const replaced = inTheWay('k.part', 'it was replaced after the offer was checked')
    expect(await failure(async () => await openForWriting(k, kept, false, 'k.part'))).toEqual(replaced)
    const st = fs.statSync(k)
    expect(await failure(async () => await openForWriting(k, { ...kept, ino: st.ino, dev: st.dev + 1 }, false, 'k.part'))).toEqual(replaced)
    // The same inode, but no longer a regular file
    const fifo = path.join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
    try {
      const fst = fs.statSync(fifo)
      expect(await failure(async () => await openForWriting(fifo, { ...kept, ino: fst.ino, dev: fst.dev }, false, 'fifo.part'))).toEqual(inTheWay('fifo.part', 'it was replaced after the offer was checked'))
    } finally {
      fs.closeSync(reader)
    }
    fs.rmSync(k)
    fs.symlinkSync(path.join(dir, 'target2'), k)
    expect((await failure(async () => await openForWriting(k, kept, false, 'k.part')) as string[])[0]).toBe('ELOOP')
  })

  it('resumePoint: none for no copy or an empty one', async () => {
    fs.writeFileSync(path.join(dir, 'e'), '')
    fs.writeFileSync(path.join(dir, 'k'), 'abc')
    expect(resumePoint(null)).toBeNull()
    expect(resumePoint(await inspectKept(path.join(dir, 'e'), 5, 'e'))).toBeNull()
    expect(resumePoint(await inspectKept(path.join(dir, 'k'), 5, 'k'))).toEqual({ at: 3, sha256: sha('abc') })
  })

  it('senderStart: continues where the receiver\'s bytes match its own, else from 0', async () => {
    const src = path.join(dir, 'src')
    fs.writeFileSync(src, 'abcdef')
    const outcome = async (point: ResumeModule.ResumePoint | null, size = 6): Promise<unknown> => {
      const handles = trackHandles()
      const r = await senderStart(src, size, point)
      expect(handles.every(h => h.fd === -1)).toBe(true)
      vi.restoreAllMocks()
      return [r.start, r.differs, r.hash.digest('hex')]
    }
    expect(await outcome(null)).toEqual([0, false, sha('')])
    expect(await outcome({ at: 3, sha256: sha('abc') })).toEqual([3, false, sha('abc')])
    expect(await outcome({ at: 3, sha256: sha('abX') })).toEqual([0, true, sha('')])
    expect(await outcome({ at: 7, sha256: sha('abcdef') })).toEqual([0, true, sha('')])
    expect(await outcome({ at: 6, sha256: sha('abcdef') }, 6)).toEqual([6, false, sha('abcdef')])
    // The file shrank since its size was offered
    expect(await outcome({ at: 7, sha256: sha('abcdefg') }, 8)).toEqual([0, true, sha('')])
    // A point past the size offered is refused even when the file has grown to match it
    expect(await outcome({ at: 6, sha256: sha('abcdef') }, 5)).toEqual([0, true, sha('')])
  })

  it('readResumePoints: one per file, each null or within its file, with a sha256 in hex', () => {
    const h = sha('x')
    expect(readResumePoints(undefined, [1, null])).toEqual([null, null])
    expect(readResumePoints([null, { at: 5, sha256: h, extra: 1 }], [null, 5])).toEqual([null, { at: 5, sha256: h }])
    const bad = ['ERR_TRANSFER_PROTOCOL', 'the receiver sent invalid resume points']
    const refused = (raw: unknown, sizes: Array<number | null>): unknown => {
      try {
        return readResumePoints(raw, sizes)
      } catch (e) {
        return [(e as { code?: string }).code, (e as Error).message]
      }
    }
    for (const raw of [null, {}, [null], [null, null, null]]) expect([raw, refused(raw, [1, 2])]).toEqual([raw, bad])
    for (const p of [{ at: 1, sha256: h }]) expect(refused([p], [null])).toEqual(bad)
    for (const at of ['1', 1.5, 0, -1, 6, undefined, 2 ** 53]) expect([at, refused([{ at, sha256: h }], [5])]).toEqual([at, bad])
    for (const sha256 of [undefined, 5, [h], h.toUpperCase(), h.slice(1), `${h}0`, `x${h.slice(1)}`, ` ${h}`]) expect([sha256, refused([{ at: 1, sha256 }], [5])]).toEqual([sha256, bad])
  })
})
