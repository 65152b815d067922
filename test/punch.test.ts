// Hole punching's parts on their own (lib/punch.ts), on a fake clock with a scripted transport: the probe
// format, the probe schedule and each way a punch ends, which acks count, the answers to other nodes' probes
// and their limiter's bounded table. udp.test.ts and attack-utp.test.ts run the same code between real nodes.
import { describe, expect, it, vi } from 'vitest'

import type * as PunchModule from '../lib/punch'
import { fakeClockFromZero, requireFromRoot } from './helpers/utp'

const punch = requireFromRoot('./dist/lib/punch.js') as typeof PunchModule
const { AnswerLimiter, Puncher, encodePunch, decodePunch, PROBE, ACK, PUNCH_INTERVAL } = punch

interface Sent { at: number, bytes: Buffer, to: string }

/** The node as the puncher sees it: a resolver the test answers, raw sends recorded */
function transport (refed = true): { t: PunchModule.PunchTransport, sent: Sent[], resolve: (err: Error | null, address?: string) => void, hosts: string[] } {
  const sent: Sent[] = []
  const hosts: string[] = []
  let pending: ((err: Error | null, address?: string) => void) | null = null
  const t: PunchModule.PunchTransport = {
    _resolve: (host, cb) => { hosts.push(host); pending = cb },
    _sendRawTo: (bytes, port, address) => { sent.push({ at: Date.now(), bytes, to: `${address}:${port}` }) },
    _isRefed: () => refed
  }
  return { t, sent, hosts, resolve: (err, address) => pending?.(err, address) }
}

const nonceOf = (s: Sent): Buffer => s.bytes.subarray(6)

fakeClockFromZero()

describe('punch datagrams', () => {
  it('are 14 bytes: UTPRS, the type, the nonce; anything else is not one', () => {
    const nonce = Buffer.from('0102030405060708', 'hex')
    const probe = encodePunch(PROBE, nonce)
    expect(probe.toString('hex')).toBe(Buffer.from('UTPRS').toString('hex') + '01' + '0102030405060708')
    expect(decodePunch(probe)).toEqual({ type: PROBE, nonce })
    expect(decodePunch(encodePunch(ACK, nonce))).toEqual({ type: ACK, nonce })
    expect(decodePunch(probe.subarray(0, 13))).toBeNull()
    expect(decodePunch(Buffer.concat([probe, Buffer.alloc(1)]))).toBeNull()
    for (let i = 0; i < 5; i++) {
      const wrong = Buffer.from(probe)
      wrong[i] ^= 0x20
      expect(decodePunch(wrong)).toBeNull()
    }
    for (const type of [0, 3, 255]) expect(decodePunch(encodePunch(type, nonce))).toBeNull()
  })
})

describe('Puncher: a punch', () => {
  it('resolves the host, probes at once and every 500 ms, and fails one interval after the last probe', () => {
    const { t, sent, hosts, resolve } = transport()
    const p = new Puncher(t)
    const results: boolean[] = []
    p.punch(3, 4000, 'peer.example', ok => results.push(ok))
    expect(hosts).toEqual(['peer.example'])
    vi.advanceTimersByTime(1000)
    expect(sent).toHaveLength(0) // nothing before the lookup answers
    resolve(null, '192.0.2.7')
    vi.advanceTimersByTime(3 * PUNCH_INTERVAL - 1)
    expect(sent.map(s => [s.at, s.to])).toEqual([[1000, '192.0.2.7:4000'], [1500, '192.0.2.7:4000'], [2000, '192.0.2.7:4000']])
    expect(sent.every(s => decodePunch(s.bytes)?.type === PROBE && nonceOf(s).equals(nonceOf(sent[0])))).toBe(true)
    expect(results).toEqual([])
    vi.advanceTimersByTime(1)
    expect(results).toEqual([false])
    expect(vi.getTimerCount()).toBe(0)
  })

  it('fails at once when the lookup fails', () => {
    const { t, sent, resolve } = transport()
    const p = new Puncher(t)
    const results: boolean[] = []
    p.punch(3, 4000, 'nowhere.example', ok => results.push(ok))
    resolve(new Error('ENOTFOUND'))
    expect(results).toEqual([false])
    expect(sent).toHaveLength(0)
    const noAddress = transport()
    new Puncher(noAddress.t).punch(3, 4000, 'x', ok => results.push(ok))
    noAddress.resolve(null, undefined)
    expect(results).toEqual([false, false])
  })

  it('succeeds on the ack of its own nonce from the target, and only that', () => {
    const { t, sent, resolve } = transport()
    const p = new Puncher(t)
    const results: boolean[] = []
    p.punch(10, 4000, '192.0.2.7', ok => results.push(ok))
    resolve(null, '192.0.2.7')
    const nonce = nonceOf(sent[0])
    const other = Buffer.from(nonce)
    other[7] ^= 1
    expect(p.onMessage(encodePunch(ACK, other), '192.0.2.7', 4000)).toBe(true)
    p.onMessage(encodePunch(ACK, nonce), '192.0.2.8', 4000)
    p.onMessage(encodePunch(ACK, nonce), '192.0.2.7', 4001)
    expect(results).toEqual([])
    p.onMessage(encodePunch(ACK, nonce), '::ffff:192.0.2.7', 4000) // the dual-stack form of the same address
    expect(results).toEqual([true])
    p.onMessage(encodePunch(ACK, nonce), '192.0.2.7', 4000)
    vi.advanceTimersByTime(10 * PUNCH_INTERVAL)
    expect(results).toEqual([true])
    expect(sent).toHaveLength(1)
  })

  it('each punch has its own nonce; an ack ends only its own', () => {
    const { t, sent, resolve } = transport()
    const p = new Puncher(t)
    const results: string[] = []
    p.punch(5, 4000, 'a', ok => results.push(`a ${ok}`))
    resolve(null, '192.0.2.7')
    p.punch(5, 4000, 'b', ok => results.push(`b ${ok}`))
    resolve(null, '192.0.2.7')
    expect(nonceOf(sent[0]).equals(nonceOf(sent[1]))).toBe(false)
    p.onMessage(encodePunch(ACK, nonceOf(sent[1])), '192.0.2.7', 4000)
    expect(results).toEqual(['b true'])
    p.cancelAll()
    expect(results).toEqual(['b true', 'a false'])
  })

  it('cancelAll() fails every punch, also one still resolving, and only once', () => {
    const { t, sent, resolve } = transport()
    const p = new Puncher(t)
    const results: boolean[] = []
    p.punch(5, 4000, 'slow', ok => results.push(ok))
    p.ref() // no timer yet: nothing to do, and no error
    p.unref()
    p.cancelAll()
    expect(results).toEqual([false])
    resolve(null, '192.0.2.7') // the lookup ends after the cancel: no probe
    p.cancelAll()
    expect(results).toEqual([false])
    expect(sent).toHaveLength(0)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('keeps the process alive with its timer only while the node is ref()ed', () => {
    for (const refed of [true, false]) {
      const { t, resolve } = transport(refed)
      const p = new Puncher(t)
      p.punch(5, 4000, 'x', () => {})
      resolve(null, '192.0.2.7')
      const timer = (p as unknown as { _sessions: Set<{ timer: NodeJS.Timeout }> })._sessions.values().next().value?.timer
      expect(timer?.hasRef()).toBe(refed)
      p.unref()
      expect(timer?.hasRef()).toBe(false)
      p.ref()
      expect(timer?.hasRef()).toBe(true)
      p.cancelAll()
    }
  })
})

describe('Puncher: answering probes', () => {
  it('answers a probe with an ack of its nonce, to its source, while the limiter allows', () => {
    const { t, sent } = transport()
    let allow = true
    const asked: string[] = []
    const limiter = { allow: (a: string) => { asked.push(a); return allow }, dropped: 0 } as unknown as InstanceType<typeof AnswerLimiter>
    const p = new Puncher(t, limiter)
    const nonce = Buffer.alloc(8, 9)
    expect(p.onMessage(encodePunch(PROBE, nonce), '::ffff:192.0.2.9', 5000)).toBe(true)
    expect(sent.map(s => [s.bytes, s.to])).toEqual([[encodePunch(ACK, nonce), '::ffff:192.0.2.9:5000']])
    allow = false
    p.onMessage(encodePunch(PROBE, nonce), '192.0.2.9', 5000)
    expect(sent).toHaveLength(1)
    expect(asked).toEqual(['192.0.2.9', '192.0.2.9']) // one bucket per address, whatever its form
    expect(p.onMessage(Buffer.from('not a punch'), '192.0.2.9', 5000)).toBe(false)
    expect(p.answers).toBe(limiter)
  })
})

describe('AnswerLimiter', () => {
  it('refills each bucket at its rate, a token every 1000 / rate ms', () => {
    let now = 0
    const limiter = new AnswerLimiter(8, 1000, () => now)
    const answered = (n: number): number => Array.from({ length: n }, () => limiter.allow('192.0.2.1')).filter(Boolean).length
    expect(answered(20)).toBe(8)
    now += 124
    expect(answered(1)).toBe(0)
    now += 1
    expect(answered(2)).toBe(1)
  })

  it('bounds the answers to all addresses together', () => {
    const limiter = new AnswerLimiter(8, 10, () => 0)
    const answered = Array.from({ length: 20 }, (_, i) => limiter.allow(`192.0.2.${i + 1}`)).filter(Boolean).length
    expect([answered, limiter.dropped]).toEqual([10, 10])
  })

  it('a puncher made without a limiter answers 8 probes at once from one address', () => {
    const { t, sent } = transport()
    const p = new Puncher(t)
    for (let i = 0; i < 20; i++) p.onMessage(encodePunch(PROBE, Buffer.alloc(8, i)), '192.0.2.9', 5000)
    expect(sent).toHaveLength(8)
    expect(p.answers.dropped).toBe(12)
  })

  it('counts what it drops', () => {
    const limiter = new AnswerLimiter(2, 100, () => 0)
    expect([1, 2, 3, 4].map(() => limiter.allow('192.0.2.1'))).toEqual([true, true, false, false])
    expect(limiter.dropped).toBe(2)
  })

  it('remembers at most 4096 addresses: past that a new one has only the total bound, until idle ones are forgotten', () => {
    let now = 0
    const limiter = new AnswerLimiter(8, 1_000_000, () => now)
    for (let i = 0; i < 4096; i++) limiter.allow(`10.${i >> 8}.${i & 255}.1`) // each busy: 7 of 8 tokens left
    const answered = (address: string, n: number): number => Array.from({ length: n }, () => limiter.allow(address)).filter(Boolean).length
    expect(answered('192.0.2.1', 50)).toBe(50) // not tracked: a fresh bucket each time
    expect(answered('10.0.0.1', 50)).toBe(7) // a tracked address keeps its bucket
    // A second later every bucket is full again: the next new address makes room by forgetting idle ones
    now += 1000
    expect(answered('10.0.0.1', 2)).toBe(2) // busy again: it keeps its place
    expect(answered('192.0.2.1', 50)).toBe(8)
    expect(answered('10.0.0.1', 50)).toBe(6)
  })
})
