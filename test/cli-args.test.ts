// The CLI's command line on its own (bin/args.ts): options in each form, what is positional, every usage error's
// wording; the option readers' bounds; receive's --out check (bin/out-dir.ts) and its question (bin/prompt.ts)
// over in-memory streams. The CLI's use of them, in child processes, is in cli.test.ts and cli-status.test.ts.
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { PassThrough } from 'stream'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'

import type * as ArgsModule from '../bin/args'
import type * as OutDirModule from '../bin/out-dir'
import type * as PromptModule from '../bin/prompt'
import { requireFromRoot } from './helpers/utp'

const { parseArgs, portOption, durationOption, positiveOption, choiceOption, stringOption, UsageError, CliError } = requireFromRoot('./dist/bin/args.js') as typeof ArgsModule
const { checkOutDir } = requireFromRoot('./dist/bin/out-dir.js') as typeof OutDirModule
const { canAsk, askYesNo } = requireFromRoot('./dist/bin/prompt.js') as typeof PromptModule
// The module object the CLI calls, so that a spy on it is seen there
const fsModule = requireFromRoot('fs') as typeof fs
afterEach(() => { vi.restoreAllMocks() })

/** [class, code, message] of what `fn` throws, or what it returns */
const outcome = (fn: () => unknown): unknown => {
  try {
    return fn()
  } catch (e) {
    return [e instanceof UsageError ? 'UsageError' : e instanceof CliError ? 'CliError' : 'other', (e as { code?: string }).code, (e as Error).message]
  }
}
const usage = (message: string): unknown => ['UsageError', 'ERR_USAGE', message]

describe('parseArgs', () => {
  const spec: ArgsModule.Spec = { out: 'string', yes: 'boolean', json: 'boolean', port: 'string', 'no-color': 'boolean' }

  it('options as --name value, --name=value, --flag and --no-flag; -h and -y; the rest positional in order', () => {
    expect(parseArgs(['a', '--out', 'dir', 'b', '--port=0', '--json', '--no-yes', 'c'], spec))
      .toEqual({ positionals: ['a', 'b', 'c'], options: { out: 'dir', port: '0', json: true, yes: false } })
    expect(parseArgs(['-h', '-y', '-', '--out=a=b', '--out', '--json'], spec)).toEqual({ positionals: ['-'], options: { help: true, yes: true, out: '--json' } })
    expect(parseArgs(['--out='], spec)).toEqual({ positionals: [], options: { out: '' } })
    // An option named no-… is itself, not a negation, even beside the option it would negate
    expect(parseArgs(['--no-color'], spec)).toEqual({ positionals: [], options: { 'no-color': true } })
    expect(parseArgs(['--no-color'], { ...spec, color: 'boolean' })).toEqual({ positionals: [], options: { 'no-color': true } })
    // After --, everything is positional
    expect(parseArgs(['x', '--', '--json', '-h', '--'], spec)).toEqual({ positionals: ['x', '--json', '-h', '--'], options: {} })
    expect(parseArgs([], spec)).toEqual({ positionals: [], options: {} })
  })

  it('refuses what it does not know, with the option named', () => {
    expect(outcome(() => parseArgs(['--bogus'], spec))).toEqual(usage('unknown option --bogus'))
    expect(outcome(() => parseArgs(['--bogus=1'], spec))).toEqual(usage('unknown option --bogus'))
    expect(outcome(() => parseArgs(['--no-out'], spec))).toEqual(usage('unknown option --no-out'))
    expect(outcome(() => parseArgs(['--no-bogus'], spec))).toEqual(usage('unknown option --no-bogus'))
    // Only a "no-" prefix negates
    expect(outcome(() => parseArgs(['--xx-json'], spec))).toEqual(usage('unknown option --xx-json'))
    expect(outcome(() => parseArgs(['-x'], spec))).toEqual(usage('unknown option -x'))
    expect(outcome(() => parseArgs(['-y'], { json: 'boolean' }))).toEqual(usage('unknown option -y'))
    expect(outcome(() => parseArgs(['-y'], { yes: 'string' }))).toEqual(usage('unknown option -y'))
    expect(outcome(() => parseArgs(['--json=yes'], spec))).toEqual(usage('option --json takes no value'))
    expect(outcome(() => parseArgs(['--no-json=1'], spec))).toEqual(usage('option --json takes no value'))
    expect(outcome(() => parseArgs(['a', '--out'], spec))).toEqual(usage('option --out needs a value'))
  })
})

describe('option readers', () => {
  it('portOption: 0 to 65535 in digits, or the default', () => {
    expect([portOption(undefined, 'port', 7), portOption('0', 'port', 7), portOption('65535', 'port', 7), portOption('080', 'port', 7)]).toEqual([7, 0, 65535, 80])
    for (const bad of ['65536', '-1', '1.5', '', ' 1', '0x10', '1e3', true]) {
      expect([bad, outcome(() => portOption(bad, 'listen-port', 7))]).toEqual([bad, usage(`--listen-port must be a port number 0..65535, got ${String(bad)}`)])
    }
  })

  it('durationOption: seconds by default, ms, s and m; at least 1 ms, rounded', () => {
    expect([durationOption(undefined, 'timeout', 30_000), durationOption('30', 'timeout', 0), durationOption('30s', 'timeout', 0), durationOption('500ms', 'timeout', 0),
      durationOption('2m', 'timeout', 0), durationOption('1.5', 'timeout', 0), durationOption('0.0015', 'timeout', 0), durationOption('1ms', 'timeout', 0), durationOption('1.4ms', 'timeout', 0)])
      .toEqual([30_000, 30_000, 30_000, 500, 120_000, 1500, 2, 1, 1])
    for (const bad of ['', 's', '1h', '-1', '1.', '.5', '30 s', '1e3', 'x30', '30sx', true]) {
      expect([bad, outcome(() => durationOption(bad, 'idle', 0))]).toEqual([bad, usage(`--idle must be a duration such as 30, 30s, 500ms or 2m, got ${String(bad)}`)])
    }
    for (const small of ['0', '0ms', '0.9ms', '0.0001']) expect([small, outcome(() => durationOption(small, 'idle', 0))]).toEqual([small, usage('--idle must be at least 1 ms')])
  })

  it('positiveOption, choiceOption, stringOption', () => {
    expect([positiveOption(undefined, 'rate'), positiveOption('2.5', 'rate'), positiveOption('1e3', 'rate'), positiveOption('0.001', 'rate')]).toEqual([undefined, 2.5, 1000, 0.001])
    for (const bad of ['0', '-1', 'x', 'Infinity', '', true]) {
      expect([bad, outcome(() => positiveOption(bad, 'rate'))]).toEqual([bad, usage(`--rate must be a positive number, got ${String(bad)}`)])
    }
    expect([choiceOption(undefined, 'mode', ['a', 'b']), choiceOption('b', 'mode', ['a', 'b'])]).toEqual([undefined, 'b'])
    for (const bad of ['c', 'A', '', true]) {
      expect([bad, outcome(() => choiceOption(bad, 'mode', ['a', 'b', 'c'].slice(0, 2)))]).toEqual([bad, usage(`--mode must be a or b, got ${String(bad)}`)])
    }
    expect(outcome(() => choiceOption('x', 'progress', ['bar', 'lines', 'off']))).toEqual(usage('--progress must be bar or lines or off, got x'))
    expect([stringOption(undefined, 'code'), stringOption('abc', 'code'), stringOption(' ', 'code')]).toEqual([undefined, 'abc', ' '])
    for (const bad of ['', true]) expect([bad, outcome(() => stringOption(bad, 'code'))]).toEqual([bad, usage('--code needs a value')])
  })

  it('CliError carries code, stage and peer message; UsageError is ERR_USAGE', () => {
    const e = new CliError('ERR_X', 'x', 'transfer', 'y')
    expect([e instanceof Error, e.code, e.message, e.stage, e.peerMessage]).toEqual([true, 'ERR_X', 'x', 'transfer', 'y'])
    expect([new UsageError('u').code, new UsageError('u').message]).toEqual(['ERR_USAGE', 'u'])
  })
})

describe('receive --out', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-outdir-'))
  afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }) })

  it('takes a writable directory; says what is wrong with anything else', () => {
    expect(outcome(() => checkOutDir(tmp))).toBeUndefined()
    const missing = path.join(tmp, 'nope')
    expect(outcome(() => checkOutDir(missing))).toEqual(['CliError', 'ENOENT', `--out ${missing} does not exist: create it first, or choose another directory`])
    const file = path.join(tmp, 'file')
    fs.writeFileSync(file, '')
    expect(outcome(() => checkOutDir(file))).toEqual(['CliError', 'ENOTDIR', `--out ${file} is not a directory`])
    // Root may write anywhere, so the refusal is scripted; what is asked for is write and search permission
    const access = vi.spyOn(fsModule, 'accessSync').mockImplementation(() => { throw Object.assign(new Error('EACCES'), { code: 'EACCES' }) })
    expect(outcome(() => checkOutDir(tmp))).toEqual(['CliError', 'EACCES', `--out ${tmp} is not writable (permission denied)`])
    expect(access.mock.calls).toEqual([[tmp, fs.constants.W_OK | fs.constants.X_OK]])
  })
})

describe('the question before receiving', () => {
  const terminal = (stdinTTY?: boolean, stderrTTY?: boolean): PromptModule.Terminal & { stdin: PassThrough, asked: () => string } => {
    const stdin = Object.assign(new PassThrough(), { isTTY: stdinTTY })
    const stderr = Object.assign(new PassThrough(), { isTTY: stderrTTY })
    return { stdin, stderr, asked: () => String(stderr.read() ?? '') }
  }

  it('only a person at a terminal on both stdin and stderr can answer', () => {
    expect([canAsk(terminal(true, true)), canAsk(terminal(true, false)), canAsk(terminal(false, true)), canAsk(terminal(undefined, undefined))]).toEqual([true, false, false, false])
  })

  it('asks on stderr; yes is "y" or "yes" in any case with spaces around; anything else, or no answer, is no', async () => {
    for (const [typed, yes] of [['y\n', true], ['YES\n', true], ['  Yes \n', true], ['y', true], ['n\n', false], ['\n', false], ['yes please\n', false], ['why\n', false], ['oh yes\n', false], ['ye\n', false], ['yess\n', false], ['no\ny\n', false]] as const) {
      const t = terminal(true, true)
      t.stdin.write(typed)
      if (!typed.endsWith('\n')) t.stdin.end()
      expect([typed, await askYesNo(t, 'receive "a.bin" (3.00 MB)?'), t.asked()]).toEqual([typed, yes, 'receive "a.bin" (3.00 MB)? [y/N] '])
    }
    const eof = terminal(true, true)
    eof.stdin.end()
    expect(await askYesNo(eof, 'q?')).toBe(false)
  })

  it('an answer typed before the question is read; the input is let go afterwards', async () => {
    const t = terminal(true, true)
    t.stdin.write('y\n')
    await new Promise(resolve => setImmediate(resolve))
    expect(await askYesNo(t, 'q?')).toBe(true)
    expect(t.stdin.listenerCount('data') + t.stdin.listenerCount('readable')).toBe(0)
  })
})
