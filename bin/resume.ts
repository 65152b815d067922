// Continuing a transfer that failed: the receiver keeps its NAME.part (a file, or a directory tree), and when the
// same offer comes again it tells the sender, for each file, how many bytes it already has and the sha256 of those
// bytes. The sender compares them with its own first bytes and continues from there, or starts that file over.
//
// A file found where a partial copy would be is continued only when it is plainly ours: a regular file (not a
// link: lstat, then opened with O_NOFOLLOW and checked to be the same inode), owned by this user, with no other
// hard link, and not larger than the size offered. Anything else refuses the offer with a clear message rather
// than being written to or removed. Files created here are created exclusively (O_EXCL | O_NOFOLLOW).

import { createHash, type Hash } from 'crypto'
import * as fs from 'fs'

import { CliError } from './args'

/** 0 where the platform has no O_NOFOLLOW (Windows): there, lstat is the only check */
const NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0
const READ_CHUNK = 1 << 20

/** A partial copy found on disk: its length, and the sha256 state after hashing it (to continue hashing from) */
export interface Kept {
  at: number
  /** The running hash over the first `at` bytes (copy() it before digesting) */
  hash: Hash
  sha256: string
  ino: number
  dev: number
}

/** What the receiver answers for one file: resume at this byte if your first `at` bytes hash to `sha256` */
export interface ResumePoint {
  at: number
  sha256: string
}

function inTheWay (shown: string, why: string): CliError {
  return new CliError('ERR_PART_EXISTS',
    `${shown} exists and is not a partial copy this receive can continue (${why}): move it away, or receive into another directory`,
    undefined, 'the receiver has a partial file in the way that it cannot continue')
}

function ownedByUs (st: fs.Stats): boolean {
  return process.getuid === undefined || st.uid === process.getuid()
}

/**
 * The partial copy at `file` of an offered file of `size` bytes (null: a stream, which cannot resume), or null
 * when there is none. Throws ERR_PART_EXISTS when something is there that is not ours to continue
 */
export async function inspectKept (file: string, size: number | null, shown: string): Promise<Kept | null> {
  let st: fs.Stats
  try {
    st = await fs.promises.lstat(file)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw e
  }
  if (!st.isFile()) throw inTheWay(shown, st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file')
  if (!ownedByUs(st)) throw inTheWay(shown, 'owned by another user')
  if (st.nlink !== 1) throw inTheWay(shown, 'it has other hard links')
  if (size === null) throw inTheWay(shown, 'a stream of unknown size cannot be continued')
  if (st.size > size) throw inTheWay(shown, `larger than the ${size} bytes offered`)
  const fh = await fs.promises.open(file, fs.constants.O_RDONLY | NOFOLLOW)
  try {
    const now = await fh.stat()
    if (now.ino !== st.ino || now.dev !== st.dev) throw inTheWay(shown, 'it was replaced while being read')
    const hash = await hashPrefix(fh, st.size)
    if (hash === null) throw inTheWay(shown, 'it shrank while being read')
    return { at: st.size, hash, sha256: hash.copy().digest('hex'), ino: st.ino, dev: st.dev }
  } finally {
    await fh.close()
  }
}

/** The sha256 state over the first `n` bytes of `fh`, or null when it has fewer */
export async function hashPrefix (fh: fs.promises.FileHandle, n: number): Promise<Hash | null> {
  const hash = createHash('sha256')
  const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(n, 1)))
  let pos = 0
  while (pos < n) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, n - pos), pos)
    if (bytesRead === 0) return null
    hash.update(buf.subarray(0, bytesRead))
    pos += bytesRead
  }
  return hash
}

/**
 * Checks a directory found where a partial directory (or a directory inside one) would be: a real directory
 * (not a link), ours, and (for the top one) writable by nobody else, so what is inside was put there by us.
 * Returns false when there is none
 */
export async function inspectKeptDir (dir: string, shown: string, top: boolean): Promise<boolean> {
  let st: fs.Stats
  try {
    st = await fs.promises.lstat(dir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw e
  }
  if (!st.isDirectory()) throw inTheWay(shown, st.isSymbolicLink() ? 'a symbolic link' : 'not a directory')
  if (!ownedByUs(st)) throw inTheWay(shown, 'owned by another user')
  if (top && process.platform !== 'win32' && (st.mode & 0o022) !== 0) throw inTheWay(shown, 'writable by other users')
  return true
}

/**
 * Opens the file bytes go to: the kept partial copy (checked again to be the very file inspected, so a file
 * swapped in meanwhile is not written), or a new file created exclusively
 */
export async function openForWriting (file: string, kept: Kept | null, exec: boolean, shown: string): Promise<fs.promises.FileHandle> {
  if (kept === null) {
    try {
      return await fs.promises.open(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | NOFOLLOW, exec ? 0o777 : 0o666)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw inTheWay(shown, 'it appeared after the offer was checked')
      throw e
    }
  }
  const fh = await fs.promises.open(file, fs.constants.O_WRONLY | NOFOLLOW)
  const st = await fh.stat()
  if (st.ino !== kept.ino || st.dev !== kept.dev || !st.isFile()) {
    await fh.close()
    throw inTheWay(shown, 'it was replaced after the offer was checked')
  }
  return fh
}

/** The resume point to offer for a kept copy: none for an empty one */
export function resumePoint (kept: Kept | null): ResumePoint | null {
  return kept === null || kept.at === 0 ? null : { at: kept.at, sha256: kept.sha256 }
}

/**
 * The sender's side: where to start `source` given the receiver's resume point. Hashes our own first `at` bytes;
 * returns the start offset (0 when they differ) and the hash state to continue from
 */
export async function senderStart (source: string, size: number, point: ResumePoint | null): Promise<{ start: number, hash: Hash, differs: boolean }> {
  if (point === null) return { start: 0, hash: createHash('sha256'), differs: false }
  if (point.at > size) return { start: 0, hash: createHash('sha256'), differs: true }
  const fh = await fs.promises.open(source, 'r')
  try {
    const hash = await hashPrefix(fh, point.at)
    if (hash === null || hash.copy().digest('hex') !== point.sha256) return { start: 0, hash: createHash('sha256'), differs: true }
    return { start: point.at, hash, differs: false }
  } finally {
    await fh.close()
  }
}

/** The resume points of an accept, checked: one per file (null or {at, sha256}), `at` within the file's size */
export function readResumePoints (raw: unknown, sizes: Array<number | null>): Array<ResumePoint | null> {
  if (raw === undefined) return sizes.map(() => null)
  const bad = new CliError('ERR_TRANSFER_PROTOCOL', 'the receiver sent invalid resume points')
  if (!Array.isArray(raw) || raw.length !== sizes.length) throw bad
  return raw.map((p: { at?: unknown, sha256?: unknown } | null, i) => {
    if (p === null) return null
    const size = sizes[i]
    if (size === null || typeof p.at !== 'number' || !Number.isSafeInteger(p.at) || p.at <= 0 || p.at > size) throw bad
    if (typeof p.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(p.sha256)) throw bad
    return { at: p.at, sha256: p.sha256 }
  })
}
