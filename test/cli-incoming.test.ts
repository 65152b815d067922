// The receiver's sizes, room and names on their own (bin/incoming.ts): --max-size's forms, sizes for people,
// the room check against --max-size and the free space (at each boundary), and the numbered names tried when
// a name is taken. The CLI's use of them is in cli-receive-safety.test.ts.
import * as fs from 'fs'
import * as os from 'os'
import { afterEach, describe, expect, it, vi } from 'vitest'

import type * as IncomingModule from '../bin/incoming'
import { requireFromRoot } from './helpers/utp'

const { sizeOption, humanBytes, checkRoom, freeSpace, numberedName } = requireFromRoot('./dist/bin/incoming.js') as typeof IncomingModule
// The module object the CLI calls, so that a spy on it is seen there
const fsModule = requireFromRoot('fs') as typeof fs

afterEach(() => { vi.restoreAllMocks() })

const failure = async (p: Promise<unknown>): Promise<unknown> => await p.then(() => 'no error', (e: Error & { code?: string, peerMessage?: string }) => [e.code, e.message, e.peerMessage])

describe('the receiver\'s sizes, room and names', () => {
  it('sizeOption: bytes, decimal and binary units in any case, fractions, spaces; anything else is a usage error', () => {
    const cases: Array<[string, number]> = [
      ['4096', 4096], [' 4096 ', 4096], ['500K', 500e3], ['500 kb', 500e3], ['1.5GB', 1.5e9], ['10g', 10e9], ['2GiB', 2 * 2 ** 30],
      ['3MiB', 3 * 2 ** 20], ['1kib', 1024], ['1T', 1e12], ['1tib', 2 ** 40], ['1P', 1e15], ['1pib', 2 ** 50], ['7b', 7], ['2.25m', 2.25e6], ['0.5k', 500], ['1.0001k', 1000]
    ]
    for (const [text, bytes] of cases) expect([text, sizeOption(text, 'max-size')]).toEqual([text, bytes])
    expect(sizeOption(undefined, 'max-size')).toBeUndefined()
    for (const bad of ['', 'x', '5X', '-5', '1.', '.5', '1e3', '5 G B', '5GBs', '0x10', '1.5.5G']) {
      expect(() => sizeOption(bad, 'max-size')).toThrow(`--max-size must be a size such as 500M, 10G or 2GiB, got ${bad}`)
    }
    expect(() => sizeOption(true, 'max-size')).toThrow('--max-size must be a size such as 500M, 10G or 2GiB, got true')
    try {
      sizeOption('x', 'limit')
    } catch (e) {
      expect([(e as { code: string }).code, (e as Error).message]).toEqual(['ERR_USAGE', '--limit must be a size such as 500M, 10G or 2GiB, got x'])
    }
  })

  it('humanBytes: bytes below 1000, then kB to EB with two decimals, EB beyond', () => {
    expect([0, 999, 1000, 1500, 999_999, 1e6, 3.15e6, 1e9, 1e12, 1e15, 9e15, 1e18, 2.5e21].map(humanBytes)).toEqual([
      '0 bytes', '999 bytes', '1.00 kB', '1.50 kB', '1000.00 kB', '1.00 MB', '3.15 MB', '1.00 GB', '1.00 TB', '1.00 PB', '9.00 PB', '1.00 EB', '2500.00 EB'
    ])
  })

  it('checkRoom: refuses over --max-size and over the free space, each at its boundary; the peer is not told our free space', async () => {
    const dir = os.tmpdir()
    vi.spyOn(fsModule.promises, 'statfs').mockResolvedValue({ bavail: 10, bsize: 100 } as unknown as fs.StatsFs)
    expect(await freeSpace(dir)).toBe(1000)
    expect(await failure(checkRoom(dir, 1000, 1000))).toBe('no error')
    expect(await failure(checkRoom(dir, 1001, 1000))).toEqual(['ERR_TOO_LARGE', 'refused a file of 1.00 kB: larger than --max-size 1.00 kB', undefined])
    expect(await failure(checkRoom(dir, 5000, undefined, 1000, '3 files'))).toBe('no error') // resuming: 1000 still to write
    expect(await failure(checkRoom(dir, 5000, undefined, 1001, '3 files'))).toEqual([
      'ERR_NO_SPACE', `refused 3 files of 5.00 kB: only 1.00 kB free in ${dir}`, 'refused 3 files of 5.00 kB: not enough free space'
    ])
    expect(await failure(checkRoom(dir, 1001, undefined))).toEqual([
      'ERR_NO_SPACE', `refused a file of 1.00 kB: only 1.00 kB free in ${dir}`, 'refused a file of 1.00 kB: not enough free space'
    ])
    // Where the platform cannot tell, only --max-size applies
    vi.spyOn(fsModule.promises, 'statfs').mockRejectedValue(Object.assign(new Error('ENOSYS'), { code: 'ENOSYS' }))
    expect(await freeSpace(dir)).toBeNull()
    expect(await failure(checkRoom(dir, 1e15, undefined))).toBe('no error')
  })

  it('numberedName: the number before the last extension; none for names without one or dot files', () => {
    expect([['report.pdf', 1], ['archive.tar.gz', 2], ['README', 3], ['.bashrc', 4], ['a.', 6], ['...', 7]].map(([n, i]) => numberedName(n as string, i as number)))
      .toEqual(['report (1).pdf', 'archive.tar (2).gz', 'README (3)', '.bashrc (4)', 'a (6).', '.. (7).'])
  })
})
