// Test-side helpers for the NAT lab (test/natlab/lab.sh): bring labs up and down, run processes inside
// the lab's namespaces, and clean up after them. Only processes started here, or living in the lab's own
// namespaces (lab.sh down), are ever killed.
import { spawn, spawnSync, type ChildProcess } from 'child_process'
import { createHash } from 'crypto'
import { createReadStream } from 'fs'
import * as path from 'path'

export const LAB_DIR = __dirname
export const LAB_SH = path.join(LAB_DIR, 'lab.sh')
/**
 * Namespace prefix of this process's labs. Labs with different prefixes are independent, so a per-process
 * prefix lets two test runs on one machine (two sessions sharing it) each have their own lab
 */
export const PREFIX = process.env.NATLAB_PREFIX ?? `upr-t${process.pid}`
const env = { ...process.env, NATLAB_PREFIX: PREFIX }
const NODES = ['hostA', 'hostB', 'inet', 'natA', 'natB']
export const SERVER_IP = '203.0.113.10'
/** Addresses of inet for the lab's DHT, one per node (lab.sh says why) */
export const DHT_IPS = Array.from({ length: 40 }, (_, i) => `203.0.113.${100 + i}`)
export type LabNode = 'hostA' | 'hostB' | 'inet' | 'natA' | 'natB'

/** Whether network namespaces can be made here (root on Linux and `ip netns add` works) */
export function labSupport (): { ok: true } | { ok: false, reason: string } {
  if (process.platform !== 'linux') return { ok: false, reason: `platform is ${process.platform}, not linux` }
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'not running as root' }
  const probe = `${PREFIX}-probe-${process.pid}`
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' })
  if (add.error !== undefined) return { ok: false, reason: `cannot run ip: ${add.error.message}` }
  if (add.status !== 0) return { ok: false, reason: `ip netns add failed: ${add.stderr.trim()}` }
  spawnSync('ip', ['netns', 'del', probe])
  return { ok: true }
}

/** What lab.sh needs beyond namespaces; missing tools are a setup error (install-deps.sh), not a skip */
export function missingTools (): string[] {
  return ['nft', 'iptables', 'python3'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0)
}

/** Runs lab.sh synchronously; throws with its stderr on failure */
export function lab (...args: string[]): string {
  const r = spawnSync('bash', [LAB_SH, ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'], env })
  if (r.error !== undefined) throw new Error(`lab.sh ${args.join(' ')}: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`lab.sh ${args.join(' ')} exited ${String(r.status)}: ${r.stderr}${r.stdout}`)
  return r.stdout
}

function allNamespaces (): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  return (r.stdout ?? '').split('\n').map((l) => l.split(' ')[0]).filter((n) => n !== '')
}

/** Namespaces of this process's lab that exist right now */
export function labNamespaces (): string[] {
  return allNamespaces().filter((n) => n.startsWith(`${PREFIX}-`) && NODES.includes(n.slice(PREFIX.length + 1)))
}

/** Tears down labs left by test processes that died without cleaning up (upr-t<pid>-* of a dead pid) */
export function reapStaleLabs (): string[] {
  const stale = new Set<string>()
  for (const n of allNamespaces()) {
    const m = /^(upr-t(\d+))-(hostA|hostB|inet|natA|natB)$/.exec(n)
    if (m === null || Number(m[2]) === process.pid) continue
    try {
      process.kill(Number(m[2]), 0)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') stale.add(m[1])
    }
  }
  for (const prefix of stale) spawnSync('bash', [LAB_SH, 'down'], { env: { ...process.env, NATLAB_PREFIX: prefix }, stdio: 'ignore', timeout: 60_000 })
  return [...stale]
}

export interface Exit { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string, ms: number }

/** A process running inside a lab namespace */
export class LabProcess {
  stdout = ''
  stderr = ''
  readonly exited: Promise<Exit>
  private readonly child: ChildProcess
  private readonly timer: NodeJS.Timeout

  constructor (readonly node: LabNode, readonly argv: string[], timeoutMs: number) {
    const t0 = Date.now()
    // `ip netns exec` execs the command, so child.pid is the process inside the namespace
    this.child = spawn('ip', ['netns', 'exec', `${PREFIX}-${node}`, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => { this.stdout += d })
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => { this.stderr += d })
    this.timer = setTimeout(() => {
      this.stderr += `\n[natlab: killed after ${timeoutMs} ms]`
      this.kill('SIGKILL')
    }, timeoutMs)
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null): void => {
        clearTimeout(this.timer)
        running.delete(this)
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr, ms: Date.now() - t0 })
      }
      this.child.once('error', (err) => {
        this.stderr += `\n[natlab: spawn failed: ${err.message}]`
        done(null, null)
      })
      this.child.once('close', done)
    })
    running.add(this)
  }

  get pid (): number | undefined { return this.child.pid }

  kill (signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
  }

  /** Resolves once a line of stdout matches */
  async waitFor (re: RegExp, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs
    while (!re.test(this.stdout)) {
      if (this.child.exitCode !== null || Date.now() > end) {
        throw new Error(`${this.argv.join(' ')} in ${this.node}: no ${String(re)} within ${timeoutMs} ms\n${this.stdout}${this.stderr}`)
      }
      await sleep(25)
    }
  }

  /** The last JSON line it printed (undefined if none) */
  json<T = Record<string, unknown>> (): T | undefined {
    return lastJson<T>(this.stdout)
  }
}

const running = new Set<LabProcess>()

export function runIn (node: LabNode, argv: string[], timeoutMs = 60_000): LabProcess {
  return new LabProcess(node, argv, timeoutMs)
}

/** node(1) with a script, inside a namespace */
export function nodeIn (node: LabNode, script: string, args: string[], timeoutMs = 60_000): LabProcess {
  return runIn(node, [process.execPath, script, ...args], timeoutMs)
}

/** Kill every process started with runIn() that is still alive */
export function killAll (): void {
  for (const p of running) p.kill('SIGKILL')
  running.clear()
}

export function lastJson<T = Record<string, unknown>> (text: string): T | undefined {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{') && l.endsWith('}'))
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      return JSON.parse(lines[i]) as T
    } catch {}
  }
  return undefined
}

/** Polls until something listens on UDP `port` inside `node` */
export async function waitUdpListening (node: LabNode, port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const r = spawnSync('ip', ['netns', 'exec', `${PREFIX}-${node}`, 'ss', '-Hlun', `sport = :${port}`], { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim() !== '') return
    if (Date.now() > end) throw new Error(`nothing listens on udp port ${port} in ${node} after ${timeoutMs} ms`)
    await sleep(50)
  }
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export function sha256File (file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256')
    createReadStream(file).on('data', (d) => h.update(d)).once('end', () => resolve(h.digest('hex'))).once('error', reject)
  })
}
