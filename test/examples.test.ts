// Every program in examples/ runs as a user would run it (`node examples/<name>.js`, loopback only) and
// prints what its header comment promises. A new example without a case here fails the first test.
import { spawn, type ChildProcess } from 'child_process'
import { randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'

import { root } from './helpers/utp'

const covered = ['chat-across-nats.js', 'demo.js', 'echo-client.js', 'echo-server.js', 'file-transfer.js', 'raw-datagrams.js']

interface Run { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** A running example (or the CLI) with its output so far */
class Program {
  readonly child: ChildProcess
  stdout = ''
  stderr = ''
  readonly exited: Promise<Run>

  constructor (script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [path.join(root, script), ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe']
    })
    running.add(this)
    this.child.stdout?.on('data', (d: Buffer) => { this.stdout += d.toString() })
    this.child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        running.delete(this)
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr })
      })
    })
  }

  /** Resolves with the first match of `re` in stdout; rejects if the program exits first or after `ms` */
  async waitFor (re: RegExp, ms = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms
    for (;;) {
      const m = re.exec(this.stdout)
      if (m !== null) return m
      if (this.child.exitCode !== null || this.child.signalCode !== null || Date.now() > deadline) {
        throw new Error(`no ${String(re)} in the output of ${this.child.spawnargs.slice(1).join(' ')}:\n${this.stdout}\n${this.stderr}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
}

const running = new Set<Program>()
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-examples-'))

afterEach(() => {
  for (const p of running) p.child.kill('SIGKILL')
})
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** Run to completion; fails the test on a non-zero exit, showing both streams */
async function run (script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const p = new Program(script, args, env)
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 30_000)
  const r = await p.exited
  clearTimeout(timer)
  expect(r.code, `${script} ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0)
  return r.stdout
}

describe('examples', () => {
  it('each file in examples/ has a test here', () => {
    expect(fs.readdirSync(path.join(root, 'examples')).filter(f => f.endsWith('.js')).sort()).toEqual(covered)
  })

  it('demo.js (npm run demo): a greeting and a bulk transfer on loopback', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    expect(pkg.scripts.demo).toBe('node examples/demo.js')
    const out = await run('examples/demo.js', [], { DEMO_MIB: '2' })
    expect(out).toMatch(/^server: listening on 127\.0\.0\.1:\d+ \(uTP over UDP\)$/m)
    expect(out).toContain(`server: received ${2 << 20} bytes from 127.0.0.1:`)
    expect(out).toContain('client: server says "thanks, all arrived"')
    expect(out).toMatch(/^client: 2 MiB delivered in [\d.]+ s/m)
    expect(out).toContain('done: both nodes closed')
  })

  it('echo-server.js and echo-client.js: messages come back; Ctrl-C closes the server', async () => {
    const server = new Program('examples/echo-server.js', ['0', '127.0.0.1'])
    const port = (await server.waitFor(/^echo server listening on 127\.0\.0\.1:(\d+)$/m))[1]
    const out = await run('examples/echo-client.js', [port, '127.0.0.1', 'first', 'second line'])
    expect(out).toMatch(new RegExp(`^connected to 127\\.0\\.0\\.1:${port} from port \\d+$`, 'm'))
    expect(out).toContain('echo: first\necho: second line\n')
    expect(out).toMatch(/^rtt [\d.]+ ms, \d+ packets sent$/m)
    expect(await run('examples/echo-client.js', [port])).toContain('echo: hello\necho: over\necho: uTP\n')
    await server.waitFor(/closed after echoing 18 bytes/)
    server.child.kill('SIGINT')
    const r = await server.exited
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/connected\n/)
    expect(r.stdout).toContain('closed after echoing 15 bytes')
    expect(r.stdout.trimEnd().split('\n').pop()).toBe('echo server closed')
  })

  it('raw-datagrams.js: ping/pong datagrams and a uTP stream on the same port', async () => {
    const out = await run('examples/raw-datagrams.js')
    const ports = /^A on port (\d+), B on port (\d+); B's datagram socket is on port (\d+) too$/m.exec(out)
    expect(ports).not.toBeNull()
    const [, a, b, bUdp] = ports as RegExpExecArray
    expect(bUdp).toBe(b)
    for (const i of [1, 2, 3]) {
      expect(out).toContain(`A: datagram "ping #${i}" from 127.0.0.1:${b} (7 bytes)`)
      expect(out).toContain(`B: sent 7 bytes, got "pong #${i}" back from port ${a}`)
    }
    expect(out).toContain('B: uTP reply "A UTP STREAM SHARES THE PORT"')
    expect(out).toContain('both nodes closed')
  })

  it('file-transfer.js: the loopback demo, then send and receive as two processes', async () => {
    const demo = await run('examples/file-transfer.js', [], { DEMO_MIB: '2' })
    expect(demo).toMatch(/^sent random\.bin: 2\.0 MiB in [\d.]+ s/m)
    expect(demo).toMatch(/^received random\.bin: 2097152 bytes, sha256 [0-9a-f]{64}$/m)
    expect(demo).toContain('receiver confirmed the sha256')

    const inbox = fs.mkdtempSync(path.join(tmp, 'inbox-'))
    const src = path.join(tmp, 'payload.bin')
    fs.writeFileSync(src, randomBytes(1_500_000))
    const receiver = new Program('examples/file-transfer.js', ['receive', '--port', '0', '--host', '127.0.0.1', '--out', inbox])
    const port = (await receiver.waitFor(/^receiving on 127\.0\.0\.1:(\d+)$/m))[1]
    const sent = await run('examples/file-transfer.js', ['send', src, `127.0.0.1:${port}`])
    expect(sent).toMatch(/^sent payload\.bin: 1\.4 MiB in [\d.]+ s \([\d.]+ MiB\/s\), sha256 [0-9a-f]{64}$/m)
    expect(sent).toContain('receiver confirmed the sha256')
    const r = await receiver.exited
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`received ${path.join(inbox, 'payload.bin')}: 1500000 bytes`)
    expect(fs.readFileSync(path.join(inbox, 'payload.bin')).equals(fs.readFileSync(src))).toBe(true)
  })

  it('chat-across-nats.js: the loopback demo with a local RendezvousServer', async () => {
    const out = await run('examples/chat-across-nats.js')
    expect(out).toMatch(/^local rendezvous server on 127\.0\.0\.1:\d+/m)
    expect(out).toMatch(/^alice and bob met under "demo-\d+": path (lan|direct), alice is the (connect|accept) side$/m)
    expect(out).toContain('bob got <alice> hi bob, this took the path rendezvous found')
    expect(out).toContain('bob got <alice> the server only introduced us')
    expect(out).toContain('alice got <bob> hello alice')
    expect(out).toContain('chat over, everything closed')
  })

  it('chat-across-nats.js: two processes meet through `utp-punch-rs rendezvous` and chat over stdin', async () => {
    const server = new Program('bin/utp-punch-rs.js', ['rendezvous', '--port', '0', '--host', '127.0.0.1'])
    const port = (await server.waitFor(/^rendezvous server listening on 127\.0\.0\.1:(\d+)$/m))[1]
    const common = ['--server', `127.0.0.1:${port}`, '--code', `chat-${randomBytes(4).toString('hex')}`, '--host', '127.0.0.1']
    const alice = new Program('examples/chat-across-nats.js', [...common, '--name', 'alice'])
    const bob = new Program('examples/chat-across-nats.js', [...common, '--name', 'bob'])
    await alice.waitFor(/^connected to 127\.0\.0\.1:\d+ \(path: (lan|direct)\)/m)
    await bob.waitFor(/^connected to 127\.0\.0\.1:\d+ \(path: (lan|direct)\)/m)
    alice.child.stdin?.write('hello bob\n')
    await bob.waitFor(/^<alice> hello bob$/m)
    bob.child.stdin?.write('hi alice\n')
    await alice.waitFor(/^<bob> hi alice$/m)
    alice.child.stdin?.end()
    const [a, b] = await Promise.all([alice.exited, bob.exited])
    expect(a.code, a.stdout + a.stderr).toBe(0)
    expect(b.code, b.stdout + b.stderr).toBe(0)
    expect(b.stdout).toContain('the peer left')
    server.child.kill('SIGTERM')
    expect((await server.exited).code).toBe(0)
  })
})
