// The CLI's end-to-end integrity checks (issue 14): a corrupted payload or a corrupted trailer, in both
// directions. A fake peer built on the library meets the real command (a child process) through a rendezvous
// server and speaks the transfer format (bin/transfer.ts) by hand: a sender whose bytes or trailer lie, and a
// receiver whose confirmation lies. Each side must fail with exit 1 and say why; a receiver removes the .part
// of data proven bad.
import { createHash, randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import type { Duplex } from 'stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { finish, start, startRendezvous, type CliServer, type Run } from './helpers/cli'
import { Node } from './helpers/utp'

let server: CliServer
let tmp = ''

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-cli-integrity-'))
  server = await startRendezvous()
})

afterAll(async () => {
  server.child.kill('SIGTERM')
  await server.exit
  fs.rmSync(tmp, { recursive: true, force: true })
})

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')

function freshCode (): string {
  return `integrity-${randomBytes(6).toString('hex')}`
}

/** Reads what the real command sends: JSON lines and data records ('D', 4-byte big-endian length, bytes) */
class Wire {
  private _buf = Buffer.alloc(0)
  private _wake: (() => void) | null = null
  private _ended = false

  constructor (socket: Duplex) {
    socket.on('data', (d: Buffer) => {
      this._buf = Buffer.concat([this._buf, d])
      this._wake?.()
    })
    for (const ev of ['end', 'close', 'error']) {
      socket.on(ev, () => {
        this._ended = true
        this._wake?.()
      })
    }
  }

  private async _more (): Promise<void> {
    if (this._ended) throw new Error('the connection ended')
    await new Promise<void>((resolve) => {
      this._wake = resolve
      setTimeout(resolve, 50)
    })
  }

  async line (): Promise<Record<string, unknown>> {
    for (;;) {
      const nl = this._buf.indexOf(10)
      if (nl >= 0) {
        const text = this._buf.toString('utf8', 0, nl)
        this._buf = this._buf.subarray(nl + 1)
        return JSON.parse(text) as Record<string, unknown>
      }
      await this._more()
    }
  }

  /** One file's data records up to its trailer line: the bytes and the trailer */
  async file (): Promise<{ data: Buffer, trailer: Record<string, unknown> }> {
    const parts: Buffer[] = []
    for (;;) {
      while (this._buf.length === 0) await this._more()
      if (this._buf[0] === 0x7b) return { data: Buffer.concat(parts), trailer: await this.line() }
      if (this._buf[0] !== 0x44) throw new Error(`unexpected record type ${this._buf[0]}`)
      while (this._buf.length < 5) await this._more()
      const len = this._buf.readUInt32BE(1)
      while (this._buf.length < 5 + len) await this._more()
      parts.push(Buffer.from(this._buf.subarray(5, 5 + len)))
      this._buf = this._buf.subarray(5 + len)
    }
  }
}

/** Meets the command under `code` and runs `script` on the connection */
async function fakePeer (code: string, script: (socket: Duplex, wire: Wire) => Promise<void>): Promise<void> {
  const node = new Node()
  node.on('error', () => {})
  await node.bindAsync(0)
  const met = await node.rendezvous({ server: server.addr, code, timeoutMs: 20_000 })
  const socket = met.socket as Duplex
  socket.on('error', () => {})
  try {
    await script(socket, new Wire(socket))
  } finally {
    socket.destroy()
    await Promise.all([node.closeAsync(), met.node !== node ? met.node.closeAsync() : undefined])
  }
}

function record (data: Buffer): Buffer {
  const head = Buffer.alloc(5)
  head[0] = 0x44
  head.writeUInt32BE(data.length, 1)
  return Buffer.concat([head, data])
}

function jsonResult (r: Run): Record<string, unknown> {
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, unknown>
}

/** How each side ended: exit code and its last JSON line's code and message */
function outcome (r: Run): { exit: number | null, code: unknown, message: unknown } {
  const j = jsonResult(r)
  return { exit: r.code, code: j.ok === true ? 'ok' : j.code, message: j.message }
}

describe('a sender that lies: the receiving command fails and removes what it wrote', () => {
  const data = randomBytes(300_000)
  // One byte flipped in the middle of the payload; the trailer still carries the true file's sha256
  const corrupted = Buffer.from(data)
  corrupted[150_000] ^= 0x20
  const cases = [
    { what: 'a corrupted payload', bytes: corrupted, trailer: sha256(data) },
    { what: 'a corrupted trailer', bytes: data, trailer: sha256(Buffer.concat([data, Buffer.from('x')])) },
    { what: 'a trailer that is no sha256 at all', bytes: data, trailer: 'ok' }
  ]
  for (const c of cases) {
    it(`${c.what}: exit 1, ERR_SHA256_MISMATCH, the sender is told, nothing is left in --out`, async () => {
      const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
      const code = freshCode()
      const receiving = finish(start(['receive', '--rendezvous', server.addr, '--code', code, '--out', dir, '--yes', '--json', '--timeout', '20s']))
      let verdict: Record<string, unknown> | null = null
      let partSeen = false
      await fakePeer(code, async (socket, wire) => {
        socket.write(JSON.stringify({ v: 3, role: 'send' }) + '\n')
        expect(await wire.line()).toEqual({ v: 3, role: 'receive' })
        socket.write(JSON.stringify({ entries: [{ path: 'payload.bin', size: data.length }], total: data.length }) + '\n')
        expect(await wire.line()).toEqual({ accept: true, resume: [null] })
        socket.write(JSON.stringify({ start: [0] }) + '\n')
        for (let at = 0; at < c.bytes.length; at += 64 * 1024) socket.write(record(c.bytes.subarray(at, at + 64 * 1024)))
        // Wait until the receiver has its .part open before the trailer decides its fate
        const until = Date.now() + 10_000
        while (!partSeen && Date.now() < until) {
          partSeen = fs.readdirSync(dir).includes('payload.bin.part')
          if (!partSeen) await new Promise((resolve) => setTimeout(resolve, 20))
        }
        socket.write(JSON.stringify({ sha256: c.trailer }) + '\n')
        verdict = await wire.line()
      })
      const r = await receiving
      expect(partSeen).toBe(true)
      // Before (a receiver whose comparison always says ok): exit 0, payload.bin saved, verdict ok:true
      expect(verdict).toEqual({ ok: false, sha256: sha256(c.bytes), code: 'ERR_SHA256_MISMATCH', message: 'sha256 mismatch for payload.bin' })
      expect(outcome(r)).toEqual({ exit: 1, code: 'ERR_SHA256_MISMATCH', message: 'sha256 mismatch: the file was corrupted on the way; removed the partial payload.bin.part' })
      expect(fs.readdirSync(dir)).toEqual([])
    })
  }

  it('the second of two files corrupted: the first stays saved, the damaged one is named and removed', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const code = freshCode()
    const receiving = finish(start(['receive', '--rendezvous', server.addr, '--code', code, '--out', dir, '--yes', '--timeout', '20s']))
    const good = randomBytes(5000)
    let verdict: Record<string, unknown> | null = null
    await fakePeer(code, async (socket, wire) => {
      socket.write(JSON.stringify({ v: 3, role: 'send' }) + '\n')
      await wire.line()
      const entries = [{ path: 'set', dir: true }, { path: 'set/a.bin', size: good.length }, { path: 'set/b.bin', size: data.length }]
      socket.write(JSON.stringify({ entries, total: good.length + data.length }) + '\n')
      await wire.line()
      socket.write(JSON.stringify({ start: [0, 0] }) + '\n')
      socket.write(record(good))
      socket.write(JSON.stringify({ sha256: sha256(good) }) + '\n')
      socket.write(record(corrupted))
      socket.write(JSON.stringify({ sha256: sha256(data) }) + '\n')
      verdict = await wire.line()
    })
    const r = await receiving
    expect(verdict).toMatchObject({ ok: false, code: 'ERR_SHA256_MISMATCH', message: 'sha256 mismatch for set/b.bin' })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^utp-punch-rs: sha256 mismatch in set\/b\.bin: the file was corrupted on the way; removed the partial /)
    expect(fs.readdirSync(dir)).toEqual([])
  })
})

describe('a sender that lies about the rest of a kept .part', () => {
  const data = randomBytes(300_000)
  const KEPT = 100_000

  /** Receives `payload.bin` over a kept first KEPT bytes; the fake sender resumes there and sends `rest` */
  async function resume (rest: Buffer): Promise<{ accept: Record<string, unknown>, verdict: Record<string, unknown>, r: Run, dir: string }> {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    fs.writeFileSync(path.join(dir, 'payload.bin.part'), data.subarray(0, KEPT))
    const code = freshCode()
    const receiving = finish(start(['receive', '--rendezvous', server.addr, '--code', code, '--out', dir, '--yes', '--json', '--timeout', '20s']))
    let accept: Record<string, unknown> = {}
    let verdict: Record<string, unknown> = {}
    await fakePeer(code, async (socket, wire) => {
      socket.write(JSON.stringify({ v: 3, role: 'send' }) + '\n')
      await wire.line()
      socket.write(JSON.stringify({ entries: [{ path: 'payload.bin', size: data.length }], total: data.length }) + '\n')
      accept = await wire.line()
      socket.write(JSON.stringify({ start: [KEPT] }) + '\n')
      socket.write(record(rest))
      socket.write(JSON.stringify({ sha256: sha256(data) }) + '\n')
      verdict = await wire.line()
    })
    return { accept, verdict, r: await receiving, dir }
  }

  it('the true rest: the kept bytes and the rest make the file (exit 0)', async () => {
    const { accept, verdict, r, dir } = await resume(data.subarray(KEPT))
    expect(accept).toEqual({ accept: true, resume: [{ at: KEPT, sha256: sha256(data.subarray(0, KEPT)) }] })
    expect(verdict).toEqual({ ok: true, sha256: sha256(data) }) // one file: the transfer's sha256 is the file's
    expect(outcome(r)).toMatchObject({ exit: 0, code: 'ok' })
    expect(fs.readFileSync(path.join(dir, 'payload.bin')).equals(data)).toBe(true)
  })

  it('a corrupted rest: exit 1, ERR_SHA256_MISMATCH, and the .part (kept bytes included) is removed', async () => {
    const rest = Buffer.from(data.subarray(KEPT))
    rest[5] ^= 1
    const { verdict, r, dir } = await resume(rest)
    // Before (a receiver whose comparison always says ok): exit 0, a damaged payload.bin saved
    expect(verdict).toMatchObject({ ok: false, code: 'ERR_SHA256_MISMATCH' })
    expect(outcome(r)).toEqual({ exit: 1, code: 'ERR_SHA256_MISMATCH', message: 'sha256 mismatch: the file was corrupted on the way; removed the partial payload.bin.part' })
    expect(fs.readdirSync(dir)).toEqual([])
  })
})

describe('a receiver that lies: the sending command does not report success', () => {
  const data = randomBytes(200_000)
  let src = ''
  beforeAll(() => {
    src = path.join(tmp, 'sent.bin')
    fs.writeFileSync(src, data)
  })

  /**
   * Runs `send` against a fake receiver that accepts, reads everything, checks what arrived is the file, then
   * answers `verdict(what arrived)`; returns the sender's outcome
   */
  async function sendTo (verdict: (arrived: { data: Buffer, trailer: Record<string, unknown> }) => object): Promise<{ exit: number | null, code: unknown, message: unknown }> {
    const code = freshCode()
    const sending = finish(start(['send', src, '--rendezvous', server.addr, '--code', code, '--json', '--timeout', '20s']))
    let arrived: { data: Buffer, trailer: Record<string, unknown> } | null = null
    await fakePeer(code, async (socket, wire) => {
      socket.write(JSON.stringify({ v: 3, role: 'receive' }) + '\n')
      expect(await wire.line()).toEqual({ v: 3, role: 'send' })
      expect(await wire.line()).toEqual({ entries: [{ path: 'sent.bin', size: data.length }], total: data.length })
      socket.write(JSON.stringify({ accept: true, resume: [null] }) + '\n')
      expect(await wire.line()).toEqual({ start: [0] })
      arrived = await wire.file()
      socket.write(JSON.stringify(verdict(arrived)) + '\n')
      // Let the sender read the verdict and end its side
      await wire.line().catch(() => {})
    })
    // The sender sent the true file and its true sha256: only the verdict lies
    expect(arrived).toEqual({ data, trailer: { sha256: sha256(data) } })
    return outcome(await sending)
  }

  it('a true confirmation: exit 0 (the fake receiver speaks the format right)', async () => {
    expect(await sendTo((a) => ({ ok: true, sha256: sha256(a.data) }))).toMatchObject({ exit: 0, code: 'ok' })
  })

  it('ok:true with another sha256: exit 1, ERR_SHA256_MISMATCH', async () => {
    // Before (a sender that does not compare the receiver's sha256): exit 0, "sent sent.bin"
    expect(await sendTo(() => ({ ok: true, sha256: sha256('something else') }))).toEqual({
      exit: 1, code: 'ERR_SHA256_MISMATCH', message: 'the receiver\'s sha256 does not match: the file was corrupted on the way'
    })
  })

  it('ok:true with no sha256: exit 1, ERR_SHA256_MISMATCH', async () => {
    expect(await sendTo(() => ({ ok: true }))).toMatchObject({ exit: 1, code: 'ERR_SHA256_MISMATCH' })
  })

  it('ok:false with the true sha256 (the receiver could not save): exit 1, ERR_REFUSED with its reason', async () => {
    // Before (a sender that does not check "ok"): exit 0, "sent sent.bin"
    expect(await sendTo((a) => ({ ok: false, sha256: sha256(a.data), code: 'ERR_SAVE', message: 'the receiver could not save the files' }))).toEqual({
      exit: 1, code: 'ERR_REFUSED', message: 'the receiver could not save sent.bin: the receiver could not save the files (ERR_SAVE)'
    })
  })

  it('ok:false ERR_SHA256_MISMATCH (the receiver saw corruption): exit 1, ERR_SHA256_MISMATCH', async () => {
    expect(await sendTo(() => ({ ok: false, sha256: sha256('x'), code: 'ERR_SHA256_MISMATCH', message: 'sha256 mismatch for sent.bin' }))).toEqual({
      exit: 1, code: 'ERR_SHA256_MISMATCH', message: 'the receiver\'s sha256 does not match: the file was corrupted on the way'
    })
  })
})
