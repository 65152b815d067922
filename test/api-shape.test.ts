// Small shapes of the public package: the layered methods sit on Node.prototype as a class's methods would
// (lib/api.ts), and a native DHT rejection becomes an error with a code (lib/dht/native.ts).
import { describe, expect, it } from 'vitest'

import type * as DhtNativeModule from '../lib/dht/native'
import { requireFromRoot, utp } from './helpers/utp'

const { nativeDhtError } = requireFromRoot('./dist/lib/dht/native.js') as typeof DhtNativeModule

describe('the package\'s shapes', () => {
  it('stun, natType and rendezvous are methods of Node as a class defines them: writable, configurable, not enumerable', () => {
    for (const name of ['stun', 'natType', 'rendezvous']) {
      const d = Object.getOwnPropertyDescriptor(utp.prototype, name)
      expect([name, typeof d?.value, d?.writable, d?.configurable, d?.enumerable]).toEqual([name, 'function', true, true, false])
    }
    expect(Object.keys(utp.prototype)).not.toContain('rendezvous')
  })

  it('a native DHT rejection: its code from the message, EINVAL as ERR_INVALID_ARG_VALUE, anything else as it is', () => {
    const closed = nativeDhtError(new Error('ERR_DHT_CLOSED: the DHT node is closed'))
    expect([closed.constructor, (closed as NodeJS.ErrnoException).code, closed.message]).toEqual([Error, 'ERR_DHT_CLOSED', 'the DHT node is closed'])
    const invalid = nativeDhtError(new Error('EINVAL: value too long\nby 3 bytes'))
    expect([invalid.constructor, (invalid as NodeJS.ErrnoException).code, invalid.message]).toEqual([RangeError, 'ERR_INVALID_ARG_VALUE', 'value too long\nby 3 bytes'])
    const plain = new Error('something else: ERR_X: y')
    expect(nativeDhtError(plain)).toBe(plain)
    expect(nativeDhtError(new Error('ERR_: empty name'))).toMatchObject({ message: 'ERR_: empty name' })
    expect(nativeDhtError(new Error('EINVALID: no'))).toMatchObject({ message: 'EINVALID: no' })
    const odd = nativeDhtError('a string')
    expect([odd.constructor, odd.message]).toEqual([Error, 'a string'])
  })
})
