// What a transfer offers, on its own (bin/manifest.ts): the sender's walk over real files (what it skips and
// warns about, what it refuses, the entry limit), the receiver's check of an offer (each refusal, with the
// peer's text made safe to print), and the offer in a few words. The CLI's use of them is in cli-scope.test.ts.
import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'

import type * as ManifestModule from '../bin/manifest'
import { requireFromRoot } from './helpers/utp'

const manifest = requireFromRoot('./dist/bin/manifest.js') as typeof ManifestModule
const { walk, readManifest, describe: describeOffer, countText, topOf, topNames, offerEntries, fileEntries, sendableName, MAX_ENTRIES } = manifest
// The module object the CLI calls, so that a spy on it is seen there
const fsModule = requireFromRoot('fs') as typeof fs

let tmp: string
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-manifest-')) })
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }) })
afterEach(() => { vi.restoreAllMocks() })

/** [code, message] of what `fn` throws or rejects with, or 'no error' */
const failure = async (fn: () => unknown): Promise<unknown> => {
  try {
    await fn()
    return 'no error'
  } catch (e) {
    return [(e as { code?: string }).code, (e as Error).message]
  }
}

const mk = (rel: string, content = '', mode = 0o644): string => {
  const p = path.join(tmp, rel)
  fs.mkdirSync(path.dirname(p), { recursive: true })
  fs.writeFileSync(p, content)
  fs.chmodSync(p, mode)
  return p
}

describe('the sender\'s walk', () => {
  it('files as themselves, directories depth-first in name order, empty ones kept; links, special files, refused and clashing names skipped with a warning', async () => {
    const top = path.join(tmp, 'tree', 'photos')
    mk('tree/photos/b/z.jpg', 'zz')
    fs.mkdirSync(path.join(top, 'a-empty'))
    mk('tree/photos/c.sh', 'run', 0o755)
    mk('tree/photos/.git/config', 'x')
    mk('tree/photos/M', 'm1')
    mk('tree/photos/m', 'm2')
    mk('tree/photos/q', 'qq') // a link named "Q" sorts first: being skipped, it must not take "q"'s name
    fs.symlinkSync(path.join(top, 'c.sh'), path.join(top, 'Q'))
    mk('tree/photos/a"b.', 'quote') // a quote in the name must not garble the warning
    execFileSync('mkfifo', [path.join(top, 'fifo')])
    const single = mk('tree/one.bin', 'hello', 0o700)
    // readdir's order is the file system's: the walk sorts
    const readdir = fsModule.promises.readdir
    vi.spyOn(fsModule.promises, 'readdir').mockImplementation((async (p: string) => (await readdir(p)).reverse()) as never)
    const warnings: string[] = []
    const m = await walk([single, top], line => warnings.push(line))
    expect(m.entries).toEqual([
      { kind: 'file', path: 'one.bin', size: 5, exec: true, source: single },
      { kind: 'dir', path: 'photos' },
      { kind: 'file', path: 'photos/M', size: 2, exec: false, source: path.join(top, 'M') },
      { kind: 'dir', path: 'photos/a-empty' },
      { kind: 'dir', path: 'photos/b' },
      { kind: 'file', path: 'photos/b/z.jpg', size: 2, exec: false, source: path.join(top, 'b', 'z.jpg') },
      { kind: 'file', path: 'photos/c.sh', size: 3, exec: true, source: path.join(top, 'c.sh') },
      { kind: 'file', path: 'photos/q', size: 2, exec: false, source: path.join(top, 'q') }
    ])
    expect(m.total).toBe(14)
    expect(warnings).toEqual([
      `skipped ${path.join(top, '.git')}: receivers refuse its name: it starts with a dot (a hidden or configuration file)`,
      `skipped ${path.join(top, 'Q')}: a symbolic link (links are not followed)`,
      `skipped ${path.join(top, 'a"b.')}: receivers refuse its name: it ends with a dot`,
      `skipped ${path.join(top, 'fifo')}: not a regular file or directory`,
      `skipped ${path.join(top, 'm')}: another entry has the same name (ignoring case or the characters replaced with '_')`
    ])
  })

  it('what the user named is followed when it is a link; stdin is a stream of unknown size under its name', async () => {
    const target = mk('follow/target.txt', 'abc')
    const link = path.join(tmp, 'follow', 'named-link')
    fs.symlinkSync(target, link)
    const warn = (): void => { throw new Error('no warning expected') }
    expect(await walk([link], warn)).toEqual({ entries: [{ kind: 'file', path: 'named-link', size: 3, exec: false, source: link }], total: 3 })
    const stdin = { kind: 'file', path: 'stdin', size: null, exec: false, source: '-' }
    expect(await walk(['-'], warn)).toEqual({ entries: [stdin], total: null })
    expect(await walk(['-'], warn, 'notes.txt')).toEqual({ entries: [{ ...stdin, path: 'notes.txt' }], total: null })
    // The total stays unknown once a stream is in, before or after a file
    expect((await walk([target, '-'], warn)).total).toBeNull()
    expect((await walk(['-', target], warn)).total).toBeNull()
  })

  it('refuses what cannot be sent, naming it', async () => {
    const missing = path.join(tmp, 'missing.bin')
    const x1 = mk('d1/Same.txt', '1')
    const x2 = mk('d2/same.TXT', '2')
    const hidden = mk('d1/.bashrc', 'x')
    const quoted = mk('d1/a"b.', 'x')
    const warn = (): void => {}
    expect(await failure(async () => await walk([missing], warn))).toEqual(['ENOENT', `${missing}: no such file or directory`])
    expect(await failure(async () => await walk(['/dev/null'], warn))).toEqual(['ENOENT', '/dev/null is not a regular file or directory'])
    expect(await failure(async () => await walk([x1, x2], warn))).toEqual(['ERR_DUPLICATE_NAME', 'two of the paths to send are named same.TXT: the receiver would get only one'])
    expect(await failure(async () => await walk(['-', mk('d3/stdin')], warn))).toEqual(['ERR_DUPLICATE_NAME', 'two of the paths to send are named stdin: the receiver would get only one'])
    expect(await failure(async () => await walk([hidden], warn))).toEqual(['ERR_UNSAFE_NAME',
      `cannot send ${hidden}: receivers refuse the name ".bashrc": it starts with a dot (a hidden or configuration file); copy it to a name without that first`])
    expect(await failure(() => sendableName(quoted))).toEqual(['ERR_UNSAFE_NAME',
      `cannot send ${quoted}: receivers refuse the name "a"b.": it ends with a dot; copy it to a name without that first`])
    expect(sendableName(path.join(tmp, 'd1', 'x', '..', 'ok.txt'))).toBe('ok.txt')
    // Only a refused name is reported as one: a wrong argument stays the programming error it is
    expect(await failure(() => sendableName(5 as never))).toEqual(['ERR_INVALID_ARG_TYPE', expect.stringContaining('The "paths[0]" argument must be of type string')])
  })

  it(`offers at most ${MAX_ENTRIES} files and directories`, async () => {
    const dir = path.join(tmp, 'many')
    fs.mkdirSync(dir)
    const fileStat = { isDirectory: () => false, isFile: () => true, isSymbolicLink: () => false, size: 1, mode: 0o644 }
    vi.spyOn(fsModule.promises, 'lstat').mockResolvedValue(fileStat as never)
    const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `f${i}`)
    // The directory is one entry: it and MAX_ENTRIES - 1 files fit
    vi.spyOn(fsModule.promises, 'readdir').mockResolvedValue(names(MAX_ENTRIES - 1) as never)
    const m = await walk([dir], () => {})
    expect([m.entries.length, m.total]).toEqual([MAX_ENTRIES, MAX_ENTRIES - 1])
    vi.spyOn(fsModule.promises, 'readdir').mockResolvedValue(names(MAX_ENTRIES) as never)
    expect(await failure(async () => await walk([dir], () => {}))).toEqual(['ERR_TOO_MANY', `more than ${MAX_ENTRIES} files and directories: send them as an archive`])
  })
})

describe('the receiver\'s check of an offer', () => {
  const offerError = (entries: unknown, total: unknown): unknown => {
    try {
      return readManifest(entries, total)
    } catch (e) {
      return [(e as { code?: string }).code, (e as Error).message]
    }
  }
  const invalid = (why: string): [string, string] => ['ERR_TRANSFER_PROTOCOL', `the sender's offer is invalid: ${why}`]
  const unsafe = (name: string, why: string): [string, string] => ['ERR_UNSAFE_NAME', `refused the name "${name}": ${why}`]

  it('takes files and trees, cleaning names as single names are cleaned', () => {
    expect(readManifest([{ path: 'a.txt', size: 3, x: true }, { path: 'd', dir: true }, { path: 'd/e', dir: true }, { path: 'd/e/f:g', size: 0 }, { path: 'ab:c', size: 7 }], 10)).toEqual({
      entries: [
        { kind: 'file', path: 'a.txt', size: 3, exec: true },
        { kind: 'dir', path: 'd' },
        { kind: 'dir', path: 'd/e' },
        { kind: 'file', path: 'd/e/f_g', size: 0, exec: false },
        { kind: 'file', path: 'ab_c', size: 7, exec: false }
      ],
      total: 10
    })
    // "x" only as true; a stream only as the one entry
    expect(readManifest([{ path: 'a', size: 1, x: 1 }], 1).entries).toEqual([{ kind: 'file', path: 'a', size: 1, exec: false }])
    expect(readManifest([{ path: 'live.log', size: null }], null)).toEqual({ entries: [{ kind: 'file', path: 'live.log', size: null, exec: false }], total: null })
    // "ß" and "ss" are two names where case is ignored (lower case, not upper case, is compared)
    expect(readManifest([{ path: 'ß', size: 1 }, { path: 'ss', size: 1 }], 2).entries.map(e => e.path)).toEqual(['ß', 'ss'])
    // A path of exactly 4000 bytes passes
    const long = Array.from({ length: 20 }, () => 'x'.repeat(199)).join('/')
    const dirs = Array.from({ length: 19 }, (_, i) => ({ path: long.slice(0, 200 * (i + 1) - 1), dir: true }))
    expect(Buffer.byteLength(long)).toBe(3999)
    expect(readManifest([...dirs, { path: `${long}y`, size: 0 }], 0).entries).toHaveLength(20)
    expect(offerError([...dirs, { path: `${long}yy`, size: 0 }], 0)).toEqual(invalid('a path longer than 4000 bytes'))
  })

  it('refuses a bad offer whole, saying why', () => {
    expect(offerError(undefined, 0)).toEqual(invalid('no entries'))
    expect(offerError({ length: 1, 0: { path: 'a', size: 0 } }, 0)).toEqual(invalid('no entries'))
    expect(offerError([], 0)).toEqual(invalid('no entries'))
    expect(offerError(Array.from({ length: MAX_ENTRIES + 1 }, (_, i) => ({ path: `f${i}`, size: 0 })), 0)).toEqual(invalid(`more than ${MAX_ENTRIES} entries`))
    expect(readManifest(Array.from({ length: MAX_ENTRIES }, (_, i) => ({ path: `f${i}`, size: 0 })), 0).entries).toHaveLength(MAX_ENTRIES)
    expect(offerError([null], 0)).toEqual(invalid('an entry without a path'))
    expect(offerError([{ size: 1 }], 1)).toEqual(invalid('an entry without a path'))
    expect(offerError([{ path: 5, size: 1 }], 1)).toEqual(invalid('an entry without a path'))
    expect(offerError([{ path: 'a', size: 1 }, { path: 'A', size: 1 }], 2)).toEqual(invalid('two entries are named A'))
    expect(offerError([{ path: 'ab:c', size: 1 }, { path: 'ab_c', size: 1 }], 2)).toEqual(invalid('two entries are named ab_c'))
    expect(offerError([{ path: 'd/f', size: 1 }], 1)).toEqual(invalid('d/f comes before its directory'))
    expect(offerError([{ path: 'd/f', size: 1 }, { path: 'd', dir: true }], 1)).toEqual(invalid('d/f comes before its directory'))
    expect(offerError([{ path: 'd', size: 0 }, { path: 'd/f', size: 1 }], 1)).toEqual(invalid('d/f comes before its directory'))
    for (const size of [undefined, '1', -1, 1.5, 2 ** 53, null]) {
      expect([size, offerError([{ path: 'a', size }, { path: 'b', size: 0 }], 0)]).toEqual([size, invalid('a bad size for a')])
    }
    expect(offerError([{ path: 'a', size: 1 }, { path: 'b', size: 2 }], 4)).toEqual(invalid('the total is not the sum of the sizes'))
    expect(offerError([{ path: 'a', size: 1 }], '1')).toEqual(invalid('the total is not the sum of the sizes'))
    expect(offerError([{ path: 'a', size: 2 ** 53 - 1 }, { path: 'b', size: 2 }], 2 ** 53 + 1)).toEqual(invalid('the total is too large'))
  })

  it('refuses unsafe names, showing the whole path made safe to print', () => {
    expect(offerError([{ path: '/etc/passwd', size: 1 }], 1)).toEqual(unsafe('/etc/passwd', 'it contains a path separator'))
    expect(offerError([{ path: 'a\\b', size: 1 }], 1)).toEqual(unsafe('a\\b', 'it contains a path separator'))
    expect(offerError([{ path: 'c:x', size: 1 }], 1)).toEqual(unsafe('c:x', 'it is an absolute path'))
    expect(offerError([{ path: 'Z:', size: 1 }], 1)).toEqual(unsafe('Z:', 'it is an absolute path'))
    // Only a drive letter at the start is absolute
    expect(readManifest([{ path: '1:x', size: 1 }], 1).entries[0].path).toBe('1_x')
    // The peer's text is neutralised: no escape sequence reaches the terminal
    expect(offerError([{ path: 'C:\u001b[31mred', size: 1 }], 1)).toEqual(unsafe('C:_[31mred', 'it is an absolute path'))
    expect(offerError([{ path: 'a/', size: 1 }, { path: 'a', dir: true }], 1)).toEqual(unsafe('a/', 'it is empty'))
    expect(offerError([{ path: 'd', dir: true }, { path: 'd/.ssh', dir: true }], 0)).toEqual(unsafe('d/.ssh', 'it starts with a dot (a hidden or configuration file)'))
    expect(offerError([{ path: 'd', dir: true }, { path: 'd/a"b.', size: 0 }], 0)).toEqual(unsafe('d/a"b.', 'it ends with a dot'))
    expect(offerError([{ path: 'a"b.', size: 0 }], 0)).toEqual(unsafe('a"b.', 'it ends with a dot'))
    expect(offerError([{ path: 'd', dir: true }, { path: `d/${'\u202e'.repeat(100)}.`, size: 0 }], 0)).toEqual(unsafe(`d/${'_'.repeat(78)}...`, 'it ends with a dot'))
  })
})

describe('the offer in words', () => {
  const m = (paths: Array<string | [string, number]>, total: number | null = 0): ManifestModule.Manifest => ({
    entries: paths.map(p => typeof p === 'string' ? { kind: 'dir', path: p } : { kind: 'file', path: p[0], size: p[1], exec: false }),
    total
  })

  it('one file, several, trees, more than three names, unknown sizes', () => {
    expect(describeOffer(m([['a.bin', 3e6]], 3e6))).toBe('"a.bin" (3.00 MB)')
    expect(describeOffer(m([['a.bin', 3]], null))).toBe('"a.bin" (size unknown)')
    expect(describeOffer(m([['a.txt', 4], ['b.txt', 6]], 10))).toBe('"a.txt", "b.txt" (2 files, 10 bytes)')
    expect(describeOffer(m(['photos', ['photos/a.jpg', 5]], 5))).toBe('"photos" (1 file in 1 directory, 5 bytes)')
    expect(describeOffer(m(['photos'], 0))).toBe('"photos" (0 files in 1 directory, 0 bytes)')
    expect(describeOffer(m(['photos', 'photos/2024', ['photos/2024/a.jpg', 1], ['photos/b.jpg', 1], 'photos/c'], 2))).toBe('"photos" (2 files in 3 directories, 2 bytes)')
    expect(describeOffer(m([['a', 1], ['b', 1], ['c', 1]], 3))).toBe('"a", "b", "c" (3 files, 3 bytes)')
    expect(describeOffer(m([['a', 1], ['b', 1], ['c', 1], ['d', 1], 'e'], 4))).toBe('"a", "b", "c" and 2 more (4 files in 1 directory, 4 bytes)')
    expect([countText(1, 0), countText(0, 0), countText(2, 1), countText(1, 2)]).toEqual(['1 file', '0 files', '2 files in 1 directory', '1 file in 2 directories'])
  })

  it('top names, first components, file entries and the offer\'s form', () => {
    const tree = m(['d', ['d/x', 1], ['a', 2], 'd/e', ['d/e/y', 3]], 6)
    expect(topNames(tree)).toEqual(['d', 'a'])
    expect([topOf('a'), topOf('d/e/y'), topOf('/x')]).toEqual(['a', 'd', ''])
    expect(fileEntries(tree).map(e => e.path)).toEqual(['d/x', 'a', 'd/e/y'])
    expect(offerEntries({ entries: [{ kind: 'dir', path: 'd' }, { kind: 'file', path: 'd/x', size: 1, exec: true }, { kind: 'file', path: 'y', size: null, exec: false }], total: null }))
      .toEqual([{ path: 'd', dir: true }, { path: 'd/x', size: 1, x: true }, { path: 'y', size: null }])
  })
})
