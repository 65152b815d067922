// The easy side of birthday probing (lib/rendezvous/birthday.ts, BirthdaySpray) on a virtual clock: exactly
// `rate` probes a second, credit carried between ticks, exactly `count` in all, a second start() that does not
// double the rate, stop() and resume, and distinct ports until the whole unprivileged range is used.
// rendezvous.test.ts runs it on the real clock with loose bounds; the NAT lab runs it through real NATs.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type * as BirthdayModule from '../lib/rendezvous/birthday'
import { requireFromRoot } from './helpers/utp'

const { BirthdaySpray } = requireFromRoot('./dist/lib/rendezvous/birthday.js') as typeof BirthdayModule

function spray (count: number, rate: number): { s: InstanceType<typeof BirthdaySpray>, ports: number[] } {
  const ports: number[] = []
  const s = new BirthdaySpray({
    address: '203.0.113.9',
    count,
    rate,
    send: (to) => {
      expect(to.address).toBe('203.0.113.9')
      ports.push(to.port)
    }
  })
  return { s, ports }
}

describe('BirthdaySpray on a virtual clock', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  it('sends at exactly its rate, to distinct ports of the unprivileged range, and stops at its count', () => {
    const { s, ports } = spray(100, 1000)
    s.start()
    expect(ports).toHaveLength(0) // nothing before the first tick
    vi.advanceTimersByTime(50)
    expect(ports).toHaveLength(50)
    vi.advanceTimersByTime(50)
    expect(ports).toHaveLength(100)
    expect(s.sent).toBe(100)
    // Done: its timer is gone, and no more time sends anything
    expect(vi.getTimerCount()).toBe(0)
    vi.advanceTimersByTime(1000)
    expect(ports).toHaveLength(100)
    expect(new Set(ports).size).toBe(100)
    expect(ports.every(p => Number.isInteger(p) && p >= 1024 && p <= 65535)).toBe(true)
  })

  it('carries fractions of a probe from tick to tick', () => {
    const { s, ports } = spray(1000, 150) // 1.5 probes per 10 ms tick
    s.start()
    vi.advanceTimersByTime(10)
    expect(ports).toHaveLength(1)
    vi.advanceTimersByTime(10)
    expect(ports).toHaveLength(3)
    vi.advanceTimersByTime(980)
    expect(ports).toHaveLength(150)
    s.stop()
  })

  it('a second start() changes nothing; stop() halts and start() resumes at the same rate', () => {
    const { s, ports } = spray(1000, 1000)
    s.start()
    s.start()
    vi.advanceTimersByTime(100)
    expect(ports).toHaveLength(100)
    s.stop()
    expect(vi.getTimerCount()).toBe(0)
    vi.advanceTimersByTime(500)
    expect(ports).toHaveLength(100)
    s.stop() // twice is fine
    s.start()
    vi.advanceTimersByTime(100)
    expect(ports).toHaveLength(200)
    s.stop()
  })

  it('start() after its count does nothing', () => {
    const { s, ports } = spray(5, 1000)
    s.start()
    vi.advanceTimersByTime(100)
    expect(ports).toHaveLength(5)
    s.start()
    expect(vi.getTimerCount()).toBe(0)
    vi.advanceTimersByTime(100)
    expect(ports).toHaveLength(5)
  })

  it('uses every one of the 64,512 ports once before it repeats any', () => {
    const { s, ports } = spray(64_512 + 3, 1e9)
    s.start()
    vi.advanceTimersByTime(10)
    expect(ports).toHaveLength(64_515)
    expect(new Set(ports.slice(0, 64_512)).size).toBe(64_512)
    expect(Math.min(...ports)).toBe(1024)
    expect(Math.max(...ports)).toBe(65535)
  })
})
