// `utp-punch-rs receive` against senders that lie (issue 12). The liar is a test peer built on the library:
// node.rendezvous() with the receiver's code, then the CLI's transfer format (bin/transfer.ts) spoken by hand,
// without waiting for the receiver's answer, so the real receive code in a real child process faces it.
import type { ChildProcess } from 'child_process'
import { createHash, randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { PassThrough, type Duplex } from 'stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type * as CliModule from '../bin/cli'
import type * as IncomingModule from '../bin/incoming'
import type * as LandingModule from '../bin/landing'
import type * as ManifestModule from '../bin/manifest'
import type * as CodeModule from '../lib/rendezvous/code'
import { finish, start, type Run } from './helpers/cli'
import { Node, requireFromRoot, root } from './helpers/utp'

const { main } = requireFromRoot('./dist/bin/cli.js') as typeof CliModule
const { CODE_WORDS } = requireFromRoot('./dist/lib/rendezvous/code.js') as typeof CodeModule

/** How receive is told not to ask (no terminal in these child processes) */
const YES = ['--yes']

let server: ChildProcess
let rv = ''
let tmp = ''

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-cli-safety-'))
  server = start(['rendezvous', '--port', '0', '--host', '127.0.0.1', '--json'])
  const first = await new Promise<{ port: number }>((resolve, reject) => {
    let buf = ''
    server.stdout?.on('data', (d: Buffer) => {
      buf += d.toString()
      if (buf.includes('\n')) resolve(JSON.parse(buf.slice(0, buf.indexOf('\n'))) as { port: number })
    })
    server.once('exit', (code) => reject(new Error(`the server exited with ${String(code)}`)))
  })
  rv = `127.0.0.1:${first.port}`
})

afterAll(() => {
  server.kill('SIGTERM')
  fs.rmSync(tmp, { recursive: true, force: true })
})

function freshCode (): string {
  return `liar-${randomBytes(6).toString('hex')}`
}

function freshDir (): string {
  return fs.mkdtempSync(path.join(tmp, 'out-'))
}

/** Total bytes of the files in dir */
function bytesIn (dir: string): number {
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0)
}

/** Reads the JSON lines the receiver answers with */
class Lines {
  private _buf = ''
  private readonly _lines: Array<Record<string, unknown>> = []
  private _wake: (() => void) | null = null
  closed = false

  constructor (socket: Duplex) {
    socket.on('data', (d: Buffer) => {
      this._buf += d.toString()
      for (let nl = this._buf.indexOf('\n'); nl >= 0; nl = this._buf.indexOf('\n')) {
        const line = JSON.parse(this._buf.slice(0, nl)) as Record<string, unknown>
        if (!('role' in line)) this._lines.push(line) // the receiver's hello is not an answer
        this._buf = this._buf.slice(nl + 1)
      }
      this._wake?.()
    })
    for (const ev of ['end', 'close', 'error']) {
      socket.on(ev, () => {
        this.closed = true
        this._wake?.()
      })
    }
  }

  /** The next line, or null when the connection ended first or `ms` passed */
  async next (ms = 10_000): Promise<Record<string, unknown> | null> {
    const until = Date.now() + ms
    while (this._lines.length === 0 && !this.closed && Date.now() < until) {
      await new Promise<void>((resolve) => {
        this._wake = resolve
        setTimeout(resolve, 50)
      })
    }
    return this._lines.shift() ?? null
  }

  /** The first line with an "ok" field (skipping the {"accept":true} a receiver of this version sends first) */
  async verdict (ms = 10_000): Promise<Record<string, unknown> | null> {
    for (;;) {
      const line = await this.next(ms)
      if (line === null || 'ok' in line) return line
    }
  }
}

/** Meets a receiver under `code` through the test server and runs `script` on the connection */
async function liar (code: string, script: (socket: Duplex, lines: Lines) => Promise<void>): Promise<void> {
  const node = new Node()
  node.on('error', () => {})
  await node.bindAsync(0)
  const met = await node.rendezvous({ server: rv, code, timeoutMs: 20_000 })
  const socket = met.socket as Duplex
  socket.on('error', () => {})
  try {
    await script(socket, new Lines(socket))
  } finally {
    socket.destroy()
    await Promise.all([node.closeAsync(), met.node !== node ? met.node.closeAsync() : undefined])
  }
}

/**
 * The sender's hello (transfer format 3), its offer of one file, and (without waiting for the accept, as a liar
 * does) the line that starts the data from byte 0
 */
function offer (socket: Duplex, name: string, size: number): void {
  socket.write(JSON.stringify({ v: 3, role: 'send' }) + '\n')
  socket.write(JSON.stringify({ entries: [{ path: name, size }], total: size }) + '\n')
  socket.write(JSON.stringify({ start: [0] }) + '\n')
}

/** File bytes as the sender frames them: a data record ('D', a 4-byte big-endian length, the bytes) */
function record (data: Buffer): Buffer {
  const head = Buffer.alloc(5)
  head[0] = 0x44
  head.writeUInt32BE(data.length, 1)
  return Buffer.concat([head, data])
}

/** Writes data in pieces, honouring backpressure, until done or the connection ends */
async function pour (socket: Duplex, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length && !socket.destroyed; at += 64 * 1024) {
    if (!socket.write(record(data.subarray(at, at + 64 * 1024)))) {
      await new Promise<void>((resolve) => {
        socket.once('drain', resolve)
        socket.once('close', resolve)
      })
    }
  }
}

function receiver (code: string, out: string | null, extra: string[] = [], cwd = root): Promise<Run> {
  return finish(start(['receive', '--rendezvous', rv, '--code', code, ...(out === null ? [] : ['--out', out]), ...YES, '--timeout', '20s', ...extra], cwd))
}

describe('utp-punch-rs receive refuses what it must not write', () => {
  it('a claimed size of 9 PB is refused before a byte is written, and the liar is told', async () => {
    const dir = freshDir()
    const code = freshCode()
    const receiving = receiver(code, dir)
    let written = -1
    let answer: Record<string, unknown> | null = null
    await liar(code, async (socket, lines) => {
      offer(socket, 'huge.bin', 9e15)
      // Stream junk for up to 3 s, as a liar does; a safe receiver has refused and closed by then
      const chunk = randomBytes(64 * 1024)
      const until = Date.now() + 3000
      while (Date.now() < until && !lines.closed && !socket.destroyed) {
        if (!socket.write(chunk)) await new Promise<void>((resolve) => { socket.once('drain', resolve); setTimeout(resolve, 100) })
      }
      written = bytesIn(dir)
      answer = await lines.next(500)
    })
    const r = await receiving
    // Before (main): 3 s of junk reached the disk (hundreds of MB) and no answer came
    expect({ written, answer }).toEqual({ written: 0, answer: { ok: false, code: 'ERR_NO_SPACE', message: 'refused a file of 9.00 PB: not enough free space' } })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^utp-punch-rs: refused a file of 9\.00 PB: only [\d.]+ [kMGTP]B free in /)
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('--max-size refuses a larger file before a byte is written', async () => {
    const dir = freshDir()
    const code = freshCode()
    const receiving = receiver(code, dir, ['--max-size', '1M'])
    let answer: Record<string, unknown> | null = null
    await liar(code, async (socket, lines) => {
      offer(socket, 'big.bin', 2_000_000)
      await pour(socket, randomBytes(2_000_000))
      answer = await lines.next()
    })
    expect(answer).toMatchObject({ ok: false, code: 'ERR_TOO_LARGE' })
    const r = await receiving
    expect([r.code, r.stderr]).toEqual([1, 'utp-punch-rs: refused a file of 2.00 MB: larger than --max-size 1.00 MB\n'])
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('names that are hidden, reach outside or are reserved are refused; nothing is written anywhere', async () => {
    // .bashrc into the default --out (the current directory); the others into --out DIR
    const cases = [
      { name: '.bashrc', why: 'it starts with a dot (a hidden or configuration file)', defaultOut: true },
      { name: '../x', why: 'it contains ".."', defaultOut: false },
      { name: '..', why: 'it contains ".."', defaultOut: false },
      { name: 'nul.txt', why: 'it is a device name reserved by Windows', defaultOut: false },
      { name: '', why: 'it is empty', defaultOut: false }
    ]
    const results = await Promise.all(cases.map(async (c) => {
      const parent = freshDir()
      const dir = path.join(parent, 'inbox')
      fs.mkdirSync(dir)
      const code = freshCode()
      const receiving = c.defaultOut ? receiver(code, null, [], dir) : receiver(code, dir)
      let answer: Record<string, unknown> | null = null
      await liar(code, async (socket, lines) => {
        offer(socket, c.name, 5)
        socket.write(record(Buffer.from('hello')))
        socket.write(JSON.stringify({ sha256: createHash('sha256').update('hello').digest('hex') }) + '\n')
        answer = await lines.verdict()
      })
      const r = await receiving
      return { name: c.name, code: r.code, stderr: r.stderr, answer: answer as Record<string, unknown> | null, files: [...fs.readdirSync(parent), ...fs.readdirSync(dir)] }
    }))
    // Before (main): .bashrc written as .bashrc, ../x as x, '..' and '' as received-file, nul.txt as nul.txt; all exit 0
    expect(results).toEqual(cases.map(c => ({
      name: c.name,
      code: 1,
      stderr: `utp-punch-rs: refused the name "${c.name}": ${c.why}\n`,
      answer: { ok: false, code: 'ERR_UNSAFE_NAME', message: `refused the name "${c.name}": ${c.why}` },
      files: ['inbox']
    })))
  })

  it('bidi overrides, C1 controls and invisible characters in a name become "_"', async () => {
    const data = randomBytes(1000)
    const sha256 = createHash('sha256').update(data).digest('hex')
    const names = [
      ['invoice\u202Etxt.exe', 'invoice_txt.exe'],
      ['report\u009B31m\u0085.pdf', 'report_31m_.pdf'],
      ['zero\u200Bwidth\u2066.txt', 'zero_width_.txt']
    ]
    const results = await Promise.all(names.map(async ([sent]) => {
      const dir = freshDir()
      const code = freshCode()
      const receiving = receiver(code, dir)
      await liar(code, async (socket, lines) => {
        offer(socket, sent, data.length)
        socket.write(record(data))
        socket.write(JSON.stringify({ sha256 }) + '\n')
        await lines.verdict()
      })
      const r = await receiving
      return { code: r.code, files: fs.readdirSync(dir), printed: r.stdout.replace(dir, 'DIR').split(': ')[0] }
    }))
    // Before (main): the names were kept as sent (U+202E, U+009B, U+0085, U+200B, U+2066 on disk and on screen)
    expect(results).toEqual(names.map(([, saved]) => ({ code: 0, files: [saved], printed: `received ${saved} -> DIR/${saved}` })))
  })

  it('more bytes than announced: the receiver stops at the announced size and fails', async () => {
    const dir = freshDir()
    const code = freshCode()
    const receiving = receiver(code, dir)
    await liar(code, async (socket, lines) => {
      offer(socket, 'short.bin', 1000)
      const data = randomBytes(64 * 1024)
      data[1000] = 0x41 // not '{': what follows the announced bytes is more file, not the trailer
      await pour(socket, data)
      await lines.verdict(3000)
    })
    const r = await receiving
    // Before (main): exit 1 too, but as "the peer's checksum is too long" (the excess read as a trailer)
    expect([r.code, r.stderr]).toEqual([1, 'utp-punch-rs: the sender sent more than the 1000 bytes it announced; removed the partial short.bin.part\n'])
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('a file created at the final name during the transfer survives byte-identical', async () => {
    const dir = freshDir()
    const code = freshCode()
    const receiving = receiver(code, dir)
    const data = randomBytes(1 << 20)
    const mine = Buffer.from('created by someone else while the transfer ran\n')
    let verdict: Record<string, unknown> | null = null
    await liar(code, async (socket, lines) => {
      offer(socket, 'precious.txt', data.length)
      await pour(socket, data.subarray(0, data.length / 2))
      // Wait until the receiver is writing, then take the final name
      const until = Date.now() + 10_000
      while (!fs.readdirSync(dir).some(f => f.endsWith('.part')) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
      fs.writeFileSync(path.join(dir, 'precious.txt'), mine, { flag: 'wx' })
      await pour(socket, data.subarray(data.length / 2))
      socket.write(JSON.stringify({ sha256: createHash('sha256').update(data).digest('hex') }) + '\n')
      verdict = await lines.verdict()
    })
    const r = await receiving
    // Before (main): precious.txt was replaced by the received bytes (rename over it)
    expect(fs.readFileSync(path.join(dir, 'precious.txt')).equals(mine)).toBe(true)
    expect(fs.readdirSync(dir).sort()).toEqual(['precious (1).txt', 'precious.txt'])
    expect(fs.readFileSync(path.join(dir, 'precious (1).txt')).equals(data)).toBe(true)
    expect(verdict).toMatchObject({ ok: true })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`-> ${path.join(dir, 'precious (1).txt')}: 1048576 bytes`)
  })
})

describe('utp-punch-rs send and receive agree before anything is written', () => {
  it('send without --code prints a generated code and the receive command, which works as printed', async () => {
    const dir = freshDir()
    const src = path.join(tmp, 'coded.bin')
    const data = randomBytes(200_000)
    fs.writeFileSync(src, data)
    const sender = start(['send', src, '--rendezvous', rv, '--timeout', '20s'])
    const sending = finish(sender)
    const printed = await new Promise<string>((resolve, reject) => {
      let buf = ''
      sender.stderr?.on('data', (d: Buffer) => {
        buf += d.toString()
        const m = /^ {2}(utp-punch-rs receive .*)\n/m.exec(buf)
        if (m !== null) resolve(m[1])
      })
      sender.once('close', () => reject(new Error(`send exited before printing a code: ${buf}`)))
    })
    // Before (main): `send` without --code is a usage error (exit 2), nothing printed
    expect(printed).toMatch(new RegExp(`^utp-punch-rs receive --rendezvous ${rv.replace(/\./g, '\\.')} --code \\d{1,4}-[a-z]+-[a-z]+-[a-z]+$`))
    const code = printed.split(' ').pop() as string
    const [nameplate, ...words] = code.split('-')
    expect(Number(nameplate)).toBeGreaterThanOrEqual(1)
    expect(Number(nameplate)).toBeLessThanOrEqual(9999)
    expect(words.every(w => CODE_WORDS.includes(w))).toBe(true)
    const receive = await finish(start([...printed.split(' ').slice(1), '--out', dir, ...YES]))
    const send = await sending
    expect([send.code, receive.code]).toEqual([0, 0])
    expect(send.stderr).toBe(`code: ${code}\non the receiving side, run:\n  ${printed}\n`)
    expect(send.stdout).toMatch(/^sent coded\.bin: 200000 bytes in .* via (lan|direct) path to [\d.]+:\d+, (not )?encrypted, sha256 [0-9a-f]{64}\n$/)
    expect(fs.readFileSync(path.join(dir, 'coded.bin')).equals(data)).toBe(true)
    // A mistyped word is pointed out before the code is tried
    const typo = await finish(start(['receive', '--rendezvous', rv, '--code', `${nameplate}-${words[0]}-pretzle-${words[2]}`, '--timeout', '300ms', '-y']))
    expect(typo.code).toBe(1)
    expect(typo.stderr).toMatch(/^utp-punch-rs: warning: "pretzle" not in the code word list: check the code for a typo\n/)
  })

  it('receive without --yes where nobody can answer refuses at once (exit 2), before meeting anyone', async () => {
    const t0 = Date.now()
    const [plain, json] = await Promise.all([
      finish(start(['receive', '--rendezvous', rv, '--code', freshCode(), '--timeout', '5s'])),
      finish(start(['receive', '--rendezvous', rv, '--code', freshCode(), '--timeout', '5s', '--json']))
    ])
    // Before (main): both waited for a peer and failed after the 5 s timeout (exit 1)
    expect(Date.now() - t0).toBeLessThan(4000)
    expect(plain.code).toBe(2)
    expect(plain.stderr).toContain('pass --yes (-y) to accept without asking')
    expect(json.code).toBe(2)
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, code: 'ERR_USAGE' })
  })

  it('the sender fails (exit 1, ERR_REFUSED) when the receiver refuses', async () => {
    const dir = freshDir()
    const src = path.join(tmp, 'too-big.bin')
    fs.writeFileSync(src, randomBytes(4000))
    const code = freshCode()
    const [send, receive] = await Promise.all([
      finish(start(['send', src, '--rendezvous', rv, '--code', code, '--timeout', '20s', '--json'])),
      receiver(code, dir, ['--max-size', '1K'])
    ])
    expect(receive.code).toBe(1)
    expect(send.code).toBe(1)
    expect(JSON.parse(send.stdout.trim().split('\n').pop() as string)).toEqual({
      ok: false,
      code: 'ERR_REFUSED',
      message: 'the receiver refused too-big.bin: refused a file of 4.00 kB: larger than --max-size 1.00 kB (ERR_TOO_LARGE)',
      stage: 'transfer'
    })
    expect(fs.readdirSync(dir)).toEqual([])
    // A name every receiver refuses fails at the sender, before a code is spent
    const hidden = path.join(tmp, '.hidden')
    fs.writeFileSync(hidden, 'x')
    const early = await finish(start(['send', hidden, '--rendezvous', rv]))
    expect([early.code, early.stderr]).toEqual([1, `utp-punch-rs: cannot send ${hidden}: receivers refuse the name ".hidden": it starts with a dot (a hidden or configuration file); copy it to a name without that first\n`])
  })

  it('on a terminal, receive shows the name and size and writes only after "y"', async () => {
    const data = randomBytes(3000)
    const sha256 = createHash('sha256').update(data).digest('hex')
    const run = async (answer: string): Promise<{ status: number, question: string, verdict: Record<string, unknown> | null, files: string[] }> => {
      const dir = freshDir()
      const code = freshCode()
      const stdin = Object.assign(new PassThrough(), { isTTY: true })
      const stderr = Object.assign(new PassThrough(), { isTTY: true, columns: 80 })
      const stdout = new PassThrough()
      let said = ''
      stderr.on('data', (d: Buffer) => {
        said += d.toString()
        if (said.endsWith('[y/N] ')) stdin.write(answer)
      })
      stdout.resume()
      const receiving = main(['receive', '--rendezvous', rv, '--code', code, '--out', dir, '--no-progress', '--timeout', '20s'], { stdout, stderr: stderr as unknown as NodeJS.WriteStream, stdin })
      let verdict: Record<string, unknown> | null = null
      await liar(code, async (socket, lines) => {
        offer(socket, 'asked.bin', data.length)
        socket.write(record(data))
        socket.write(JSON.stringify({ sha256 }) + '\n')
        verdict = await lines.verdict()
      })
      const status = await receiving
      const question = (/receive "asked\.bin".*\[y\/N\] /.exec(said) ?? [''])[0]
      return { status, question: question.replace(dir, 'DIR').replace(/from [\d.]+:\d+/, 'from PEER'), verdict, files: fs.readdirSync(dir) }
    }
    const question = 'receive "asked.bin" (3.00 kB) from PEER (encrypted) into DIR? [y/N] '
    const no = await run('n\n')
    expect(no).toEqual({ status: 1, question, verdict: { ok: false, code: 'ERR_DECLINED', message: 'declined asked.bin' }, files: [] })
    const yes = await run('y\n')
    expect(yes).toMatchObject({ status: 0, question, verdict: { ok: true, sha256 }, files: ['asked.bin'] })
  })
})

describe('where a received file lands (bin/landing.ts)', () => {
  const { sizeOption } = requireFromRoot('./dist/bin/incoming.js') as typeof IncomingModule
  const { Landing } = requireFromRoot('./dist/bin/landing.js') as typeof LandingModule
  const one = (name: string, size: number): ManifestModule.Manifest => ({ entries: [{ kind: 'file', path: name, size, exec: false }], total: size })

  it('a planted NAME.part link is not followed, and publishing never replaces', async () => {
    const dir = freshDir()
    const victim = path.join(dir, 'victim.txt')
    fs.writeFileSync(victim, 'keep me')
    fs.symlinkSync(victim, path.join(dir, 'file.bin.part'))
    fs.writeFileSync(path.join(dir, 'file.bin'), 'already here')
    // The link is neither written through nor removed: the offer is refused, saying why
    await expect(Landing.inspect(dir, one('file.bin', 9))).rejects.toThrow('file.bin.part exists and is not a partial copy this receive can continue (a symbolic link)')
    fs.unlinkSync(path.join(dir, 'file.bin.part'))
    const landing = await Landing.inspect(dir, one('file.bin', 9))
    await landing.prepare()
    const writer = await landing.open(0, 0)
    await writer.write(Buffer.from('new bytes'))
    await writer.finish()
    const [saved] = await landing.publish()
    expect(path.basename(saved)).toBe('file (1).bin')
    expect(fs.readFileSync(saved, 'utf8')).toBe('new bytes')
    expect(fs.readFileSync(victim, 'utf8')).toBe('keep me')
    expect(fs.readFileSync(path.join(dir, 'file.bin'), 'utf8')).toBe('already here')
    expect(fs.readdirSync(dir).sort()).toEqual(['file (1).bin', 'file.bin', 'victim.txt'])
  })

  it('--max-size takes bytes and units', () => {
    expect([sizeOption('4096', 'max-size'), sizeOption('500K', 'max-size'), sizeOption('10G', 'max-size'), sizeOption('1.5GB', 'max-size'), sizeOption('2GiB', 'max-size')])
      .toEqual([4096, 500_000, 10e9, 1.5e9, 2 * 2 ** 30])
    for (const bad of ['', 'ten', '10X', '-1', '1e9']) expect(() => sizeOption(bad, 'max-size'), bad).toThrow('--max-size must be a size')
  })
})
