// Bencoding (BEP 3) as lib/dht/bencode.ts writes and reads it: the KRPC pings the Node sends to DHT routers and
// the answers it reads from strangers. Exact bytes for what we write; for what we read, every way a value can be
// malformed, truncated, too long, too deep or followed by more bytes is null, at the exact bound.
import { describe, expect, it } from 'vitest'

import type * as BencodeModule from '../lib/dht/bencode'
import { requireFromRoot } from './helpers/utp'

const { bencode, bdecode, isDict } = requireFromRoot('./dist/lib/dht/bencode.js') as typeof BencodeModule

const b = (s: string): Buffer => Buffer.from(s, 'latin1')
const decodes = (s: string): unknown => bdecode(b(s))

describe('bencode', () => {
  it('writes integers, byte strings, lists and dictionaries with keys in raw byte order', () => {
    expect(bencode(0).toString('latin1')).toBe('i0e')
    expect(bencode(-42).toString('latin1')).toBe('i-42e')
    expect(bencode(b('spam')).toString('latin1')).toBe('4:spam')
    expect(bencode(Buffer.alloc(0)).toString('latin1')).toBe('0:')
    expect(bencode([1, b('a'), []]).toString('latin1')).toBe('li1e1:alee')
    expect(bencode({ t: b('aa'), y: b('q'), q: b('ping'), a: { id: b('x') }, B: 1 }).toString('latin1'))
      .toBe('d1:Bi1e1:ad2:id1:xe1:q4:ping1:t2:aa1:y1:qe')
    // Bytes, not UTF-16 units: "é" is two bytes and sorts after "z"
    expect(bencode({ é: 1, z: 2 })).toEqual(Buffer.concat([b('d1:zi2e2:'), Buffer.from('é'), b('i1ee')]))
  })

  it('refuses a number that is not a safe integer', () => {
    for (const x of [1.5, 2 ** 53, NaN, Infinity]) expect(() => bencode(x)).toThrow(new RangeError(`bencode: not an integer: ${x}`))
  })
})

describe('bdecode', () => {
  it('reads each kind back, exactly', () => {
    expect(decodes('i0e')).toBe(0)
    expect(decodes('i-7e')).toBe(-7)
    expect(decodes('i123456789012345e')).toBe(123456789012345)
    expect(decodes('0:')).toEqual(Buffer.alloc(0))
    expect(decodes('9:abcdefghi')).toEqual(b('abcdefghi'))
    expect(decodes('le')).toEqual([])
    expect(decodes('li1e2:abe')).toEqual([1, b('ab')])
    expect(decodes('li1ei-2ee')).toEqual([1, -2]) // an integer's end is searched after its own "i"
    const d = decodes('d1:ai1e1:bl1:xee') as Record<string, unknown>
    expect({ ...d }).toEqual({ a: 1, b: [b('x')] })
    const roundTrip = { t: b('aa'), y: b('r'), r: { id: Buffer.alloc(20, 1), ip: Buffer.from([1, 2, 3, 4, 0, 80]) } }
    expect({ ...(bdecode(bencode(roundTrip)) as object) }).toEqual(roundTrip)
  })

  it('a dictionary has no prototype: "__proto__" is just a key', () => {
    const d = decodes('d9:__proto__i1e8:toStringi2ee') as Record<string, unknown>
    expect(Object.getPrototypeOf(d)).toBeNull()
    expect(Object.keys(d)).toEqual(['__proto__', 'toString'])
    expect(d.toString).toBe(2)
  })

  it('is null for anything malformed, truncated or followed by more bytes', () => {
    const bad = [
      '', 'x', 'e', 'i', 'ie', 'i1', 'i-e', 'i-0e', 'i03e', 'i1.5e', 'i 1e', 'i1ex', // integers
      '1', '1:', '2:a', '-1:a', '01:a', '01:', '-0:', '1:ab', '/:', ':a', // byte strings
      'l', 'li1e', 'lxe', 'lee', // lists
      'd', 'd1:a', 'd1:ai1e', 'di1ei2ee', 'dle1:ae', 'd1:ae', 'dex', // dictionaries
      'x1:ai1ee', 'D1:ai1ee', 'L1:ae', // only d and l open containers
      'l-3:e', 'l2:ab-5:e' // no negative lengths
    ]
    for (const s of bad) expect(decodes(s), JSON.stringify(s)).toBeNull()
  })

  it('numbers of up to 15 digits, integers and lengths alike', () => {
    expect(decodes('i999999999999999e')).toBe(999_999_999_999_999)
    expect(decodes('i-99999999999999e')).toBe(-99_999_999_999_999)
    expect(decodes('i1000000000000000e')).toBeNull()
    expect(decodes('i-999999999999999e')).toBeNull() // 16 characters with the sign
    expect(decodes('1000000000000000:x')).toBeNull()
  })

  it('a length may not run past the end, and may end exactly at it', () => {
    expect(decodes('3:abc')).toEqual(b('abc'))
    expect(decodes('4:abc')).toBeNull()
    expect(decodes('l3:abce')).toEqual([b('abc')])
    expect(decodes('l4:abce')).toBeNull()
  })

  it('nests 17 levels deep and no deeper (a stranger cannot make it recurse without bound)', () => {
    const lists = (n: number): string => 'l'.repeat(n) + 'e'.repeat(n)
    expect(decodes(lists(17))).not.toBeNull()
    expect(decodes(lists(18))).toBeNull()
    const dicts = (n: number): string => 'd1:k'.repeat(n - 1) + 'de' + 'e'.repeat(n - 1)
    expect(decodes(dicts(17))).not.toBeNull()
    expect(decodes(dicts(18))).toBeNull()
    expect(decodes('l'.repeat(100_000) + 'e'.repeat(100_000))).toBeNull()
    // Keys count as a level too: dictionaries nested as keys cannot recurse past the bound either
    expect(decodes('d'.repeat(100_000))).toBeNull()
  })

  it('isDict: only a dictionary', () => {
    expect(isDict(decodes('de') as never)).toBe(true)
    expect(isDict(decodes('d1:ai1ee') as never)).toBe(true)
    for (const v of [decodes('le'), decodes('1:a'), decodes('i1e'), null, undefined]) expect(isDict(v as never)).toBe(false)
  })
})
