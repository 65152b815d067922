// What a transfer offers: the list of entries (files and directories, by relative path with '/' separators) and
// their total size. The sender builds it by walking what it was given (lstat only: symbolic links and special
// files inside a directory are skipped with a warning, never followed); the receiver checks every path component
// with the same rules as a single file's name (bin/filename.ts) and refuses the whole offer if one is bad.

import * as fs from 'fs'
import * as path from 'path'

import { CliError } from './args'
import { peerText, receivedName, UnsafeNameError } from './filename'
import { humanBytes } from './incoming'

/** A file to send or receive: `size` null for a stream of unknown length (stdin) */
export interface FileEntry {
  kind: 'file'
  path: string
  size: number | null
  /** Executable by its owner on the sending side (the receiver sets the executable bits where it can read) */
  exec: boolean
  /** Sender only: where the bytes come from ('-': stdin) */
  source?: string
}

export interface DirEntry {
  kind: 'dir'
  path: string
}

export type Entry = FileEntry | DirEntry

export interface Manifest {
  entries: Entry[]
  /** Sum of the files' sizes, null when a stream's size is unknown */
  total: number | null
}

/** Most entries in one offer (the offer is one JSON line of at most MAX_OFFER_LINE bytes) */
export const MAX_ENTRIES = 100_000
export const MAX_OFFER_LINE = 16 << 20
/** Longest relative path, in UTF-8 bytes */
const MAX_PATH_BYTES = 4000

export function fileEntries (m: Manifest): FileEntry[] {
  return m.entries.filter((e): e is FileEntry => e.kind === 'file')
}

/** The first component of an entry's path: what lands directly in the receiver's directory */
export function topOf (p: string): string {
  const slash = p.indexOf('/')
  return slash < 0 ? p : p.slice(0, slash)
}

/**
 * The name a top-level item is offered under: its base name, checked here as the receiver will check it, so a
 * name every receiver refuses (".bashrc") fails before the code is spent
 */
export function sendableName (file: string): string {
  try {
    return receivedName(path.basename(path.resolve(file)))
  } catch (e) {
    if (!(e instanceof UnsafeNameError)) throw e
    throw new CliError('ERR_UNSAFE_NAME', `cannot send ${file}: receivers refuse the name "${e.shown}": ${e.why}; copy it to a name without that first`)
  }
}

/**
 * The entries for PATHS: files as themselves, directories walked depth-first in name order (empty ones kept).
 * Inside a directory, symbolic links, special files and names every receiver refuses (".git") are skipped, each
 * with a `warn` line. `stdinName`: the name stdin ('-') is offered under
 */
export async function walk (paths: readonly string[], warn: (line: string) => void, stdinName = 'stdin'): Promise<Manifest> {
  const entries: Entry[] = []
  const tops = new Set<string>()
  /** Paths as a receiver compares them (one name on case-insensitive file systems too) */
  const taken = new Set<string>()
  let total: number | null = 0
  const add = (e: Entry): void => {
    if (entries.length >= MAX_ENTRIES) throw new CliError('ERR_TOO_MANY', `more than ${MAX_ENTRIES} files and directories: send them as an archive`)
    entries.push(e)
    if (e.kind === 'file') total = e.size === null || total === null ? null : total + e.size
  }
  const visit = async (local: string, rel: string): Promise<void> => {
    const names = (await fs.promises.readdir(local)).sort()
    for (const name of names) {
      const child = path.join(local, name)
      const st = await fs.promises.lstat(child)
      let clean: string
      try {
        clean = receivedName(name)
      } catch (e) {
        if (!(e instanceof UnsafeNameError)) throw e
        warn(`skipped ${child}: receivers refuse its name: ${e.why}`)
        continue
      }
      const childRel = `${rel}/${clean}`
      if (taken.has(pathKey(childRel))) {
        warn(`skipped ${child}: another entry has the same name (ignoring case or the characters replaced with '_')`)
        continue
      }
      if (st.isDirectory() || st.isFile()) taken.add(pathKey(childRel))
      if (st.isDirectory()) {
        add({ kind: 'dir', path: childRel })
        await visit(child, childRel)
      } else if (st.isFile()) {
        add({ kind: 'file', path: childRel, size: st.size, exec: (st.mode & 0o100) !== 0, source: child })
      } else {
        warn(`skipped ${child}: ${st.isSymbolicLink() ? 'a symbolic link (links are not followed)' : 'not a regular file or directory'}`)
      }
    }
  }
  for (const p of paths) {
    const name = p === '-' ? receivedName(stdinName) : sendableName(p)
    if (tops.has(pathKey(name))) throw new CliError('ERR_DUPLICATE_NAME', `two of the paths to send are named ${name}: the receiver would get only one`)
    tops.add(pathKey(name))
    taken.add(pathKey(name))
    if (p === '-') {
      add({ kind: 'file', path: name, size: null, exec: false, source: '-' })
      continue
    }
    // What the user named is followed (as `cp` does); links found inside directories are not
    const st = fs.statSync(p, { throwIfNoEntry: false })
    if (st === undefined) throw new CliError('ENOENT', `${p}: no such file or directory`)
    if (st.isDirectory()) {
      add({ kind: 'dir', path: name })
      await visit(p, name)
    } else if (st.isFile()) {
      add({ kind: 'file', path: name, size: st.size, exec: (st.mode & 0o100) !== 0, source: p })
    } else {
      throw new CliError('ENOENT', `${p} is not a regular file or directory`)
    }
  }
  return { entries, total }
}

/** The manifest as the offer carries it */
export function offerEntries (m: Manifest): object[] {
  return m.entries.map(e => e.kind === 'dir' ? { path: e.path, dir: true } : { path: e.path, size: e.size, ...(e.exec ? { x: true } : {}) })
}

/** A path as names are compared: one name on case-insensitive file systems too */
function pathKey (p: string): string {
  return p.normalize('NFC').toLowerCase()
}

function invalid (why: string): CliError {
  return new CliError('ERR_TRANSFER_PROTOCOL', `the sender's offer is invalid: ${why}`)
}

/**
 * The sender's entries, checked: every path component a valid name (made safe as a single name is), no
 * duplicates (after that cleaning), each entry inside a directory listed before it, sizes non-negative safe
 * integers adding up to `total`; a size of null (a stream) only as the one entry. Throws ERR_UNSAFE_NAME or
 * ERR_TRANSFER_PROTOCOL: one bad entry refuses the whole offer
 */
export function readManifest (rawEntries: unknown, rawTotal: unknown): Manifest {
  if (!Array.isArray(rawEntries) || rawEntries.length === 0) throw invalid('no entries')
  if (rawEntries.length > MAX_ENTRIES) throw invalid(`more than ${MAX_ENTRIES} entries`)
  const entries: Entry[] = []
  const seen = new Set<string>()
  const dirs = new Set<string>()
  let total = 0
  for (const raw of rawEntries as Array<{ path?: unknown, size?: unknown, dir?: unknown, x?: unknown } | null>) {
    if (typeof raw?.path !== 'string') throw invalid('an entry without a path')
    if (Buffer.byteLength(raw.path) > MAX_PATH_BYTES) throw invalid(`a path longer than ${MAX_PATH_BYTES} bytes`)
    if (raw.path.startsWith('/') || raw.path.includes('\\') || /^[a-z]:/i.test(raw.path)) {
      throw receivedNameError(raw.path, 'it is an absolute path')
    }
    const clean = raw.path.split('/').map(part => componentName(part, raw.path as string)).join('/')
    const key = pathKey(clean)
    if (seen.has(key)) throw invalid(`two entries are named ${clean}`)
    seen.add(key)
    const parent = clean.includes('/') ? clean.slice(0, clean.lastIndexOf('/')) : null
    if (parent !== null && !dirs.has(parent)) throw invalid(`${clean} comes before its directory`)
    if (raw.dir === true) {
      dirs.add(clean)
      entries.push({ kind: 'dir', path: clean })
      continue
    }
    const size = raw.size
    if (size === null && rawEntries.length === 1) {
      entries.push({ kind: 'file', path: clean, size: null, exec: false })
      return { entries, total: null }
    }
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`a bad size for ${clean}`)
    total += size
    entries.push({ kind: 'file', path: clean, size, exec: raw.x === true })
  }
  if (rawTotal !== total) throw invalid('the total is not the sum of the sizes')
  if (!Number.isSafeInteger(total)) throw invalid('the total is too large')
  return { entries, total }
}

/** One component of a path, checked as a name; the error shows the whole path */
function componentName (part: string, whole: string): string {
  try {
    return receivedName(part)
  } catch (e) {
    if (!(e instanceof UnsafeNameError)) throw e
    throw new UnsafeNameError(peerText(whole, 80), e.why)
  }
}

/** The usual refusal when the usual rules already refuse `name`, else `why`; the name shown made safe to print */
function receivedNameError (name: string, why: string): UnsafeNameError {
  try {
    receivedName(name)
  } catch (e) {
    if (e instanceof UnsafeNameError) return e
  }
  return new UnsafeNameError(peerText(name, 80), why)
}

/** The top-level names of the offer, in order */
export function topNames (m: Manifest): string[] {
  return [...new Set(m.entries.map(e => topOf(e.path)))]
}

/**
 * The offer in a few words, for the question and the summary: `"a.bin" (3.00 MB)` for one file,
 * `"photos" (12 files in 3 directories, 40.00 MB)`, `"a.txt", "b.txt" (2 files, 10 bytes)`
 */
export function describe (m: Manifest): string {
  const tops = topNames(m)
  const files = fileEntries(m).length
  const dirs = m.entries.length - files
  const names = tops.slice(0, 3).map(n => `"${n}"`).join(', ') + (tops.length > 3 ? ` and ${tops.length - 3} more` : '')
  const size = m.total === null ? 'size unknown' : humanBytes(m.total)
  if (dirs === 0 && files === 1) return `${names} (${size})`
  return `${names} (${countText(files, dirs)}, ${size})`
}

/** "3 files", "1 file in 2 directories" */
export function countText (files: number, dirs: number): string {
  const f = `${files} file${files === 1 ? '' : 's'}`
  return dirs === 0 ? f : `${f} in ${dirs} director${dirs === 1 ? 'y' : 'ies'}`
}
