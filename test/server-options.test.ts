// The deployable rendezvous server's options on their own (lib/server/options.ts, resolveServerOptions): every
// default, the HTTP address that follows the UDP one, each number at its minimum and one step below, ports at
// 65535 and past it, and the exact error for each bad value. The server and CLI tests run with options; this
// pins what an operator gets for each mistake without starting a server.
import { describe, expect, it } from 'vitest'

import type * as OptionsModule from '../lib/server/options'
import { errorOf, requireFromRoot } from './helpers/utp'

const { resolveServerOptions } = requireFromRoot('./dist/lib/server/options.js') as typeof OptionsModule
type Options = Parameters<typeof resolveServerOptions>[0]

const fails = (o: Record<string, unknown>): unknown => errorOf(() => resolveServerOptions(o as Options))

describe('resolveServerOptions', () => {
  it('fills in every default', () => {
    expect(resolveServerOptions({})).toStrictEqual({
      port: 7000,
      host: '0.0.0.0',
      http: true,
      httpHost: '127.0.0.1',
      httpTimeoutMs: 5000,
      relay: true,
      relayRate: 1_000_000,
      relayIdleMs: 60_000,
      maxRelays: 256,
      relaysPerPrefix: 4,
      relayBudget: { bytes: 36e9, windowMs: 3_600_000 },
      registrationTtlMs: 60_000,
      maxRegistrations: 10_000,
      registrationsPerPrefix: 64,
      registrationRate: { perPrefix: { perSecond: 10, burst: 40 }, global: { perSecond: 50, burst: 100 } },
      burnMs: 600_000,
      maxMessageSize: 1200,
      rateLimit: { perSecond: 20, burst: 40 },
      unverifiedRate: { perSecond: 5000, burst: 10_000 },
      startDelayMs: 300,
      mappingCheck: true,
      checkPort: 0,
      mappingWaitMs: 1000,
      rewriteCandidates: undefined
    })
  })

  it('serves HTTP on the loopback of the UDP address\'s family unless told otherwise', () => {
    expect(resolveServerOptions({ host: '2001:db8::1' }).httpHost).toBe('::1')
    expect(resolveServerOptions({ host: '::' }).httpHost).toBe('127.0.0.1') // the wildcard takes IPv4 too
    expect(resolveServerOptions({ host: '192.0.2.1' }).httpHost).toBe('127.0.0.1')
    expect(resolveServerOptions({ host: '::', httpHost: '::' }).httpHost).toBe('::')
  })

  it('takes values at their minimum, ports at 65535, and a rate given in part', () => {
    const mins = {
      port: 0, httpTimeoutMs: 100, relayRate: 1, relayIdleMs: 1, maxRelays: 0, relaysPerPrefix: 0, registrationTtlMs: 1,
      maxRegistrations: 0, registrationsPerPrefix: 0, burnMs: 0, maxMessageSize: 64, startDelayMs: 0, checkPort: 0, mappingWaitMs: 0
    }
    expect(resolveServerOptions(mins)).toMatchObject(mins)
    expect(resolveServerOptions({ port: 65535, checkPort: 65535 })).toMatchObject({ port: 65535, checkPort: 65535 })
    expect(resolveServerOptions({ relayBudget: { bytes: 0, windowMs: 1 } }).relayBudget).toEqual({ bytes: 0, windowMs: 1 })
    expect(resolveServerOptions({ rateLimit: { perSecond: 0 } as never }).rateLimit).toEqual({ perSecond: 0, burst: 40 })
    expect(resolveServerOptions({ unverifiedRate: { burst: 1 } as never }).unverifiedRate).toEqual({ perSecond: 5000, burst: 1 })
  })

  it('refuses a number below its minimum, not finite, or not a number, naming it', () => {
    const mins: Array<[string, number]> = [
      ['port', 0], ['httpTimeoutMs', 100], ['relayRate', 1], ['relayIdleMs', 1], ['maxRelays', 0],
      ['relaysPerPrefix', 0], ['registrationTtlMs', 1], ['maxRegistrations', 0], ['registrationsPerPrefix', 0],
      ['burnMs', 0], ['maxMessageSize', 64], ['startDelayMs', 0], ['checkPort', 0], ['mappingWaitMs', 0]
    ]
    for (const [name, min] of mins) {
      for (const v of [min - 0.5, NaN, -Infinity, String(min + 1)]) {
        expect(fails({ [name]: v }), `${name} ${String(v)}`).toEqual(['RangeError', `${name} must be a number >= ${min}, got ${String(v)}`])
      }
    }
    // A number in a string (as from an environment variable) is not taken for the number
    expect(fails({ relayRate: '1000' })).toEqual(['RangeError', 'relayRate must be a number >= 1, got 1000'])
    expect(fails({ maxRelays: null })).toEqual(['RangeError', 'maxRelays must be a number >= 0, got null'])
    expect(fails({ relayBudget: { bytes: -1 } })).toEqual(['RangeError', 'relayBudget.bytes must be a number >= 0, got -1'])
    expect(fails({ relayBudget: { windowMs: 0 } })).toEqual(['RangeError', 'relayBudget.windowMs must be a number >= 1, got 0'])
    expect(fails({ rateLimit: { perSecond: -1, burst: 1 } })).toEqual(['RangeError', 'rateLimit.perSecond must be a number >= 0, got -1'])
    expect(fails({ rateLimit: { perSecond: 1, burst: 0 } })).toEqual(['RangeError', 'rateLimit.burst must be a number >= 1, got 0'])
    expect(fails({ registrationRate: { perPrefix: { perSecond: 1, burst: 0.5 } } })).toEqual(['RangeError', 'registrationRate.perPrefix.burst must be a number >= 1, got 0.5'])
    expect(fails({ registrationRate: { global: { perSecond: NaN, burst: 1 } } })).toEqual(['RangeError', 'registrationRate.global.perSecond must be a number >= 0, got NaN'])
  })

  it('refuses a rate that is not an object', () => {
    expect(fails({ rateLimit: null })).toEqual(['TypeError', 'rateLimit must be { perSecond, burst }, got null'])
    expect(fails({ unverifiedRate: 20 })).toEqual(['TypeError', 'unverifiedRate must be { perSecond, burst }, got 20'])
    expect(fails({ registrationRate: { perPrefix: '10/s' } })).toEqual(['TypeError', 'registrationRate.perPrefix must be { perSecond, burst }, got 10/s'])
  })

  it('refuses ports past 65535 or not whole, and hosts that are not IP addresses', () => {
    expect(fails({ port: 65536 })).toEqual(['RangeError', 'port must be an integer in 0..65535, got 65536'])
    expect(fails({ port: 7000.5 })).toEqual(['RangeError', 'port must be an integer in 0..65535, got 7000.5'])
    expect(fails({ checkPort: 65536 })).toEqual(['RangeError', 'checkPort must be an integer in 0..65535, got 65536'])
    expect(fails({ checkPort: 1.5 })).toEqual(['RangeError', 'checkPort must be an integer in 0..65535, got 1.5'])
    expect(fails({ host: 'localhost' })).toEqual(['TypeError', 'host must be an IP address, got "localhost"'])
    expect(fails({ httpHost: 'localhost' })).toEqual(['TypeError', 'httpHost must be an IP address, got "localhost"'])
    expect(fails({ host: '' })).toEqual(['TypeError', 'host must be an IP address, got ""'])
  })
})
