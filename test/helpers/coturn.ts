// A real STUN server for the live tests: coturn's turnserver, STUN only, on two loopback IPs (127.0.0.1
// primary, 127.0.0.2 alternate) and two ports, so it answers RFC 5780 CHANGE-REQUEST and sends OTHER-ADDRESS.
// Started on free ports, probed until both addresses answer, killed by the PID we spawned.
import { spawn, type ChildProcess } from 'child_process'
import { randomBytes } from 'crypto'
import * as dgram from 'dgram'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'

export const PRIMARY_IP = '127.0.0.1'
export const ALTERNATE_IP = '127.0.0.2'

/** UTP_SKIP_COTURN=1 skips the live tests (with a warning); otherwise a missing turnserver fails them */
export const skipCoturn = process.env.UTP_SKIP_COTURN === '1'

export interface Coturn {
  /** '127.0.0.1:port', the primary address */
  server: string
  port: number
  /** The alternate port (on both IPs) */
  altPort: number
  pid: number
  /** What turnserver printed so far (for failure messages) */
  output(): string
  stop(): Promise<void>
}

/** The turnserver executable on PATH, or null */
export function findTurnserver (): string | null {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin']
  for (const dir of dirs) {
    const file = path.join(dir, 'turnserver')
    try {
      fs.accessSync(file, fs.constants.X_OK)
      return file
    } catch {
      // not here
    }
  }
  return null
}

export async function startCoturn (): Promise<Coturn> {
  const bin = findTurnserver()
  if (bin === null) {
    throw new Error('turnserver (coturn) is not installed: `apt-get install -y coturn`, or set UTP_SKIP_COTURN=1 to skip the live STUN tests')
  }
  let last = ''
  // Ports found free can be taken before coturn binds them: try a few pairs
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePortPair()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-coturn-'))
    const child = spawn(bin, [
      '-n', '--stun-only', '-L', PRIMARY_IP, '-L', ALTERNATE_IP,
      '--listening-port', String(port), '--alt-listening-port', String(port + 1),
      '--no-tls', '--no-dtls', '--no-tcp', '--no-cli', '--log-file', 'stdout', '--simple-log',
      // Keep its files out of /var (another instance, or no permission)
      '--pidfile', path.join(dir, 'turnserver.pid'), '--db', path.join(dir, 'turndb')
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const collect = (d: Buffer): void => { output = (output + d.toString()).slice(-20_000) }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    const killOnExit = (): void => { child.kill('SIGKILL') }
    process.once('exit', killOnExit)
    const stop = async (): Promise<void> => {
      process.removeListener('exit', killOnExit)
      await kill(child)
      fs.rmSync(dir, { recursive: true, force: true })
    }
    try {
      await answering(child, [[PRIMARY_IP, port], [ALTERNATE_IP, port + 1]], 10_000)
      return { server: `${PRIMARY_IP}:${port}`, port, altPort: port + 1, pid: child.pid as number, output: () => output, stop }
    } catch (e) {
      last = `${(e as Error).message}\n${output}`
      await stop()
    }
  }
  throw new Error(`coturn did not start: ${last}`)
}

/** An even port p with p and p + 1 free for UDP on both loopback IPs */
async function freePortPair (): Promise<number> {
  for (;;) {
    const p = 20_000 + 2 * Math.floor(Math.random() * 20_000)
    const sockets: dgram.Socket[] = []
    try {
      for (const ip of [PRIMARY_IP, ALTERNATE_IP]) {
        for (const port of [p, p + 1]) {
          const s = dgram.createSocket('udp4')
          sockets.push(s)
          await new Promise<void>((resolve, reject) => {
            s.once('error', reject)
            s.bind(port, ip, () => resolve())
          })
        }
      }
      return p
    } catch {
      // taken, try another
    } finally {
      for (const s of sockets) s.close()
    }
  }
}

/** Resolves once every target answers a Binding request (probed every 100 ms); rejects if the child exits */
function answering (child: ChildProcess, targets: Array<[string, number]>, timeoutMs: number): Promise<void> {
  const sock = dgram.createSocket('udp4')
  const waiting = new Set(targets.map(([ip, port]) => `${ip}:${port}`))
  // A bare Binding request: type 1, length 0, magic cookie, transaction id
  const request = Buffer.concat([Buffer.from('000100002112a442', 'hex'), randomBytes(12)])
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearInterval(probe)
      clearTimeout(timer)
      child.removeListener('exit', onExit)
      child.removeListener('error', done)
      sock.close()
      if (err === undefined) resolve()
      else reject(err)
    }
    const onExit = (code: number | null, signal: string | null): void => done(new Error(`turnserver exited (${code ?? signal})`))
    child.once('exit', onExit)
    child.once('error', done) // could not spawn
    sock.on('message', (msg, rinfo) => {
      if (msg.length >= 20 && msg.readUInt16BE(0) === 0x0101 && msg.subarray(8, 20).equals(request.subarray(8))) {
        waiting.delete(`${rinfo.address}:${rinfo.port}`)
        if (waiting.size === 0) done()
      }
    })
    sock.on('error', () => { /* ICMP unreachable before it listens */ })
    const probe = setInterval(() => {
      for (const t of waiting) {
        const [ip, port] = t.split(':')
        sock.send(request, Number(port), ip)
      }
    }, 100)
    const timer = setTimeout(() => done(new Error(`turnserver did not answer within ${timeoutMs} ms`)), timeoutMs)
  })
}

/** SIGTERM the process we started, SIGKILL if it lingers; resolves once it has exited */
function kill (child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}
