// The CLI's roles, cancel and inactivity limit (issue 13), run as users run it: child processes on loopback.
// Transfers go through the server's relay capped at 2 MB/s, so a 20 MB file takes ~10 s: long enough to
// interrupt at a point observed from the --json progress lines.
import type { ChildProcess } from 'child_process'
import { randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { finish, start, startRendezvous, type CliServer } from './helpers/cli'

const SIZE = 20_000_000
let tmp = ''
let src = ''
const servers: CliServer[] = []

/**
 * A rendezvous server of its own for each test: the server limits relays per network, and the relays of a
 * cancelled transfer stay allocated until they idle out
 */
async function rendezvousServer (): Promise<string> {
  const server = await startRendezvous(['--relay-rate', '2000000'])
  servers.push(server)
  return server.addr
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-cancel-'))
  src = path.join(tmp, 'big.bin')
  fs.writeFileSync(src, randomBytes(SIZE))
})

afterAll(async () => {
  for (const s of servers) s.child.kill('SIGTERM')
  await Promise.all(servers.map(async s => await s.exit))
  fs.rmSync(tmp, { recursive: true, force: true })
})

function newCode (): string {
  return `code-${randomBytes(4).toString('hex')}`
}

/** Resolves once the child's --json progress lines report at least `fraction` of the file moved */
function progressed (child: ChildProcess, fraction: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = ''
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    let all = ''
    const onData = (d: Buffer): void => {
      buf += d.toString()
      all += d.toString()
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = JSON.parse(buf.slice(0, nl)) as { event?: string, bytes?: number, total?: number }
        buf = buf.slice(nl + 1)
        if (line.event === 'progress' && (line.bytes as number) >= fraction * (line.total as number)) {
          child.stdout?.removeListener('data', onData)
          resolve(line.bytes as number)
          return
        }
      }
    }
    child.stdout?.on('data', onData)
    child.once('close', (code, signal) => reject(new Error(`exited (${String(code ?? signal)}) before the transfer got that far: ${all} ${stderr}`)))
  })
}

const peerArgs = async (code: string): Promise<string[]> => ['--rendezvous', await rendezvousServer(), '--code', code, '--force-relay']

describe('utp-punch-rs send/receive: roles, cancel, inactivity', () => {
  it.each([
    ['receive', 'another receiver is already waiting with this code: the other side must run send (that receiver keeps waiting)'],
    ['send', 'another sender is already waiting with this code: the other side must run receive (that sender keeps waiting)']
  ])('two %ss with one code: the second fails fast at the server, "%s"; the first then gets its peer', async (role, message) => {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const args = await peerArgs(newCode())
    const small = path.join(dir, 'small.bin')
    fs.writeFileSync(small, randomBytes(50_000))
    const inbox = fs.mkdtempSync(path.join(tmp, 'in-'))
    const sendCmd = ['send', small, ...args]
    const receiveCmd = ['receive', ...args, '--yes', '--out', inbox]
    const same = role === 'send' ? sendCmd : receiveCmd
    const first = start(same)
    const firstDone = finish(first, 30_000)
    await new Promise(resolve => setTimeout(resolve, 500)) // registered
    const t0 = Date.now()
    const second = await finish(start(same), 30_000)
    const seconds = (Date.now() - t0) / 1000
    // Before (main at 5554e7a): both paired, the code was spent, and both failed in the transfer's hello
    expect(second.code, second.stderr).toBe(1)
    expect(second.stderr).toBe(`utp-punch-rs: rendezvous failed (ERR_SAME_ROLE): ${message}\n`)
    expect(seconds).toBeLessThan(3)
    // The code still works: the first one completes with a peer of the other role
    const other = await finish(start(role === 'send' ? receiveCmd : sendCmd), 30_000)
    const done = await firstDone
    expect([done.code, other.code], done.stderr + other.stderr).toEqual([0, 0])
    expect(fs.readFileSync(path.join(inbox, 'small.bin')).equals(fs.readFileSync(small))).toBe(true)
  }, 40_000)

  it('SIGINT to the sender mid-transfer: sender exits 130, receiver 1 "cancelled by the sender at X of Y", .part kept', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const args = await peerArgs(newCode())
    const receiving = finish(start(['receive', ...args, '--yes', '--out', dir]), 60_000)
    const sender = start(['send', src, ...args, '--json'])
    const sending = finish(sender, 60_000)
    await progressed(sender, 0.3)
    sender.kill('SIGINT')
    const [send, receive] = await Promise.all([sending, receiving])
    expect(send.code, send.stdout + send.stderr).toBe(130)
    expect(send.stdout).toMatch(/"code":"ERR_CANCELLED","message":"cancelled at [\d.]+ of 20\.00 MB; the receiver was told"/)
    expect(receive.code, receive.stderr).toBe(1)
    expect(receive.stderr).toMatch(/^utp-punch-rs: cancelled by the sender at [\d.]+ of 20\.00 MB; kept the partial big\.bin\.part \([\d.]+ of 20\.00 MB\): run the same receive again to resume\n$/)
    expect(fs.readdirSync(dir)).toEqual(['big.bin.part'])
  }, 70_000)

  it('SIGINT to the receiver mid-transfer: receiver exits 130, sender 1 "cancelled by the receiver", .part kept', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const args = await peerArgs(newCode())
    const receiver = start(['receive', ...args, '--yes', '--out', dir, '--json'])
    const receiving = finish(receiver, 60_000)
    const sending = finish(start(['send', src, ...args]), 60_000)
    await progressed(receiver, 0.3)
    receiver.kill('SIGINT')
    const [send, receive] = await Promise.all([sending, receiving])
    expect(receive.code, receive.stdout + receive.stderr).toBe(130)
    expect(receive.stdout).toMatch(/"code":"ERR_CANCELLED","message":"cancelled at [\d.]+ of 20\.00 MB; the sender was told; kept the partial big\.bin\.part \([\d.]+ of 20\.00 MB\): run the same receive again to resume"/)
    expect(send.code, send.stderr).toBe(1)
    expect(send.stderr).toMatch(/^utp-punch-rs: cancelled by the receiver at [\d.]+ of 20\.00 MB\n$/)
    expect(fs.readdirSync(dir)).toEqual(['big.bin.part'])
  }, 70_000)

  it('a sender that stops (SIGSTOP) fails the receiver within --idle-timeout, in the user\'s terms', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
    const args = await peerArgs(newCode())
    const receiver = start(['receive', ...args, '--yes', '--out', dir, '--idle-timeout', '3s', '--json'])
    const receiving = finish(receiver, 60_000)
    const sender = start(['send', src, ...args])
    const sending = finish(sender, 60_000)
    await progressed(receiver, 0.2)
    sender.kill('SIGSTOP')
    const stopped = Date.now()
    try {
      const receive = await receiving
      const seconds = (Date.now() - stopped) / 1000
      expect(receive.code, receive.stdout + receive.stderr).toBe(1)
      expect(receive.stdout).toMatch(/"code":"ERR_PEER_IDLE","message":"the sender stopped responding after [\d.]+ of 20\.00 MB \(nothing for 3 s\); kept the partial big\.bin\.part \([\d.]+ of 20\.00 MB\): run the same receive again to resume"/)
      expect(fs.readdirSync(dir)).toEqual(['big.bin.part'])
      // 3 s idle, plus what the relay still had queued (up to a few seconds at 2 MB/s), plus the exit
      expect(seconds).toBeLessThan(15)
    } finally {
      sender.kill('SIGCONT')
      sender.kill('SIGKILL')
      await sending
    }
  }, 70_000)
})
