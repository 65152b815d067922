// The CLI's entry, main(), in-process (bin/cli.ts): help, version and every usage error with its exit status and
// where it is written (text or --json); then send and receive meeting through a rendezvous server on loopback in
// this process, with their status, code, summary and JSON lines, a text message, --out -, the same-role refusal,
// a server that does not answer, and a cancel. The same as users run it, in child processes, is in cli.test.ts,
// cli-status.test.ts and cli-cancel.test.ts.
import { createHash } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { PassThrough } from 'stream'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'

import type * as CliModule from '../bin/cli'
import type * as ServerModule from '../lib/server/server'
import { skipCoturn, startCoturn, type Coturn } from './helpers/coturn'
import { requireFromRoot, root, sleep } from './helpers/utp'

const { main, run: runBin } = requireFromRoot('./dist/bin/cli.js') as typeof CliModule
const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-main-'))
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }) })
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version
const sha = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex')

interface Ran { status: number, out: string, err: string }
/** main(argv) with in-memory stdout and stderr (and stdin when given), its output readable while it runs */
function start (argv: string[], stdin?: PassThrough, terminal: 'stderr' | 'stdout' | 'none' = 'none'): { done: Promise<Ran>, out: () => string, err: () => string } {
  // A terminal on stderr: the receiver may ask its question there; on stdout: a text is shown made safe
  const stdout = Object.assign(new PassThrough(), terminal === 'stdout' ? { isTTY: true } : {})
  const stderr = Object.assign(new PassThrough(), terminal === 'stderr' ? { isTTY: true } : {})
  let out = ''
  let err = ''
  stdout.on('data', (d: Buffer) => { out += d.toString() })
  stderr.on('data', (d: Buffer) => { err += d.toString() })
  const done = main(argv, { stdout, stderr: stderr as unknown as NodeJS.WriteStream, ...(stdin === undefined ? {} : { stdin }) }).then(async (status) => {
    await new Promise(resolve => setImmediate(resolve))
    return { status, out, err }
  })
  return { done, out: () => out, err: () => err }
}
const run = async (argv: string[], stdin?: PassThrough): Promise<Ran> => await start(argv, stdin).done
/** Waits until `text()` matches `re`; its first group */
async function seen (text: () => string, re: RegExp): Promise<string> {
  for (let i = 0; i < 1000; i++) {
    const m = re.exec(text())
    if (m !== null) return m[1]
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  throw new Error(`never saw ${String(re)} in ${JSON.stringify(text())}`)
}

/** The SIGINT listeners added since `before` was taken (a running main()'s handler) */
function sigintAddedSince (before: readonly NodeJS.SignalsListener[]): Array<() => void> {
  return process.listeners('SIGINT').filter(l => !before.includes(l)) as Array<() => void>
}

let usageText = ''
let sendHelp = ''
beforeAll(async () => {
  usageText = (await run(['--help'])).out
  sendHelp = (await run(['help', 'send'])).out
})

describe('main: help, version and usage errors', () => {
  it('help and version go to stdout', async () => {
    expect(usageText).toMatch(/^usage: utp-punch-rs /)
    expect(sendHelp).toMatch(/^usage: utp-punch-rs send /)
    expect(await run([])).toEqual({ status: 2, out: usageText, err: '' })
    for (const h of ['--help', '-h', 'help']) expect([h, await run([h])]).toEqual([h, { status: 0, out: usageText, err: '' }])
    for (const v of ['--version', '-v']) expect(await run([v])).toEqual({ status: 0, out: `${version}\n`, err: '' })
    // Only "help" takes a topic
    expect(await run(['--help', 'send'])).toEqual({ status: 0, out: usageText, err: '' })
    expect(await run(['send', '--help'])).toEqual({ status: 0, out: sendHelp, err: '' })
    const receiveHelp = (await run(['help', 'receive'])).out
    expect(receiveHelp).toMatch(/^usage: utp-punch-rs receive /)
    expect(await run(['receive', '-h'])).toEqual({ status: 0, out: receiveHelp, err: '' })
    const natHelp = (await run(['help', 'nat-check'])).out
    expect(natHelp).toMatch(/^usage: utp-punch-rs nat-check /)
    expect(await run(['nat-check', '--help'])).toEqual({ status: 0, out: natHelp, err: '' })
    expect((await run(['rendezvous', '--help'])).out).toMatch(/^usage: utp-punch-rs rendezvous /)
  })

  it('a usage error: the reason and where to read more on stderr, status 2; with --json one line on stdout', async () => {
    expect(await run(['frobnicate'])).toEqual({ status: 2, out: '', err: `utp-punch-rs: unknown command "frobnicate"\n${usageText}\n` })
    expect(await run(['help', 'frobnicate'])).toEqual({ status: 2, out: '', err: `utp-punch-rs: no help for "frobnicate": not a command\n${usageText}\n` })
    expect(await run(['send'])).toEqual({ status: 2, out: '', err: 'utp-punch-rs: send needs a PATH (files, directories, or - for stdin) or --text MESSAGE\nRun `utp-punch-rs send --help` for usage.\n' })
    expect(await run(['send', '--json'])).toEqual({ status: 2, out: '{"ok":false,"code":"ERR_USAGE","message":"send needs a PATH (files, directories, or - for stdin) or --text MESSAGE"}\n', err: '' })
    // --json after "--" is a path, not the option
    expect((await run(['send', '--bogus', '--', '--json'])).err).toBe('utp-punch-rs: unknown option --bogus\nRun `utp-punch-rs send --help` for usage.\n')
  })

  it('each option in the wrong place or form', async () => {
    const usage = async (argv: string[]): Promise<string> => {
      const r = await run(argv)
      expect([argv, r.status, r.out]).toEqual([argv, 2, ''])
      return r.err.split('\n')[0]
    }
    const file = path.join(tmp, 'f.txt')
    fs.writeFileSync(file, 'x')
    for (const only of ['--yes', '--max-size=1', `--out=${tmp}`]) {
      expect(await usage(['send', file, only])).toBe(`utp-punch-rs: ${only.replace(/=.*/, '')} is an option of receive, not send`)
    }
    expect(await usage(['send', file, '--text', 'hi'])).toBe('utp-punch-rs: send --text takes no PATH: the text is the message')
    expect(await usage(['send', '--text', 'x'.repeat(64 * 1024 + 1)])).toBe('utp-punch-rs: --text is longer than 65536 bytes: send it as a file')
    expect(await usage(['send', '-', file])).toBe('utp-punch-rs: send - (stdin) sends stdin alone, not with other paths')
    expect(await usage(['send', file, '--name', 'x'])).toBe('utp-punch-rs: --name names what send - reads from stdin')
    expect(await usage(['receive', 'extra'])).toBe('utp-punch-rs: unexpected argument extra')
    expect(await usage(['receive', '--text', 'x'])).toBe('utp-punch-rs: --text is an option of send, not receive')
    expect(await usage(['receive', '--name', 'x'])).toBe('utp-punch-rs: --name is an option of send, not receive')
    expect(await run(['receive', '--out', '-', '--json', '--code', 'c'])).toEqual({ status: 2, out: '{"ok":false,"code":"ERR_USAGE","message":"--out - writes the data to stdout, where --json would write too: use one of them"}\n', err: '' })
    expect(await usage(['receive', `--out=${tmp}`, '--rendezvous', '127.0.0.1:9'])).toBe('utp-punch-rs: --code CODE is required (the code `send` printed)')
    expect(await usage(['receive', `--out=${tmp}`, '--rendezvous', '127.0.0.1:9', '--code', 'c'])).toMatch(/^utp-punch-rs: receive asks before it writes a file, and nobody can answer here/)
    const noYes = await run(['receive', `--out=${tmp}`, '--rendezvous', '127.0.0.1:9', '--code', 'c', '--json'])
    expect([noYes.status, (JSON.parse(noYes.out) as { message: string }).message]).toEqual([2, expect.stringMatching(/^receive asks before it writes a file, and nobody can answer here \(stdin or stderr is not a terminal, or --json\): pass --yes/)])
    expect(await usage(['send', file, '--rendezvous', 'nohost'])).toBe('utp-punch-rs: --rendezvous must be HOST:PORT, got "nohost" (the port is missing)')
    expect(await usage(['send', file, '--rendezvous', '127.0.0.1:9', '--congestion', 'reno'])).toBe('utp-punch-rs: --congestion must be ledbat or cubic, got reno')
    expect(await usage(['send', file, '--rendezvous', '127.0.0.1:9', '--port', 'x'])).toBe('utp-punch-rs: --port must be a port number 0..65535, got x')
    expect(await usage(['nat-check'])).toBe('utp-punch-rs: nat-check needs --stun HOST:PORT')
    // Each option reaches its own reader, named in its message
    const rv = ['--rendezvous', '127.0.0.1:9']
    expect(await usage(['send', '--text='])).toBe('utp-punch-rs: --text needs a value')
    expect(await usage(['send', '-', '--name='])).toBe('utp-punch-rs: --name needs a value')
    expect(await usage(['receive', '--out='])).toBe('utp-punch-rs: --out needs a value')
    expect(await usage(['receive', `--out=${tmp}`, '--max-size', 'lots'])).toBe('utp-punch-rs: --max-size must be a size such as 500M, 10G or 2GiB, got lots')
    expect(await usage(['send', file, '--rendezvous='])).toBe('utp-punch-rs: --rendezvous needs a value')
    expect(await usage(['send', file, '--dht-bootstrap='])).toBe('utp-punch-rs: --dht-bootstrap needs a value')
    expect(await usage(['send', file, ...rv, '--code='])).toBe('utp-punch-rs: --code needs a value')
    expect(await usage(['send', file, ...rv, '--timeout', 'soon'])).toBe('utp-punch-rs: --timeout must be a duration such as 30, 30s, 500ms or 2m, got soon')
    expect(await usage(['send', file, ...rv, '--idle-timeout', 'soon'])).toBe('utp-punch-rs: --idle-timeout must be a duration such as 30, 30s, 500ms or 2m, got soon')
    // rendezvous parses its own options
    expect(await usage(['rendezvous', '--max-relays', 'x'])).toBe('utp-punch-rs: --max-relays must be a whole number >= 0, got x')
    expect(await usage(['nat-check', '--stun'])).toBe('utp-punch-rs: option --stun needs a value')
    expect(await usage(['nat-check', '--stun='])).toBe('utp-punch-rs: --stun needs a value')
    expect(await usage(['nat-check', '--stun', '127.0.0.1:9', '--port', 'x'])).toBe('utp-punch-rs: --port must be a port number 0..65535, got x')
    // Not a usage error: the directory does not exist (status 1)
    const missing = path.join(tmp, 'nope')
    expect(await run(['receive', `--out=${missing}`])).toEqual({ status: 1, out: '', err: `utp-punch-rs: --out ${missing} does not exist: create it first, or choose another directory\n` })
    expect(await run(['receive', `--out=${missing}`, '--json'])).toEqual({ status: 1, out: `{"ok":false,"code":"ENOENT","message":"--out ${missing} does not exist: create it first, or choose another directory"}\n`, err: '' })
    expect(await run(['send', path.join(tmp, 'none')])).toEqual({ status: 1, out: '', err: `utp-punch-rs: ${path.join(tmp, 'none')}: no such file or directory\n` })
  })
})

describe('the version without package.json, and the bin entry run()', () => {
  it('says "unknown" when no package.json is found', async () => {
    const realFs = requireFromRoot('fs') as typeof fs
    const read = realFs.readFileSync
    const spy = vi.spyOn(realFs, 'readFileSync').mockImplementation(((file: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
      if (String(file).endsWith('package.json')) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' })
      return (read as (...a: unknown[]) => unknown)(file, ...rest)
    }) as never)
    try {
      expect(await run(['--version'])).toEqual({ status: 0, out: 'unknown\n', err: '' })
    } finally {
      spy.mockRestore()
    }
  })

  it('run(): process.argv and the process\'s own streams, the exit status, an exit 2 s later; a failure that escapes main() exits 1', async () => {
    const argv = process.argv
    const exitCode = process.exitCode
    const written: string[] = []
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string) => { written.push(`out:${chunk}`); return true }) as never)
    // (a warning Node prints meanwhile is not ours)
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string) => { if (!String(chunk).startsWith('(node:')) written.push(`err:${chunk}`); return true }) as never)
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never)
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    // (vi.waitFor would advance the fake clock)
    const until = async (ok: () => boolean): Promise<void> => {
      for (let i = 0; i < 1000 && !ok(); i++) await new Promise(resolve => setImmediate(resolve))
    }
    try {
      process.argv = [argv[0], 'utp-punch-rs', 'frobnicate']
      runBin()
      await until(() => process.exitCode === 2)
      expect(process.exitCode).toBe(2)
      expect(written).toEqual([`err:utp-punch-rs: unknown command "frobnicate"\n${usageText}\n`])
      // Whatever still holds the loop does not keep the command alive
      expect(exit).not.toHaveBeenCalled()
      vi.advanceTimersByTime(1999)
      expect(exit).not.toHaveBeenCalled()
      vi.advanceTimersByTime(1)
      expect(exit.mock.calls).toEqual([[2]])
      written.length = 0
      runBin(['--version'])
      await until(() => written.length > 0)
      expect(written).toEqual([`out:${version}\n`])
      // main() itself rejects only when writing its report throws
      written.length = 0
      exit.mockClear()
      stderr.mockImplementationOnce((() => { throw new Error('stderr is gone') }) as never)
      runBin(['frobnicate'])
      await until(() => exit.mock.calls.length > 0)
      expect(exit.mock.calls).toEqual([[1]])
      expect(written).toEqual(['err:utp-punch-rs: stderr is gone\n'])
    } finally {
      vi.useRealTimers()
      process.argv = argv
      process.exitCode = exitCode
      exit.mockRestore()
      stdout.mockRestore()
      stderr.mockRestore()
    }
  })
})

describe('main: send and receive through a rendezvous server in this process', () => {
  let server: ServerModule.RendezvousServer
  let addr = ''
  beforeAll(async () => {
    server = new RendezvousServer({ host: '127.0.0.1', port: 0, http: false, mappingCheck: false, startDelayMs: 20 })
    const a = await server.listen()
    addr = `${a.address}:${a.port}`
  })
  afterAll(async () => { await server.close() })
  let codes = 0
  const newCode = (): string => `${9000 + ++codes}-test-code`
  const outDir = (): string => fs.mkdtempSync(path.join(tmp, 'out-'))

  it('a file: the code, status lines and summaries in text', async () => {
    const file = path.join(tmp, 'hello.txt')
    fs.writeFileSync(file, 'hello')
    const dir = outDir()
    const code = newCode()
    const [s, r] = await Promise.all([
      run(['send', file, '--rendezvous', addr, '--code', code]),
      run(['receive', '--rendezvous', addr, '--code', code, '--yes', '--out', dir, '--no-progress'])
    ])
    expect([s.status, r.status]).toEqual([0, 0])
    expect(fs.readFileSync(path.join(dir, 'hello.txt'), 'utf8')).toBe('hello')
    // On loopback the LAN candidate (an address of this machine) or the direct one wins
    const summary = (verb: string): RegExp => new RegExp(`^${verb}: 5 bytes in \\d+\\.\\d\\d s \\(\\d+\\.\\d\\d MB/s\\) via (lan|direct) path to [0-9.]+:\\d+, encrypted, sha256 ${sha('hello')}\\n$`)
    expect(s.out).toMatch(summary('sent hello\\.txt'))
    expect(r.out).toMatch(summary(`received hello\\.txt -> ${path.join(dir, 'hello.txt').replace(/[.\\/]/g, '\\$&')}`))
    const steps = (err: string): string[] => err.split('\n').filter(l => l !== '').map(l => l.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'ADDR').replace(/via (lan|direct) path/, 'via PATH path'))
    expect(steps(s.err)).toEqual([
      'contacting the rendezvous server ADDR (from --rendezvous)',
      'registered, waiting for the peer',
      'peer found, checking that it holds the same code',
      // This machine's LAN addresses (v4 and v6) and the address the server saw
      expect.stringMatching(/^code confirmed, trying paths: ADDR \(lan\)(, \S+ \(lan\))*, ADDR \(public\)$/),
      'connected via PATH path to ADDR, encrypted',
      'waiting for the receiver to accept',
      'sending hello.txt (5 bytes)',
      'done'
    ])
    expect(steps(r.err)).toEqual([
      'contacting the rendezvous server ADDR (from --rendezvous)',
      'registered, waiting for the peer',
      'peer found, checking that it holds the same code',
      expect.stringMatching(/^code confirmed, trying paths: /),
      'connected via PATH path to ADDR, encrypted',
      'receiving hello.txt (5 bytes)',
      'done'
    ])
  })

  it('a generated code, printed with the command the receiver runs; --json lines on both sides', async () => {
    const file = path.join(tmp, 'data.bin')
    fs.writeFileSync(file, Buffer.alloc(100_000, 3))
    const dir = outDir()
    const sender = start(['send', file, '--rendezvous', addr, '--json'])
    // The sender's first line on stdout is its code
    const code = await seen(sender.out, /"code":"([^"]+)"/)
    const r = await run(['receive', '--rendezvous', addr, '--code', code, '--yes', '--out', dir, '--json'])
    const s = await sender.done
    const lines = (out: string): Array<Record<string, unknown>> => out.trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    const sent = lines(s.out)
    expect(sent[0]).toEqual({ event: 'code', code: code, command: `utp-punch-rs receive --rendezvous ${addr} --code ${code}` })
    // Progress lines come with time, so they are left out here (cli-progress.test.ts has them)
    expect(sent.filter(l => l.event !== 'progress').map(l => l.event === 'status' ? `status:${String(l.state)}` : l.event)).toEqual([
      'code', 'status:contacting', 'waiting', 'status:registered', 'status:paired', 'status:punching', 'status:connected', 'connected',
      'status:offering', 'status:transferring', 'status:done', 'sent'
    ])
    expect(sent[2]).toEqual({ event: 'waiting', server: addr, port: expect.any(Number) })
    const final = lines(r.out).at(-1) as Record<string, unknown>
    expect(final).toMatchObject({ ok: true, event: 'received', name: 'data.bin', file: path.join(dir, 'data.bin'), saved: [path.join(dir, 'data.bin')], files: 1, directories: 0, bytes: 100_000, resumedFrom: 0, path: expect.stringMatching(/^(lan|direct)$/), encrypted: true, sha256: sha(Buffer.alloc(100_000, 3)) })
    expect([s.status, r.status, s.err, r.err]).toEqual([0, 0, '', ''])
  })

  it('a text message is printed by the receiver; --out - writes the data alone to stdout; stdin is sent under --name', async () => {
    const code = newCode()
    const [s, r] = await Promise.all([
      run(['send', '--text', 'hi there', '--rendezvous', addr, '--code', code, '--quiet']),
      run(['receive', '--rendezvous', addr, '--code', code, '--yes', '--quiet'])
    ])
    expect([s.status, s.out, s.err, r.status, r.out, r.err]).toEqual([0, expect.stringMatching(/^sent a text message \(8 bytes\) via (lan|direct) path to [0-9.]+:\d+, encrypted\n$/), '', 0, 'hi there\n', ''])
    const code2 = newCode()
    const stdin = new PassThrough()
    stdin.end('from a pipe')
    const [s2, r2] = await Promise.all([
      run(['send', '-', '--name', 'notes.txt', '--rendezvous', addr, '--code', code2, '--quiet'], stdin),
      run(['receive', '--rendezvous', addr, '--code', code2, '--yes', '--out', '-', '--quiet'])
    ])
    expect([s2.status, r2.status, r2.out]).toEqual([0, 0, 'from a pipe'])
    expect(s2.out).toMatch(/^sent notes\.txt: 11 bytes in /)
    expect(r2.err).toMatch(/^received notes\.txt -> -: 11 bytes in /)
  })

  it('a second sender on a waiting code is refused at the rendezvous; the first one\'s cancel ends it with status 130', async () => {
    const code = newCode()
    const before = process.listeners('SIGINT')
    const first = start(['send', '--text', 'x', '--rendezvous', addr, '--code', code])
    await seen(first.err, /(registered), waiting for the peer/)
    const second = await run(['send', '--text', 'y', '--rendezvous', addr, '--code', code])
    expect([second.status, second.out, second.err.split('\n').at(-2)]).toEqual([1, '', 'utp-punch-rs: rendezvous failed (ERR_SAME_ROLE): another sender is already waiting with this code: the other side must run receive (that sender keeps waiting)'])
    const added = sigintAddedSince(before)
    expect(added).toHaveLength(1)
    expect(process.listeners('SIGTERM')).toContain(added[0])
    added[0]()
    const cancelled = await first.done
    expect([cancelled.status, cancelled.err.split('\n').at(-2)]).toEqual([130, 'utp-punch-rs: cancelled while waiting for the peer'])
    expect(sigintAddedSince(before)).toEqual([])
    expect(process.listeners('SIGTERM')).not.toContain(added[0])
    // Two receivers
    const code2 = newCode()
    const r1 = start(['receive', '--rendezvous', addr, '--code', code2, '--yes', '--out', outDir()])
    await seen(r1.err, /(registered), waiting for the peer/)
    const r2 = await run(['receive', '--rendezvous', addr, '--code', code2, '--yes', '--out', outDir()])
    expect(r2.err.split('\n').at(-2)).toBe('utp-punch-rs: rendezvous failed (ERR_SAME_ROLE): another receiver is already waiting with this code: the other side must run send (that receiver keeps waiting)')
    const mine = sigintAddedSince(before)
    mine[0]()
    expect((await r1.done).status).toBe(130)
  })

  it('a refusal in the transfer: each side in its own words and status 1, the stage in --json', async () => {
    const file = path.join(tmp, 'five.txt')
    fs.writeFileSync(file, 'hello')
    const code = newCode()
    const [s, r] = await Promise.all([
      run(['send', file, '--rendezvous', addr, '--code', code, '--quiet']),
      run(['receive', '--rendezvous', addr, '--code', code, '--yes', '--out', outDir(), '--max-size', '4', '--json'])
    ])
    expect([s.status, s.out, s.err]).toEqual([1, '', 'utp-punch-rs: the receiver refused five.txt: refused a file of 5 bytes: larger than --max-size 4 bytes (ERR_TOO_LARGE)\n'])
    expect([r.status, JSON.parse(r.out.trim().split('\n').at(-1) as string)]).toEqual([1, { ok: false, code: 'ERR_TOO_LARGE', message: 'refused a file of 5 bytes: larger than --max-size 4 bytes', stage: 'transfer' }])
  })

  it('the question on a terminal, answered no; a skipped file warned about, not with --json', async () => {
    const tree = path.join(tmp, 'tree')
    fs.mkdirSync(path.join(tree, '.git'), { recursive: true })
    fs.writeFileSync(path.join(tree, 'a.txt'), 'aaa')
    const dir = outDir()
    const code = newCode()
    const stdin = Object.assign(new PassThrough(), { isTTY: true })
    const receiver = start(['receive', '--rendezvous', addr, '--code', code, '--out', dir, '--no-progress', '--quiet'], stdin, 'stderr')
    const sender = start(['send', tree, '--rendezvous', addr, '--code', code, '--quiet'])
    await seen(receiver.err, /(\? \[y\/N\] )$/)
    expect(receiver.err()).toMatch(new RegExp(`^receive "tree" \\(1 file in 1 directory, 3 bytes\\) from [0-9.]+:\\d+ \\(encrypted\\) into ${dir.replace(/[.\\/]/g, '\\$&')}\\? \\[y/N\\] $`))
    stdin.write('n\n')
    const [s, r] = [await sender.done, await receiver.done]
    expect(r.status).toBe(1)
    expect(r.err.endsWith('utp-punch-rs: declined tree\n')).toBe(true)
    expect([s.status, s.err]).toEqual([1, `utp-punch-rs: warning: skipped ${path.join(tree, '.git')}: receivers refuse its name: it starts with a dot (a hidden or configuration file)\nutp-punch-rs: the receiver refused tree: declined tree (ERR_DECLINED)\n`])
    // --json: no warning line, the error as JSON
    const quiet = await run(['send', tree, '--rendezvous', '127.0.0.1:9', '--code', newCode(), '--json', '--timeout', '200ms'])
    expect(quiet.err).toBe('')
  })

  it('a resumed tree: the notes, the summaries with counts and what was resumed', async () => {
    const tree = path.join(tmp, 'photos')
    fs.mkdirSync(tree, { recursive: true })
    fs.writeFileSync(path.join(tree, 'a.jpg'), 'abcdef')
    fs.writeFileSync(path.join(tree, 'b.jpg'), 'xyz')
    const dir = outDir()
    fs.mkdirSync(path.join(dir, 'photos.part'), { mode: 0o700 })
    fs.writeFileSync(path.join(dir, 'photos.part', 'a.jpg'), 'abc')
    fs.writeFileSync(path.join(dir, 'photos.part', 'b.jpg'), 'XY')
    const code = newCode()
    const [s, r] = await Promise.all([
      run(['send', tree, '--rendezvous', addr, '--code', code, '--quiet']),
      run(['receive', '--rendezvous', addr, '--code', code, '--yes', '--out', dir, '--quiet'])
    ])
    expect([s.status, r.status]).toEqual([0, 0])
    expect(s.err).toBe('utp-punch-rs: photos/a.jpg: the receiver has 0.00 of 0.00 MB; continuing from there\n' +
      'utp-punch-rs: photos/b.jpg: the receiver\'s partial copy differs from this file; sending it from the start\n')
    expect(r.err).toBe('utp-punch-rs: photos.part/b.jpg: the partial copy differs from the sender\'s file; receiving it from the start\n')
    expect(s.out).toMatch(/^sent photos \(2 files in 1 directory\): 6 bytes in \d+\.\d\d s \([\d.]+ MB\/s\), resumed after 3 bytes via /)
    expect(r.out).toMatch(new RegExp(`^received photos \\(2 files in 1 directory\\) -> ${path.join(dir, 'photos').replace(/[.\\/]/g, '\\$&')}: 6 bytes in .*, resumed after 3 bytes via `))
    expect([fs.readFileSync(path.join(dir, 'photos', 'a.jpg'), 'utf8'), fs.readFileSync(path.join(dir, 'photos', 'b.jpg'), 'utf8')]).toEqual(['abcdef', 'xyz'])
    // With --json the notes are not written; a tree of one file still says what it holds
    const dir2 = outDir()
    fs.mkdirSync(path.join(dir2, 'photos.part'), { mode: 0o700 })
    fs.writeFileSync(path.join(dir2, 'photos.part', 'a.jpg'), 'abc')
    const one = path.join(tmp, 'one-tree')
    fs.mkdirSync(one)
    fs.writeFileSync(path.join(one, 'x'), 'x')
    const code2 = newCode()
    const code3 = newCode()
    const [s2, r2, s3] = await Promise.all([
      run(['send', tree, '--rendezvous', addr, '--code', code2, '--json']),
      run(['receive', '--rendezvous', addr, '--code', code2, '--yes', '--out', dir2, '--json']),
      run(['send', one, '--rendezvous', addr, '--code', code3, '--quiet']),
      run(['receive', '--rendezvous', addr, '--code', code3, '--yes', '--out', outDir(), '--quiet'])
    ])
    expect([s2.status, s2.err, r2.status, r2.err]).toEqual([0, '', 0, ''])
    expect(s3.out).toMatch(/^sent one-tree \(1 file in 1 directory\): 1 bytes in /)
  })

  it('cubic on request, in the stats; a text as sent into a pipe, made safe to print on a terminal', async () => {
    for (const terminal of ['none', 'stdout'] as const) {
      const code = newCode()
      const [s, r] = await Promise.all([
        run(['send', '--text', 'bell\u0007 and\nnext\u202eline', '--rendezvous', addr, '--code', code, '--json', '--congestion', 'cubic']),
        start(['receive', '--rendezvous', addr, '--code', code, '--yes', '--quiet'], undefined, terminal).done
      ])
      const last = JSON.parse(s.out.trim().split('\n').at(-1) as string) as { stats: { congestion: string }, text: string }
      expect([s.status, last.text, last.stats.congestion]).toEqual([0, 'bell\u0007 and\nnext\u202eline', 'cubic'])
      expect([terminal, r.out]).toEqual([terminal, terminal === 'stdout' ? 'bell_ and\nnext_line\n' : 'bell\u0007 and\nnext\u202eline\n'])
    }
  })

  it('the DHT: the code\'s command names the bootstrap nodes; a DHT that does not answer fails in the rendezvous stage', async () => {
    const r = await run(['send', '--text', 'x', '--dht-bootstrap', '127.0.0.1:9', '--timeout', '300ms', '--quiet'])
    const lines = r.err.split('\n')
    expect(lines[0]).toMatch(/^code: \S+$/)
    expect(lines.slice(1, 3)).toEqual(['on the receiving side, run:', `  utp-punch-rs receive --dht-bootstrap 127.0.0.1:9 --code ${lines[0].slice(6)}`])
    expect([r.status, lines.at(-2)]).toEqual([1, expect.stringMatching(/^utp-punch-rs: rendezvous failed \(\w+\): /)])
  })

  it('--json fields: the rate from bytes and time, the mapping, what was saved; two items; the relay on request', async () => {
    const a = path.join(tmp, 'two-a.bin')
    const b = path.join(tmp, 'two-b.bin')
    fs.writeFileSync(a, Buffer.alloc(300_000, 1))
    fs.writeFileSync(b, 'b')
    const dir = outDir()
    const code = newCode()
    const [s, r] = await Promise.all([
      run(['send', a, b, '--rendezvous', addr, '--code', code, '--json', '--force-relay']),
      run(['receive', '--rendezvous', addr, '--code', code, '--yes', '--out', dir, '--json', '--force-relay'])
    ])
    const last = (out: string): Record<string, unknown> => JSON.parse(out.trim().split('\n').at(-1) as string) as Record<string, unknown>
    const sent = last(s.out)
    const got = last(r.out)
    const connected = JSON.parse(s.out.split('\n').find(l => l.includes('"event":"connected"')) as string) as Record<string, unknown>
    expect([connected.path, connected.mapping, connected.encrypted]).toEqual(['relay', null, true])
    for (const x of [sent, got]) {
      const rate = (x.bytes as number) / Math.max(x.seconds as number, 0.001) / 1e6
      expect(Math.abs((x.megabytesPerSecond as number) - rate)).toBeLessThan(rate * 0.5 + 0.01)
      expect([x.path, x.files, x.directories, x.bytes]).toEqual(['relay', 2, 0, 300_001])
    }
    expect(['file' in sent, 'saved' in sent, 'text' in sent, 'file' in got, got.saved]).toEqual([false, false, false, false, [path.join(dir, 'two-a.bin'), path.join(dir, 'two-b.bin')]])
    // In text: both names in the summary
    const code2 = newCode()
    const dir2 = outDir()
    const [, r2] = await Promise.all([
      run(['send', a, b, '--rendezvous', addr, '--code', code2, '--quiet']),
      run(['receive', '--rendezvous', addr, '--code', code2, '--yes', '--out', dir2, '--quiet'])
    ])
    expect(r2.out).toMatch(new RegExp(`^received two-a\\.bin, two-b\\.bin \\(2 files\\) -> ${path.join(dir2, 'two-a.bin').replace(/[.\\/]/g, '\\$&')}, ${path.join(dir2, 'two-b.bin').replace(/[.\\/]/g, '\\$&')}: 300001 bytes in `))
  })

  it('a text ending in a newline is printed as it is; a text to receive --out - goes to stdout; JSON has the text', async () => {
    const code = newCode()
    const [s, r] = await Promise.all([
      run(['send', '--text', 'line\n', '--rendezvous', addr, '--code', code, '--json']),
      run(['receive', '--rendezvous', addr, '--code', code, '--yes', '--out', '-', '--quiet'])
    ])
    expect([r.status, r.out, r.err]).toEqual([0, 'line\n', ''])
    expect(JSON.parse(s.out.trim().split('\n').at(-1) as string)).toMatchObject({ ok: true, event: 'sent', name: 'text', text: 'line\n', bytes: 5 })
  })

  it('a text of exactly the limit is not a usage error; receive writes into the current directory by default', async () => {
    const atLimit = await run(['send', '--text', 'x'.repeat(64 * 1024), '--rendezvous', '127.0.0.1:9', '--code', newCode(), '--timeout', '200ms', '--quiet'])
    expect([atLimit.status, atLimit.err]).toEqual([1, 'utp-punch-rs: rendezvous failed (ERR_RENDEZVOUS_TIMEOUT): no answer from the rendezvous server 127.0.0.1:9 within 200 ms\n'])
    const here = await run(['receive', '--rendezvous', '127.0.0.1:9', '--code', newCode(), '--yes', '--timeout', '200ms', '--quiet'])
    expect([here.status, here.err]).toEqual([1, 'utp-punch-rs: rendezvous failed (ERR_RENDEZVOUS_TIMEOUT): no answer from the rendezvous server 127.0.0.1:9 within 200 ms\n'])
  })

  it('--dht wins over a server in the environment; the DHT\'s status and waiting lines', async () => {
    const saved = process.env.UTP_PUNCH_RENDEZVOUS
    process.env.UTP_PUNCH_RENDEZVOUS = '127.0.0.1:9'
    try {
      const r = await run(['send', '--text', 'x', '--dht', '--dht-bootstrap', '127.0.0.1:9', '--timeout', '300ms', '--json'])
      const lines = r.out.trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
      expect(lines.map(({ code: _, port: __, ...rest }) => rest)).toEqual([
        { event: 'code', command: expect.stringMatching(/^utp-punch-rs receive --dht-bootstrap 127\.0\.0\.1:9 --code \S+$/) },
        { event: 'status', state: 'contacting', dht: true, bootstrap: ['127.0.0.1:9'], source: '--dht-bootstrap', message: 'joining the BitTorrent DHT through 127.0.0.1:9 (from --dht-bootstrap)' },
        { event: 'waiting', dht: '--dht-bootstrap' },
        { ok: false, message: 'could not join the DHT and publish within 300 ms', stage: 'rendezvous' }
      ])
      expect([lines[3].code, typeof lines[2].port]).toEqual(['ERR_RENDEZVOUS_TIMEOUT', 'number'])
    } finally {
      if (saved === undefined) delete process.env.UTP_PUNCH_RENDEZVOUS
      else process.env.UTP_PUNCH_RENDEZVOUS = saved
    }
  })

  it('progress: a bar on a terminal unless --no-progress, --quiet or --json; the question for --out - names stdout', async () => {
    const file = path.join(tmp, 'bar.bin')
    fs.writeFileSync(file, Buffer.alloc(50_000, 7))
    /** The receiver's stderr, a terminal, with `flags` (and its stdout) */
    const receive = async (flags: string[]): Promise<Ran> => {
      const code = newCode()
      const [, r] = await Promise.all([
        run(['send', file, '--rendezvous', addr, '--code', code, '--quiet']),
        start(['receive', '--rendezvous', addr, '--code', code, '--yes', '--out', outDir(), ...flags], undefined, 'stderr').done
      ])
      expect([flags, r.status]).toEqual([flags, 0])
      return r
    }
    const bar = /\rreceiving bar\.bin \[#+\] 100% 0\.05\/0\.05 MB [\d.]+ MB\/s ETA 0:00\x1b\[K\n/
    const plain = await receive([])
    expect(plain.err).toMatch(bar)
    // The status lines stay without the bar
    const noBar = await receive(['--no-progress'])
    expect(noBar.err).not.toContain('\r')
    expect(noBar.err).toContain('receiving bar.bin (50.00 kB)\n')
    expect((await receive(['--quiet'])).err).toBe('')
    const json = await receive(['--json'])
    expect(json.err).toBe('')
    expect(json.out).not.toContain('\r')
    // --out - on a terminal: the question says where the data goes
    const code = newCode()
    const stdin = Object.assign(new PassThrough(), { isTTY: true })
    const receiver = start(['receive', '--rendezvous', addr, '--code', code, '--out', '-', '--quiet'], stdin, 'stderr')
    const sender = start(['send', '--text', 'to the screen', '--rendezvous', addr, '--code', code, '--quiet'])
    const s = await sender.done
    // A text is shown without a question; a file asks
    expect([s.status, (await receiver.done).out]).toEqual([0, 'to the screen\n'])
    const code2 = newCode()
    const stdin2 = Object.assign(new PassThrough(), { isTTY: true })
    const receiver2 = start(['receive', '--rendezvous', addr, '--code', code2, '--out', '-', '--quiet'], stdin2, 'stderr')
    const sender2 = start(['send', file, '--rendezvous', addr, '--code', code2, '--quiet'])
    expect(await seen(receiver2.err, /( into stdout\? \[y\/N\] )$/)).toBe(' into stdout? [y/N] ')
    stdin2.write('y\n')
    const [s2, r2] = [await sender2.done, await receiver2.done]
    expect([s2.status, r2.status, sha(r2.out)]).toEqual([0, 0, sha(Buffer.alloc(50_000, 7))])
  })

  it('progress over a slow stdin: JSON objects on stdout with --json (a second apart), lines on a pipe (5 s apart), none with --no-progress', async () => {
    /** `send -` of two chunks `pauseMs` apart once the transfer started, with `flags`; the sender's output */
    const slow = async (pauseMs: number, flags: string[]): Promise<Ran> => {
      const code = newCode()
      const stdin = new PassThrough()
      stdin.write(Buffer.alloc(1000, 1))
      const sender = start(['send', '-', '--name', 'slow.bin', '--rendezvous', addr, '--code', code, ...flags], stdin)
      const receiver = start(['receive', '--rendezvous', addr, '--code', code, '--yes', '--out', outDir(), '--quiet'])
      await seen(() => sender.out() + sender.err(), /(sending slow\.bin \(size unknown\))/)
      setTimeout(() => stdin.end(Buffer.alloc(1000, 2)), pauseMs)
      const [s, r] = [await sender.done, await receiver.done]
      expect([flags, s.status, r.status]).toEqual([flags, 0, 0])
      return s
    }
    const [json, lines, none] = await Promise.all([slow(1300, ['--json']), slow(5300, []), slow(5300, ['--no-progress'])])
    const progress = json.out.split('\n').filter(l => l.includes('"event":"progress"')).map(l => JSON.parse(l) as Record<string, unknown>)
    expect(progress).toContainEqual(expect.objectContaining({ event: 'progress', name: 'slow.bin', bytes: 2000, total: null, etaSeconds: null }))
    expect(json.err).toBe('')
    expect(lines.err).toMatch(/\nsending slow\.bin: 0\.00 MB, [\d.]+ MB\/s\n/)
    expect(none.err.split('\n').filter(l => l.includes('slow.bin'))).toEqual(['sending slow.bin (size unknown)'])
  })

  it('--no-relay: a forced relay has none, and each side says why', async () => {
    const code = newCode()
    const [s, r] = await Promise.all([
      run(['send', '--text', 'x', '--rendezvous', addr, '--code', code, '--force-relay', '--no-relay']),
      run(['receive', '--rendezvous', addr, '--code', code, '--yes', '--force-relay', '--quiet'])
    ])
    expect([s.status, s.err.split('\n').at(-2)]).toEqual([1, expect.stringMatching(/^utp-punch-rs: rendezvous failed \(ERR_PUNCH_FAILED\): no relay for a forced relay; tried .* \(relay disabled\)$/)])
    expect([r.status, r.err]).toEqual([1, expect.stringMatching(/^utp-punch-rs: rendezvous failed \(ERR_PUNCH_FAILED\): no relay for a forced relay; tried .* \(no relay: the peer or the server does not allow one\)\n$/)])
  })

  it('a second Ctrl-C exits at once with 130; the first waits for the cancel to finish', async () => {
    const before = process.listeners('SIGINT')
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never)
    try {
      const first = start(['send', '--text', 'x', '--rendezvous', addr, '--code', newCode()])
      await seen(first.err, /(registered), waiting for the peer/)
      const [onSignal] = sigintAddedSince(before)
      onSignal()
      expect(exit).not.toHaveBeenCalled()
      onSignal()
      expect(exit.mock.calls).toEqual([[130]])
      expect((await first.done).status).toBe(130)
    } finally {
      exit.mockRestore()
    }
  })

  it('a text whose receiver never answers: --idle-timeout ends the wait, and so does Ctrl-C, each said at once', async () => {
    const { Node } = requireFromRoot('./dist/lib/api.js') as typeof import('../lib/api')
    /** A receiver that meets the sender and then says nothing; the function lets it go (with a RESET: the sender's socket fails while nothing reads it) */
    const mute = async (code: string): Promise<(reset?: 'reset') => Promise<void>> => {
      const node = new Node()
      await node.bindAsync(0, '127.0.0.1')
      const met = node.rendezvous({ server: addr, code, side: 'receive' })
      void met.then(r => r.socket.on('error', () => { /* its own reset ends it with an error */ }), () => undefined)
      return async (reset) => {
        await met.then(r => { if (reset === undefined) r.socket.destroy(); else r.utpSocket.resetAndDestroy() }, () => undefined)
        await node.closeAsync()
      }
    }
    // The failure is printed before the node closes, which waits for the silent peer (up to 5 s) until it goes;
    // a signal meanwhile exits at once with the failure's status
    const code = newCode()
    const release = await mute(code)
    const before = process.listeners('SIGINT')
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never)
    try {
      const idle = start(['send', '--text', 'x', '--rendezvous', addr, '--code', code, '--idle-timeout', '300ms', '--quiet'])
      const [onIdleSignal] = sigintAddedSince(before)
      let finished = false
      void idle.done.then(() => { finished = true })
      await seen(idle.err, /(stopped responding)/)
      expect(idle.err()).toBe('utp-punch-rs: the other side stopped responding (nothing for 0.3 s)\n')
      // Said before closing: the command is still waiting for the silent peer's side to close
      await sleep(300)
      expect(finished).toBe(false)
      onIdleSignal()
      expect(exit.mock.calls).toEqual([[1]])
      await release('reset')
      expect((await idle.done).status).toBe(1)
      exit.mockClear()
      const code2 = newCode()
      const release2 = await mute(code2)
      try {
        const sender = start(['send', '--text', 'x', '--rendezvous', addr, '--code', code2])
        const [onSignal] = sigintAddedSince(before)
        await seen(sender.err, /(connected) via/)
        onSignal()
        expect(exit).not.toHaveBeenCalled()
        await seen(sender.err, /(cancelled before the text was delivered)\n$/)
        onSignal()
        expect(exit.mock.calls).toEqual([[130]])
        await release2()
        expect((await sender.done).status).toBe(130)
      } finally {
        await release2()
      }
    } finally {
      exit.mockRestore()
      await release()
    }
    expect(sigintAddedSince(before)).toEqual([])
  })

  it('a node whose UDP socket fails (an \'error\', then it closes) ends the command with the reason, not a crash', async () => {
    const { Node } = requireFromRoot('./dist/lib/api.js') as typeof import('../lib/api')
    const bind = Node.prototype.bindAsync
    const spy = vi.spyOn(Node.prototype, 'bindAsync').mockImplementation(function (this: InstanceType<typeof Node>, ...args: Parameters<typeof bind>) {
      return bind.apply(this, args)
    })
    try {
      const sender = start(['send', '--text', 'x', '--rendezvous', addr, '--code', newCode()])
      await seen(sender.err, /(registered), waiting for the peer/)
      // What the node does when recvmsg fails for good (lib/node.ts, SOCKET_ERROR)
      const made = spy.mock.contexts[0] as InstanceType<typeof Node>
      made.emit('error', Object.assign(new Error('recvmsg ENOBUFS'), { code: 'ENOBUFS' }))
      made.close()
      const r = await sender.done
      expect([r.status, r.err.split('\n').at(-2)]).toEqual([1, expect.stringMatching(/^utp-punch-rs: rendezvous failed \(ERR_SOCKET_DGRAM_NOT_RUNNING\): /)])
    } finally {
      spy.mockRestore()
    }
  })

  it('on the public DHT the receiver\'s command names no bootstrap nodes (shown before the port is bound, which fails here)', async () => {
    const dgram = requireFromRoot('dgram') as typeof import('dgram')
    const taken = dgram.createSocket({ type: 'udp6', ipv6Only: false })
    await new Promise<void>((resolve, reject) => { taken.once('error', reject); taken.bind(0, '::', resolve) })
    try {
      const r = await run(['send', '--text', 'x', '--dht', '--port', String(taken.address().port)])
      const lines = r.err.split('\n')
      expect(lines.slice(1, 3)).toEqual(['on the receiving side, run:', `  utp-punch-rs receive --code ${lines[0].slice(6)}`])
      expect([r.status, lines.at(-2)]).toEqual([1, expect.stringMatching(/EADDRINUSE/)])
    } finally {
      taken.close()
    }
  })

  it('a failure with newlines is one line; one without a code is ERR_FAILED', async () => {
    const node = requireFromRoot('./dist/lib/node.js') as typeof import('../lib/node')
    vi.spyOn(node.Node.prototype, 'bindAsync').mockRejectedValue(new Error('first line\n  second line'))
    const r = await run(['send', '--text', 'x', '--rendezvous', '127.0.0.1:9', '--code', newCode()])
    expect([r.status, r.err]).toEqual([1, 'utp-punch-rs: first line second line\n'])
    const j = await run(['send', '--text', 'x', '--rendezvous', '127.0.0.1:9', '--code', newCode(), '--json'])
    expect([j.status, j.out]).toEqual([1, '{"ok":false,"code":"ERR_FAILED","message":"first line second line"}\n'])
    vi.restoreAllMocks()
  })

  it('a name that does not resolve, said in the user\'s terms', async () => {
    const dns = requireFromRoot('dns') as typeof import('dns')
    const lookup = dns.lookup
    vi.spyOn(dns, 'lookup').mockImplementation(((host: string, ...rest: unknown[]) => {
      const cb = rest.at(-1) as (e: Error | null) => void
      if (host === 'rv.invalid') { cb(Object.assign(new Error('getaddrinfo ENOTFOUND rv.invalid'), { code: 'ENOTFOUND' })); return }
      return (lookup as (...a: unknown[]) => unknown)(host, ...rest)
    }) as never)
    const r = await run(['send', '--text', 'x', '--rendezvous', 'rv.invalid:7000', '--code', newCode(), '--quiet'])
    vi.restoreAllMocks()
    expect([r.status, r.err]).toEqual([1, 'utp-punch-rs: rendezvous failed (ENOTFOUND): cannot find the rendezvous server rv.invalid: the name does not resolve\n'])
  })

  it('a code word not in the list is warned about; a server that does not answer fails in the rendezvous stage', async () => {
    const quiet = new RendezvousServer({ host: '127.0.0.1', port: 0, http: false, mappingCheck: false })
    const a = await quiet.listen()
    await quiet.close() // its port now answers nothing
    const r = await run(['send', '--text', 'x', '--rendezvous', `127.0.0.1:${a.port}`, '--code', '7-daisy-zipper-zzzq', '--timeout', '300ms', '--json'])
    expect(r.status).toBe(1)
    const last = JSON.parse(r.out.trim().split('\n').at(-1) as string) as Record<string, unknown>
    expect(last).toEqual({ ok: false, code: 'ERR_RENDEZVOUS_TIMEOUT', message: `no answer from the rendezvous server 127.0.0.1:${a.port} within 300 ms`, stage: 'rendezvous' })
    const text = await run(['send', '--text', 'x', '--rendezvous', `127.0.0.1:${a.port}`, '--code', '7-daisy-zzzq-zzzr', '--timeout', '300ms'])
    expect(text.err.split('\n')[0]).toBe('utp-punch-rs: warning: "zzzq", "zzzr" not in the code word list: check the code for a typo')
    expect(text.err.split('\n').at(-2)).toBe(`utp-punch-rs: rendezvous failed (${String(last.code)}): ${String(last.message)}`)
  })
})

describe.skipIf(skipCoturn)('main: nat-check against a real STUN server', () => {
  let coturn: Coturn | undefined
  afterAll(async () => { await coturn?.stop() })

  it('the public address and RFC 5780 behaviour, in text and JSON', async () => {
    coturn = await startCoturn()
    const text = await run(['nat-check', '--stun', coturn.server])
    expect(text.status).toBe(0)
    const lines = text.out.split('\n')
    expect(lines[0]).toMatch(/^public address: 127\.0\.0\.1:\d+$/)
    expect(lines.slice(1, 3)).toEqual([expect.stringMatching(/^mapping: \S+$/), expect.stringMatching(/^filtering: \S+$/)])
    const json = await run(['nat-check', '--stun', coturn.server, '--json', '--port', '0'])
    const r = JSON.parse(json.out) as { ok: boolean, publicAddress: { address: string }, mapping: string, filtering: string, natted: boolean, summary: string }
    // Each run binds its own port, which the summary names
    const noPort = (t: string): string => t.replace(/127\.0\.0\.1:\d+/, 'ADDR')
    expect([r.ok, r.publicAddress.address, r.natted, `mapping: ${r.mapping}`, `filtering: ${r.filtering}`, noPort(r.summary)]).toEqual([true, '127.0.0.1', false, lines[1], lines[2], noPort(lines[3])])
    expect(lines[3]).toMatch(/^public address 127\.0\.0\.1:\d+ \(our own: no NAT\); mapping endpoint-independent, filtering endpoint-independent$/)
    // It closes its node before it returns
    const { Node } = requireFromRoot('./dist/lib/api.js') as typeof import('../lib/api')
    const closes = vi.spyOn(Node.prototype, 'closeAsync')
    try {
      expect((await run(['nat-check', '--stun', coturn.server])).status).toBe(0)
      expect(closes).toHaveBeenCalledTimes(1)
      expect((closes.mock.contexts[0] as InstanceType<typeof Node>).stats().address).toBeNull()
    } finally {
      closes.mockRestore()
    }
  })
})
