// `send` and `receive` with no server configured meet on the DHT: here a local one (12 nodes of ours, 6 of
// bittorrent-dht) named by --dht-bootstrap. Child processes on loopback.
import { randomBytes } from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { finish, start } from './helpers/cli'
import { startDhtLab, type DhtLab } from './helpers/dht-lab.mjs'

let lab: DhtLab
let tmp = ''
const env: NodeJS.ProcessEnv = { ...process.env }
delete env.UTP_PUNCH_RENDEZVOUS
delete env.UTP_PUNCH_DHT_BOOTSTRAP
delete env.NODE_DEBUG

beforeAll(async () => {
  lab = await startDhtLab({ host: '127.0.0.1', ours: 12, theirs: 6 })
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-cli-dht-'))
  // No config file: HOME and XDG_CONFIG_HOME point at an empty directory
  Object.assign(env, { HOME: tmp, XDG_CONFIG_HOME: path.join(tmp, '.config') })
}, 60_000)

afterAll(async () => {
  await lab?.close()
  fs.rmSync(tmp, { recursive: true, force: true })
})

describe('utp-punch-rs send/receive over the DHT', () => {
  it('send prints the receive command with the DHT nodes; both meet on the DHT and the file arrives intact', async () => {
    const src = path.join(tmp, 'report.bin')
    fs.writeFileSync(src, randomBytes(300_000))
    const out = fs.mkdtempSync(path.join(tmp, 'out-'))
    const nodes = lab.bootstrap.slice(0, 2).join(',')
    const send = start(['send', src, '--dht-bootstrap', nodes], undefined, env)
    // The receiver learns the code (and how to meet) from what send printed
    const command = await new Promise<string>((resolve, reject) => {
      let err = ''
      send.stderr?.on('data', (d: Buffer) => {
        err += d.toString()
        const m = /^\s+(utp-punch-rs receive .+)$/m.exec(err)
        if (m !== null) resolve(m[1])
      })
      send.once('exit', () => reject(new Error(`send exited before printing the code:\n${err}`)))
    })
    expect(command).toMatch(new RegExp(`^utp-punch-rs receive --dht-bootstrap ${nodes} --code \\d+-[a-z]+-[a-z]+-[a-z]+$`))
    const args = command.split(' ').slice(1)
    const [s, r] = await Promise.all([finish(send), finish(start([...args, '--yes', '--out', out], undefined, env))])
    expect([s.code, r.code], s.stderr + r.stderr).toEqual([0, 0])
    expect(fs.readFileSync(path.join(out, 'report.bin')).equals(fs.readFileSync(src))).toBe(true)
    expect(r.status.slice(0, 5)).toEqual([
      `joining the BitTorrent DHT through ${lab.bootstrap.slice(0, 2).join(', ')} (from --dht-bootstrap)`,
      'published on the DHT, waiting for the peer',
      'peer found, checking that it holds the same code',
      expect.stringMatching(/^code confirmed, trying paths: /),
      expect.stringMatching(/^connected via (lan|direct) path to [\d.]+:\d+, encrypted$/)
    ])
    expect(s.stdout).toMatch(/^sent report\.bin: 300000 bytes .* encrypted, sha256 [0-9a-f]{64}$/m)
  }, 90_000)

  it('two receivers with one code: the second learns at once that the other side must send', async () => {
    const out = fs.mkdtempSync(path.join(tmp, 'out-'))
    const common = ['receive', '--code', `77-${randomBytes(4).toString('hex')}`, '--dht-bootstrap', lab.bootstrap[0], '--yes', '--out', out, '--timeout', '40s']
    const first = start(common, undefined, env)
    await new Promise(resolve => setTimeout(resolve, 6000))
    const second = await finish(start(common, undefined, env))
    first.kill('SIGINT')
    await finish(first)
    expect(second.code).toBe(1)
    expect(second.stderr).toContain('another receiver is already waiting with this code: the other side must run send')
  }, 90_000)
})
