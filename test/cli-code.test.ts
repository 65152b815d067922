// The codes `send` makes: "<nameplate>-<word>-<word>-<word>", parsed back into what the server may see and the secret
import { describe, expect, it } from 'vitest'

import type * as CodeModule from '../lib/rendezvous/code'
import { requireFromRoot } from './helpers/utp'

const { CODE_WORDS, generateCode, parseCode, unknownCodeWords } = requireFromRoot('./dist/lib/rendezvous/code.js') as typeof CodeModule

/** Edit distance, for "no word within one letter of another" */
function distance (a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)))
    row = next
  }
  return row[b.length]
}

describe('pairing codes', () => {
  it('the word list: 256 distinct short lowercase words, none a prefix of or one letter from another', () => {
    expect(CODE_WORDS).toHaveLength(256)
    expect(new Set(CODE_WORDS).size).toBe(256)
    for (const w of CODE_WORDS) expect(w).toMatch(/^[a-z]{3,8}$/)
    const close: string[] = []
    for (let i = 0; i < CODE_WORDS.length; i++) {
      for (let j = i + 1; j < CODE_WORDS.length; j++) {
        const [a, b] = [CODE_WORDS[i], CODE_WORDS[j]]
        if (a.startsWith(b) || b.startsWith(a) || distance(a, b) < 2) close.push(`${a}/${b}`)
      }
    }
    expect(close).toEqual([])
    expect(Object.isFrozen(CODE_WORDS)).toBe(true)
  })

  it('generateCode: a nameplate 1..9999 and three listed words, different every time', () => {
    const seen = new Set<string>()
    const nameplates = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      const code = generateCode()
      const m = /^([1-9]\d{0,3})-([a-z]+)-([a-z]+)-([a-z]+)$/.exec(code)
      expect(m, code).not.toBeNull()
      const [, nameplate, ...words] = m as RegExpExecArray
      expect(words.every(w => CODE_WORDS.includes(w)), code).toBe(true)
      expect(parseCode(code)).toEqual({ code, nameplate, secret: words.join('-'), generated: true })
      seen.add(code)
      nameplates.add(nameplate)
    }
    // 2000 draws from 9999 × 2^24: a repeat would mean a broken generator
    expect(seen.size).toBe(2000)
    expect(nameplates.size).toBeGreaterThan(1500)
  })

  it('generateCode: the nameplate\'s range reaches 9999 itself (crypto.randomInt\'s bound is exclusive)', () => {
    // The compiled module calls crypto.randomInt through the module object, so a stand-in sees each range
    const crypto = requireFromRoot('crypto') as { randomInt: (a: number, b?: number) => number }
    const real = crypto.randomInt
    const ranges: Array<[number, number | undefined]> = []
    crypto.randomInt = (a: number, b?: number) => {
      ranges.push([a, b])
      return b === undefined ? a - 1 : b - 1 // the highest value each draw can give
    }
    try {
      expect(generateCode()).toBe(`9999-${Array(3).fill(CODE_WORDS[CODE_WORDS.length - 1]).join('-')}`)
    } finally {
      crypto.randomInt = real
    }
    expect(ranges).toEqual([[CODE_WORDS.length, undefined], [CODE_WORDS.length, undefined], [CODE_WORDS.length, undefined], [1, 10_000]])
  })

  it('parseCode: generated codes however typed, nameplate codes and free text as they are', () => {
    expect(parseCode('4127-otter-pretzel-canoe')).toEqual({ code: '4127-otter-pretzel-canoe', nameplate: '4127', secret: 'otter-pretzel-canoe', generated: true })
    expect(parseCode(' 4127 Otter  pretzel-CANOE ')).toEqual({ code: '4127-otter-pretzel-canoe', nameplate: '4127', secret: 'otter-pretzel-canoe', generated: true })
    // A nameplate code that is not a generated one: the server sees the nameplate, nothing is rewritten
    expect(parseCode('4127-Otter-pretzel-canoe-x')).toEqual({ code: '4127-Otter-pretzel-canoe-x', nameplate: '4127', secret: 'Otter-pretzel-canoe-x', generated: false })
    expect(parseCode('123456-my secret')).toEqual({ code: '123456-my secret', nameplate: '123456', secret: 'my secret', generated: false })
    expect(parseCode('0412-otter-pretzel-canoe')).toMatchObject({ nameplate: '0412', generated: false })
    // Free text (the old style): no nameplate, the whole code is the secret
    expect(parseCode('purple-otter')).toEqual({ code: 'purple-otter', secret: 'purple-otter', generated: false })
    expect(parseCode('1234567-x')).toEqual({ code: '1234567-x', secret: '1234567-x', generated: false })
    // Almost generated: a nameplate too long, a word not in the list, a word missing
    expect(parseCode('12345-otter-pretzel-canoe')).toEqual({ code: '12345-otter-pretzel-canoe', nameplate: '12345', secret: 'otter-pretzel-canoe', generated: false })
    expect(parseCode('4127-otter-pretzle-canoe')).toMatchObject({ secret: 'otter-pretzle-canoe', generated: false })
    expect(parseCode('4127 otter pretzel')).toEqual({ code: '4127 otter pretzel', secret: '4127 otter pretzel', generated: false })
    expect(() => parseCode('')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: 'the code is empty' }) as Error)
    expect(() => parseCode(42 as unknown as string)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: 'the code must be a string' }) as Error)
  })

  it('unknownCodeWords: the likely typos in a code shaped like a generated one', () => {
    expect(unknownCodeWords('4127-otter-pretzle-canoe')).toEqual(['pretzle'])
    expect(unknownCodeWords('4127-otter-pretzel-canoe')).toEqual([])
    expect(unknownCodeWords('purple-otter')).toEqual([])
    expect(unknownCodeWords('code-abcd-ef-gh')).toEqual([])
    // Only that shape: a number, then exactly three words of letters
    for (const notShaped of ['4127-otter-pretzle', '4127-otter-pretzle-canoe-x', 'x12-otter-pretzle-canoe', '12x-otter-pretzle-canoe',
      '12-otter-pretzle-3anoe', '12-otter-pretzle-cano3', '12-0tter-pretzle-canoe']) {
      expect(unknownCodeWords(notShaped), notShaped).toEqual([])
    }
  })
})
