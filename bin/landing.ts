// Where an accepted offer is written (the rules are at the top of bin/incoming.ts): one NAME.part per top-level
// file, one NAME.part/ tree per top-level directory, continued where a failed run kept them (bin/resume.ts), and
// published under the final names only once every file arrived intact.

import * as fs from 'fs'
import * as path from 'path'

import { CliError } from './args'
import { MAX_NUMBERED, numberedName } from './incoming'
import { fileEntries, topOf, type FileEntry, type Manifest } from './manifest'
import { inspectKept, inspectKeptDir, openForWriting, type Kept } from './resume'

/** Bytes gathered before one write to disk (the connection hands over a packet's worth at a time) */
const WRITE_BATCH = 256 * 1024

/** Where the bytes of one file go, in order */
export interface ByteSink {
  write: (chunk: Buffer) => Promise<void>
  /** All bytes are there: flush, sync, close */
  finish: () => Promise<void>
  /** The transfer failed: keep what arrived (best effort), close */
  abandon: () => Promise<void>
}

/** Batched writes to a file from byte `start` on */
export class FileWriter implements ByteSink {
  private _pending: Buffer[] = []
  private _pendingBytes = 0

  constructor (private readonly _fh: fs.promises.FileHandle, private _pos: number) {}

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
    await this._fh.write(data, 0, data.length, this._pos)
    this._pos += data.length
  }

  async finish (): Promise<void> {
    await this._flush()
    await this._fh.sync()
    await this._fh.close()
  }

  /** Closing twice is harmless: a FileHandle's close() after the first resolves and does nothing */
  async abandon (): Promise<void> {
    await this._flush().catch(() => {})
    await this._fh.close().catch(() => {})
  }
}

/** A top-level item of the offer and its .part */
interface Top {
  name: string
  kind: 'file' | 'dir'
  partPath: string
}

/** A file of the offer: where its bytes go on disk, and the partial copy found there */
export interface Slot {
  entry: FileEntry
  file: string
  /** How the file is named in messages: "NAME.part" or "NAME.part/sub/file" */
  shown: string
  kept: Kept | null
}

export class Landing {
  private constructor (private readonly _dir: string, private readonly _manifest: Manifest, readonly tops: Top[], readonly slots: Slot[]) {}

  /**
   * Looks for what a failed run kept for this offer, reading only. Throws ERR_PART_EXISTS when something is in
   * the way that is not ours to continue
   */
  static async inspect (dir: string, manifest: Manifest): Promise<Landing> {
    const tops: Top[] = []
    const dirsKept = new Set<string>()
    for (const e of manifest.entries) {
      if (e.path.includes('/')) continue
      const partPath = path.join(dir, `${e.path}.part`)
      tops.push({ name: e.path, kind: e.kind, partPath })
      if (e.kind === 'dir' && await inspectKeptDir(partPath, `${e.path}.part`, true)) dirsKept.add(e.path)
    }
    const slots: Slot[] = []
    for (const e of manifest.entries) {
      const top = topOf(e.path)
      const inTree = e.path.includes('/')
      const rel = e.path.slice(top.length + 1) // '' for a top-level item
      const shown = inTree ? `${top}.part/${rel}` : `${e.path}.part`
      const file = inTree ? path.join(dir, `${top}.part`, ...rel.split('/')) : path.join(dir, shown)
      const kept = !inTree || dirsKept.has(top)
      if (e.kind === 'dir') {
        if (inTree && kept) await inspectKeptDir(file, shown, false)
        continue
      }
      slots.push({ entry: e, file, shown, kept: kept ? await inspectKept(file, e.size, shown) : null })
    }
    return new Landing(dir, manifest, tops, slots)
  }

  /** Bytes already there from an earlier run */
  keptBytes (): number {
    return this.slots.reduce((n, s) => n + (s.kept?.at ?? 0), 0)
  }

  /** After the accept: creates the directories (the top ones private to us until published) */
  async prepare (): Promise<void> {
    for (const e of this._manifest.entries) {
      if (e.kind !== 'dir') continue
      const top = topOf(e.path)
      const inTree = e.path.includes('/')
      const rel = e.path.slice(top.length + 1)
      const where = path.join(this._dir, `${top}.part`, ...(inTree ? rel.split('/') : []))
      try {
        await fs.promises.mkdir(where, { mode: inTree ? 0o777 : 0o700 })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        // inspect() found it a real directory of ours; one that appeared since is checked the same way
        await inspectKeptDir(where, inTree ? `${top}.part/${rel}` : `${top}.part`, !inTree)
      }
    }
  }

  /** The writer for file `i` from byte `start` (0, or its kept length): a kept copy is truncated to `start` */
  async open (i: number, start: number): Promise<FileWriter> {
    const slot = this.slots[i]
    const fh = await openForWriting(slot.file, slot.kept, slot.entry.exec, slot.shown)
    if (slot.kept !== null && start < slot.kept.at) await fh.truncate(start)
    slot.kept = null // written from now on: a second open would be a bug, and must fail (O_EXCL)
    return new FileWriter(fh, start)
  }

  /** Publishes every top-level item under its name (or a numbered one); returns the final paths */
  async publish (): Promise<string[]> {
    const saved: string[] = []
    for (const top of this.tops) saved.push(top.kind === 'file' ? await this._publishFile(top) : await this._publishDir(top))
    return saved
  }

  private async _publishFile (top: Top): Promise<string> {
    let linkable = true
    for (let n = 0; n <= MAX_NUMBERED; n++) {
      const target = path.join(this._dir, n === 0 ? top.name : numberedName(top.name, n))
      try {
        if (linkable) await fs.promises.link(top.partPath, target)
        else await fs.promises.copyFile(top.partPath, target, fs.constants.COPYFILE_EXCL)
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
      await fs.promises.unlink(top.partPath)
      return target
    }
    throw allTaken(top.name, numberedName(top.name, 1), numberedName(top.name, MAX_NUMBERED), this._dir)
  }

  private async _publishDir (top: Top): Promise<string> {
    for (let n = 0; n <= MAX_NUMBERED; n++) {
      const target = path.join(this._dir, n === 0 ? top.name : `${top.name} (${n})`)
      try {
        await fs.promises.mkdir(target)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue
        throw e
      }
      // The placeholder has the mode a new directory gets here: the tree takes it over from its private 0700
      const mode = (await fs.promises.lstat(target)).mode & 0o7777
      try {
        await fs.promises.rename(top.partPath, target)
      } catch (e) {
        throw new CliError('ERR_EXISTS', `${target} was filled by someone else while ${top.name} was being published (${(e as NodeJS.ErrnoException).code ?? 'failed'}): nothing was overwritten, the received files are in ${top.partPath}`)
      }
      await fs.promises.chmod(target, mode)
      return target
    }
    throw allTaken(top.name, `${top.name} (1)`, `${top.name} (${MAX_NUMBERED})`, this._dir)
  }

  /** Removes every .part of this offer (its data was proven bad) */
  async discard (): Promise<void> {
    for (const top of this.tops) await fs.promises.rm(top.partPath, { recursive: top.kind === 'dir', force: true }).catch(() => {})
  }

  /** Whether anything of this offer is on disk (after a failure: whether there is something to keep) */
  async anyOnDisk (): Promise<boolean> {
    for (const top of this.tops) if (fs.existsSync(top.partPath)) return true
    return false
  }

  /** "a.bin.part", or "photos.part, b.txt.part" */
  partNames (): string {
    return this.tops.map(t => `${t.name}.part`).join(', ')
  }

  get files (): FileEntry[] {
    return fileEntries(this._manifest)
  }
}

function allTaken (name: string, first: string, last: string, dir: string): CliError {
  return new CliError('ERR_EXISTS', `${name} and ${first} to ${last} all exist in ${dir}`)
}
