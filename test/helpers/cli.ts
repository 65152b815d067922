// Running the utp-punch-rs command as users run it: `node bin/utp-punch-rs.js ...` child processes
import { spawn, type ChildProcess } from 'child_process'
import * as path from 'path'

import { mutantsBridge } from './mutants-child'
import { root } from './utp'

export const BIN = path.join(root, 'bin', 'utp-punch-rs.js')

/**
 * What a run printed. The status lines (bin/status.ts: one per change of state, on stderr; {"event":"status"}
 * lines on stdout with --json) are taken out of `stdout` and `stderr` into `status`, so a test of a message
 * compares the message; test/cli-status.test.ts checks the status lines themselves
 */
export interface Run { code: number | null, stdout: string, stderr: string, status: string[] }

/** The sentences bin/status.ts starts its lines with (written here by hand: a changed sentence fails a test) */
const STATUS_LINE = /^(contacting the rendezvous server .+ \(from .+\)|joining the BitTorrent DHT through .+|registered, waiting for the peer|published on the DHT, waiting for the peer|peer found, checking that it holds the same code|code confirmed, trying paths: .*|no direct path \(.*\), going through the server's relay|connected via \S+ path to \S+, (encrypted|not encrypted)|waiting for the receiver to accept|(sending|receiving) .+ \((size unknown|[\d.]+ (bytes|kB|MB|GB|TB|PB|EB))\)|done)$/

/** Splits the status lines out of a run's output */
export function splitStatus (stdout: string, stderr: string): { stdout: string, stderr: string, status: string[] } {
  const status: string[] = []
  const keepErr = stderr.split(/(?<=\n)/).filter((line) => {
    if (!STATUS_LINE.test(line.replace(/\n$/, ''))) return true
    status.push(line.replace(/\n$/, ''))
    return false
  })
  const keepOut = stdout.split(/(?<=\n)/).filter((line) => {
    if (!line.startsWith('{"event":"status"')) return true
    status.push(line.replace(/\n$/, ''))
    return false
  })
  return { stdout: keepOut.join(''), stderr: keepErr.join(''), status }
}

/** Starts the command (stdin closed: never a terminal) in `cwd` (default: the package root) */
export function start (args: string[], cwd = root, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const bridge = mutantsBridge(env)
  const child = spawn(process.execPath, [...bridge?.execArgv ?? [], BIN, ...args], {
    cwd, env: bridge?.env ?? env, stdio: ['ignore', 'pipe', 'pipe']
  })
  if (bridge !== undefined) child.once('exit', bridge.collect)
  return child
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
      resolve({ code, ...splitStatus(stdout, stderr) })
    })
  })
}

export interface CliServer { child: ChildProcess, addr: string, exit: Promise<Run> }

/** `utp-punch-rs rendezvous` on a free loopback port with `args` added; resolves once it printed its address */
export async function startRendezvous (args: string[] = []): Promise<CliServer> {
  const child = start(['rendezvous', '--port', '0', '--host', '127.0.0.1', ...args])
  const firstLine = await new Promise<string>((resolve, reject) => {
    let buf = ''
    const onData = (d: Buffer): void => {
      buf += d.toString()
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      child.stdout?.removeListener('data', onData)
      resolve(buf.slice(0, nl))
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`the server exited with ${String(code)}`)))
  })
  const m = /^rendezvous server listening on 127\.0\.0\.1:(\d+)$/.exec(firstLine)
  if (m === null) throw new Error(`unexpected first line from the server: ${firstLine}`)
  // The test file stops it (SIGTERM); the bound only catches a server left behind. finish()'s default of 30 s
  // SIGKILLed it in the middle of any file that ran longer, and every rendezvous after that timed out
  return { child, addr: `127.0.0.1:${m[1]}`, exit: finish(child, 10 * 60_000) }
}
