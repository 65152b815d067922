// What `utp-punch-rs send` can send (issue 13): directories and several files streamed in one offer, stdin to
// stdout, and text messages; and a sender's offer with a path reaching outside is refused whole. Child processes
// on loopback, as users run them.
import { spawn } from 'child_process'
import { createHash, randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { Writable, type Duplex } from 'stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type * as ManifestModule from '../bin/manifest'
import type * as ProgressModule from '../bin/progress'
import { BIN, finish, start, startRendezvous, type CliServer, type Run } from './helpers/cli'
import { Node, requireFromRoot } from './helpers/utp'

const { Progress } = requireFromRoot('./dist/bin/progress.js') as typeof ProgressModule
const { walk } = requireFromRoot('./dist/bin/manifest.js') as typeof ManifestModule

let tmp = ''
let server: CliServer

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-scope-'))
  server = await startRendezvous()
})

afterAll(async () => {
  server.child.kill('SIGTERM')
  await server.exit
  fs.rmSync(tmp, { recursive: true, force: true })
})

function newCode (): string {
  return `scope-${randomBytes(4).toString('hex')}`
}

function peer (code: string): string[] {
  return ['--rendezvous', server.addr, '--code', code, '--timeout', '20s']
}

/** Every entry under `dir`: "path/" for a directory, "path sha256 mode" for a file (x: executable), sorted */
function tree (dir: string, rel = ''): string[] {
  const out: string[] = []
  for (const name of fs.readdirSync(path.join(dir, rel))) {
    const p = rel === '' ? name : `${rel}/${name}`
    const st = fs.lstatSync(path.join(dir, p))
    if (st.isDirectory()) out.push(`${p}/`, ...tree(dir, p))
    else if (st.isFile()) out.push(`${p} ${createHash('sha256').update(fs.readFileSync(path.join(dir, p))).digest('hex')} ${(st.mode & 0o100) !== 0 ? 'x' : '-'}`)
    else out.push(`${p} (link)`)
  }
  return out.sort()
}

function last (r: Run): Record<string, unknown> {
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, unknown>
}

describe('utp-punch-rs send PATH...: directories and several files', () => {
  it('a directory tree (nested, an empty directory, unicode names) and a file arrive identical; a link is skipped', async () => {
    const src = fs.mkdtempSync(path.join(tmp, 'src-'))
    const photos = path.join(src, 'photos')
    fs.mkdirSync(path.join(photos, '2024', 'été ☀'), { recursive: true })
    fs.mkdirSync(path.join(photos, 'empty'))
    fs.writeFileSync(path.join(photos, 'a.jpg'), randomBytes(700_000))
    fs.writeFileSync(path.join(photos, '2024', 'b.raw'), randomBytes(2_000_000))
    fs.writeFileSync(path.join(photos, '2024', 'été ☀', '日本語 😀.txt'), 'unicode\n')
    fs.writeFileSync(path.join(photos, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 })
    fs.writeFileSync(path.join(photos, 'zero.bin'), '')
    fs.symlinkSync('/etc/passwd', path.join(photos, 'link'))
    const notes = path.join(src, 'notes.txt')
    fs.writeFileSync(notes, 'several files\n')
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const code = newCode()
    const [send, receive] = await Promise.all([
      finish(start(['send', photos, notes, ...peer(code)])),
      finish(start(['receive', ...peer(code), '--yes', '--out', dir, '--json']))
    ])
    // Before (main): "send takes exactly one FILE" (exit 2)
    expect([send.code, receive.code], send.stderr + receive.stdout).toEqual([0, 0])
    expect(send.stderr).toBe(`utp-punch-rs: warning: skipped ${path.join(photos, 'link')}: a symbolic link (links are not followed)\n`)
    expect(send.stdout).toMatch(/^sent photos, notes\.txt \(6 files in 4 directories\): 2700040 bytes in /)
    expect(fs.readdirSync(dir).sort()).toEqual(['notes.txt', 'photos'])
    fs.unlinkSync(path.join(photos, 'link'))
    expect(tree(dir)).toEqual(tree(src))
    expect(last(receive)).toMatchObject({ ok: true, files: 6, directories: 4, bytes: 2_700_040, saved: [path.join(dir, 'photos'), path.join(dir, 'notes.txt')] })
  })

  it('nothing is overwritten: a directory that exists gets "NAME (1)"; a directory is not sent to stdout', async () => {
    const src = fs.mkdtempSync(path.join(tmp, 'src-'))
    fs.mkdirSync(path.join(src, 'docs'))
    fs.writeFileSync(path.join(src, 'docs', 'x.txt'), 'new')
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    fs.mkdirSync(path.join(dir, 'docs'))
    fs.writeFileSync(path.join(dir, 'docs', 'x.txt'), 'old')
    const code = newCode()
    const [send, receive] = await Promise.all([
      finish(start(['send', path.join(src, 'docs'), ...peer(code)])),
      finish(start(['receive', ...peer(code), '--yes', '--out', dir]))
    ])
    expect([send.code, receive.code]).toEqual([0, 0])
    expect(receive.stdout).toContain(`-> ${path.join(dir, 'docs (1)')}: 3 bytes`)
    expect(fs.readFileSync(path.join(dir, 'docs', 'x.txt'), 'utf8')).toBe('old')
    expect(fs.readFileSync(path.join(dir, 'docs (1)', 'x.txt'), 'utf8')).toBe('new')
    // A directory cannot go to stdout: refused before anything moves
    const code2 = newCode()
    const [send2, receive2] = await Promise.all([
      finish(start(['send', path.join(src, 'docs'), ...peer(code2)])),
      finish(start(['receive', ...peer(code2), '--yes', '--out', '-']))
    ])
    expect([send2.code, receive2.code, receive2.stdout]).toEqual([1, 1, ''])
    expect(receive2.stderr).toBe('utp-punch-rs: refused "docs" (1 file in 1 directory, 3 bytes): --out - writes a single file to stdout, not directories or several files\n')
  })

  it('send - | receive --out -: 5 MiB of stdin arrive on stdout, byte for byte', async () => {
    const data = randomBytes(5 << 20)
    const code = newCode()
    const sender = spawn(process.execPath, [BIN, 'send', '-', '--name', 'dump.bin', ...peer(code)], { stdio: ['pipe', 'pipe', 'pipe'] })
    const sending = finish(sender)
    sender.stdin.end(data)
    const receiver = spawn(process.execPath, [BIN, 'receive', ...peer(code), '--yes', '--out', '-'], { stdio: ['ignore', 'pipe', 'pipe'] })
    const chunks: Buffer[] = []
    receiver.stdout.on('data', (d: Buffer) => chunks.push(d))
    const receiving = finish(receiver)
    const [send, receive] = await Promise.all([sending, receiving])
    // Before (main): `send -` was "no such file" (exit 1) and --out - "not a directory"
    expect([send.code, receive.code], send.stderr + receive.stderr).toEqual([0, 0])
    const got = Buffer.concat(chunks)
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'))
    expect(send.stdout).toMatch(/^sent dump\.bin: 5242880 bytes in /)
    // The summary is on stderr: stdout carries only the data
    expect(receive.stderr).toMatch(/^received dump\.bin -> -: 5242880 bytes in .*sha256 [0-9a-f]{64}\n$/)
  })

  it('send --text prints the message on the receiver\'s stdout; nothing is written', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const code = newCode()
    const message = 'meet at 5\nbring the keys \u202E ok'
    const [send, receive] = await Promise.all([
      finish(start(['send', '--text', message, ...peer(code)])),
      finish(start(['receive', ...peer(code), '--yes', '--out', dir]))
    ])
    // Before (main): "unknown option --text" (exit 2)
    expect([send.code, receive.code], send.stderr + receive.stderr).toEqual([0, 0])
    expect(receive.stdout).toBe(`${message}\n`) // not a terminal: as sent
    expect(send.stdout).toMatch(/^sent a text message \(31 bytes\) via /)
    expect(fs.readdirSync(dir)).toEqual([])
  })
})

/** A sender built on the library, speaking the transfer format by hand: writes `lines`, returns what came back */
async function fakeSender (code: string, lines: object[]): Promise<unknown[]> {
  const node = new Node()
  node.on('error', () => {})
  await node.bindAsync(0)
  const met = await node.rendezvous({ server: server.addr, code, timeoutMs: 20_000 })
  const socket = met.socket as Duplex
  socket.on('error', () => {})
  let answer = ''
  socket.on('data', (d: Buffer) => { answer += d.toString() })
  for (const line of lines) socket.write(JSON.stringify(line) + '\n')
  await new Promise<void>((resolve) => {
    socket.once('close', resolve)
    socket.once('end', resolve)
    setTimeout(resolve, 5000)
  })
  socket.destroy()
  await Promise.all([node.closeAsync(), met.node !== node ? met.node.closeAsync() : undefined])
  return answer.trim().split('\n').map(l => JSON.parse(l) as unknown)
}

describe('utp-punch-rs receive against senders speaking the format by hand', () => {
  it('an entry "../x" among good ones: the whole offer is refused before anything is written', async () => {
    const parent = fs.mkdtempSync(path.join(tmp, 'out-'))
    const dir = path.join(parent, 'inbox')
    fs.mkdirSync(dir)
    const code = newCode()
    const receiving = finish(start(['receive', ...peer(code), '--yes', '--out', dir]))
    const entries = [{ path: 'ok', dir: true }, { path: 'ok/a.txt', size: 2 }, { path: 'ok/../../x', size: 2 }]
    const answer = await fakeSender(code, [{ v: 3, role: 'send' }, { entries, total: 4 }])
    const r = await receiving
    // Before (main): the offer (no "name") was "invalid" — main had no entries at all
    expect([r.code, r.stderr]).toEqual([1, 'utp-punch-rs: refused the name "ok/../../x": it contains ".."\n'])
    expect(answer.pop()).toEqual({ ok: false, code: 'ERR_UNSAFE_NAME', message: 'refused the name "ok/../../x": it contains ".."' })
    expect(fs.readdirSync(parent)).toEqual(['inbox'])
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('a peer that did not declare its side at the server and also receives fails in the hello', async () => {
    const code = newCode()
    const receiving = finish(start(['receive', ...peer(code), '--yes', '--out', tmp]))
    // A library peer without `side` passes the server's check: the transfer's own hello is the second line
    const answer = await fakeSender(code, [{ v: 3, role: 'receive' }])
    const r = await receiving
    expect([r.code, r.stderr]).toEqual([1, 'utp-punch-rs: the other side is also receiving: one side must run send\n'])
    expect(answer).toEqual([{ v: 3, role: 'receive' }])
  })

  it('a sender of transfer format 2 is told to run the same version', async () => {
    const code = newCode()
    const receiving = finish(start(['receive', ...peer(code), '--yes', '--out', tmp]))
    const answer = await fakeSender(code, [{ v: 2, role: 'send' }, { name: 'old.bin', size: 3 }])
    const r = await receiving
    // Before (main): format 2 was this version: the offer was accepted and the receiver waited for its bytes
    expect([r.code, r.stderr]).toEqual([1, 'utp-punch-rs: the other side speaks transfer format 2, this one speaks 3: run the same utp-punch-rs version on both sides\n'])
    expect(answer).toEqual([{ v: 3, role: 'receive' }])
  })
})

describe('what send offers for a directory (bin/manifest.ts)', () => {
  it('names a receiver would take as one (case, characters replaced with "_") are skipped with a warning', async () => {
    const d = fs.mkdtempSync(path.join(tmp, 'names-'))
    for (const name of ['A.txt', 'a.txt', 'b?.txt', 'b_.txt', 'c.txt']) fs.writeFileSync(path.join(d, name), name)
    const warnings: string[] = []
    const m = await walk([d], (line) => warnings.push(line))
    const top = path.basename(d)
    // Before: both were offered, and the receiver refused the whole offer ("two entries are named a.txt")
    expect(m.entries.map(e => e.path)).toEqual([top, `${top}/A.txt`, `${top}/b_.txt`, `${top}/c.txt`])
    expect(warnings).toEqual([path.join(d, 'a.txt'), path.join(d, 'b_.txt')].map(p => `skipped ${p}: another entry has the same name (ignoring case or the characters replaced with '_')`))
    expect(m.total).toBe(16) // A.txt, b?.txt (offered as b_.txt), c.txt
  })
})

describe('progress of a stream and of a resumed transfer', () => {
  it('a stream of unknown size shows bytes and rate, no percentage; resumed bytes do not count toward the rate', () => {
    let now = 0
    let text = ''
    const out = new Writable({
      write (chunk: Buffer, _enc, cb) {
        text += chunk.toString()
        cb()
      }
    })
    const stream = new Progress('receiving', 'stdin', null, { mode: 'lines', out, now: () => now })
    for (now = 0; now <= 5000; now += 500) stream.update(now * 1000) // 1 MB/s
    // Before: the total was passed as 0, shown as "100% (5.00 of 0.00 MB)"
    expect(text).toBe('receiving stdin: 5.00 MB, 1.00 MB/s\n')
    text = ''
    now = 0
    const resumed = new Progress('sending', 'big.bin', 100e6, { mode: 'lines', out, now: () => now, initial: 50e6 })
    for (now = 0; now <= 5000; now += 500) resumed.update(50e6 + now * 1000)
    // Before: the 50 MB already there counted as moved in the first seconds (a rate of ~11 MB/s)
    expect(text).toBe('sending big.bin: 55% (55.00 of 100 MB), 1.00 MB/s, ETA 0:45\n')
  })
})
