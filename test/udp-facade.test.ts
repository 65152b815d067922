// getUdpSocket()'s facade on its own (lib/udp-facade.ts) over a scripted host: how send() reads dgram's
// argument forms (what reaches the node: bytes, port, address, TTL), its callback and 'error' contract, the
// argument errors it shares with dgram (compared with a real dgram socket), and what it hands to its node.
// udp.test.ts and node-lifecycle.test.ts run it on real nodes.
import * as dgram from 'dgram'
import { describe, expect, it } from 'vitest'

import type * as FacadeModule from '../lib/udp-facade'
import { requireFromRoot } from './helpers/utp'

const { UdpSocketFacade } = requireFromRoot('./dist/lib/udp-facade.js') as typeof FacadeModule

interface Sent { data: string, port: number, host: string | undefined, ttl: number | undefined }

/** A bound node's native socket options: each call recorded, each answer `answer` (a negative errno fails) */
function nativeTarget (answer = 0): { target: FacadeModule.FacadeHost['_optionTarget'], calls: unknown[][] } {
  const calls: unknown[][] = []
  const record = (name: string) => (...args: unknown[]): number => { calls.push([name, ...args]); return answer }
  const native = {
    setBroadcast: record('setBroadcast'),
    setMulticastTTL: record('setMulticastTTL'),
    setMulticastLoopback: record('setMulticastLoopback'),
    setMulticastInterface: record('setMulticastInterface'),
    setMembership: record('setMembership'),
    setSourceMembership: record('setSourceMembership'),
    bufferSize: record('bufferSize')
  }
  return { target: () => native as unknown as ReturnType<FacadeModule.FacadeHost['_optionTarget']>, calls }
}

function facade (result: Error | null = null, target: FacadeModule.FacadeHost['_optionTarget'] = () => null): { u: InstanceType<typeof UdpSocketFacade>, sent: Sent[], calls: string[], closeCallbacks: unknown[] } {
  const sent: Sent[] = []
  const calls: string[] = []
  const closeCallbacks: unknown[] = []
  const host: FacadeModule.FacadeHost = {
    _sendRaw: (data, port, h, ttl, cb) => {
      sent.push({ data: data.toString('latin1'), port, host: h, ttl })
      cb(result)
    },
    address: () => ({ address: '127.0.0.1', family: 'IPv4', port: 4000 }),
    _optionTarget: target,
    ref: () => calls.push('ref'),
    unref: () => calls.push('unref'),
    close: (cb) => { calls.push('close'); closeCallbacks.push(cb) }
  }
  return { u: new UdpSocketFacade(host), sent, calls, closeCallbacks }
}

/** The error `fn` throws, as code, kind (TypeError, RangeError or Error) and message */
function thrown (fn: () => unknown): [string | undefined, string, string] | 'no error' {
  try {
    fn()
  } catch (e) {
    const err = e as Error & { code?: string }
    return [err.code, err instanceof TypeError ? 'TypeError' : err instanceof RangeError ? 'RangeError' : 'Error', err.message]
  }
  return 'no error'
}

describe('the UDP facade: send()', () => {
  it('reads every dgram argument form into bytes, port and address', () => {
    const { u, sent } = facade()
    const cb = (): void => {}
    u.send('one', 5001)
    u.send('two', 5002, '192.0.2.2')
    u.send('three', 5003, cb)
    u.send('four', 5004, '192.0.2.4', cb)
    u.send('xxfivexx', 2, 4, 5005)
    u.send('xxsixxx', 2, 3, 5006, '192.0.2.6')
    u.send('xsevenx', 1, 5, 5007, cb)
    u.send('xxeightxx', 2, 5, 5008, '192.0.2.8', cb)
    u.send([Buffer.from('ni'), 'n', new Uint8Array([101])], 5009)
    const wide = new Uint16Array([0x6574, 0x6e6e, 0x7878]) // "tenn" on a little-endian machine, then "xx"
    u.send(new Uint8Array(wide.buffer, 0, 3), 5010)
    u.send(new DataView(Buffer.from('__eleven__').buffer, Buffer.from('__eleven__').byteOffset + 2, 6), 5011)
    u.send('twelve', '5012' as unknown as number, null as unknown as string)
    u.send('thirteen', 0, 8, 5013, null as unknown as string)
    u.send('fourteen', 5014, '192.0.2.14', null as unknown as () => void) // a null callback is no callback
    u.send('xfifteenx', 1, 7, 5015, '192.0.2.15', null as unknown as () => void)
    expect(sent.map(s => [s.data, s.port, s.host])).toEqual([
      ['one', 5001, undefined], ['two', 5002, '192.0.2.2'], ['three', 5003, undefined], ['four', 5004, '192.0.2.4'],
      ['five', 5005, undefined], ['six', 5006, '192.0.2.6'], ['seven', 5007, undefined], ['eight', 5008, '192.0.2.8'],
      ['nine', 5009, undefined], ['ten', 5010, undefined], ['eleven', 5011, undefined], ['twelve', 5012, undefined],
      ['thirteen', 5013, undefined], ['fourteen', 5014, '192.0.2.14'], ['fifteen', 5015, '192.0.2.15']
    ])
  })

  it('calls back with the byte count, or the error; without a callback an error is emitted', () => {
    const ok = facade()
    const results: unknown[][] = []
    ok.u.send('hello', 5000, (...r: unknown[]) => results.push(r))
    ok.u.send('xxhixx', 2, 2, 5000, '192.0.2.1', (...r: unknown[]) => results.push(r))
    expect(results).toEqual([[null, 5], [null, 2]])
    const errors: unknown[] = []
    ok.u.on('error', e => errors.push(e))
    ok.u.send('quiet', 5000) // success and no callback: nothing
    expect(errors).toEqual([])

    const failure = Object.assign(new Error('send EMSGSIZE'), { code: 'EMSGSIZE' })
    const bad = facade(failure)
    const got: unknown[][] = []
    bad.u.send('x', 5000, (...r: unknown[]) => got.push(r))
    expect(got).toEqual([[failure]])
    const emitted: unknown[] = []
    bad.u.on('error', e => emitted.push(e))
    bad.u.send('x', 5000)
    expect(emitted).toEqual([failure])
  })

  it('sends with the TTL setTTL() chose, from then on', () => {
    const { u, sent } = facade()
    u.send('a', 5000)
    expect(u.setTTL(3)).toBe(3)
    u.send('b', 5000)
    expect(sent.map(s => s.ttl)).toEqual([undefined, 3])
    // dgram says EINVAL from the OS; the facade checks the range itself
    for (const bad of [0, 256]) expect(thrown(() => u.setTTL(bad))).toEqual(['ERR_INVALID_ARG_VALUE', 'RangeError', `The argument 'ttl' must be an integer >= 1 and <= 255. Received ${bad}`])
    expect(sent).toHaveLength(2)
  })

  it('refuses what dgram refuses, with dgram\'s error: a message, an address or a port of the wrong kind', () => {
    const { u, sent } = facade()
    const d = dgram.createSocket('udp4')
    try {
      const cases: Array<[string, unknown[]]> = [
        ['a number as the message', [5, 1234]],
        ['an object as the message', [{}, 1234]],
        ['a number in a message list', [[Buffer.from('a'), 5], 1234]],
        ['a list in a message list', [[Buffer.from('a'), ['b']], 1234]],
        ['a number as the address', ['x', 1234, 5]],
        ['port 0', ['x', 0]],
        ['port 65536', ['x', 65536]],
        ['a port that is not a number', ['x', '1234x']],
        ['no port', ['x']],
        ['the offset form without a port', ['xy', 0, 1, undefined, '127.0.0.1']]
      ]
      for (const [what, args] of cases) {
        const ours = thrown(() => (u.send as (...a: unknown[]) => void)(...args))
        const theirs = thrown(() => (d.send as (...a: unknown[]) => void)(...args))
        expect([what, ours]).toEqual([what, theirs])
      }
    } finally {
      d.close()
    }
    expect(sent).toEqual([])
  })

  it('checks the callback\'s type (dgram ignores one that is not a function), and offset and length against the message', () => {
    const { u, sent } = facade()
    expect(thrown(() => u.send('x', 0, 1, 1234, '127.0.0.1', 5 as unknown as () => void))).toEqual(
      ['ERR_INVALID_ARG_TYPE', 'TypeError', 'The "callback" argument must be of type function. Received type number (5)'])
    // A fourth argument that is not a callback makes it the offset form, as in dgram
    expect(thrown(() => u.send('x', 1234, '127.0.0.1', 5 as unknown as () => void))).toEqual(
      ['ERR_INVALID_ARG_VALUE', 'RangeError', "The argument 'offset' must be an integer >= 0 and <= 1. Received 1234"])
    expect(thrown(() => u.send('xy', 1, 5, 1234))).toEqual(
      ['ERR_INVALID_ARG_VALUE', 'RangeError', "The argument 'length' must be an integer >= 0 and <= 1. Received 5"])
    expect(thrown(() => u.send('xy', 3, 0, 1234))).toEqual(
      ['ERR_INVALID_ARG_VALUE', 'RangeError', "The argument 'offset' must be an integer >= 0 and <= 2. Received 3"])
    expect(thrown(() => u.send('xy', 2, 0, 1234))).toBe('no error') // an empty datagram at the end is fine
    expect(sent.map(s => s.data)).toEqual([''])
  })
})

describe('the UDP facade: what it hands to its node', () => {
  it('socket options reach the native socket as dgram\'s binding takes them; a negative answer is thrown as the OS error', () => {
    const { target, calls } = nativeTarget()
    const { u } = facade(null, target)
    u.setBroadcast(1 as unknown as boolean)
    expect(u.setMulticastTTL(7.9)).toBe(7.9)
    expect(u.setMulticastLoopback(0 as unknown as boolean)).toBe(0)
    u.setMulticastInterface('10.0.0.2')
    u.addMembership('239.1.1.1')
    u.addMembership('239.1.1.2', null as unknown as string)
    u.dropMembership('239.1.1.3', '10.0.0.2')
    u.addSourceSpecificMembership('10.0.0.9', '232.1.1.1')
    u.dropSourceSpecificMembership('10.0.0.9', '232.1.1.1', '10.0.0.2')
    u.setRecvBufferSize(1000)
    u.getSendBufferSize()
    u.setSendBufferSize(2000)
    expect(calls).toEqual([
      ['setBroadcast', true], ['setMulticastTTL', 7], ['setMulticastLoopback', false], ['setMulticastInterface', '10.0.0.2'],
      ['setMembership', '239.1.1.1', undefined, true], ['setMembership', '239.1.1.2', undefined, true], ['setMembership', '239.1.1.3', '10.0.0.2', false],
      ['setSourceMembership', '10.0.0.9', '232.1.1.1', undefined, true], ['setSourceMembership', '10.0.0.9', '232.1.1.1', '10.0.0.2', false],
      ['bufferSize', 1000, true], ['bufferSize', 0, false], ['bufferSize', 2000, false]
    ])
    const refusing = facade(null, nativeTarget(-22).target).u // EINVAL
    expect(thrown(() => refusing.setBroadcast(true))).toEqual(['EINVAL', 'Error', 'setBroadcast EINVAL'])
    for (const call of ['addMembership', 'dropMembership'] as const) {
      expect(thrown(() => refusing[call]('239.1.1.1'))).toEqual(['EINVAL', 'Error', `${call} EINVAL`])
    }
    for (const call of ['addSourceSpecificMembership', 'dropSourceSpecificMembership'] as const) {
      expect(thrown(() => refusing[call]('10.0.0.9', '232.1.1.1'))).toEqual(['EINVAL', 'Error', `${call} EINVAL`])
    }
    expect(thrown(() => refusing.getRecvBufferSize())).toEqual(['ERR_SOCKET_BUFFER_SIZE', 'Error', 'Could not get or set buffer size: uv_recv_buffer_size returned EINVAL (invalid argument)'])
    expect(facade(null, nativeTarget(212992).target).u.getRecvBufferSize()).toBe(212992)
  })

  it('ref(), unref() and close(callback) are the node\'s, and return the facade', () => {
    const { u, calls, closeCallbacks } = facade()
    const done = (): void => {}
    expect(u.ref()).toBe(u)
    expect(u.unref()).toBe(u)
    expect(u.close(done)).toBe(u)
    expect(calls).toEqual(['ref', 'unref', 'close'])
    expect(closeCallbacks).toEqual([done])
    expect(u.address()).toEqual({ address: '127.0.0.1', family: 'IPv4', port: 4000 })
    expect([u.getSendQueueSize(), u.getSendQueueCount()]).toEqual([0, 0])
  })

  it('emits the node\'s non-uTP datagrams as message', () => {
    const { u } = facade()
    const got: unknown[][] = []
    u.on('message', (...a: unknown[]) => got.push(a))
    const rinfo = { address: '192.0.2.1', family: 'IPv4' as const, port: 9, size: 2 }
    u._onMessage(Buffer.from('hi'), rinfo)
    expect(got).toEqual([[Buffer.from('hi'), rinfo]])
  })

  it('says a socket option needs a bound node, or the type it wants, as an unbound dgram socket does', () => {
    const { u } = facade()
    const cases: Array<[string, (s: dgram.Socket) => unknown]> = [
      ['setBroadcast', s => s.setBroadcast(true)],
      ['setMulticastTTL', s => s.setMulticastTTL(3)],
      ['setMulticastTTL with a string', s => s.setMulticastTTL('3' as unknown as number)],
      ['setMulticastLoopback', s => s.setMulticastLoopback(true)],
      ['setMulticastInterface', s => s.setMulticastInterface('127.0.0.1')],
      ['setMulticastInterface with a number', s => s.setMulticastInterface(5 as unknown as string)],
      ['dropMembership without a group', s => (s.dropMembership as (g?: string) => void)()],
      ...[null, '', 0, false].map((group): [string, (s: dgram.Socket) => unknown] =>
        [`dropMembership with the group ${String(group)}`, s => s.dropMembership(group as unknown as string)]),
      ['addSourceSpecificMembership with a number as the source', s => s.addSourceSpecificMembership(5 as unknown as string, '232.1.1.1')],
      ['addSourceSpecificMembership with a number as the group', s => s.addSourceSpecificMembership('10.0.0.1', 5 as unknown as string)],
      ['setRecvBufferSize', s => s.setRecvBufferSize(1000)],
      ['getSendBufferSize', s => s.getSendBufferSize()],
      ['setSendBufferSize(-1)', s => s.setSendBufferSize(-1)]
    ]
    for (const [what, call] of cases) {
      const d = dgram.createSocket('udp4') // a fresh one each time: some dgram calls bind it
      try {
        expect([what, thrown(() => call(u as unknown as dgram.Socket))]).toEqual([what, thrown(() => call(d))])
      } finally {
        d.close()
      }
    }
    // dgram's addMembership() binds its socket first; the facade does not bind the node (docs/api.md)
    expect(thrown(() => u.addMembership('239.1.1.1'))).toEqual(['EBADF', 'Error', 'addMembership EBADF'])
  })
})
