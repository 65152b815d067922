// Transfer progress on its own (bin/progress.ts), on a scripted clock: each mode's exact output and when it
// writes, the rate over its window (and from the start while that is short, net of resumed bytes), the ETA
// when known and when not, streams of unknown size, and the formatters. dx.test.ts covers the CLI's use.
import { describe, expect, it } from 'vitest'

import type * as ProgressModule from '../bin/progress'
import { requireFromRoot } from './helpers/utp'

const { Progress, autoMode, noProgress, mb, clock, round } = requireFromRoot('./dist/bin/progress.js') as typeof ProgressModule

function sink (): { out: NodeJS.WritableStream, text: () => string, clear: () => void } {
  let written = ''
  const out = { write: (s: string) => { written += s; return true } } as unknown as NodeJS.WritableStream
  return { out, text: () => written, clear: () => { written = '' } }
}

interface Driven {
  p: InstanceType<typeof Progress>
  /** What update(done, force) at t ms from the start writes */
  at: (t: number, done: number, force?: boolean) => string
  /** What end() writes */
  end: () => string
}

function progress (total: number | null, mode: ProgressModule.ProgressMode, initial?: number): Driven {
  // The clock does not start at 0, so that times are seen to count from the start
  const T0 = 1_000_000
  let now = T0
  const s = sink()
  const p = new Progress('sending', 'f.bin', total, { mode, out: s.out, now: () => now, ...(initial === undefined ? {} : { initial }) })
  return {
    p,
    at: (t, done, force) => {
      now = T0 + t
      s.clear()
      p.update(done, force)
      return s.text()
    },
    end: () => {
      s.clear()
      p.end()
      return s.text()
    }
  }
}

describe('transfer progress', () => {
  it('picks a bar for a terminal and lines otherwise; off writes nothing', () => {
    expect([autoMode({ isTTY: true } as never), autoMode({ isTTY: false } as never), autoMode({} as never)]).toEqual(['bar', 'lines', 'lines'])
    const off = progress(100, 'off')
    expect([off.p.enabled, off.at(10_000, 50, true)]).toEqual([false, ''])
    const offStream = progress(null, 'off')
    expect(offStream.at(10_000, 50)).toBe('')
    expect(progress(100, 'lines').p.enabled).toBe(true)
    expect(() => { noProgress.update(5, true); noProgress.end() }).not.toThrow() // the sink of a transfer without progress
  })

  it('lines: one every 5 s with percent, MB, rate and ETA; a forced last one only after one was written', () => {
    const { at } = progress(10e6, 'lines')
    expect(at(4999, 4e6)).toBe('')
    expect(at(5000, 5e6)).toBe('sending f.bin: 50% (5.00 of 10.00 MB), 1.00 MB/s, ETA 0:05\n')
    expect(at(6000, 10e6, true)).toBe('sending f.bin: 100% (10.00 of 10.00 MB), 1.67 MB/s, ETA 0:00\n')
    const quick = progress(10e6, 'lines')
    expect(quick.at(300, 10e6, true)).toBe('')
  })

  it('bar: redrawn in place every 100 ms, forced at once, and left with a newline by end()', () => {
    const s = sink()
    let now = 0
    const p = new Progress('sending', 'f.bin', 10e6, { mode: 'bar', out: s.out, now: () => now })
    now = 99
    p.update(1e6)
    expect(s.text()).toBe('')
    now = 100
    p.update(2.5e6)
    expect(s.text()).toBe('\rsending f.bin [######..................]  25% 2.50/10.00 MB 25.00 MB/s ETA 0:01\x1b[K')
    p.end()
    p.end()
    expect(s.text().endsWith('\x1b[K\n')).toBe(true)
    const forced = progress(10e6, 'bar')
    expect(forced.at(10, 10e6, true)).toBe('\rsending f.bin [########################] 100% 10.00/10.00 MB 1000 MB/s ETA 0:00\x1b[K')
  })

  it('json: an object a second with the elapsed seconds, the rate in MB/s and the ETA, null when unknown', () => {
    const { at } = progress(10e6, 'json')
    expect(at(999, 1)).toBe('')
    expect(JSON.parse(at(1500, 0))).toEqual({ event: 'progress', name: 'f.bin', bytes: 0, total: 10e6, seconds: 1.5, megabytesPerSecond: 0, etaSeconds: null })
    const line = at(2500, 4e6)
    expect(line.endsWith('}\n')).toBe(true)
    expect(JSON.parse(line)).toEqual({ event: 'progress', name: 'f.bin', bytes: 4e6, total: 10e6, seconds: 2.5, megabytesPerSecond: 1.6, etaSeconds: 3.8 })
  })

  it('measures the rate over the last 3 s once there are samples that old', () => {
    const { at } = progress(100e6, 'json')
    for (let s = 1; s <= 5; s++) at(s * 1000, s * 1e6)
    const stalled = JSON.parse(at(6000, 5e6)) // the samples from 3 s on: (5 MB - 3 MB) / 3 s
    expect([stalled.megabytesPerSecond, stalled.etaSeconds]).toEqual([0.667, 142.5])
  })

  it('counts only the bytes that move now for a resumed transfer, from the start while under half a second', () => {
    const resumed = progress(10e6, 'json', 4e6)
    expect(JSON.parse(resumed.at(1000, 5e6)).megabytesPerSecond).toBe(1)
    const early = progress(10e6, 'lines', 4e6)
    expect(early.at(400, 4.2e6, true)).toBe('')
    const bar = progress(10e6, 'bar', 4e6)
    expect(bar.at(400, 4.2e6, true)).toContain(' 0.50 MB/s ')
    const zeroTime = progress(10e6, 'bar')
    expect(zeroTime.at(0, 1000, true)).toContain(' 1.00 MB/s ') // at least 1 ms
  })

  it('a stream of unknown size: bytes and rate only, in each mode', () => {
    expect(progress(null, 'lines').at(5000, 5e6)).toBe('sending f.bin: 5.00 MB, 1.00 MB/s\n')
    const bar = progress(null, 'bar')
    expect(bar.at(100, 1e6)).toBe('\rsending f.bin: 1.00 MB, 10.00 MB/s\x1b[K')
    expect([bar.end(), bar.end()]).toEqual(['\n', ''])
    expect(progress(null, 'lines').end()).toBe('')
    const json = progress(null, 'json').at(2000, 3e6)
    expect(json.endsWith('}\n')).toBe(true)
    expect(JSON.parse(json)).toEqual({ event: 'progress', name: 'f.bin', bytes: 3e6, total: null, seconds: 2, megabytesPerSecond: 1.5, etaSeconds: null })
  })

  it('an empty file is 100 %; past the total (which a transfer refuses) still 100 % and no time left', () => {
    expect(progress(0, 'lines').at(5000, 0)).toBe('sending f.bin: 100% (0.00 of 0.00 MB), 0.00 MB/s, ETA 0:00\n')
    expect(progress(1e6, 'lines').at(5000, 2e6)).toBe('sending f.bin: 100% (2.00 of 1.00 MB), 0.40 MB/s, ETA 0:00\n')
  })

  it('formats megabytes, clock times and rounding', () => {
    expect([mb(0), mb(1234567), mb(99_994_999), mb(1e8), mb(2.5e9)]).toEqual(['0.00', '1.23', '99.99', '100', '2500'])
    expect([clock(undefined), clock(Infinity), clock(NaN), clock(0), clock(0.2), clock(61), clock(3599.5), clock(3600), clock(36_061)])
      .toEqual(['-:--', '-:--', '-:--', '0:00', '0:01', '1:01', '1:00:00', '1:00:00', '10:01:01'])
    expect([round(1.23456, 3), round(2.5, 0), round(-1.005, 1)]).toEqual([1.235, 3, -1])
  })
})
