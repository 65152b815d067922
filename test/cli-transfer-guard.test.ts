// What ends a CLI transfer from outside its reads and writes, on its own (bin/transfer-guard.ts) on a fake clock:
// the user's cancel, the first failure winning, silence measured at the check's period, a person's think time
// not counted, and no unhandled rejection from a wait that lost the race.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type * as ArgsModule from '../bin/args'
import type * as GuardModule from '../bin/transfer-guard'
import { requireFromRoot } from './helpers/utp'

const { TransferGuard } = requireFromRoot('./dist/bin/transfer-guard.js') as typeof GuardModule
const { CliError } = requireFromRoot('./dist/bin/args.js') as typeof ArgsModule

beforeEach(() => { vi.useFakeTimers({ now: 0 }) })
afterEach(() => { vi.useRealTimers() })

const failure = async (p: Promise<unknown>): Promise<unknown> => await p.then(() => 'no error', (e: Error & { code?: string }) => [e.code, e.message])
/** When (fake ms) the guard's idle check first fired, after running the clock up to `limit` */
const failedAt = async (g: GuardModule.TransferGuard, limit: number): Promise<number | null> => {
  let at: number | null = null
  const idle = g.idle
  g.idle = (s) => {
    at ??= Date.now()
    return idle(s)
  }
  await vi.advanceTimersByTimeAsync(limit - Date.now())
  return at
}

describe('TransferGuard', () => {
  it('run passes values and failures through until the transfer must end; then the first reason wins', async () => {
    const g = new TransferGuard({})
    expect(await g.run(Promise.resolve(5))).toBe(5)
    expect(await failure(g.run(Promise.reject(new CliError('ERR_X', 'x'))))).toEqual(['ERR_X', 'x'])
    expect(g.error).toBeNull()
    const waiting = failure(g.run(new Promise(() => {})))
    g.fail(new CliError('ERR_FIRST', 'first'))
    g.fail(new CliError('ERR_SECOND', 'second'))
    expect(await waiting).toEqual(['ERR_FIRST', 'first'])
    expect(await failure(g.run(Promise.resolve(1)))).toEqual(['ERR_FIRST', 'first'])
    expect((g.error as ArgsModule.CliError).code).toBe('ERR_FIRST')
    g.dispose()
  })

  it('a wait that lost the race may fail later without an unhandled rejection', async () => {
    const g = new TransferGuard({})
    let rejectLate: (e: Error) => void = () => {}
    const late = new Promise((_resolve, reject) => { rejectLate = reject })
    const waiting = failure(g.run(late))
    g.fail(new CliError('ERR_CANCELLED', 'cancelled'))
    expect(await waiting).toEqual(['ERR_CANCELLED', 'cancelled'])
    rejectLate(new Error('write after close'))
    // Also a wait handed over once the guard has failed already
    void failure(g.run(Promise.reject(new Error('another late failure'))))
    await vi.advanceTimersByTimeAsync(10)
    g.dispose()
  })

  it('the user\'s cancel fails it with the message set at that time; a signal aborted before counts too; dispose stops listening', async () => {
    const ac = new AbortController()
    const g = new TransferGuard({ signal: ac.signal })
    expect(await failure(g.run(Promise.resolve('still going')))).toBe('no error')
    g.cancelled = () => new CliError('ERR_CANCELLED', 'cancelled at 1.00 of 2.00 MB')
    const waiting = failure(g.run(new Promise(() => {})))
    ac.abort()
    expect(await waiting).toEqual(['ERR_CANCELLED', 'cancelled at 1.00 of 2.00 MB'])
    const before = new AbortController()
    before.abort()
    const g2 = new TransferGuard({ signal: before.signal })
    expect(await failure(g2.run(Promise.resolve(1)))).toEqual(['ERR_CANCELLED', 'cancelled'])
    const later = new AbortController()
    const g3 = new TransferGuard({ signal: later.signal })
    g3.dispose()
    later.abort()
    expect(g3.error).toBeNull()
    for (const x of [g, g2]) x.dispose()
  })

  it('silence: fails at the first check a full idleMs after the last touch, with the seconds in the message', async () => {
    const g = new TransferGuard({ idleMs: 1000 }) // checked every 250 ms
    await vi.advanceTimersByTimeAsync(100)
    g.touch()
    expect(await failedAt(g, 5000)).toBe(1250)
    expect([(g.error as ArgsModule.CliError).code, g.error?.message]).toEqual(['ERR_PEER_IDLE', 'the other side stopped responding (nothing for 1 s)'])
    g.dispose()
    expect(vi.getTimerCount()).toBe(0)
  })

  it('the check runs every idleMs / 4, at least every 10 ms and at most every second, and never holds the process', async () => {
    for (const [idleMs, touchAt, expected, seconds] of [[20, 5, 30, 0], [100_000, 500, 101_000, 100], [1500, 0, 1500, 1.5], [1236, 0, 1236, 1.2]] as const) {
      vi.setSystemTime(0)
      const g = new TransferGuard({ idleMs })
      await vi.advanceTimersByTimeAsync(touchAt)
      g.touch()
      g.idle = (s) => new CliError('ERR_PEER_IDLE', `quiet for ${s} s`)
      expect([idleMs, await failedAt(g, 200_000)]).toEqual([idleMs, expected])
      expect(g.error?.message).toBe(`quiet for ${seconds} s`)
      expect((g as unknown as { _timer: NodeJS.Timeout })._timer.hasRef()).toBe(false)
      g.dispose()
    }
    // No idleMs: no clock at all
    const g = new TransferGuard({})
    expect(vi.getTimerCount()).toBe(0)
    await vi.advanceTimersByTimeAsync(1e6)
    expect(g.error).toBeNull()
  })

  it('a person\'s think time is not silence; the clock starts over when they answer, however they answer', async () => {
    const g = new TransferGuard({ idleMs: 1000 })
    let answer: (v: string) => void = () => {}
    const deciding = g.whilePaused(new Promise<string>(resolve => { answer = resolve }))
    await vi.advanceTimersByTimeAsync(10_000)
    expect(g.error).toBeNull()
    answer('yes')
    expect(await deciding).toBe('yes')
    const answeredAt = Date.now()
    expect(await failedAt(g, 20_000)).toBe(answeredAt + 1000)
    g.dispose()
    const g2 = new TransferGuard({ idleMs: 1000 })
    expect(await failure(g2.whilePaused(Promise.reject(new CliError('ERR_DECLINED', 'declined'))))).toEqual(['ERR_DECLINED', 'declined'])
    const t = Date.now()
    expect(await failedAt(g2, t + 5000)).toBe(t + 1000)
    g2.dispose()
  })
})
