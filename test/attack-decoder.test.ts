// Hostile JSON in a rendezvous datagram. The codec rebuilds each message from validated fields, but it once
// turned an unknown type into text with String(), and `{"t":{"toString":1}}` makes String() throw: one
// 25-byte datagram, from any source, was an uncaught TypeError in the deployable server's socket handler
// (the process exited) and in a client's (its Node's socket emits it). The decoder must be total: every
// input is a message, a refusal or not ours, never an exception.
import { spawn } from 'child_process'
import * as dgram from 'dgram'
import * as path from 'path'

import { afterAll, describe, expect, it } from 'vitest'

import type * as ProtocolModule from '../lib/rendezvous/protocol'
import { startRendezvous, type CliServer } from './helpers/cli'
import { pairUp, rawDatagram as raw } from './helpers/rendezvous-peer'
import { requireFromRoot, root, sleep } from './helpers/utp'

const { decode, isDecodeError } = requireFromRoot('./dist/lib/rendezvous/protocol.js') as typeof ProtocolModule

/** JSON values that break code which converts or measures what it was given without checking its type first */
const HOSTILE: unknown[] = [
  { toString: 1 },
  { toString: 1, valueOf: 1 },
  [{ toString: 1 }],
  { length: 100 },
  { __proto__: { toString: 1 } },
  { constructor: 1, hasOwnProperty: 1 },
  [],
  {},
  null,
  true,
  -0,
  1e300,
  '__proto__',
  'x'.repeat(2000)
]

const n = 'ab'.repeat(8)
const pair = 'cd'.repeat(16)
const pake = Buffer.alloc(33, 9).toString('base64')
const ep = { address: '198.51.100.7', port: 4000 }
/** One valid message of every type: each of their fields is replaced in turn */
const TEMPLATES: Array<Record<string, unknown>> = [
  { t: 'register', key: 'n:4127', nonce: n, lan: [ep], relay: true, pake, nat: 'cone', rtt: 1, side: 'send', cookie: 'e1'.repeat(16) },
  { t: 'retry', cookie: 'e1'.repeat(16) },
  { t: 'registered', nonce: n, observed: ep, expiresInMs: 1, checkPort: 2 },
  { t: 'check', nonce: n, cookie: 'e1'.repeat(16) },
  { t: 'check-ack', nonce: n, observed: ep },
  { t: 'keepalive', nonce: n, rtt: 1 },
  { t: 'peer', nonce: n, pair, role: 'accept', startInMs: 0, public: ep, lan: [ep], relay: false, pake, peerNat: 'x', mapping: 'independent', peerMapping: 'dependent' },
  { t: 'peer-moved', nonce: n, public: ep, seq: 1 },
  { t: 'confirm', nonce: n, mac: '01'.repeat(32) },
  { t: 'relay-allocated', nonce: n, port: 1, token: n },
  { t: 'error', code: 'ERR_FULL', message: 'm', nonce: n },
  { t: 'select', pair, path: 'lan', mac: '05'.repeat(16) },
  { t: 'relay-hello-ack', token: n, ready: true }
]

describe('the rendezvous decoder is total', () => {
  it('any hostile value in any field of any message type, or as the type itself, is refused, never thrown', () => {
    let tried = 0
    for (const template of TEMPLATES) {
      for (const field of Object.keys(template)) {
        for (const value of HOSTILE) {
          const text = JSON.stringify({ ...template, [field]: value })
          let m: unknown
          expect(() => { m = decode(raw(text)) }, text).not.toThrow()
          expect(m, text).not.toBeNull()
          tried++
        }
        // Inside an endpoint too
        if (field === 'observed' || field === 'public' || field === 'lan') {
          for (const value of HOSTILE) {
            for (const inner of ['address', 'port']) {
              const bad = { ...ep, [inner]: value }
              const text = JSON.stringify({ ...template, [field]: field === 'lan' ? [bad] : bad })
              expect(() => decode(raw(text)), text).not.toThrow()
              tried++
            }
          }
        }
      }
    }
    expect(tried).toBeGreaterThan(1000)
  })

  it('a type that is not a string is a malformed field; a string nobody knows is an unknown type', () => {
    for (const t of HOSTILE.filter(v => typeof v !== 'string')) {
      expect(decode(raw(JSON.stringify({ t }))), JSON.stringify(t)).toEqual({ error: 'ERR_MALFORMED', message: 'field "t" must be a string' })
    }
    expect(decode(raw('{}'))).toEqual({ error: 'ERR_MALFORMED', message: 'field "t" must be a string' })
    expect(decode(raw('{"t":"__proto__"}'))).toEqual({ error: 'ERR_UNKNOWN_TYPE', message: 'unknown message type "__proto__"' })
  })

  it('a client survives them on its Node\'s socket (the Wire every rendezvous client listens with)', async () => {
    // In a child process: before the fix, the first datagram ended the process with an uncaught TypeError
    const script = `
      const { Node } = require(${JSON.stringify(path.join(root, 'dist/index.js'))})
      const { Wire } = require(${JSON.stringify(path.join(root, 'dist/lib/rendezvous/wire.js'))})
      const node = new Node()
      node.bind(0, '127.0.0.1', () => {
        new Wire(node, (m) => { console.log(JSON.stringify(m)); if (m.t === 'bye') node.close() })
        console.log(node.address().port)
      })`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    let gone = false
    void exited.then(() => { gone = true })
    while (!out.includes('\n') && !gone) await sleep(20)
    const port = Number(out.split('\n')[0])
    const attacker = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => attacker.bind(0, '127.0.0.1', resolve))
    const send = async (b: Buffer): Promise<void> => await new Promise((resolve) => attacker.send(b, port, '127.0.0.1', () => resolve()))
    for (const t of HOSTILE) await send(raw(JSON.stringify({ t, nonce: n })))
    await sleep(200)
    await send(raw(JSON.stringify({ t: 'bye', nonce: n })))
    const code = await Promise.race([exited, sleep(5000).then(() => { child.kill(); return 'still running' })])
    attacker.close()
    expect(err).toBe('')
    expect(code).toBe(0)
    // Only the valid message was heard
    expect(out.split('\n').slice(1)).toEqual([JSON.stringify({ t: 'bye', nonce: n }), ''])
  })
})

describe('the deployable server under hostile JSON', () => {
  let server: CliServer | undefined
  afterAll(async () => {
    server?.child.kill('SIGTERM')
    await server?.exit
  })

  it('keeps running and pairing after every hostile type from a stranger', async () => {
    server = await startRendezvous()
    const [host, port] = [server.addr.split(':')[0], Number(server.addr.split(':')[1])]
    const attacker = dgram.createSocket('udp4')
    const replies: Buffer[] = []
    attacker.on('message', (m: Buffer) => replies.push(m))
    await new Promise<void>((resolve) => attacker.bind(0, '127.0.0.1', resolve))
    let exited: number | null | undefined
    server.child.once('exit', (code) => { exited = code })
    for (const t of HOSTILE) attacker.send(raw(JSON.stringify({ t, nonce: n })), port, host)
    await sleep(500)
    attacker.close()
    expect(exited, 'the server process exited').toBeUndefined()
    // Still serving: a pairing goes through
    const { a, b } = await pairUp({ address: host, port }, 'n:4242')
    a.close()
    b.close()
    // And what it answered (to an address it has not verified, at most its token budget) were refusals: the
    // 2000-character type makes a datagram over the size limit
    for (const r of replies) {
      const m = decode(r)
      expect(['ERR_MALFORMED', 'ERR_TOO_LARGE']).toContain(m !== null && !isDecodeError(m) && m.t === 'error' ? m.code : r.toString('latin1'))
    }
    expect(replies.length).toBeGreaterThan(0)
  })
})
