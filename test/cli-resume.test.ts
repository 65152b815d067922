// Resuming a failed transfer (issue 13): the receiver keeps NAME.part when the sender dies, the next run of the same
// commands continues it from a hash-checked point, and a .part whose bytes differ from the sender's file starts over.
// Child processes on loopback through the server's relay capped at 20 MB/s, so 64 MiB takes ~3.5 s: long enough
// to kill the sender half-way, observed from the receiver's --json progress lines.
import type { ChildProcess } from 'child_process'
import { createHash, randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { finish, start, startRendezvous, type CliServer, type Run } from './helpers/cli'

const SIZE = 64 << 20
let tmp = ''
let src = ''
let server: CliServer

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-resume-'))
  src = path.join(tmp, 'big.bin')
  fs.writeFileSync(src, randomBytes(SIZE))
  server = await startRendezvous(['--relay-rate', '20000000'])
})

afterAll(async () => {
  server.child.kill('SIGTERM')
  await server.exit
  fs.rmSync(tmp, { recursive: true, force: true })
})

function sha256 (file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

/** Only the first test goes through the (rate-capped) relay: the server limits relays per network */
function args (code: string, relay = false): string[] {
  return ['--rendezvous', server.addr, '--code', code, ...(relay ? ['--force-relay'] : []), '--timeout', '20s']
}

/** The last JSON line of a --json run */
function result (r: Run): Record<string, unknown> {
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, unknown>
}

/** Resolves once the child's --json progress lines report at least `fraction` of the total moved */
function progressed (child: ChildProcess, fraction: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const onData = (d: Buffer): void => {
      buf += d.toString()
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = JSON.parse(buf.slice(0, nl)) as { event?: string, bytes?: number, total?: number }
        buf = buf.slice(nl + 1)
        if (line.event === 'progress' && (line.bytes as number) >= fraction * (line.total as number)) {
          child.stdout?.removeListener('data', onData)
          resolve()
        }
      }
    }
    child.stdout?.on('data', onData)
    child.once('close', (code, signal) => reject(new Error(`exited (${String(code ?? signal)}) before the transfer got that far`)))
  })
}

/** One send and one receive of `file` into `dir` with --json; the receiver gives up after 2 s of silence */
async function both (file: string, dir: string, code: string, relay = false): Promise<{ send: Run, receive: Run }> {
  const [send, receive] = await Promise.all([
    finish(start(['send', file, ...args(code, relay), '--json']), 40_000),
    finish(start(['receive', ...args(code, relay), '--yes', '--out', dir, '--json', '--idle-timeout', '2s']), 40_000)
  ])
  return { send, receive }
}

describe('utp-punch-rs receive continues what a failed run kept', () => {
  it('SIGKILL of the sender half-way: NAME.part kept, the same commands again move only the rest', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const code = `resume-${randomBytes(4).toString('hex')}`
    const receiver = start(['receive', ...args(code, true), '--yes', '--out', dir, '--json', '--idle-timeout', '2s'])
    const receiving = finish(receiver, 40_000)
    const sender = start(['send', src, ...args(code, true), '--json'])
    const sending = finish(sender, 40_000)
    await progressed(receiver, 0.4)
    sender.kill('SIGKILL')
    const [first] = await Promise.all([receiving, sending])
    expect(first.code).toBe(1)
    const failed = result(first)
    expect(failed.code).toBe('ERR_PEER_IDLE')
    expect(failed.message).toMatch(/; kept the partial big\.bin\.part \([\d.]+ of 67\.11 MB\): run the same receive again to resume$/)
    expect(fs.readdirSync(dir)).toEqual(['big.bin.part'])
    const kept = fs.statSync(path.join(dir, 'big.bin.part')).size
    expect(kept).toBeGreaterThan(0.3 * SIZE)
    expect(kept).toBeLessThan(SIZE)

    const second = await both(src, dir, `resume-${randomBytes(4).toString('hex')}`, true)
    expect([second.send.code, second.receive.code], second.send.stdout + second.receive.stdout).toEqual([0, 0])
    // Before (main): the first run removed the .part ("removed the partial big.bin.part"), so the second moved
    // all 64 MiB again (and its result had no resumedFrom)
    for (const r of [second.send, second.receive]) expect(result(r)).toMatchObject({ ok: true, resumedFrom: kept, bytes: SIZE - kept, sha256: sha256(src) })
    expect(fs.readdirSync(dir)).toEqual(['big.bin'])
    expect(sha256(path.join(dir, 'big.bin'))).toBe(sha256(src))
  }, 60_000)

  it('SIGKILL of the receiver half-way: its .part is on disk, and the next receive continues it', async () => {
    // A server of its own: the relays of the first test may still be allocated (the server limits them per network)
    const own = await startRendezvous(['--relay-rate', '20000000'])
    try {
      const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
      const code = `killed-${randomBytes(4).toString('hex')}`
      const relayed = ['--rendezvous', own.addr, '--code', code, '--force-relay', '--timeout', '20s']
      const receiver = start(['receive', ...relayed, '--yes', '--out', dir, '--json'])
      const receiving = finish(receiver, 40_000)
      const sending = finish(start(['send', src, ...relayed, '--idle-timeout', '2s']), 40_000)
      await progressed(receiver, 0.4)
      receiver.kill('SIGKILL')
      const [, send] = await Promise.all([receiving, sending])
      expect(send.code).toBe(1)
      expect(send.stderr).toMatch(/^utp-punch-rs: the receiver stopped responding after [\d.]+ of 67\.11 MB \(nothing for 2 s\)\n$/)
      expect(fs.readdirSync(dir)).toEqual(['big.bin.part'])
      const kept = fs.statSync(path.join(dir, 'big.bin.part')).size
      // What the killed receiver had written (its last unwritten batch is lost, not corrupted)
      expect(kept).toBeGreaterThan(0.2 * SIZE)
      const code2 = `killed-${randomBytes(4).toString('hex')}`
      const again = ['--rendezvous', own.addr, '--code', code2, '--timeout', '20s']
      const [send2, receive2] = await Promise.all([
        finish(start(['send', src, ...again, '--json']), 40_000),
        finish(start(['receive', ...again, '--yes', '--out', dir, '--json']), 40_000)
      ])
      expect([send2.code, receive2.code]).toEqual([0, 0])
      // Before (main): no resumedFrom, all 64 MiB moved again into a random "big.bin.<hex>.part"
      expect(result(receive2)).toMatchObject({ ok: true, resumedFrom: kept, bytes: SIZE - kept, sha256: sha256(src) })
      expect(sha256(path.join(dir, 'big.bin'))).toBe(sha256(src))
    } finally {
      own.child.kill('SIGTERM')
      await own.exit
    }
  }, 60_000)

  it('a kept .part whose bytes differ from the sender\'s file starts over and still arrives intact', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const small = path.join(tmp, 'small.bin')
    fs.writeFileSync(small, randomBytes(3 << 20))
    fs.writeFileSync(path.join(dir, 'small.bin.part'), randomBytes(1 << 20)) // as long as a kept prefix, other bytes
    const { send, receive } = await both(small, dir, `differs-${randomBytes(4).toString('hex')}`)
    expect([send.code, receive.code], send.stdout + receive.stdout).toEqual([0, 0])
    // Before (main): the .part was not looked at ("small.bin.<random>.part" was used and small.bin.part left
    // behind), and the result had no resumedFrom
    for (const r of [send, receive]) expect(result(r)).toMatchObject({ ok: true, resumedFrom: 0, bytes: 3 << 20 })
    expect(send.stderr).toBe('')
    expect(receive.stderr).toBe('')
    expect(fs.readdirSync(dir)).toEqual(['small.bin'])
    expect(sha256(path.join(dir, 'small.bin'))).toBe(sha256(small))
    // Without --json both sides say so on stderr
    fs.rmSync(path.join(dir, 'small.bin'))
    fs.writeFileSync(path.join(dir, 'small.bin.part'), randomBytes(1 << 20))
    const code = `differs-${randomBytes(4).toString('hex')}`
    const [plainSend, plainReceive] = await Promise.all([
      finish(start(['send', small, ...args(code)]), 40_000),
      finish(start(['receive', ...args(code), '--yes', '--out', dir]), 40_000)
    ])
    expect([plainSend.code, plainReceive.code]).toEqual([0, 0])
    expect(plainSend.stderr).toBe('utp-punch-rs: small.bin: the receiver\'s partial copy differs from this file; sending it from the start\n')
    expect(plainReceive.stderr).toBe('utp-punch-rs: small.bin.part: the partial copy differs from the sender\'s file; receiving it from the start\n')
    expect(sha256(path.join(dir, 'small.bin'))).toBe(sha256(small))
  }, 60_000)

  it('a .part that is not ours to continue (a link) refuses the offer and stays as it was', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const victim = path.join(tmp, 'victim.txt')
    fs.writeFileSync(victim, 'keep me')
    fs.symlinkSync(victim, path.join(dir, 'tiny.txt.part'))
    const tiny = path.join(tmp, 'tiny.txt')
    fs.writeFileSync(tiny, 'four')
    const { send, receive } = await both(tiny, dir, `inway-${randomBytes(4).toString('hex')}`)
    expect([send.code, receive.code]).toEqual([1, 1])
    // Before (main): a random "tiny.txt.<hex>.part" was used next to the link, and the transfer succeeded
    expect(result(receive)).toMatchObject({ code: 'ERR_PART_EXISTS', message: 'tiny.txt.part exists and is not a partial copy this receive can continue (a symbolic link): move it away, or receive into another directory' })
    expect(result(send)).toMatchObject({ code: 'ERR_REFUSED' })
    expect(fs.readFileSync(victim, 'utf8')).toBe('keep me')
    expect(fs.readdirSync(dir)).toEqual(['tiny.txt.part'])
  }, 60_000)
})
