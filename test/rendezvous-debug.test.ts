// node.rendezvous()'s debug log (lib/rendezvous/methods.ts) line by line: a child process with
// NODE_DEBUG=utp-punch-rs (read once, when the package loads) calls the method on a stand-in node with the
// rendezvous client replaced by a script, so every status, every shape of result and each failure is logged
// without a network. Also: with the log off the method hands the options through untouched. The end-to-end
// log of a real rendezvous is in dx.test.ts.
import { describe, expect, it } from 'vitest'

import { finish, type Run } from './helpers/cli'
import { spawnScript } from './helpers/script'

const SCRIPT = `
const { EventEmitter } = require('events')
const client = require('./dist/lib/rendezvous/client.js')
const { rendezvous } = require('./dist/lib/rendezvous/methods.js')
const node = { _debugId: 7 }
const other = { _debugId: 9 }
const seen = []
let plan
client.rendezvous = async (n, options) => {
  seen.push(options === plan.options ? 'the options as given' : options !== null && typeof options === 'object' && typeof options.onStatus === 'function' ? 'wrapped' : 'other')
  for (const s of plan.statuses ?? []) options.onStatus(s)
  if (plan.error !== undefined) throw plan.error
  return plan.result
}
const socket = (id) => Object.assign(new EventEmitter(), { id })
const run = async (p) => { plan = p; try { return await rendezvous.call(node, p.options) } catch (e) { return e.code } }
;(async () => {
  let userStatuses = 0
  const a = socket(12)
  await run({
    options: { server: '127.0.0.1:4000', code: 'c', onStatus: () => userStatuses++ },
    statuses: [
      { state: 'registering', server: '127.0.0.1:4000' },
      { state: 'registered', observed: { address: '203.0.113.5', port: 40000 } },
      { state: 'paired', role: 'connect' },
      { state: 'punching', candidates: [] },
      { state: 'punching', candidates: ['192.168.1.2:4000 (lan)', '203.0.113.6:40001 (public)'] },
      { state: 'relay', reason: 'no direct path' }
    ],
    result: { path: 'relay', remote: { address: '2001:db8::1', port: 3479 }, role: 'connect', utpSocket: a, node, encrypted: true,
      timings: { registeredMs: 5, pairedMs: 9, relayMs: 40, connectedMs: 55, serverRttMs: 3 }, mapping: { ours: 'independent' } }
  })
  a.emit('migrate', { address: '203.0.113.9', port: 5, from: null })
  a.emit('migrate', { address: '203.0.113.9', port: 6, from: { address: '::1', port: 1 } })
  const b = socket(13)
  await run({
    options: { dht: {}, code: 'c' },
    statuses: [{ state: 'joining-dht' }, { state: 'published' }, { state: 'published', observed: { address: '203.0.113.5', port: 40000 } }],
    result: { path: 'birthday', remote: { address: '203.0.113.7', port: 50000 }, role: 'accept', utpSocket: b, node: other, encrypted: false,
      timings: { registeredMs: 1, pairedMs: 2, punchedMs: 3, connectedMs: 4 } }
  })
  b.emit('migrate', { address: '203.0.113.7', port: 50001, from: { address: '203.0.113.7', port: 50000 } })
  await run({
    options: { server: '127.0.0.1:4000', code: 'c' },
    result: { path: 'direct', remote: { address: '203.0.113.7', port: 50000 }, role: 'accept', utpSocket: socket(14), node, encrypted: true,
      timings: { registeredMs: 1, pairedMs: 2, punchedMs: 7, connectedMs: 8, serverRttMs: 0 }, mapping: { peer: 'dependent' } }
  })
  const failed = Object.assign(new Error('no path\\n  tried: x'), { code: 'ERR_PUNCH_FAILED' })
  const refused = Object.assign(new Error('bad options'), { code: 'ERR_INVALID_ARG_TYPE' })
  const outcomes = [
    await run({ options: { server: '127.0.0.1:4000', code: 'c' }, error: failed }),
    await run({ options: null, error: refused }),
    await run({ options: 'server', error: refused }),
    await run({ options: { server: '127.0.0.1:4000', code: 'c', onStatus: 'not a function' }, error: refused })
  ]
  console.log(JSON.stringify({ userStatuses, seen, outcomes }))
})()
`

const runScript = async (env: NodeJS.ProcessEnv): Promise<Run> => await finish(spawnScript(SCRIPT, env))

describe('node.rendezvous() with NODE_DEBUG=utp-punch-rs', () => {
  it('logs the start, each status, the path found with its timings and NAT mappings, each move, and failures on one line', async () => {
    const { NODE_DEBUG: _, ...quiet } = process.env
    const [on, off] = await Promise.all([runScript({ ...quiet, NODE_DEBUG: 'utp-punch-rs' }), runScript(quiet)])
    const lines = on.stderr.trim().split('\n').map(l => l.replace(/^UTP-PUNCH-RS \d+: /, ''))
    expect(lines).toEqual([
      'node 7 rendezvous via 127.0.0.1:4000: starting',
      'node 7 rendezvous via 127.0.0.1:4000: registering with 127.0.0.1:4000',
      'node 7 rendezvous via 127.0.0.1:4000: registered, the server sees us as 203.0.113.5:40000; waiting for the peer',
      'node 7 rendezvous via 127.0.0.1:4000: paired as connect; confirming the code',
      'node 7 rendezvous via 127.0.0.1:4000: probing no candidates',
      'node 7 rendezvous via 127.0.0.1:4000: probing 192.168.1.2:4000 (lan), 203.0.113.6:40001 (public)',
      'node 7 rendezvous via 127.0.0.1:4000: moving to the relay: no direct path',
      'node 7 rendezvous via 127.0.0.1:4000: relay path to [2001:db8::1]:3479 as connect (connection 12, encrypted); ' +
        'registered +5 ms, paired +9 ms, relay ready +40 ms, connected +55 ms; server rtt 3 ms; NAT mappings ours independent, peer\'s unknown',
      'node 7 connection 12: the peer moved from unknown to 203.0.113.9:5',
      'node 7 connection 12: the peer moved from [::1]:1 to 203.0.113.9:6',
      'node 7 rendezvous via the DHT: starting',
      'node 7 rendezvous via the DHT: joining the DHT',
      'node 7 rendezvous via the DHT: card published on the DHT; waiting for the peer',
      'node 7 rendezvous via the DHT: card published on the DHT, DHT nodes see us as 203.0.113.5:40000; waiting for the peer',
      'node 7 rendezvous via the DHT: birthday path to 203.0.113.7:50000 as accept (connection 13 on node 9, not encrypted); ' +
        'registered +1 ms, paired +2 ms, punched +3 ms, connected +4 ms; server rtt unknown; NAT mappings unmeasured',
      'node 9 connection 13: the peer moved from 203.0.113.7:50000 to 203.0.113.7:50001',
      'node 7 rendezvous via 127.0.0.1:4000: starting',
      'node 7 rendezvous via 127.0.0.1:4000: direct path to 203.0.113.7:50000 as accept (connection 14, encrypted); ' +
        'registered +1 ms, paired +2 ms, punched +7 ms, connected +8 ms; server rtt 0 ms; NAT mappings ours unknown, peer\'s dependent',
      'node 7 rendezvous via 127.0.0.1:4000: starting',
      'node 7 rendezvous via 127.0.0.1:4000 failed: ERR_PUNCH_FAILED: no path tried: x',
      'node 7 rendezvous via undefined: starting',
      'node 7 rendezvous via undefined failed: ERR_INVALID_ARG_TYPE: bad options',
      'node 7 rendezvous via undefined: starting',
      'node 7 rendezvous via undefined failed: ERR_INVALID_ARG_TYPE: bad options',
      'node 7 rendezvous via 127.0.0.1:4000: starting',
      'node 7 rendezvous via 127.0.0.1:4000 failed: ERR_INVALID_ARG_TYPE: bad options'
    ])
    const outcomes = ['ERR_PUNCH_FAILED', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_TYPE']
    // Logging wraps onStatus (the caller's still sees every status); options that rendezvous() will refuse go as given
    expect([on.code, JSON.parse(on.stdout)]).toEqual([0, {
      userStatuses: 6,
      seen: ['wrapped', 'wrapped', 'wrapped', 'wrapped', 'the options as given', 'the options as given', 'the options as given'],
      outcomes
    }])
    // With the log off: nothing on stderr, and the options are handed through untouched
    expect([off.code, off.stderr, JSON.parse(off.stdout)]).toEqual([0, '', { userStatuses: 6, seen: Array(7).fill('the options as given'), outcomes }])
  })
})
