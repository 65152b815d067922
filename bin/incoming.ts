// Sizes, room and names for received files (bin/landing.ts writes them). Room is checked before a byte is written.
// A top-level file's bytes go to "NAME.part", a top-level directory's tree to "NAME.part/" (mode 0700, its files
// created with O_EXCL | O_NOFOLLOW); both are kept when a transfer fails so the next receive can continue them
// (bin/resume.ts). A finished file is published with link(2), which fails with EEXIST instead of replacing what is
// there (rename(2) would replace a file created meanwhile), trying "name (1).ext", "name (2).ext", ... when the name
// is taken; then the .part is unlinked. A finished directory is published by mkdir(NAME) (exclusive: EEXIST tries
// "NAME (1)", ...) and rename(NAME.part, NAME), which replaces only that empty placeholder of ours: if anything
// was put into it meanwhile the rename fails (ENOTEMPTY) and nothing is overwritten.

import * as fs from 'fs'
import * as path from 'path'

import { CliError, UsageError } from './args'

/** Names tried when the received name is taken: "name (1).ext" up to this number */
export const MAX_NUMBERED = 999

const UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, p: 1e15, pb: 1e15,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, pib: 2 ** 50
}

/** A size such as 4096, 500K, 10G, 1.5GB (powers of 1000) or 2GiB (powers of 1024), in bytes */
export function sizeOption (value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim()) : null
  const unit = m === null ? undefined : UNITS[m[2].toLowerCase()]
  if (m === null || unit === undefined) throw new UsageError(`--${name} must be a size such as 500M, 10G or 2GiB, got ${String(value)}`)
  return Math.floor(Number(m[1]) * unit)
}

/** Bytes for people: "512 bytes", "3.15 MB", "9.00 PB" (powers of 1000) */
export function humanBytes (n: number): string {
  if (n < 1000) return `${n} bytes`
  const units = ['kB', 'MB', 'GB', 'TB', 'PB', 'EB']
  let v = n
  let i = -1
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000
    i++
  }
  return `${v.toFixed(2)} ${units[i]}`
}

/**
 * Throws unless an offer of `size` bytes fits: within `maxSize` (ERR_TOO_LARGE) and, for the `needed` bytes still
 * to write (less than `size` when resuming), within the space free for us in `dir` (ERR_NO_SPACE, from statfs;
 * skipped where the platform cannot tell). `what`: "a file", "3 files"
 */
export async function checkRoom (dir: string, size: number, maxSize: number | undefined, needed = size, what = 'a file'): Promise<void> {
  const refused = `refused ${what} of ${humanBytes(size)}`
  if (maxSize !== undefined && size > maxSize) {
    throw new CliError('ERR_TOO_LARGE', `${refused}: larger than --max-size ${humanBytes(maxSize)}`)
  }
  const free = await freeSpace(dir)
  if (free !== null && needed > free) {
    throw new CliError('ERR_NO_SPACE', `${refused}: only ${humanBytes(free)} free in ${dir}`, undefined, `${refused}: not enough free space`)
  }
}

/** Bytes free for us in `dir`, or null where the platform cannot tell */
export async function freeSpace (dir: string): Promise<number | null> {
  try {
    const s = await fs.promises.statfs(dir)
    return Number(s.bavail) * Number(s.bsize)
  } catch {
    return null
  }
}

/** "name (n).ext" ("archive.tar (1).gz": only the last extension stays at the end) */
export function numberedName (name: string, n: number): string {
  // extname() never takes a whole name (".bashrc" has none), so the stem is never empty
  const ext = path.extname(name)
  const stem = ext === '' ? name : name.slice(0, -ext.length)
  return `${stem} (${n})${ext}`
}

