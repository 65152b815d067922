// What a received file may be called and how the peer's text is shown, on its own (bin/filename.ts): names kept,
// cleaned or refused, each refusal's exact wording, and text from the peer made safe and short. Offers of whole
// trees are in cli-manifest.test.ts; the CLI's use in cli-receive-safety.test.ts.
import { describe, expect, it } from 'vitest'

import type * as ArgsModule from '../bin/args'
import type * as FilenameModule from '../bin/filename'
import { requireFromRoot } from './helpers/utp'

const { receivedName, peerText, neutralise, UnsafeNameError, MAX_NAME_BYTES } = requireFromRoot('./dist/bin/filename.js') as typeof FilenameModule
const { CliError } = requireFromRoot('./dist/bin/args.js') as typeof ArgsModule

/** [code, message, shown, why] of the refusal, or the name it gets */
const verdict = (name: string): unknown => {
  try {
    return receivedName(name)
  } catch (e) {
    const u = e as FilenameModule.UnsafeNameError
    return [u.code, u.message, u.shown, u.why, e instanceof UnsafeNameError && e instanceof CliError]
  }
}
const refused = (shown: string, why: string): unknown[] => ['ERR_UNSAFE_NAME', `refused the name "${shown}": ${why}`, shown, why, true]

describe('received names', () => {
  it('keeps received files inside the output directory under a safe name, or refuses them', () => {
    expect(receivedName('report.pdf')).toBe('report.pdf')
    expect(receivedName('  Résumé 2026.pdf ')).toBe('Résumé 2026.pdf')
    expect(receivedName('日本語 😀.txt')).toBe('日本語 😀.txt')
    expect(receivedName('a\u0000b\nc')).toBe('a_b_c')
    expect(receivedName('what?.txt')).toBe('what_.txt')
    expect(receivedName('<a>:b"|*.txt')).toBe('_a__b___.txt')
    expect(receivedName('invoice\u202Etxt.exe')).toBe('invoice_txt.exe')
    expect(receivedName('\u2066x\u2069\u200E\u200F\u202A\u009B\u007F\u00AD\u3164.txt')).toBe('_x________.txt')
    expect(receivedName('..\u2215etc\u2215passwd'.slice(2))).toBe('_etc_passwd')
    // NFC: one "é" however it was composed, so the same name is the same file
    expect(receivedName('Re\u0301sume\u0301')).toBe('Résumé')
    // Spaces other than U+0020 are replaced; a plain space inside the name is kept
    expect(receivedName('a\u00a0b\u2003c d')).toBe('a_b_c d')
    // Device names with an extension or trailing spaces before it; a longer name that starts like one is fine
    expect(['console.txt', 'nul1', 'com10', 'lpt', 'aux-files'].map(receivedName)).toEqual(['console.txt', 'nul1', 'com10', 'lpt', 'aux-files'])
    expect(receivedName('x'.repeat(MAX_NAME_BYTES))).toHaveLength(200)
  })

  it('says exactly why a name is refused', () => {
    const cases: Array<[string, string, string]> = [
      ['../../etc/passwd', '../../etc/passwd', 'it contains a path separator'],
      ['C:\\Users\\x\\evil.exe', 'C:\\Users\\x\\evil.exe', 'it contains a path separator'],
      ['dir/', 'dir/', 'it contains a path separator'],
      ['..', '..', 'it contains ".."'],
      ['a..b', 'a..b', 'it contains ".."'],
      ['.bashrc', '.bashrc', 'it starts with a dot (a hidden or configuration file)'],
      [' .ssh', ' .ssh', 'it starts with a dot (a hidden or configuration file)'],
      ['', '', 'it is empty'],
      ['   ', '   ', 'it is empty'],
      ['x.', 'x.', 'it ends with a dot'],
      ['CON', 'CON', 'it is a device name reserved by Windows'],
      ['nul.txt', 'nul.txt', 'it is a device name reserved by Windows'],
      ['con .txt', 'con .txt', 'it is a device name reserved by Windows'],
      ['com1.log', 'com1.log', 'it is a device name reserved by Windows'],
      ['LPT²', 'LPT²', 'it is a device name reserved by Windows'],
      ['conout$.x', 'conout$.x', 'it is a device name reserved by Windows'],
      ['x'.repeat(201), `${'x'.repeat(80)}...`, 'it is longer than 200 bytes'],
      ['é'.repeat(101), `${'é'.repeat(80)}...`, 'it is longer than 200 bytes']
    ]
    for (const [name, shown, why] of cases) expect([name, verdict(name)]).toEqual([name, refused(shown, why)])
    // A name of only invisible characters becomes "_", which is a name
    expect(receivedName('\u200b')).toBe('_')
  })
})

describe('the peer\'s text on a terminal', () => {
  it('neutralises what disguises or hides, and cuts at a length', () => {
    expect(neutralise('ok \u001b[31mred\u202e\u00a0')).toBe('ok _[31mred__')
    expect(peerText('short', 5)).toBe('short')
    expect(peerText('longer', 5)).toBe('longe...')
    expect(peerText('x'.repeat(201))).toBe(`${'x'.repeat(200)}...`)
    expect(peerText('x'.repeat(200))).toBe('x'.repeat(200))
    // Not a string: shown as String() shows it, made safe the same way
    expect([peerText(42), peerText(undefined), peerText({ toString: () => 'a\u0007b' }), peerText(null, 2)]).toEqual(['42', 'undefined', 'a_b', 'nu...'])
  })
})
