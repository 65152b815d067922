// The rendezvous server's quota building blocks on their own, with time as a parameter: which prefix an
// address is charged to, buckets forgotten once full, live counts per prefix, and the relays' byte budget
// window. The server tests exercise them through floods; these pin the edges (a window turning at exactly its
// length, a count returning to zero) that a flood cannot see.
import { describe, expect, it } from 'vitest'

import { requireFromRoot } from './helpers/utp'

const limits = requireFromRoot('./dist/lib/server/limits.js') as typeof import('../lib/server/limits')
const { prefixOf } = limits

describe('prefixOf', () => {
  it('charges an address to its /24 or /64', () => {
    expect(prefixOf('198.51.100.7')).toBe('198.51.100.0/24')
    expect(prefixOf('::ffff:198.51.100.9')).toBe('198.51.100.0/24')
    expect(prefixOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(prefixOf('2001:db8:0001:2::9')).toBe('2001:db8:1:2::/64')
  })

  it('expands IPv6 before cutting /64, whichever side of "::" the groups are on', () => {
    expect(prefixOf('1:2::4:5:6:7:8')).toBe('1:2:0:4::/64')
    expect(prefixOf('1:2::4:5:6')).toBe('1:2:0:0::/64')
    expect(prefixOf('::2:3:4:5:6:7:8')).toBe('0:2:3:4::/64')
    expect(prefixOf('::')).toBe('0:0:0:0::/64')
    expect(prefixOf('2001:DB8:00a0:0::1')).toBe('2001:db8:a0:0::/64')
    expect(prefixOf('fe80::1:2:3:4%eth0')).toBe('fe80:0:0:0::/64')
    expect(prefixOf('::1')).toBe('0:0:0:0::/64')
    expect(prefixOf('2001:db8::')).toBe('2001:db8:0:0::/64')
    // Groups after "::" counted one by one (not as characters, not as one), five of them reaching into the /64
    expect(prefixOf('1::2:3:4:5:6')).toBe('1:0:0:2::/64')
    expect(prefixOf('1::abcd:1')).toBe('1:0:0:0::/64')
  })
})

describe('BucketMap', () => {
  it('takes per key and forgets a key only once its bucket is full again', () => {
    const map = new limits.BucketMap({ perSecond: 10, burst: 2 })
    expect(map.take('a', 2, 0)).toBe(true)
    expect(map.take('a', 1, 0)).toBe(false)
    expect(map.take('b', 1, 0)).toBe(true) // another key has its own bucket
    expect(map.size).toBe(2)
    map.sweep(100) // 'a' has 1 of 2 tokens back, 'b' is full again
    expect(map.size).toBe(1)
    expect(map.take('a', 2, 100)).toBe(false) // 'a' was kept with what it had spent
    map.sweep(300)
    expect(map.size).toBe(0)
  })
})

describe('PrefixCounter', () => {
  it('counts up and down to its cap and forgets a prefix at zero', () => {
    const counter = new limits.PrefixCounter(2)
    counter.add('p')
    expect(counter.full('p')).toBe(false)
    counter.add('p')
    expect(counter.full('p')).toBe(true)
    expect(counter.full('q')).toBe(false)
    counter.remove('p')
    expect(counter.full('p')).toBe(false)
    counter.add('p')
    expect(counter.full('p')).toBe(true)
    counter.remove('p')
    counter.remove('p')
    expect(counter.size).toBe(0) // nothing remembered for a prefix with nothing live
    counter.remove('p') // a stray remove does not leave a negative count behind
    expect(counter.size).toBe(0)
    counter.add('p')
    counter.add('p')
    expect(counter.full('p')).toBe(true)
    expect(counter.size).toBe(1)
  })
})

describe('ByteBudget', () => {
  it('gives out its bytes per window, the window starting when the budget is made', () => {
    const budget = new limits.ByteBudget(1000, 1000, 0)
    expect(budget.take(600, 600)).toBe(true)
    expect(budget.take(401, 700)).toBe(false) // all or nothing
    expect(budget.take(400, 700)).toBe(true)
    expect(budget.spent(999)).toBe(true)
    expect(budget.take(1, 999)).toBe(false)
    // The window turns at exactly its length after it began (at construction, not at the first take)
    expect(budget.spent(1000)).toBe(false)
    expect(budget.take(1000, 1000)).toBe(true)
    expect(budget.take(1, 1999)).toBe(false)
    expect(budget.take(1, 2000)).toBe(true)
  })
})
