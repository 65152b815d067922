// NAT traversal in a real (namespaced) network: two home NATs, a piece of "internet" with the rendezvous
// server, optional delay/loss on the public links. See test/natlab/lab.sh for the topology.
//
// Part 1 validates the lab itself with plain dgram scripts (test/natlab/punch.mjs + rendezvous.mjs), so a
// product failure below can be told apart from a broken lab. Part 2 moves bytes with the package: through
// node.punch() + connect() (test/natlab/utp-peer.mjs), and through the CLI (bin/utp-punch-rs.js).
//
// Needs root and `ip netns` (CI runs as root); otherwise the whole file skips, loudly. Needs nft, iptables
// and python3 (test/natlab/install-deps.sh): without them it fails rather than skips. One lab per machine:
// the cases run one after another, each in its own lab, torn down afterwards whatever happens.
import { randomBytes, randomInt } from 'crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import {
  DHT_IPS, LAB_DIR, SERVER_IP, type LabProcess, killAll, lab, labNamespaces, labSupport, lastJson, missingTools, nodeIn, runIn,
  reapStaleLabs, sha256File, waitUdpListening
} from './natlab/lab'

const root = path.join(__dirname, '..')
const RENDEZVOUS = path.join(LAB_DIR, 'rendezvous.mjs')
const PUNCH = path.join(LAB_DIR, 'punch.mjs')
const UTP_PEER = path.join(LAB_DIR, 'utp-peer.mjs')
const IDLE_PEER = path.join(LAB_DIR, 'idle-peer.mjs')
const DHT_LAB = path.join(root, 'test', 'helpers', 'dht-lab.mjs')
const CLI = path.join(root, 'bin', 'utp-punch-rs.js')
const CLIENT = path.join(root, 'lib', 'rendezvous', 'client.ts')
const haveCli = existsSync(CLI) && existsSync(CLIENT)

const support = labSupport()
if (!support.ok) {
  const bar = '!'.repeat(100)
  console.warn(`\n${bar}\n!!! NAT LAB TESTS SKIPPED: network namespaces are impossible here (${support.reason}).\n` +
    `!!! test/natlab.test.ts needs root on Linux with 'ip netns'. NAT traversal is NOT being tested.\n${bar}\n`)
} else if (!haveCli) {
  console.warn(`natlab: the CLI cases are skipped: ${existsSync(CLIENT) ? '' : 'lib/rendezvous/client.ts '}` +
    `${existsSync(CLI) ? '' : 'bin/utp-punch-rs.js '}not there yet`)
}

interface PunchResult {
  id: string
  ok: boolean
  local: string
  mapped: string | null
  path?: 'lan' | 'public'
  heard?: string | null
  punchMs?: number
  received?: number
  keepalivesOut?: number
  error?: string
}

interface EchoResult {
  sent: number
  received: number
  outOfOrder: number
  mapped: string
  rtt: { min: number, median: number, p90: number, max: number }
}

interface IdleResult {
  id: string
  ok: boolean
  role?: 'connect' | 'accept'
  path?: 'lan' | 'direct' | 'birthday' | 'relay'
  remote?: string
  /** The stream is the encrypted one (rendezvous() by default) */
  encrypted?: boolean
  remoteAfter?: string
  mtu?: number
  migrations?: Array<{ to: string, atMs: number, at: number }>
  ms?: number
  phase?: string
  /** How long rendezvous() took */
  meetMs?: number
  pingMs?: number
  idleMs?: number
  idle?: { packetsSent: number, packetsReceived: number }
  bytes?: number
  sha256?: string
  transferMs?: number
  error?: string
}

interface PeerResult { ok: boolean, bytes: number, sha256: string, punchMs: number, transferMs: number, error?: string }

const port = (endpoint: string | null): number => Number(endpoint?.slice(endpoint.lastIndexOf(':') + 1))
// Rendezvous codes in the nameplate form (the server sees only the digits); the dgram scripts take any string
const newCode = (): string => `${randomInt(1, 999_999)}-${randomBytes(6).toString('hex')}`

async function withLab (args: string[], fn: () => Promise<void>): Promise<void> {
  lab('up', ...args)
  try {
    await fn()
  } finally {
    killAll()
    lab('down')
  }
}

async function startRendezvous (): Promise<LabProcess> {
  const p = nodeIn('inet', RENDEZVOUS, ['--bind', `${SERVER_IP}:7000`, '--duration', '200'], 210_000)
  await p.waitFor(/"listening"/, 10_000)
  return p
}

function describeRun (...procs: Array<{ name: string, out: { code: number | null, stdout: string, stderr: string } }>): string {
  return procs.map(({ name, out }) => `--- ${name} (exit ${String(out.code)})\n${out.stdout}${out.stderr}`).join('\n')
}

/** Runs a dgram punch script on each host against the same code; both JSON results */
async function punchPair (argsA: string[], argsB: string[], timeoutMs = 40_000): Promise<[PunchResult, PunchResult]> {
  const code = newCode()
  const a = nodeIn('hostA', PUNCH, ['--id', 'A', '--code', code, ...argsA], timeoutMs)
  const b = nodeIn('hostB', PUNCH, ['--id', 'B', '--code', code, ...argsB], timeoutMs)
  const [ea, eb] = await Promise.all([a.exited, b.exited])
  const ra = lastJson<PunchResult>(ea.stdout)
  const rb = lastJson<PunchResult>(eb.stdout)
  if (ra === undefined || rb === undefined) throw new Error(`punch script printed no result\n${describeRun({ name: 'A', out: ea }, { name: 'B', out: eb })}`)
  return [ra, rb]
}

/** Paths the CLI reports: a JSON line with a `path` field, or text such as "path: direct" / "via relay" */
type Path = 'lan' | 'direct' | 'birthday' | 'relay'

/** A process's output without the library's debug lines (NODE_DEBUG=utp-punch-rs) */
function withoutDebug<T extends { stdout: string, stderr: string }> (out: T): T {
  return { ...out, stderr: out.stderr.split('\n').filter(l => !l.startsWith('UTP-PUNCH-RS ')).join('\n') }
}

function reportedPaths (text: string): string[] {
  const found: string[] = []
  for (const line of text.split('\n')) {
    const t = line.trim()
    if (t.startsWith('{')) {
      try {
        const o = JSON.parse(t) as { path?: unknown }
        if (typeof o.path === 'string') found.push(o.path)
        continue
      } catch {}
    }
    for (const m of t.matchAll(/\bpath\b["'\s:=]*(lan|direct|birthday|relay)\b|\bvia (?:the )?(lan|direct|birthday|relay)\b/gi)) found.push((m[1] ?? m[2]).toLowerCase())
  }
  return found
}

describe.skipIf(!support.ok).sequential('NAT lab (network namespaces)', () => {
  beforeAll(() => {
    const missing = missingTools()
    if (missing.length > 0) throw new Error(`natlab: missing ${missing.join(', ')}: run test/natlab/install-deps.sh as root`)
    const reaped = reapStaleLabs()
    if (reaped.length > 0) console.warn(`natlab: removed labs left by dead test processes: ${reaped.join(', ')}`)
  })

  afterAll(() => {
    killAll()
    lab('down')
    expect(labNamespaces()).toEqual([])
  })

  describe.sequential('the lab itself (plain dgram)', () => {
    it('cone <-> cone: punching succeeds and ports are preserved', async () => {
      await withLab(['--a', 'cone', '--b', 'cone'], async () => {
        await startRendezvous()
        const [a, b] = await punchPair(['--window', '5'], ['--window', '5'])
        expect(a, JSON.stringify(a)).toMatchObject({ ok: true, path: 'public', mapped: '198.51.100.1:40000', heard: '198.51.100.2:40000' })
        expect(b, JSON.stringify(b)).toMatchObject({ ok: true, path: 'public', mapped: '198.51.100.2:40000', heard: '198.51.100.1:40000' })
      })
    }, 40_000)

    it('symmetric <-> symmetric: punching fails, each NAT picks random ports', async () => {
      await withLab(['--a', 'symmetric', '--b', 'symmetric'], async () => {
        await startRendezvous()
        const [a, b] = await punchPair(['--window', '4'], ['--window', '4'])
        expect(a.ok, JSON.stringify(a)).toBe(false)
        expect(b.ok, JSON.stringify(b)).toBe(false)
        expect(a.mapped?.startsWith('198.51.100.1:')).toBe(true)
        expect(b.mapped?.startsWith('198.51.100.2:')).toBe(true)
        // fully-random: the mapping towards the server is not the local port (1 chance in 64k to be)
        expect(port(a.mapped) !== 40000 || port(b.mapped) !== 40000).toBe(true)
      })
    }, 40_000)

    it('cone <-> symmetric: punching fails (port-restricted filter meets a new port)', async () => {
      await withLab(['--a', 'cone', '--b', 'symmetric'], async () => {
        await startRendezvous()
        const [a, b] = await punchPair(['--window', '4'], ['--window', '4'])
        expect(a.ok, JSON.stringify(a)).toBe(false)
        expect(b.ok, JSON.stringify(b)).toBe(false)
      })
    }, 40_000)

    it('fullcone <-> symmetric: punching succeeds through a peer-reflexive port', async () => {
      await withLab(['--a', 'fullcone', '--b', 'symmetric'], async () => {
        await startRendezvous()
        const [a, b] = await punchPair(['--window', '5'], ['--window', '5'])
        expect(a, JSON.stringify(a)).toMatchObject({ ok: true, path: 'public', mapped: '198.51.100.1:40000' })
        expect(b, JSON.stringify(b)).toMatchObject({ ok: true, path: 'public', heard: '198.51.100.1:40000' })
        // A heard B from a port B's NAT opened towards A, not the one the rendezvous saw
        expect(a.heard).not.toBe(b.mapped)
      })
    }, 40_000)

    it('same NAT: both hosts on one LAN reach each other over LAN addresses (no hairpinning)', async () => {
      await withLab(['--same-nat', '--a', 'cone'], async () => {
        await startRendezvous()
        const [a, b] = await punchPair(['--window', '5'], ['--window', '5'])
        expect(a, JSON.stringify(a)).toMatchObject({ ok: true, path: 'lan', local: '10.0.1.2:40000', heard: '10.0.1.3:40000' })
        expect(b, JSON.stringify(b)).toMatchObject({ ok: true, path: 'lan', local: '10.0.1.3:40000', heard: '10.0.1.2:40000' })
        expect(a.mapped?.startsWith('198.51.100.1:')).toBe(true)
        expect(b.mapped?.startsWith('198.51.100.1:')).toBe(true)
      })
    }, 40_000)

    it('a 10 s UDP timeout expires an idle mapping, a 3 s keepalive keeps it', async () => {
      await withLab(['--a', 'cone', '--b', 'cone', '--udp-timeout', '10'], async () => {
        for (const nat of ['natA', 'natB']) {
          const t = lab('exec', nat, 'sysctl', '-n', 'net.netfilter.nf_conntrack_udp_timeout', 'net.netfilter.nf_conntrack_udp_timeout_stream')
          expect(t.trim().split(/\s+/)).toEqual(['10', '10'])
        }
        await startRendezvous()
        // Both pairs at once on different ports: idle 14 s, then A sends 20 datagrams and B counts them
        const idle = ['--window', '5', '--idle', '14']
        const [[a0, b0], [a3, b3]] = await Promise.all([
          punchPair([...idle, '--port', '40000', '--role', 'sender'], [...idle, '--port', '40000', '--role', 'receiver']),
          punchPair([...idle, '--port', '40100', '--role', 'sender', '--keepalive', '3'], [...idle, '--port', '40100', '--role', 'receiver', '--keepalive', '3'])
        ])
        expect(a0.ok && b0.ok && a3.ok && b3.ok, JSON.stringify([a0, b0, a3, b3])).toBe(true)
        expect(b0.received, 'without keepalive the mapping must expire').toBe(0)
        expect(a3.keepalivesOut).toBeGreaterThanOrEqual(3)
        expect(b3.received, 'with a 3 s keepalive the mapping must survive').toBeGreaterThanOrEqual(18)
      })
    }, 60_000)

    it('impairment: delay, loss and reordering on one public link only', async () => {
      await withLab(['--a', 'cone', '--b', 'cone', '--impair-a', 'delay=40,jitter=5,loss=10,reorder=10'], async () => {
        await startRendezvous()
        const echo = ['--echo', '300', '--interval', '10', '--port', '41000']
        const [ea, eb] = await Promise.all([nodeIn('hostA', PUNCH, echo, 30_000).exited, nodeIn('hostB', PUNCH, echo, 30_000).exited])
        const a = lastJson<EchoResult>(ea.stdout)
        const b = lastJson<EchoResult>(eb.stdout)
        const ctx = JSON.stringify({ a, b, errA: ea.stderr, errB: eb.stderr })
        expect(a !== undefined && b !== undefined, ctx).toBe(true)
        if (a === undefined || b === undefined) return
        // Link A: 40 ms each way, 10 % loss each way (81 % of echoes come back), 10 % sent ahead of the queue
        expect(a.rtt.median, ctx).toBeGreaterThanOrEqual(70)
        expect(a.rtt.median, ctx).toBeLessThan(200)
        expect(a.received / a.sent, ctx).toBeGreaterThan(0.65)
        expect(a.received / a.sent, ctx).toBeLessThan(0.93)
        expect(a.outOfOrder, ctx).toBeGreaterThan(0)
        // Link B is clean
        expect(b.rtt.median, ctx).toBeLessThan(20)
        expect(b.received / b.sent, ctx).toBeGreaterThanOrEqual(0.99)
        // and a punch still gets through the impaired link
        const [pa, pb] = await punchPair(['--window', '6'], ['--window', '6'])
        expect(pa.ok && pb.ok, JSON.stringify([pa, pb])).toBe(true)
      })
    }, 60_000)
  })

  describe.sequential('the package across the lab', () => {
    /** utp-peer.mjs on both hosts: node.punch() to the peer's public address, then a uTP transfer */
    async function utpTransfer (labArgs: string[], bytes: number, timeoutMs: number): Promise<void> {
      await withLab(labArgs, async () => {
        await startRendezvous()
        const code = newCode()
        const args = ['--code', code, '--bytes', String(bytes), '--timeout', String(Math.floor(timeoutMs / 1000) - 5)]
        const recv = nodeIn('hostB', UTP_PEER, ['--id', 'B', '--role', 'receive', ...args], timeoutMs)
        const send = nodeIn('hostA', UTP_PEER, ['--id', 'A', '--role', 'send', ...args], timeoutMs)
        const [er, es] = await Promise.all([recv.exited, send.exited])
        const ctx = describeRun({ name: 'receiver', out: er }, { name: 'sender', out: es })
        const r = lastJson<PeerResult>(er.stdout)
        const s = lastJson<PeerResult>(es.stdout)
        expect(r?.ok, ctx).toBe(true)
        expect(s?.ok, ctx).toBe(true)
        expect(r?.bytes, ctx).toBe(bytes)
        expect(r?.sha256, ctx).toBe(s?.sha256)
        console.log(`natlab: utp ${labArgs.join(' ')}: ${bytes} bytes in ${String(r?.transferMs)} ms (punch ${String(s?.punchMs)} ms)`)
      })
    }

    it('cone <-> cone: node.punch() then 8 MiB over uTP, checksummed', async () => {
      await utpTransfer(['--a', 'cone', '--b', 'cone'], 8 << 20, 60_000)
    }, 70_000)

    it('cone <-> cone, 40 ms / 2 % loss on A\'s public link: 2 MiB over uTP, checksummed', async () => {
      await utpTransfer(['--a', 'cone', '--b', 'cone', '--impair-a', 'delay=40,loss=2'], 2 << 20, 90_000)
    }, 100_000)

    /**
     * The CLI end to end: `rendezvous` in inet, `receive` on hostB, `send` on hostA, 8 MiB checksummed.
     * The path is read from a JSON line with a `path` field or text like "path: direct" / "via relay".
     */
    async function cliTransfer (labArgs: string[], expectedPath: Path | Path[], timeoutMs: number): Promise<Path> {
      let won: Path = 'lan'
      await withLab(labArgs, async () => {
        const dir = mkdtempSync(path.join(os.tmpdir(), 'upr-natlab-'))
        try {
          const file = path.join(dir, 'payload.bin')
          writeFileSync(file, randomBytes(8 << 20))
          const want = await sha256File(file)
          const outDir = path.join(dir, 'out')
          mkdirSync(outDir)
          const rv = `${SERVER_IP}:7000`
          const code = newCode()
          const server = nodeIn('inet', CLI, ['rendezvous', '--port', '7000'], timeoutMs)
          await waitUdpListening('inet', 7000)
          const t0 = Date.now()
          // With the library's debug log: it says when each node the CLI made (a birthday path makes two) closed
          const cli = (host: 'hostA' | 'hostB', args: string[]): LabProcess => runIn(host, ['env', 'NODE_DEBUG=utp-punch-rs', process.execPath, CLI, ...args], timeoutMs)
          const recv = cli('hostB', ['receive', '--rendezvous', rv, '--code', code, '--out', outDir, '--yes'])
          const send = cli('hostA', ['send', file, '--rendezvous', rv, '--code', code])
          const [debugR, debugS] = await Promise.all([recv.exited, send.exited])
          const { er, es } = { er: withoutDebug(debugR), es: withoutDebug(debugS) }
          server.kill()
          const ctx = describeRun({ name: 'receive (hostB)', out: er }, { name: 'send (hostA)', out: es }, { name: 'rendezvous (inet)', out: { code: null, stdout: server.stdout, stderr: server.stderr } })
          expect(es.code, ctx).toBe(0)
          expect(er.code, ctx).toBe(0)
          const files = readdirSync(outDir)
          const got = files.includes('payload.bin') ? 'payload.bin' : files[0]
          expect(got, `no file in --out ${outDir}\n${ctx}`).toBeDefined()
          expect(await sha256File(path.join(outDir, got)), ctx).toBe(want)
          const paths = [...reportedPaths(es.stdout + es.stderr), ...reportedPaths(er.stdout + er.stderr)]
          expect(paths.length, `the CLI reported no path\n${ctx}`).toBeGreaterThan(0)
          // the channel is the encrypted stream rendezvous() returns by default
          const said = es.stdout + es.stderr + er.stdout + er.stderr
          expect(said, ctx).toMatch(/encrypted/)
          expect(said, ctx).not.toMatch(/not encrypted/)
          // both sides must agree on the path; with several acceptable paths, which one won is reported
          expect(new Set(paths).size, ctx).toBe(1)
          // Every node closed before the command exited (not left to the exit 2 s later): on a birthday path the
          // socket's own node too
          for (const [name, out] of [['send', debugS.stderr], ['receive', debugR.stderr]]) {
            const nodes = (what: string): string[] => [...out.matchAll(new RegExp(`^UTP-PUNCH-RS \\d+: node (\\d+) ${what}\\b`, 'gm'))].map(m => m[1]).sort()
            const lifecycle = out.split('\n').filter(l => /^UTP-PUNCH-RS \d+: node \d+ (bound|closed)\b/.test(l)).join('\n')
            expect([name, nodes('closed')], `${ctx}\n--- ${name}: nodes bound and closed\n${lifecycle}`).toEqual([name, nodes('bound')])
          }
          won = paths[0] as Path
          expect(Array.isArray(expectedPath) ? expectedPath : [expectedPath], ctx).toContain(won)
          console.log(`natlab: cli ${labArgs.join(' ')}: 8 MiB via ${won} in ${Date.now() - t0} ms`)
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      })
      return won
    }

    it.skipIf(!haveCli)('CLI, cone <-> cone: 8 MiB, path direct', async () => {
      await cliTransfer(['--a', 'cone', '--b', 'cone'], 'direct', 60_000)
    }, 70_000)

    it.skipIf(!haveCli)('CLI, symmetric <-> symmetric: 8 MiB, path relay', async () => {
      await cliTransfer(['--a', 'symmetric', '--b', 'symmetric'], 'relay', 90_000)
    }, 100_000)

    it.skipIf(!haveCli)('CLI, same NAT: 8 MiB, path lan', async () => {
      await cliTransfer(['--same-nat', '--a', 'cone'], 'lan', 60_000)
    }, 70_000)

    it.skipIf(!haveCli)('CLI, cone <-> cone with 40 ms / 2 % loss on A\'s public link: 8 MiB, path direct', async () => {
      await cliTransfer(['--a', 'cone', '--b', 'cone', '--impair-a', 'delay=40,loss=2'], 'direct', 150_000)
    }, 160_000)

    describe.sequential('product behaviour across NATs', () => {
      it.skipIf(!haveCli)('symmetric <-> symmetric with relay disabled fails with ERR_PUNCH_FAILED within a bounded time', async () => {
        await withLab(['--a', 'symmetric', '--b', 'symmetric'], async () => {
          const dir = mkdtempSync(path.join(os.tmpdir(), 'upr-natlab-'))
          try {
            const file = path.join(dir, 'payload.bin')
            writeFileSync(file, randomBytes(64 << 10))
            const outDir = path.join(dir, 'out')
            mkdirSync(outDir)
            const rv = `${SERVER_IP}:7000`
            const code = newCode()
            // the server would relay: it is the peers' --no-relay that must stop them from using it
            const server = nodeIn('inet', CLI, ['rendezvous', '--port', '7000'], 40_000)
            await waitUdpListening('inet', 7000)
            const common = ['--rendezvous', rv, '--code', code, '--no-relay', '--timeout', '30s']
            const recv = nodeIn('hostB', CLI, ['receive', ...common, '--out', outDir, '--yes'], 35_000)
            const send = nodeIn('hostA', CLI, ['send', file, ...common], 35_000)
            const [er, es] = await Promise.all([recv.exited, send.exited])
            server.kill()
            const ctx = describeRun({ name: 'receive (hostB)', out: er }, { name: 'send (hostA)', out: es }, { name: 'rendezvous (inet)', out: { code: null, stdout: server.stdout, stderr: server.stderr } })
            console.log(`natlab: symmetric <-> symmetric --no-relay: send exit ${String(es.code)} after ${es.ms} ms, receive exit ${String(er.code)} after ${er.ms} ms\n` +
              `  send:    ${es.stderr.trim()}\n  receive: ${er.stderr.trim()}`)
            for (const [name, e] of [['send', es], ['receive', er]] as const) {
              expect(e.signal, `${name} was killed\n${ctx}`).toBeNull()
              expect(e.code, `${name} must fail\n${ctx}`).toBe(1)
              // well under --timeout 30s: the punch gives up by itself (punch timeout 5 s plus the accept grace)
              expect(e.ms, `${name} took ${e.ms} ms\n${ctx}`).toBeLessThan(20_000)
              expect(e.stderr, ctx).toMatch(/ERR_PUNCH_FAILED|hole punching failed|punch(ing)? failed/i)
              // and it says why: the NAT types or the candidates it tried (the peer's public address on natB/natA)
              expect(e.stderr, ctx).toMatch(/NAT type|tried [^\n]*198\.51\.100\.[12]:\d+/i)
            }
            expect(readdirSync(outDir), ctx).toEqual([])
            expect(server.stdout, `the relay must not have been used\n${ctx}`).not.toMatch(/relay allocated/)
          } finally {
            rmSync(dir, { recursive: true, force: true })
          }
        })
      }, 45_000)

      // The receiver (hostB) registers first and opens the uTP connection: the two cases put the
      // symmetric NAT on the connecting side and on the accepting side
      it.skipIf(!haveCli)('CLI, cone <-> symmetric: 8 MiB, path birthday (the symmetric side connects)', async () => {
        await cliTransfer(['--a', 'cone', '--b', 'symmetric'], 'birthday', 60_000)
      }, 70_000)

      it.skipIf(!haveCli)('CLI, symmetric <-> cone: 8 MiB, path birthday (the symmetric side accepts)', async () => {
        await cliTransfer(['--a', 'symmetric', '--b', 'cone'], 'birthday', 60_000)
      }, 70_000)

      it.skipIf(!haveCli)('a NAT that rebinds to a new public port mid-connection: the peer follows it, data still flows', async () => {
        await withLab(['--a', 'cone', '--b', 'cone'], async () => {
          const server = nodeIn('inet', CLI, ['rendezvous', '--port', '7000'], 40_000)
          await waitUdpListening('inet', 7000)
          const code = newCode()
          const args = ['--code', code, '--server', `${SERVER_IP}:7000`, '--port', '40000', '--idle', '12', '--bytes', String(4 << 20), '--timeout', '35']
          const a = nodeIn('hostA', IDLE_PEER, ['--id', 'A', ...args], 40_000)
          const b = nodeIn('hostB', IDLE_PEER, ['--id', 'B', ...args], 40_000)
          // During the idle period natA loses its state and maps hostA:40000 to port 25000 from now on
          await new Promise((resolve) => setTimeout(resolve, 5000))
          const t = Date.now()
          const rebound = lab('rebind', 'natA', '40000', '25000')
          const [ea, eb] = await Promise.all([a.exited, b.exited])
          server.kill()
          const ctx = describeRun({ name: 'hostA', out: ea }, { name: 'hostB', out: eb }, { name: 'rendezvous (inet)', out: { code: null, stdout: server.stdout, stderr: server.stderr } }) + `\n--- ${rebound}`
          const ra = lastJson<IdleResult>(ea.stdout)
          const rb = lastJson<IdleResult>(eb.stdout)
          console.log(`natlab: rebinding at +5 s: ${JSON.stringify(ra)} ${JSON.stringify(rb)}`)
          expect(ra?.ok, ctx).toBe(true)
          expect(rb?.ok, ctx).toBe(true)
          if (ra === undefined || rb === undefined) return
          expect(ra.path, ctx).toBe('direct')
          expect([ra.encrypted, rb.encrypted], ctx).toEqual([true, true])
          expect(ra.remoteAfter, ctx).toBe(ra.remote) // A's view of B did not change
          expect(rb.remote, ctx).toBe('198.51.100.1:40000')
          expect(rb.remoteAfter, ctx).toBe('198.51.100.1:25000') // B followed A to its new public port
          expect(rb.migrations?.length, ctx).toBe(1)
          expect(ra.migrations ?? [], ctx).toEqual([])
          // B followed within the repair budget (the connection's 5 s timeout): quiet 2 s, the server, then path
          // validation (an authenticated probe to A's new address and A's ack) before re-aiming
          const followedMs = (rb.migrations?.[0]?.at ?? Infinity) - t
          console.log(`natlab: rebinding: B followed A to its new port ${followedMs} ms after the rebind`)
          expect(followedMs, ctx).toBeLessThan(4500)
          const [acc, con] = ra.role === 'accept' ? [ra, rb] : [rb, ra]
          expect(con.bytes, ctx).toBe(4 << 20)
          expect(con.sha256, ctx).toBe(acc.sha256)
        })
      }, 50_000)

      it.skipIf(!haveCli)('a connection idle for 60 s behind NATs whose UDP mapping timeout is 10 s still works', async () => {
        await withLab(['--a', 'cone', '--b', 'cone', '--udp-timeout', '10'], async () => {
          const server = nodeIn('inet', CLI, ['rendezvous', '--port', '7000'], 100_000)
          await waitUdpListening('inet', 7000)
          const code = newCode()
          const args = ['--code', code, '--server', `${SERVER_IP}:7000`, '--idle', '60', '--bytes', String(1 << 20), '--timeout', '95']
          const a = nodeIn('hostA', IDLE_PEER, ['--id', 'A', ...args], 100_000)
          const b = nodeIn('hostB', IDLE_PEER, ['--id', 'B', ...args], 100_000)
          // Halfway through the idle period (well past the 10 s timeout), the direct A<->B mapping must still be
          // in both NATs' conntrack tables: the keepalives refresh it
          const tracked: Record<string, string> = {}
          try {
            await new Promise((resolve) => setTimeout(resolve, 40_000))
            for (const nat of ['natA', 'natB'] as const) {
              const peerWan = nat === 'natA' ? '198.51.100.2' : '198.51.100.1'
              tracked[nat] = lab('conntrack', nat).split('\n').filter((l) => /\budp\b/.test(l) && l.includes(`dst=${peerWan}`)).join('\n')
            }
          } catch (e) {
            tracked.error = String(e)
          }
          const [ea, eb] = await Promise.all([a.exited, b.exited])
          server.kill()
          const ctx = describeRun({ name: 'hostA', out: ea }, { name: 'hostB', out: eb }, { name: 'rendezvous (inet)', out: { code: null, stdout: server.stdout, stderr: server.stderr } }) +
            `\n--- conntrack at +40 s\n${JSON.stringify(tracked, null, 1)}`
          const ra = lastJson<IdleResult>(ea.stdout)
          const rb = lastJson<IdleResult>(eb.stdout)
          console.log(`natlab: idle 60 s, udp timeout 10 s: ${JSON.stringify(ra)} ${JSON.stringify(rb)}\n  conntrack at +40 s: ${JSON.stringify(tracked)}`)
          expect(ra?.ok, ctx).toBe(true)
          expect(rb?.ok, ctx).toBe(true)
          if (ra === undefined || rb === undefined) return
          expect(ra.path, ctx).toBe('direct')
          expect(rb.path, ctx).toBe('direct')
          expect(new Set([ra.role, rb.role]), ctx).toEqual(new Set(['connect', 'accept']))
          const [acc, con] = ra.role === 'accept' ? [ra, rb] : [rb, ra]
          // Path MTU discovery: 1,500-byte links all the way, so the ceiling after one probe: 1,448 bytes of payload,
          // since a write's last packet carries 24 bytes of uTP header (our end-of-write marker) in 1,500
          expect(ra.mtu, ctx).toBe(1448)
          expect(rb.mtu, ctx).toBe(1448)
          expect(acc.idleMs, ctx).toBeGreaterThanOrEqual(59_000)
          expect(con.idleMs, ctx).toBeGreaterThanOrEqual(59_000)
          expect(con.bytes, ctx).toBe(1 << 20)
          expect(con.sha256, ctx).toBe(acc.sha256)
          // what kept the mappings alive: uTP packets (keepalives) crossed while the application was idle
          expect((ra.idle?.packetsSent ?? 0) + (rb.idle?.packetsSent ?? 0), ctx).toBeGreaterThanOrEqual(20)
          if (tracked.error === undefined) {
            expect(tracked.natA, ctx).toMatch(/src=10\.0\.1\.2 dst=198\.51\.100\.2/)
            expect(tracked.natB, ctx).toMatch(/src=10\.0\.2\.2 dst=198\.51\.100\.1/)
          }
        })
      }, 110_000)
    })

    /**
     * Pairing through the Mainline DHT instead of a server: a DHT of 20 nodes of ours and 10 of bittorrent-dht,
     * each at an address of its own on inet as on the internet (test/helpers/dht-lab.mjs), and two idle-peer.mjs
     * that meet with rendezvous({ dht }), then move 8 MiB checksummed. No relay exists here, so symmetric <-> symmetric must fail, and say why.
     */
    describe.sequential('pairing through the DHT', () => {
      async function dhtPair (labArgs: string[], check: (ra: IdleResult, rb: IdleResult, ctx: string) => void, relay = false): Promise<void> {
        await withLab(labArgs, async () => {
          const dht = nodeIn('inet', DHT_LAB, ['--host', DHT_IPS.slice(0, 30).join(','), '--ours', '20', '--theirs', '10'], 120_000)
          await dht.waitFor(/"bootstrap"/, 60_000)
          const bootstrap = (lastJson<{ bootstrap: string[] }>(dht.stdout)?.bootstrap ?? []).slice(0, 3).join(',')
          // A rendezvous server used only for its relay, on a port of its own
          const server = relay ? nodeIn('inet', CLI, ['rendezvous', '--port', '7100'], 120_000) : null
          if (server !== null) await waitUdpListening('inet', 7100)
          const code = newCode()
          const args = ['--code', code, '--dht', bootstrap, '--idle', '0', '--bytes', String(8 << 20), '--meet', '60', '--timeout', '75',
            ...(relay ? ['--dht-relay', `${SERVER_IP}:7100`] : []), '--relay', '1']
          // With the package's debug log (stderr, shown when a case fails): how each peer's reflection and each
          // round of the meeting went, which is what a failure here needs explained
          const debugPeer = (host: 'hostA' | 'hostB', id: string): LabProcess => runIn(host, ['env', 'NODE_DEBUG=utp-punch-rs', process.execPath, IDLE_PEER, '--id', id, ...args], 80_000)
          const a = debugPeer('hostA', 'A')
          const b = debugPeer('hostB', 'B')
          const [ea, eb] = await Promise.all([a.exited, b.exited])
          dht.kill()
          server?.kill()
          const ctx = describeRun({ name: 'hostA', out: ea }, { name: 'hostB', out: eb }, { name: 'dht (inet)', out: { code: null, stdout: dht.stdout, stderr: dht.stderr } }) +
            (server === null ? '' : `\n--- relay server\n${server.stdout}${server.stderr}`)
          const ra = lastJson<IdleResult>(ea.stdout)
          const rb = lastJson<IdleResult>(eb.stdout)
          console.log(`natlab: dht ${labArgs.join(' ')}: ${JSON.stringify(ra)} ${JSON.stringify(rb)}`)
          expect(ra, ctx).toBeDefined()
          expect(rb, ctx).toBeDefined()
          if (ra !== undefined && rb !== undefined) check(ra, rb, ctx)
        })
      }

      function transferred (ra: IdleResult, rb: IdleResult, path: string, ctx: string): void {
        expect([ra.ok, rb.ok], ctx).toEqual([true, true])
        expect([ra.path, rb.path], ctx).toEqual([path, path])
        expect([ra.encrypted, rb.encrypted], ctx).toEqual([true, true])
        const [acc, con] = ra.role === 'accept' ? [ra, rb] : [rb, ra]
        expect(con.bytes, ctx).toBe(8 << 20)
        expect(con.sha256, ctx).toBe(acc.sha256)
      }

      it('cone <-> cone: paired by code on the DHT, 8 MiB, path direct', async () => {
        await dhtPair(['--a', 'cone', '--b', 'cone'], (ra, rb, ctx) => transferred(ra, rb, 'direct', ctx))
      }, 130_000)

      it('cone <-> symmetric: paired on the DHT, 8 MiB, path birthday', async () => {
        await dhtPair(['--a', 'cone', '--b', 'symmetric'], (ra, rb, ctx) => transferred(ra, rb, 'birthday', ctx))
      }, 130_000)

      it('symmetric <-> symmetric: ERR_PUNCH_FAILED naming the missing relay, in bounded time', async () => {
        await dhtPair(['--a', 'symmetric', '--b', 'symmetric'], (ra, rb, ctx) => {
          for (const r of [ra, rb]) {
            expect(r.ok, ctx).toBe(false)
            expect(r.error, ctx).toMatch(/ERR_PUNCH_FAILED/)
            expect(r.error, ctx).toMatch(/no relay: pairing over the DHT has no server/)
            // meeting (seconds) plus the DHT punch timeout (15 s) and the accept grace
            expect(r.ms, ctx).toBeLessThan(60_000)
          }
        })
      }, 130_000)

      it('symmetric <-> symmetric with a relay server configured: met on the DHT, 8 MiB through the relay', async () => {
        await dhtPair(['--a', 'symmetric', '--b', 'symmetric'], (ra, rb, ctx) => transferred(ra, rb, 'relay', ctx), true)
      }, 130_000)
    })
  })
})
