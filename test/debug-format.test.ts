// The debug log's two formatters (lib/debug.ts): an address and port with either missing, and an error of any
// shape on one line. The log itself is tested in dx.test.ts and rendezvous-debug.test.ts.
import { describe, expect, it } from 'vitest'

import type * as DebugModule from '../lib/debug'
import { requireFromRoot } from './helpers/utp'

const { hostPort, describeError } = requireFromRoot('./dist/lib/debug.js') as typeof DebugModule

describe('the debug log\'s formatters', () => {
  it('hostPort: brackets IPv6, and shows a missing address or port as ?', () => {
    expect([hostPort('192.0.2.1', 5), hostPort('2001:db8::1', 5), hostPort('192.0.2.1', undefined), hostPort('::1', undefined)])
      .toEqual(['192.0.2.1:5', '[2001:db8::1]:5', '192.0.2.1:?', '[::1]:?'])
    expect([hostPort(undefined, 5), hostPort(undefined, undefined), hostPort('192.0.2.1', 0)]).toEqual(['?:5', '?:?', '192.0.2.1:0'])
  })

  it('describeError: CODE: message on one line, the message alone without a string code, anything else as a string', () => {
    const coded = Object.assign(new Error('first line  \n\t  second\nthird'), { code: 'EFOO' })
    expect(describeError(coded)).toBe('EFOO: first line second third')
    expect(describeError(Object.assign(new Error('numbered'), { code: 42 }))).toBe('numbered')
    expect(describeError(new Error('plain'))).toBe('plain')
    expect(describeError('a string\nthrown')).toBe('a string thrown')
    expect(describeError(null)).toBe('null')
    expect(describeError(undefined)).toBe('undefined')
    expect(describeError({ code: 'EBAR', message: 'not an Error' })).toBe('EBAR: [object Object]')
  })
})
