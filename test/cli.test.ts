// The utp-punch-rs command, run as users run it: `node bin/utp-punch-rs.js ...` child processes on loopback
import type { ChildProcess } from 'child_process'
import { randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { skipCoturn, startCoturn, type Coturn } from './helpers/coturn'
import { finish, start, startRendezvous, type Run } from './helpers/cli'

async function cli (args: string[]): Promise<Run> {
  return await finish(start(args))
}

let server: ChildProcess
let serverExit: Promise<Run>
let rendezvousAddr = ''
let tmp = ''

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-cli-'))
  const started = await startRendezvous(['--relay-rate', '20000000'])
  server = started.child
  rendezvousAddr = started.addr
  serverExit = started.exit
})

afterAll(async () => {
  server.kill('SIGTERM')
  const r = await serverExit
  expect(r.code).toBe(0)
  fs.rmSync(tmp, { recursive: true, force: true })
})

/** stderr without the plain progress lines a transfer longer than 5 s prints into a pipe */
function withoutProgress (stderr: string): string {
  return stderr.split(/(?<=\n)/).filter(l => !/^(sending|receiving) .*: \d+% \([\d.]+ of [\d.]+ MB\), [\d.]+ MB\/s, ETA [\d:-]+\n$/.test(l)).join('')
}

async function transfer (name: string, bytes: number, extra: string[] = []): Promise<{ send: Run, receive: Run, src: string, dir: string }> {
  const dir = fs.mkdtempSync(path.join(tmp, 'out-'))
  const src = path.join(tmp, name)
  fs.writeFileSync(src, randomBytes(bytes))
  const code = `code-${randomBytes(4).toString('hex')}`
  const receiving = finish(start(['receive', '--rendezvous', rendezvousAddr, '--code', code, '--out', dir, '--yes', ...extra]))
  const sending = finish(start(['send', src, '--rendezvous', rendezvousAddr, '--code', code, ...extra]))
  const [send, receive] = await Promise.all([sending, receiving])
  return { send, receive, src, dir }
}

describe('utp-punch-rs CLI', () => {
  it('send and receive move a 3 MiB file intact and print a summary', async () => {
    const { send, receive, src, dir } = await transfer('random.bin', 3 << 20)
    // Not a TTY: no progress bar, no chatter (at most plain progress lines). Compared together so a failure shows both sides
    expect({ send: [send.code, withoutProgress(send.stderr)], receive: [receive.code, withoutProgress(receive.stderr)] })
      .toEqual({ send: [0, ''], receive: [0, ''] })
    expect(fs.readFileSync(path.join(dir, 'random.bin')).equals(fs.readFileSync(src))).toBe(true)
    expect(fs.readdirSync(dir)).toEqual(['random.bin']) // no .part left behind
    const summary = /^(sent|received) random\.bin.*: 3145728 bytes in \d+\.\d\d s \(\d+(\.\d+)? MB\/s\) via (lan|direct) path to .+, sha256 [0-9a-f]{64}\n$/
    expect(`${send.stdout}${receive.stdout}`).toMatch(new RegExp(`^${summary.source.slice(1, -1)}${summary.source.slice(1, -1)}$`))
    expect(receive.stdout).toContain(`-> ${path.join(dir, 'random.bin')}`)
  })

  it('--force-relay goes through the server relay', async () => {
    const { send, receive, src, dir } = await transfer('relayed.dat', 512 * 1024, ['--force-relay'])
    expect([send.code, receive.code]).toEqual([0, 0])
    expect(send.stdout).toContain('via relay path')
    expect(fs.readFileSync(path.join(dir, 'relayed.dat')).equals(fs.readFileSync(src))).toBe(true)
  })

  it('--congestion picks the controller of the transfer\'s connection', async () => {
    const { send, receive } = await transfer('cubic.dat', 256 * 1024, ['--congestion', 'cubic', '--json', '--no-progress'])
    expect([send.code, receive.code]).toEqual([0, 0])
    for (const r of [send, receive]) {
      const last = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { ok: boolean, stats: { congestion: string } }
      expect(last.ok).toBe(true)
      expect(last.stats.congestion).toBe('cubic')
    }
    const bad = await cli(['receive', '--rendezvous', rendezvousAddr, '--code', 'c', '--congestion', 'bbr'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--congestion must be ledbat or cubic, got bbr')
    const help = await cli(['receive', '--help'])
    expect(help.stdout).toContain('--congestion MODE')
  })

  it('fails with a one-line reason and a non-zero exit when the codes differ', async () => {
    const src = path.join(tmp, 'lonely.txt')
    fs.writeFileSync(src, 'nobody will get this')
    const t0 = Date.now()
    const [send, receive] = await Promise.all([
      cli(['send', src, '--rendezvous', rendezvousAddr, '--code', 'one-code', '--timeout', '1s']),
      cli(['receive', '--rendezvous', rendezvousAddr, '--code', 'another-code', '--out', tmp, '--timeout', '1', '-y'])
    ])
    expect(Date.now() - t0).toBeLessThan(10_000)
    for (const r of [send, receive]) {
      expect(r.code).toBe(1)
      expect(r.stdout).toBe('')
      expect(r.stderr).toMatch(/^utp-punch-rs: rendezvous failed \(ERR_RENDEZVOUS_TIMEOUT\): no peer registered under this code within 1000 ms\n$/)
    }
    expect(fs.existsSync(path.join(tmp, 'lonely.txt.part'))).toBe(false)
  })

  it('keeps plain progress lines out of the summary checks', () => {
    const line = 'sending big.bin: 45% (3.77 of 8.39 MB), 12.30 MB/s, ETA 0:01\n'
    expect(withoutProgress(`${line}${line.replace('sending', 'receiving')}`)).toBe('')
    expect(withoutProgress(`${line}utp-punch-rs: boom\n`)).toBe('utp-punch-rs: boom\n')
  })

  it('explains usage: --help for every command, usage errors exit 2', async () => {
    for (const command of ['rendezvous', 'send', 'receive', 'nat-check']) {
      const r = await cli([command, '--help'])
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(new RegExp(`^usage: utp-punch-rs ${command}`))
    }
    expect((await cli(['--help'])).stdout).toContain('commands:')
    const natCheck = await cli(['nat-check'])
    expect(natCheck.code).toBe(2)
    expect(natCheck.stderr).toContain('--stun HOST:PORT')
    const missing = await cli(['receive', '--rendezvous', rendezvousAddr])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('--code CODE is required')
    const unknown = await cli(['send', 'x', '--bogus'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('unknown option --bogus')
    expect((await cli(['frobnicate'])).code).toBe(2)
    const noFile = await cli(['send', path.join(tmp, 'does-not-exist'), '--rendezvous', rendezvousAddr, '--code', 'c'])
    expect(noFile.code).toBe(1)
    expect(noFile.stderr).toContain('no such file')
  })

  it('the server answers /healthz over HTTP', async () => {
    const res = await fetch(`http://${rendezvousAddr}/healthz`)
    expect(await res.text()).toBe('ok')
    const stats = await (await fetch(`http://${rendezvousAddr}/stats`)).json() as Record<string, number>
    expect(stats.pairings).toBeGreaterThanOrEqual(0)
  })
})

describe.skipIf(skipCoturn)('utp-punch-rs nat-check', () => {
  let coturn: Coturn | undefined
  afterAll(async () => { await coturn?.stop() })

  it('reports the public address and RFC 5780 behaviour from a real STUN server', async () => {
    coturn = await startCoturn()
    const text = await cli(['nat-check', '--stun', coturn.server])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^public address: 127\.0\.0\.1:\d+\nmapping: endpoint-independent\nfiltering: endpoint-independent\n/)
    const json = await cli(['nat-check', '--stun', coturn.server, '--json'])
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, mapping: 'endpoint-independent', filtering: 'endpoint-independent', natted: false })
  })
})

