// receive's --out directory, checked before anything connects: a sender should not offer a file (and the
// receiver's user accept it) only for the write to fail, and "not a directory" for a typo in a path
// that does not exist at all sends the user looking for the wrong problem.

import * as fs from 'fs'

import { CliError } from './args'

/** Throws a CliError (exit 1) saying why `dir` cannot take the file: missing, not a directory, or not writable */
export function checkOutDir (dir: string): void {
  const st = fs.statSync(dir, { throwIfNoEntry: false })
  if (st === undefined) throw new CliError('ENOENT', `--out ${dir} does not exist: create it first, or choose another directory`)
  if (!st.isDirectory()) throw new CliError('ENOTDIR', `--out ${dir} is not a directory`)
  try {
    // W for the new entries, X to reach them
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK)
  } catch {
    throw new CliError('EACCES', `--out ${dir} is not writable (permission denied)`)
  }
}
