// ref() and unref(): an unref()ed node never keeps its process alive, not through its socket, its close timer or a
// punch under way, and ref() takes that back. Each case runs in a child process of its own, which reports when it
// exited, measured from its own mark, so a slow start on a loaded machine does not count
import { describe, expect, it } from 'vitest'

import { finish } from './helpers/cli'
import { spawnScript } from './helpers/script'

/** How the child ended: `ms` from its mark to its exit, and what it printed before */
interface Exit { code: number | null, ms: number, said: string[], stderr: string }

/**
 * Runs `body` with `Node`, `dgram`, `mark()` (starts the clock) and `say(text)` in scope. The child is killed after
 * `limitMs`: a process something keeps alive reports code null
 */
async function lifetime (body: string, limitMs = 15_000): Promise<Exit> {
  const script = `
    const Node = require('./dist/index.js')
    const dgram = require('dgram')
    let t0 = Date.now()
    const said = []
    const mark = () => { t0 = Date.now() }
    const say = (text) => said.push(text)
    process.on('exit', () => console.log(JSON.stringify({ ms: Date.now() - t0, said })))
    ${body}
  `
  const run = await finish(spawnScript(script), limitMs)
  const report = run.stdout.trim().split('\n').pop() ?? ''
  const parsed = report.startsWith('{') ? JSON.parse(report) as { ms: number, said: string[] } : { ms: -1, said: [] }
  return { code: run.code, ...parsed, stderr: run.stderr }
}

/** A UDP socket in the child that hears every probe and answers none (unref()ed: it never holds the child) */
const SILENT_PEER = `
  const silent = dgram.createSocket('udp4')
  silent.unref()
  silent.bind(0, '127.0.0.1', () => go(silent.address().port))
`

describe('ref() and unref()', () => {
  it('an unref()ed node lets its process exit, whether unref() came before or after bind()', async () => {
    const [before, after] = await Promise.all([
      lifetime("const n = new Node(); n.unref(); n.bind(0, '127.0.0.1', () => say('bound'))"),
      lifetime("const n = new Node(); n.bind(0, '127.0.0.1', () => { say('bound'); n.unref() })")
    ])
    for (const run of [before, after]) expect([run.code, run.said, run.stderr]).toEqual([0, ['bound'], ''])
  }, 30_000)

  it('a bound node holds its process, as a dgram socket does; ref() takes unref() back, whether bound before or after', async () => {
    // The only other thing scheduled is an unref()ed timer that closes the node: the process lives until then
    // only if the node holds it
    const closeLater = "setTimeout(() => n.close(() => say('closed')), 1500).unref()"
    const [untouched, bindFirst, refFirst] = await Promise.all([
      lifetime(`const n = new Node(); n.bind(0, '127.0.0.1', () => { mark(); ${closeLater} })`),
      lifetime(`const n = new Node(); n.bind(0, '127.0.0.1', () => { n.unref(); n.ref(); mark(); ${closeLater} })`),
      lifetime(`const n = new Node(); n.unref(); n.ref(); n.bind(0, '127.0.0.1', () => { mark(); ${closeLater} })`)
    ])
    for (const run of [untouched, bindFirst, refFirst]) {
      expect([run.code, run.said, run.stderr]).toEqual([0, ['closed'], ''])
      expect(run.ms).toBeGreaterThanOrEqual(1400)
    }
  }, 30_000)

  it('close() waiting on a peer that takes nothing holds the process for its timeout, unless the node is unref()ed', async () => {
    // The server never reads and the buffers are small, so the client's write never completes: close() waits for it
    // until its timeout (3 s). An unref()ed node, before or after close(), must not keep the process for that.
    // A ref()ed interval keeps the child alive until close() is called, whatever the node does
    const closing = (unref: string): string => `
      const keep = setInterval(() => {}, 1000)
      const server = new Node({ bufferSize: 16 }, (s) => { s.pause(); s.on('error', () => {}) })
      server.unref()
      server.bind(0, '127.0.0.1', () => {
        server.listen()
        const n = new Node({ timeout: 3000, bufferSize: 16 })
        ${unref === 'before' ? 'n.unref()' : ''}
        const s = n.connect(server.address().port, '127.0.0.1')
        s.on('error', (err) => say(err.code))
        s.write(Buffer.alloc(4 << 20))
        s.once('connect', () => setTimeout(() => {
          if (s.writableLength === 0) say('the write completed: not the case under test')
          clearInterval(keep)
          mark()
          n.close(() => say('closed'))
          ${unref === 'after' ? 'n.unref()' : ''}
        }, 200))
      })`
    const [held, before, after] = await Promise.all([lifetime(closing('never')), lifetime(closing('before')), lifetime(closing('after'))])
    expect([held.code, held.said, held.stderr]).toEqual([0, ['closed'], ''])
    expect(held.ms).toBeGreaterThanOrEqual(2900)
    for (const run of [before, after]) {
      expect([run.code, run.said, run.stderr]).toEqual([0, [], ''])
      expect(run.ms).toBeLessThan(2000)
    }
  }, 30_000)

  it('a punch under way does not hold an unref()ed node\'s process, whether it began before or after unref()', async () => {
    // 20 probes take 10 s: the process exits long before the punch could end
    const punching = (order: string): string => `${SILENT_PEER}
      function go (port) {
        const n = new Node()
        n.bind(0, '127.0.0.1', () => {
          mark()
          ${order === 'unref first' ? 'n.unref()' : ''}
          n.punch(20, port, '127.0.0.1').then((ok) => say('punch ' + ok))
          ${order === 'punch first' ? 'n.unref()' : ''}
        })
      }`
    const [unrefFirst, punchFirst] = await Promise.all([lifetime(punching('unref first')), lifetime(punching('punch first'))])
    for (const run of [unrefFirst, punchFirst]) {
      expect([run.code, run.said, run.stderr]).toEqual([0, [], ''])
      expect(run.ms).toBeLessThan(3000)
    }
  }, 30_000)
})
