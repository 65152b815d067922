// Option and argument validation on its own (lib/options.ts): every option's range at both ends, the exact
// messages a user reads, and what each option resolves to. The Node tests see these through the constructor;
// these pin the edges and the wording, which a constructor test only checks by code.
import * as dgram from 'dgram'
import * as dns from 'dns'
import * as net from 'net'
import { describe, expect, it } from 'vitest'

import { requireFromRoot } from './helpers/utp'

const options = requireFromRoot('./dist/lib/options.js') as typeof import('../lib/options')
const { defaults, familyOf, normalizeAddress, validateCongestion, validateHost, validateInteger, validateOptions, validatePort } = options

/** What fn throws: its class, code and message */
function thrown (fn: () => unknown): { type: string, code: string | undefined, message: string } | undefined {
  try {
    fn()
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    return { type: err.constructor.name, code: err.code, message: err.message }
  }
  return undefined
}

// Node's own dgram is the reference: socket.send() checks its port synchronously
function dgramPortError (port: unknown): ReturnType<typeof thrown> {
  const socket = dgram.createSocket('udp4')
  try {
    return thrown(() => socket.send('x', port as number, '127.0.0.1'))
  } finally {
    socket.close()
  }
}

const integerOptions = {
  bufferSize: { min: 2, max: 65536, zeroOk: false },
  mtu: { min: 64, max: 65000, zeroOk: false },
  loopbackMtu: { min: 64, max: 65000, zeroOk: true },
  timeout: { min: 100, max: 3600000, zeroOk: false },
  resend: { min: 1, max: 60000, zeroOk: false },
  keepAlive: { min: 100, max: 3600000, zeroOk: true },
  maxConnections: { min: 1, max: 1 << 20, zeroOk: false }
} as const

describe('validateOptions', () => {
  it('no options (undefined or null) are the defaults, as a copy', () => {
    const a = validateOptions(undefined)
    expect(a).toEqual(defaults)
    expect(validateOptions(null)).toEqual(defaults)
    expect(validateOptions({})).toEqual(defaults)
    a.mtu = 5
    expect(defaults.mtu).toBe(1000)
    expect(Object.isFrozen(defaults)).toBe(true)
  })

  it('options that are not an object are refused by type', () => {
    expect(thrown(() => validateOptions('fast'))).toEqual({
      type: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: 'The "options" argument must be of type object. Received type string (\'fast\')'
    })
    expect(thrown(() => validateOptions(7))?.message).toBe('The "options" argument must be of type object. Received type number (7)')
  })

  for (const [key, r] of Object.entries(integerOptions)) {
    it(`${key}: accepted at ${r.min} and ${r.max}, refused one step outside, as a fraction or another type`, () => {
      expect(validateOptions({ [key]: r.min })[key as keyof typeof integerOptions]).toBe(r.min)
      expect(validateOptions({ [key]: r.max })[key as keyof typeof integerOptions]).toBe(r.max)
      const zero = r.zeroOk ? ' (or 0 to turn it off)' : ''
      for (const bad of [r.min - 1, r.max + 1, r.min + 0.5]) {
        if (bad === 0 && r.zeroOk) continue
        expect(thrown(() => validateOptions({ [key]: bad }))).toEqual({
          type: 'RangeError',
          code: 'ERR_INVALID_ARG_VALUE',
          message: `The argument 'options.${key}' must be an integer >= ${r.min} and <= ${r.max}${zero}. Received ${bad}`
        })
      }
      expect(thrown(() => validateOptions({ [key]: '9' }))).toEqual({
        type: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: `The "options.${key}" argument must be of type number. Received type string ('9')`
      })
      // 0 turns off only the options that say so
      if (r.zeroOk) expect(validateOptions({ [key]: 0 })[key as keyof typeof integerOptions]).toBe(0)
      else expect(thrown(() => validateOptions({ [key]: 0 }))?.code).toBe('ERR_INVALID_ARG_VALUE')
    })
  }

  it('an explicit mtu applies to loopback too and turns probing off, unless those are given', () => {
    expect(validateOptions({ mtu: 1200 })).toMatchObject({ mtu: 1200, loopbackMtu: 1200, probeMtu: false })
    expect(validateOptions({ mtu: 1200, loopbackMtu: 9000, probeMtu: true })).toMatchObject({ mtu: 1200, loopbackMtu: 9000, probeMtu: true })
    expect(validateOptions({ loopbackMtu: 9000 })).toMatchObject({ mtu: 1000, loopbackMtu: 9000, probeMtu: true })
    expect(validateOptions({ probeMtu: false })).toMatchObject({ mtu: 1000, loopbackMtu: 16000, probeMtu: false })
  })

  for (const key of ['probeMtu', 'allowHalfOpen', 'ioThread', 'coalesceWrites'] as const) {
    it(`${key} is a boolean, taken as given`, () => {
      expect(validateOptions({ [key]: true })[key]).toBe(true)
      expect(validateOptions({ [key]: false })[key]).toBe(false)
      expect(thrown(() => validateOptions({ [key]: 1 }))).toEqual({
        type: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: `The "options.${key}" argument must be of type boolean. Received type number (1)`
      })
    })
  }

  it('congestion is passed through validateCongestion', () => {
    expect(validateOptions({ congestion: 'cubic' }).congestion).toBe('cubic')
    expect(thrown(() => validateOptions({ congestion: 'bbr' }))?.message).toBe("The argument 'options.congestion' must be 'ledbat' or 'cubic'. Received 'bbr'")
  })
})

describe('messages describe the value received as Node does', () => {
  it('null, undefined, strings long and short, quotes, objects, functions, symbols, bigints', () => {
    class Nameless {}
    const nameless = new Nameless()
    Object.defineProperty(nameless, 'constructor', { value: undefined })
    // Objects without a constructor are shown one level deep; an anonymous class's instance is one of ''
    const nested = Object.assign(Object.create(null), { a: { b: { c: 1 } } })
    const values = [null, undefined, 'a'.repeat(28), 'b'.repeat(29), "it's", new Map(), [1], Object.create(null), nameless, nested, new (class {})(),
      () => 1, function named () {}, Symbol('s'), 10n, true, 1.5, NaN]
    for (const value of values) {
      const theirs = dgramPortError(value)
      expect(theirs?.code).toBe('ERR_SOCKET_BAD_PORT')
      expect(thrown(() => validatePort(value, 'Port', false))).toEqual(theirs)
      // The type errors use the same description
      const received = theirs?.message.slice(theirs.message.indexOf('Received '), -1)
      if (typeof value !== 'number') expect(thrown(() => validateInteger('n', value, 0, 1))?.message).toBe(`The "n" argument must be of type number. ${received}`)
    }
  })

  it('a value refused for its value is described as Node\'s own ERR_INVALID_ARG_VALUE describes it', () => {
    const reason = "must be one of: 'verbatim', 'ipv4first', 'ipv6first'"
    for (const value of ['x', "it's", 'y'.repeat(200), 7]) {
      let theirs: Error | undefined
      try {
        dns.setDefaultResultOrder(value as 'verbatim')
      } catch (e) {
        theirs = e as Error
      }
      expect(theirs?.message).toContain(reason)
      expect(options.invalidValue('dnsOrder', value, reason).message).toBe(theirs?.message)
    }
  })

  it('validateInteger: inclusive bounds, integers only', () => {
    expect(validateInteger('n', 3, 3, 5)).toBe(3)
    expect(validateInteger('n', 5, 3, 5)).toBe(5)
    expect(thrown(() => validateInteger('n', 2, 3, 5))).toEqual({
      type: 'RangeError', code: 'ERR_INVALID_ARG_VALUE', message: "The argument 'n' must be an integer >= 3 and <= 5. Received 2"
    })
    expect(thrown(() => validateInteger('n', 6, 3, 5))?.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(thrown(() => validateInteger('n', 4.5, 3, 5))?.code).toBe('ERR_INVALID_ARG_VALUE')
  })
})

describe('validatePort', () => {
  it('a destination port: dgram\'s error, message and all', () => {
    for (const port of [-1, 0, 65536, 1.5, NaN, 'abc', '', ' ', null, {}]) {
      expect(thrown(() => validatePort(port, 'Port', false))).toEqual(dgramPortError(port))
    }
  })

  it('a port to bind (0 allowed): net\'s error, message and all', () => {
    for (const port of [-1, 65536, 1.5, NaN, 'abc', '', ' ', '8 0']) {
      const server = net.createServer()
      const theirs = thrown(() => server.listen({ port }))
      expect(theirs?.code).toBe('ERR_SOCKET_BAD_PORT')
      expect(thrown(() => validatePort(port, 'options.port'))).toEqual(theirs)
    }
  })

  it('takes integers and strings of digits in 0..65535; a destination may not be 0', () => {
    expect(validatePort(0)).toBe(0)
    expect(validatePort(65535)).toBe(65535)
    expect(validatePort(' 80 ')).toBe(80)
    expect(validatePort('0')).toBe(0)
    expect(validatePort(1, 'Port', false)).toBe(1)
    expect(thrown(() => validatePort(65536))?.message).toBe('Port should be >= 0 and < 65536. Received type number (65536).')
    // Stricter than net, which reads '0x50' as 80: a port is written in decimal
    expect(thrown(() => validatePort('0x50'))?.code).toBe('ERR_SOCKET_BAD_PORT')
  })
})

describe('hosts and addresses', () => {
  it('validateHost: a non-empty string', () => {
    expect(validateHost('example.org')).toBe('example.org')
    expect(thrown(() => validateHost(''))).toEqual({
      type: 'RangeError', code: 'ERR_INVALID_ARG_VALUE', message: "The argument 'host' must be a non-empty string. Received ''"
    })
    expect(thrown(() => validateHost(5, 'address'))).toEqual({
      type: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: 'The "address" argument must be of type string. Received type number (5)'
    })
  })

  it('normalizeAddress: IPv4-mapped to IPv4, IPv6 lower-cased, anything else untouched', () => {
    expect(normalizeAddress('::FFFF:192.0.2.1')).toBe('192.0.2.1')
    expect(normalizeAddress('::ffff:192.0.2.1')).toBe('192.0.2.1')
    expect(normalizeAddress('2001:DB8::A')).toBe('2001:db8::a')
    expect(normalizeAddress('::ffff:c000:201')).toBe('::ffff:c000:201')
    expect(normalizeAddress('Example.ORG')).toBe('Example.ORG')
    expect(normalizeAddress('192.0.2.1')).toBe('192.0.2.1')
    // Seven characters before an IPv4 address that are not the mapped prefix
    expect(normalizeAddress('::1234:192.0.2.1')).toBe('::1234:192.0.2.1')
  })

  it('familyOf', () => {
    expect(familyOf('::1')).toBe('IPv6')
    expect(familyOf('127.0.0.1')).toBe('IPv4')
  })

  it('validateCongestion', () => {
    expect(validateCongestion('c', 'ledbat')).toBe('ledbat')
    expect(thrown(() => validateCongestion('c', 'Cubic'))).toEqual({
      type: 'RangeError', code: 'ERR_INVALID_ARG_VALUE', message: "The argument 'c' must be 'ledbat' or 'cubic'. Received 'Cubic'"
    })
    expect(thrown(() => validateCongestion('c', 1))).toEqual({
      type: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: 'The "c" argument must be of type string. Received type number (1)'
    })
  })
})
