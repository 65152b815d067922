// Running the utp-punch-rs command as users run it: `node bin/utp-punch-rs.js ...` child processes
import { spawn, type ChildProcess } from 'child_process'
import * as path from 'path'

import { root } from './utp'

export const BIN = path.join(root, 'bin', 'utp-punch-rs.js')

export interface Run { code: number | null, stdout: string, stderr: string }

/** Starts the command (stdin closed: never a terminal) in `cwd` (default: the package root) */
export function start (args: string[], cwd = root): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Collects the command's output until it exits; SIGKILL after timeoutMs */
export function finish (child: ChildProcess, timeoutMs = 30_000): Promise<Run> {
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}
