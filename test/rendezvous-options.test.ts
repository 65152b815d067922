// rendezvous()'s options on their own (lib/rendezvous/options.ts, resolveOptions): every default, each option at
// both ends of its range and one step outside, and the exact error (class and message) for each bad value. The
// rendezvous tests use the options; this pins what a caller gets for each mistake.
import { describe, expect, it } from 'vitest'

import type * as OptionsModule from '../lib/rendezvous/options'
import { errorOf, requireFromRoot } from './helpers/utp'

const { resolveOptions } = requireFromRoot('./dist/lib/rendezvous/options.js') as typeof OptionsModule
type Options = Parameters<typeof resolveOptions>[0]

const base: Options = { server: 'rendezvous.example:7000', code: '4127-otter-pretzel-canoe' }
const resolve = (extra: Record<string, unknown>): ReturnType<typeof resolveOptions> => resolveOptions({ ...base, ...extra } as Options)
const fails = (extra: Record<string, unknown>): unknown => errorOf(() => resolve(extra))

describe('resolveOptions', () => {
  it('fills in every default', () => {
    expect(resolveOptions(base)).toStrictEqual({
      server: { host: 'rendezvous.example', port: 7000 },
      dht: null,
      code: '4127-otter-pretzel-canoe',
      relay: true,
      timeoutMs: 60_000,
      lanFirst: true,
      signal: undefined,
      keepaliveMs: 15_000,
      punchTimeoutMs: 5000,
      probeIntervalMs: 200,
      lowTtl: 3,
      acceptGraceMs: 6000,
      shareLan: true,
      nat: undefined,
      forceRelay: false,
      birthday: true,
      birthdayPorts: 256,
      birthdayProbes: 2048,
      birthdayRate: 1000,
      followMoves: true,
      quietMs: 2000,
      confirmTimeoutMs: 10_000,
      encrypt: true,
      side: undefined,
      serverTimeoutMs: 5000,
      onStatus: undefined
    })
  })

  it('takes what it is given', () => {
    const onStatus = (): void => {}
    const signal = new AbortController().signal
    const given = {
      relay: false, timeoutMs: 1, lanFirst: false, signal, keepaliveMs: 100, punchTimeoutMs: 1, probeIntervalMs: 10, lowTtl: 0,
      acceptGraceMs: 0, shareLan: false, nat: 'cone', forceRelay: true, birthday: false, birthdayPorts: 4096, birthdayProbes: 64_512,
      birthdayRate: 1, followMoves: false, quietMs: 100, confirmTimeoutMs: 1, encrypt: false, side: 'send', serverTimeoutMs: 1, onStatus
    }
    expect(resolve(given)).toStrictEqual({ ...given, server: { host: 'rendezvous.example', port: 7000 }, dht: null, code: base.code })
    expect(resolve({ lowTtl: 255 }).lowTtl).toBe(255)
    expect(resolve({ birthdayRate: 1e6 }).birthdayRate).toBe(100_000) // capped
    expect(resolve({ code: 'x'.repeat(128) }).code).toHaveLength(128)
  })

  it('over the DHT: its forms, and a longer default punch timeout', () => {
    const dht = (d: unknown): unknown => resolveOptions({ code: 'c', dht: d } as Options).dht
    expect(dht(true)).toStrictEqual({ bootstrap: undefined, node: undefined, relay: undefined })
    expect(dht({ bootstrap: ['router.example:6881'], relay: 'relay.example:7000' })).toStrictEqual({ bootstrap: ['router.example:6881'], node: undefined, relay: 'relay.example:7000' })
    expect(dht({})).toStrictEqual({ bootstrap: undefined, node: undefined, relay: undefined })
    const r = resolveOptions({ code: 'c', dht: true })
    expect([r.server, r.punchTimeoutMs]).toEqual([null, 15_000])
  })

  it('refuses what is not an options object, and anything but exactly one of server and dht', () => {
    for (const o of [null, undefined, 5, 'x']) {
      expect(() => resolveOptions(o as unknown as Options)).toThrow(new TypeError('rendezvous options must be an object'))
    }
    const one = 'give exactly one of options.server (a "host:port" string) and options.dht'
    expect(() => resolveOptions({ code: 'c' } as Options)).toThrow(new TypeError(one))
    expect(() => resolveOptions({ code: 'c', server: 'a:1', dht: true })).toThrow(new TypeError(one))
    expect(fails({ server: 7000 })).toEqual(['TypeError', 'options.server must be a "host:port" string'])
    expect(fails({ server: 'no-port' })).toEqual(['Error', 'expected host:port (or [ipv6]:port), got "no-port"'])
  })

  it('refuses bad DHT options', () => {
    const dht = (d: unknown): unknown => errorOf(() => resolveOptions({ code: 'c', dht: d } as Options))
    const form = ['TypeError', 'options.dht must be true or { bootstrap } or { node }']
    for (const d of [null, false, 'router.example:6881', 5]) expect(dht(d), String(d)).toEqual(form)
    const boot = ['TypeError', 'options.dht.bootstrap must be an array of "host:port" strings']
    expect(dht({ bootstrap: 'router.example:6881' })).toEqual(boot)
    expect(dht({ bootstrap: ['a:1', 6881] })).toEqual(boot)
    expect(dht({ node: {} })).toEqual(['TypeError', 'options.dht.node must be a DhtNode'])
    expect(dht({ relay: 7000 })).toEqual(['TypeError', 'options.dht.relay must be a "host:port" string'])
    expect(dht({ relay: 'relay.example' })).toEqual(['Error', 'expected host:port (or [ipv6]:port), got "relay.example"'])
  })

  it('refuses a bad code, encrypt, side or onStatus, naming it', () => {
    const code = ['TypeError', 'options.code must be a string of 1..128 characters']
    for (const c of ['', 'x'.repeat(129), 4127, undefined]) expect(fails({ code: c }), String(c)).toEqual(code)
    expect(fails({ encrypt: 'yes' })).toEqual(['TypeError', 'options.encrypt must be a boolean'])
    expect(fails({ side: 'Send' })).toEqual(['TypeError', 'options.side must be a lowercase token of 1..16 characters such as "send", got "Send"'])
    expect(fails({ side: 5 })).toEqual(['TypeError', 'options.side must be a lowercase token of 1..16 characters such as "send", got 5'])
    // Not a string, though it reads as one
    expect(fails({ side: { toString: () => 'send' } })).toEqual(['TypeError', 'options.side must be a lowercase token of 1..16 characters such as "send", got {}'])
    expect(fails({ onStatus: 'log' })).toEqual(['TypeError', 'options.onStatus must be a function'])
  })

  it('refuses numbers below their minimum, not finite, or not numbers', () => {
    const below = [
      ['timeoutMs', 1], ['keepaliveMs', 100], ['punchTimeoutMs', 1], ['probeIntervalMs', 10], ['lowTtl', 0], ['acceptGraceMs', 0],
      ['birthdayPorts', 1], ['birthdayProbes', 1], ['birthdayRate', 1], ['quietMs', 100], ['confirmTimeoutMs', 1], ['serverTimeoutMs', 1]
    ] as const
    for (const [name, min] of below) {
      expect(fails({ [name]: min - 0.5 }), name).toEqual(['RangeError', `options.${name} must be a number >= ${min}, got ${min - 0.5}`])
      expect(fails({ [name]: NaN }), name).toEqual(['RangeError', `options.${name} must be a number >= ${min}, got NaN`])
      expect(fails({ [name]: Infinity }), name).toEqual(['RangeError', `options.${name} must be a number >= ${min}, got Infinity`])
      expect(fails({ [name]: String(min + 1) }), name).toEqual(['RangeError', `options.${name} must be a number >= ${min}, got ${min + 1}`])
    }
  })

  it('refuses TTLs, port counts and probe counts past their maximum or not whole', () => {
    expect(fails({ lowTtl: 256 })).toEqual(['RangeError', 'options.lowTtl must be an integer in 0..255, got 256'])
    expect(fails({ lowTtl: 2.5 })).toEqual(['RangeError', 'options.lowTtl must be an integer in 0..255, got 2.5'])
    expect(fails({ birthdayPorts: 4097 })).toEqual(['RangeError', 'options.birthdayPorts must be an integer in 1..4096, got 4097'])
    expect(fails({ birthdayPorts: 1.5 })).toEqual(['RangeError', 'options.birthdayPorts must be an integer in 1..4096, got 1.5'])
    expect(fails({ birthdayProbes: 64_513 })).toEqual(['RangeError', 'options.birthdayProbes must be an integer in 1..64512, got 64513'])
    expect(fails({ birthdayProbes: 2.5 })).toEqual(['RangeError', 'options.birthdayProbes must be an integer in 1..64512, got 2.5'])
  })
})
