// Network namespaces for tests that need a real kernel path off loopback (root only). Names carry the test
// process's pid, so two runs on one host (a session and a CI run) never share a namespace; a run that died leaves
// its namespaces behind, and the next run of the same file removes them.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'child_process'
import * as readline from 'readline'

import { root } from './utp'

/** Run a command, throwing with its output when it fails */
export function sh (...args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: 'pipe' })
}

/** Run a command inside namespace `ns` */
export function nsSh (ns: string, ...args: string[]): void {
  sh('ip', 'netns', 'exec', ns, ...args)
}

/** This process's name for namespace `name` of a test file: `${name}-${pid}` */
export function nsName (name: string): string {
  return `${name}-${process.pid}`
}

/** Delete this process's namespaces named `names` (as given to nsName), and those a process that is gone left
 * behind (their links go with them) */
export function removeNamespaces (...names: string[]): void {
  const listed = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0])
  for (const ns of listed) {
    const m = /^(.+)-(\d+)$/.exec(ns)
    if (m === null || !names.includes(m[1])) continue
    if (Number(m[2]) !== process.pid && alive(Number(m[2]))) continue // another run's, in use
    try {
      sh('ip', 'netns', 'del', ns)
    } catch {
      // gone meanwhile
    }
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * A node script run in a namespace (argv[1]: `arg` as JSON). `line` resolves with the first JSON line it prints;
 * `lines` holds every line printed so far, parsed; `exited` resolves with its exit code
 */
export function runIn<T> (ns: string, script: string, arg: unknown = null): { child: ChildProcessWithoutNullStreams, line: Promise<T>, lines: unknown[], exited: Promise<number | null> } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, JSON.stringify(arg)], { cwd: root })
  // Listened for from the start: a script may end before the test gets round to waiting for it
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const lines: unknown[] = []
  const line = new Promise<T>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (l) => {
      lines.push(JSON.parse(l))
      if (lines.length === 1) resolve(lines[0] as T)
    })
    child.once('exit', (code) => reject(new Error(`script in ${ns} exited with ${String(code)}: ${stderr}`)))
  })
  return { child, line, lines, exited }
}

/** Kill what is still running of `children` (a test that failed half-way) */
export function killAll (...children: ChildProcessWithoutNullStreams[]): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill()
}

// Listens on `bind` and reads one connection while sending `perMs` datagrams every millisecond to `to` (a port or
// network that answers each with an ICMP error). Prints its port, then the bytes it got, the reports it counted and
// the errors it saw, or the first error as soon as it comes
const ICMP_READER = `
setTimeout(() => process.exit(3), 25000).unref()
const Node = require(process.cwd())
const { options, bind, to, perMs } = JSON.parse(process.argv[1])
const errors = []
const fail = (what) => (e) => {
  console.log(JSON.stringify({ errors: [what + ' ' + e.code] }))
  process.exit(1)
}
const node = new Node(options, (s) => {
  let bytes = 0
  s.on('error', fail('socket'))
  s.on('data', (d) => { bytes += d.length })
  s.on('end', () => {
    clearInterval(drawing)
    console.log(JSON.stringify({ bytes, unreachable: node.stats().unreachable, errors }))
    s.end()
    node.close()
  })
})
node.on('error', fail('node'))
const udp = node.getUdpSocket()
udp.on('error', fail('udp'))
const drawing = setInterval(() => { for (let i = 0; i < perMs; i++) udp.send('anyone?', to.port, to.host) }, 1)
node.bindAsync(0, bind).then(() => node.listenAsync()).then(() => console.log(JSON.stringify({ port: node.address().port })))
`

// Connects to `host`:`port`, sends `bytes`, then waits for the other side's end
const WRITER = `
setTimeout(() => process.exit(3), 25000).unref()
const Node = require(process.cwd())
const { port, host, bytes } = JSON.parse(process.argv[1])
const node = new Node()
const s = node.connect(port, host)
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(1) })
s.resume()
s.end(Buffer.alloc(bytes, 7))
s.on('close', () => { console.log(JSON.stringify({ done: true })); node.close() })
`

export interface IcmpReading { bytes?: number, unreachable?: number, errors?: string[] }

/**
 * A node in `readerNs` (bound to `bind`, with `options`) receives `bytes` from a node in `writerNs` while it sends
 * `perMs` datagrams a millisecond to `to`, each drawing an ICMP error. What the reader saw, once it has ended
 */
export async function receiveWhileDrawingIcmp (readerNs: string, writerNs: string, a: { options: object, bind: string, to: { host: string, port: number }, perMs: number, bytes: number }): Promise<IcmpReading | undefined> {
  const reader = runIn<{ port?: number, errors?: string[] }>(readerNs, ICMP_READER, a)
  let writer: ReturnType<typeof runIn> | undefined
  try {
    const first = await reader.line
    if (first.errors !== undefined) return first
    writer = runIn(writerNs, WRITER, { port: first.port, host: a.bind, bytes: a.bytes })
    await reader.exited
    return (reader.lines as IcmpReading[]).find((l) => l.errors !== undefined)
  } finally {
    killAll(reader.child, ...(writer === undefined ? [] : [writer.child]))
  }
}
