// Where a received file lands, without ever replacing anything. Room is checked before a byte is written; the
// bytes go to "<name>.part" ("<name>.<random>.part" if that exists), created with O_EXCL; the finished file is
// published with link(2), which fails with EEXIST instead of replacing what is there (rename(2) would replace a
// file created meanwhile), trying "name (1).ext", "name (2).ext", ... when the name is taken. Then the .part is
// unlinked.

import { randomBytes } from 'crypto'
import * as fs from 'fs'
import * as path from 'path'

import { CliError, UsageError } from './args'

/** Names tried when the received name is taken: "name (1).ext" up to this number */
const MAX_NUMBERED = 999
/** Bytes gathered before one write to disk (the connection hands over a packet's worth at a time) */
const WRITE_BATCH = 256 * 1024

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
 * Throws unless `size` bytes fit: within `maxSize` (ERR_TOO_LARGE) and within the space free for us in `dir`
 * (ERR_NO_SPACE, from statfs; skipped where the platform cannot tell)
 */
export async function checkRoom (dir: string, size: number, maxSize: number | undefined): Promise<void> {
  if (maxSize !== undefined && size > maxSize) {
    throw new CliError('ERR_TOO_LARGE', `refused a file of ${humanBytes(size)}: larger than --max-size ${humanBytes(maxSize)}`)
  }
  let free: number
  try {
    const s = await fs.promises.statfs(dir)
    free = Number(s.bavail) * Number(s.bsize)
  } catch {
    return
  }
  if (size > free) {
    const refused = `refused a file of ${humanBytes(size)}`
    throw new CliError('ERR_NO_SPACE', `${refused}: only ${humanBytes(free)} free in ${dir}`, undefined, `${refused}: not enough free space`)
  }
}

/** "name (n).ext" ("archive.tar (1).gz": only the last extension stays at the end) */
export function numberedName (name: string, n: number): string {
  const ext = path.extname(name)
  const stem = ext === '' || ext === name ? name : name.slice(0, -ext.length)
  return `${stem} (${n})${ext === name ? '' : ext}`
}

/** A file being received: bytes go to a private .part file until publish() links it under its final name */
export class PartFile {
  private _pending: Buffer[] = []
  private _pendingBytes = 0
  private _closed = false

  private constructor (private readonly _dir: string, private readonly _name: string, readonly partPath: string, private readonly _fh: fs.promises.FileHandle) {}

  /**
   * Creates "<name>.part" in `dir`, or "<name>.<random>.part" when that exists, exclusively: it never opens (and
   * so never truncates or writes through a link to) a file that exists
   */
  static async create (dir: string, name: string): Promise<PartFile> {
    const open = async (suffix: string): Promise<PartFile> => {
      const partPath = path.join(dir, `${name}${suffix}.part`)
      return new PartFile(dir, name, partPath, await fs.promises.open(partPath, 'wx'))
    }
    try {
      return await open('')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    return await open(`.${randomBytes(4).toString('hex')}`)
  }

  async write (chunk: Buffer): Promise<void> {
    this._pending.push(Buffer.from(chunk))
    this._pendingBytes += chunk.length
    if (this._pendingBytes >= WRITE_BATCH) await this._flush()
  }

  private async _flush (): Promise<void> {
    if (this._pendingBytes === 0) return
    const data = Buffer.concat(this._pending, this._pendingBytes)
    this._pending = []
    this._pendingBytes = 0
    await this._fh.write(data, 0, data.length)
  }

  private async _close (): Promise<void> {
    if (this._closed) return
    this._closed = true
    await this._fh.close()
  }

  /**
   * Makes the file appear under its name, or "name (1).ext"... when that is taken (even by a file created a moment
   * ago): link(2) never replaces. Returns the final path. Where hard links are not supported, an exclusive copy
   */
  async publish (): Promise<string> {
    await this._flush()
    await this._fh.sync()
    await this._close()
    let linkable = true
    for (let n = 0; n <= MAX_NUMBERED; n++) {
      const target = path.join(this._dir, n === 0 ? this._name : numberedName(this._name, n))
      try {
        if (linkable) await fs.promises.link(this.partPath, target)
        else await fs.promises.copyFile(this.partPath, target, fs.constants.COPYFILE_EXCL)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'EEXIST') continue
        if (linkable && (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS' || code === 'EOPNOTSUPP')) {
          linkable = false
          n--
          continue
        }
        throw e
      }
      await fs.promises.unlink(this.partPath)
      return target
    }
    throw new CliError('ERR_EXISTS', `${this._name} and ${numberedName(this._name, 1)} to ${numberedName(this._name, MAX_NUMBERED)} all exist in ${this._dir}`)
  }

  /** Closes and removes the .part (a failed or refused transfer leaves nothing behind) */
  async discard (): Promise<void> {
    this._pending = []
    await this._close().catch(() => {})
    await fs.promises.rm(this.partPath, { force: true })
  }
}
