// The secure layer: SPAKE2 (Pake), deriveKey, and encrypted streams over loopback uTP (secureSocket)
import * as crypto from 'crypto'
import { describe, expect, it } from 'vitest'

import { utp, type UtpError } from './helpers/utp'

const { Pake, deriveKey } = utp

function codeOf (f: () => unknown): string | undefined {
  try {
    f()
  } catch (e) {
    return (e as UtpError).code
  }
  return undefined
}

describe('Pake and deriveKey', () => {
  it('equal passwords agree on 32 bytes; a different password or context does not', () => {
    const a = Pake.start('correct horse', 'test')
    const b = Pake.start(Buffer.from('correct horse'), 'test')
    expect(a.message.length).toBe(33)
    const ka = a.finish(b.message)
    const kb = b.finish(a.message)
    expect(ka.length).toBe(32)
    expect(ka.equals(kb)).toBe(true)
    expect(ka.equals(Buffer.from('correct horse').subarray(0, 32))).toBe(false)

    for (const [pw, ctx] of [['correct horsf', 'test'], ['correct horse', 'other']]) {
      const c = Pake.start('correct horse', 'test')
      const d = Pake.start(pw, ctx)
      expect(c.finish(d.message).equals(d.finish(c.message))).toBe(false)
    }
  })

  it('malformed, reflected and repeated finishes are coded errors', () => {
    const a = Pake.start('pw', 'ctx')
    expect(codeOf(() => a.finish(a.message))).toBe('ERR_PAKE_MESSAGE')
    expect(codeOf(() => Pake.start('pw', 'ctx').finish(Buffer.alloc(5)))).toBe('ERR_PAKE_MESSAGE')
    const b = Pake.start('pw', 'ctx')
    b.finish(Pake.start('pw', 'ctx').message)
    expect(codeOf(() => b.finish(a.message))).toBe('ERR_INVALID_STATE')
    expect(codeOf(() => Pake.start('', 'ctx'))).toBe('ERR_INVALID_ARG_VALUE')
    expect(codeOf(() => Pake.start(42 as unknown as string, 'ctx'))).toBe('ERR_INVALID_ARG_TYPE')
  })

  it('deriveKey is HKDF-SHA256 (RFC 5869 A.3) with distinct labels giving distinct keys', () => {
    // RFC 5869 test case 3: IKM = 22 x 0x0b, empty salt and info; OKM begins 8da4e775a563c18f
    expect(deriveKey(Buffer.alloc(22, 0x0b), '').subarray(0, 8).toString('hex')).toBe('8da4e775a563c18f')
    const k = crypto.randomBytes(32)
    expect(deriveKey(k, 'a').length).toBe(32)
    expect(deriveKey(k, 'a').equals(deriveKey(k, 'b'))).toBe(false)
    expect(codeOf(() => deriveKey('x' as unknown as Buffer, 'a'))).toBe('ERR_INVALID_ARG_TYPE')
  })
})
