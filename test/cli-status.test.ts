// The CLI around the transfer (issue 13): where the server comes from (flag, environment, config file), usage
// errors before anything binds, a server that does not answer, status lines for every state change when
// stderr is not a terminal, the library's debug log, and --out checks. Child processes on loopback.
import * as dgram from 'dgram'
import { randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { finish, start, startRendezvous, type CliServer } from './helpers/cli'

let tmp = ''
let src = ''
let server: CliServer
const cleanEnv: NodeJS.ProcessEnv = { ...process.env }
delete cleanEnv.UTP_PUNCH_RENDEZVOUS
delete cleanEnv.UTP_PUNCH_CONFIG
delete cleanEnv.NODE_DEBUG

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-status-'))
  src = path.join(tmp, 'hello.bin')
  fs.writeFileSync(src, randomBytes(200_000))
  server = await startRendezvous()
})

afterAll(async () => {
  server.child.kill('SIGTERM')
  await server.exit
  fs.rmSync(tmp, { recursive: true, force: true })
})

const newCode = (): string => `status-${randomBytes(6).toString('hex')}`
/** An environment with no server configured: HOME and XDG_CONFIG_HOME point at an empty directory */
function envWith (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const home = fs.mkdtempSync(path.join(tmp, 'home-'))
  return { ...cleanEnv, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), ...extra }
}

/** A send and a receive with one code; `args` are added to both */
async function pair (env: NodeJS.ProcessEnv, args: string[] = []): Promise<[Awaited<ReturnType<typeof finish>>, Awaited<ReturnType<typeof finish>>, string]> {
  const out = fs.mkdtempSync(path.join(tmp, 'out-'))
  const code = newCode()
  const [s, r] = await Promise.all([
    finish(start(['send', src, '--code', code, ...args], undefined, env)),
    finish(start(['receive', '--code', code, '--yes', '--out', out, ...args], undefined, env))
  ])
  return [s, r, out]
}

describe('utp-punch-rs send/receive: the server from flag, environment or config file', () => {
  it('$UTP_PUNCH_RENDEZVOUS names the server; the status line says where it came from', async () => {
    const [s, r, out] = await pair(envWith({ UTP_PUNCH_RENDEZVOUS: server.addr }))
    // Before (main at a705942): exit 2, "--rendezvous HOST:PORT is required"
    expect([s.code, r.code], s.stderr + r.stderr).toEqual([0, 0])
    expect(s.status[0]).toBe(`contacting the rendezvous server ${server.addr} (from $UTP_PUNCH_RENDEZVOUS)`)
    expect(fs.readFileSync(path.join(out, 'hello.bin')).equals(fs.readFileSync(src))).toBe(true)
  })

  it('a config file names the server; the flag wins over the environment, the environment over the file', async () => {
    const env = envWith()
    const file = path.join(env.XDG_CONFIG_HOME as string, 'utp-punch-rs', 'config.json')
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, JSON.stringify({ rendezvous: server.addr }))
    const [s, r] = await pair(env)
    expect([s.code, r.code], s.stderr + r.stderr).toEqual([0, 0])
    expect(s.status[0]).toBe(`contacting the rendezvous server ${server.addr} (from ${file})`)
    // A dead server in the file and in the environment: the flag's live one is used
    fs.writeFileSync(file, JSON.stringify({ rendezvous: '127.0.0.1:9' }))
    const [s2, r2] = await pair({ ...env, UTP_PUNCH_RENDEZVOUS: '127.0.0.1:9' }, ['--rendezvous', server.addr])
    expect([s2.code, r2.code]).toEqual([0, 0])
    expect(s2.status[0]).toBe(`contacting the rendezvous server ${server.addr} (from --rendezvous)`)
    // The environment's live one over the file's dead one
    const [s3, r3] = await pair({ ...env, UTP_PUNCH_RENDEZVOUS: server.addr })
    expect([s3.code, r3.code]).toEqual([0, 0])
  })

  it('a broken config file is a usage error naming the file; with no server at all, the DHT', async () => {
    const env = envWith()
    const file = path.join(env.XDG_CONFIG_HOME as string, 'utp-punch-rs', 'config.json')
    // No server anywhere: the DHT, here through a node that never answers (the public routers are out of reach)
    const dead = dgram.createSocket('udp4')
    await new Promise<void>(resolve => dead.bind(0, '127.0.0.1', () => resolve()))
    try {
      const node = `127.0.0.1:${dead.address().port}`
      const none = await finish(start(['send', src], undefined, { ...env, UTP_PUNCH_DHT_BOOTSTRAP: node }))
      expect(none.code, none.stderr).toBe(1)
      expect(none.status[0]).toBe(`joining the BitTorrent DHT through ${node} (from $UTP_PUNCH_DHT_BOOTSTRAP)`)
      expect(none.stderr).toContain('utp-punch-rs receive --dht-bootstrap ' + node + ' --code ')
      expect(none.stderr).toMatch(/ERR_DHT_UNREACHABLE|no DHT node answered/)
    } finally {
      dead.close()
    }
    const both = await finish(start(['send', src, '--dht', '--rendezvous', server.addr], undefined, env))
    expect([both.code, both.stderr.split('\n')[0]]).toEqual([2, 'utp-punch-rs: --dht and --rendezvous name two ways to meet: give one'])
    const badNode = await finish(start(['send', src, '--dht-bootstrap', 'nohost'], undefined, env))
    expect([badNode.code, badNode.stderr.split('\n')[0]]).toEqual([2, 'utp-punch-rs: --dht-bootstrap must be HOST:PORT, got "nohost" (the port is missing)'])
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, '{"rendezvous": ')
    const broken = await finish(start(['send', src], undefined, env))
    expect(broken.code).toBe(2)
    expect(broken.stderr).toContain(`the config file ${file} is not valid JSON`)
    fs.writeFileSync(file, '{"rendezvous": "nohost"}')
    const bad = await finish(start(['send', src], undefined, env))
    expect([bad.code, bad.stderr.split('\n')[0]]).toEqual([2, `utp-punch-rs: "rendezvous" in ${file} must be HOST:PORT, got "nohost" (the port is missing)`])
  })
})

describe('utp-punch-rs send/receive: failing early and clearly', () => {
  it('--rendezvous nohost is a usage error (exit 2) before anything binds', async () => {
    const r = await finish(start(['send', src, '--rendezvous', 'nohost'], undefined, envWith()))
    // Before (main at a705942): exit 1, ERR_FAILED
    expect([r.code, r.stderr.split('\n')[0]]).toEqual([2, 'utp-punch-rs: --rendezvous must be HOST:PORT, got "nohost" (the port is missing)'])
    expect(r.status).toEqual([])
  })

  it('a server that does not answer fails in about 5 s with ERR_SERVER_UNREACHABLE, not after --timeout', async () => {
    const silent = dgram.createSocket('udp4')
    await new Promise<void>(resolve => silent.bind(0, '127.0.0.1', resolve))
    const addr = `127.0.0.1:${silent.address().port}`
    try {
      const t0 = Date.now()
      const r = await finish(start(['send', src, '--rendezvous', addr, '--timeout', '60s'], undefined, envWith()), 30_000)
      const seconds = (Date.now() - t0) / 1000
      // Before (main at a705942): "waiting for the peer" until the 60 s timeout
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(`utp-punch-rs: rendezvous failed (ERR_SERVER_UNREACHABLE): the rendezvous server ${addr} did not answer in 5 s`)
      expect(r.status).toEqual([`contacting the rendezvous server ${addr} (from --rendezvous)`])
      expect(seconds).toBeGreaterThan(4.5)
      expect(seconds).toBeLessThan(10)
    } finally {
      silent.close()
    }
  }, 20_000)

  it('--out names a directory that does not exist, or a file: each said as it is, before connecting', async () => {
    const env = envWith({ UTP_PUNCH_RENDEZVOUS: server.addr })
    const missing = path.join(tmp, 'no-such-dir')
    const a = await finish(start(['receive', '--code', newCode(), '--yes', '--out', missing], undefined, env))
    // Before (main at a705942): "<dir>: not a directory" for both
    expect([a.code, a.stderr]).toEqual([1, `utp-punch-rs: --out ${missing} does not exist: create it first, or choose another directory\n`])
    const b = await finish(start(['receive', '--code', newCode(), '--yes', '--out', src], undefined, env))
    expect([b.code, b.stderr]).toEqual([1, `utp-punch-rs: --out ${src} is not a directory\n`])
    expect([a.status, b.status]).toEqual([[], []])
  })
})

describe('utp-punch-rs send/receive: what it says while it works', () => {
  it('a status line for each state on stderr when it is not a terminal, in order; --quiet says none', async () => {
    const [s, r] = await pair(envWith({ UTP_PUNCH_RENDEZVOUS: server.addr }))
    expect([s.code, r.code]).toEqual([0, 0])
    // Before (main at a705942): none of these lines when stderr is a pipe
    const contacting = `contacting the rendezvous server ${server.addr} (from $UTP_PUNCH_RENDEZVOUS)`
    const common = [contacting, 'registered, waiting for the peer', 'peer found, checking that it holds the same code', expect.stringMatching(/^code confirmed, trying paths: .+/), expect.stringMatching(/^connected via (lan|direct) path to \S+, encrypted$/)]
    expect(s.status).toEqual([...common, 'waiting for the receiver to accept', 'sending hello.bin (200.00 kB)', 'done'])
    expect(r.status).toEqual([...common, 'receiving hello.bin (200.00 kB)', 'done'])
    const [qs, qr] = await pair(envWith({ UTP_PUNCH_RENDEZVOUS: server.addr }), ['--quiet'])
    expect([qs.code, qr.code, qs.status, qr.status, qs.stderr, qr.stderr]).toEqual([0, 0, [], [], '', ''])
  })

  it('--json gives the same states as {"event":"status"} lines on stdout', async () => {
    const [s] = await pair(envWith({ UTP_PUNCH_RENDEZVOUS: server.addr }), ['--json'])
    expect(s.code).toBe(0)
    const states = s.status.map(l => (JSON.parse(l) as { state: string }).state)
    expect(states).toEqual(['contacting', 'registered', 'paired', 'punching', 'connected', 'offering', 'transferring', 'done'])
  })

  it('NODE_DEBUG=utp-punch-rs shows the rendezvous lines of the library in the CLI', async () => {
    const [s] = await pair(envWith({ UTP_PUNCH_RENDEZVOUS: server.addr, NODE_DEBUG: 'utp-punch-rs' }))
    expect(s.code).toBe(0)
    // Before (main at a705942): the CLI called an internal function and logged no rendezvous line
    expect(s.stderr).toMatch(/^UTP-PUNCH-RS \d+: node \d+ rendezvous via 127\.0\.0\.1:\d+: registered, the server sees us as 127\.0\.0\.1:\d+; waiting for the peer$/m)
    expect(s.stderr).toMatch(/^UTP-PUNCH-RS \d+: node \d+ rendezvous via 127\.0\.0\.1:\d+: (lan|direct) path to /m)
  })
})
