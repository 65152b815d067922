// Where send and receive meet the peer, on its own (bin/config.ts): the config file's path, the order flag >
// environment > config file > DHT, the bootstrap nodes' sources, every config file error and HOST:PORT check with
// its wording. The CLI's use of it, in child processes, is in cli-status.test.ts.
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'

import type * as ConfigModule from '../bin/config'
import { requireFromRoot } from './helpers/utp'

const { configPath, chooseMeeting, checkServer } = requireFromRoot('./dist/bin/config.js') as typeof ConfigModule
const fsModule = requireFromRoot('fs') as typeof fs

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-config-'))
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }) })
afterEach(() => { vi.restoreAllMocks() })

const outcome = (fn: () => unknown): unknown => {
  try {
    return fn()
  } catch (e) {
    return [(e as { code?: string }).code, (e as Error).message]
  }
}
const usage = (message: string): unknown => ['ERR_USAGE', message]
let files = 0
/** A config file holding `text`, named by $UTP_PUNCH_CONFIG in the returned environment */
const configured = (text: string): { env: NodeJS.ProcessEnv, file: string } => {
  const file = path.join(tmp, `config-${++files}.json`)
  fs.writeFileSync(file, text)
  return { env: { UTP_PUNCH_CONFIG: file }, file }
}
/** An environment with nothing configured */
const bare: NodeJS.ProcessEnv = { XDG_CONFIG_HOME: path.join(tmp, 'empty-xdg') }

describe('the config file\'s path', () => {
  it('$UTP_PUNCH_CONFIG, else an absolute $XDG_CONFIG_HOME, else ~/.config', () => {
    const home = path.join(os.homedir(), '.config', 'utp-punch-rs', 'config.json')
    expect([
      configPath({ UTP_PUNCH_CONFIG: '/etc/u.json', XDG_CONFIG_HOME: '/x' }),
      configPath({ UTP_PUNCH_CONFIG: '', XDG_CONFIG_HOME: '/x' }),
      configPath({ XDG_CONFIG_HOME: 'relative/dir' }),
      configPath({})
    ]).toEqual(['/etc/u.json', '/x/utp-punch-rs/config.json', home, home])
  })
})

describe('chooseMeeting', () => {
  it('the flag, else the environment, else the config file; each named as the source', () => {
    const { env, file } = configured('{"rendezvous": "file.example:3", "future": 1}')
    expect(chooseMeeting({ rendezvous: 'flag.example:1' }, { ...env, UTP_PUNCH_RENDEZVOUS: 'env.example:2' })).toEqual({ server: 'flag.example:1', source: '--rendezvous' })
    expect(chooseMeeting({}, { ...env, UTP_PUNCH_RENDEZVOUS: 'env.example:2' })).toEqual({ server: 'env.example:2', source: '$UTP_PUNCH_RENDEZVOUS' })
    expect(chooseMeeting({}, { ...env, UTP_PUNCH_RENDEZVOUS: '' })).toEqual({ server: 'file.example:3', source: file })
    // The default location is read too
    const xdg = path.join(tmp, 'xdg')
    fs.mkdirSync(path.join(xdg, 'utp-punch-rs'), { recursive: true })
    fs.writeFileSync(path.join(xdg, 'utp-punch-rs', 'config.json'), '{"rendezvous": "xdg.example:4"}')
    expect(chooseMeeting({}, { XDG_CONFIG_HOME: xdg })).toEqual({ server: 'xdg.example:4', source: path.join(xdg, 'utp-punch-rs', 'config.json') })
    // A flag needs no config file: a broken one is not read
    expect(chooseMeeting({ rendezvous: 'flag.example:1' }, configured('{').env)).toEqual({ server: 'flag.example:1', source: '--rendezvous' })
  })

  it('with no server named, or with --dht, the DHT through the flag\'s, the environment\'s, the file\'s or the public nodes', () => {
    const { env, file } = configured('{"rendezvous": "file.example:3", "dhtBootstrap": ["f1:1", " f2:2 "]}')
    const all = { ...env, UTP_PUNCH_RENDEZVOUS: 'env.example:2', UTP_PUNCH_DHT_BOOTSTRAP: 'e1:1,e2:2' }
    expect(chooseMeeting({ dht: true, dhtBootstrap: ' a:1, b:2 ,,' }, all)).toEqual({ dht: { bootstrap: ['a:1', 'b:2'] }, source: '--dht-bootstrap' })
    expect(chooseMeeting({ dht: true }, all)).toEqual({ dht: { bootstrap: ['e1:1', 'e2:2'] }, source: '$UTP_PUNCH_DHT_BOOTSTRAP' })
    expect(chooseMeeting({ dht: true }, { ...all, UTP_PUNCH_DHT_BOOTSTRAP: '' })).toEqual({ dht: { bootstrap: ['f1:1', 'f2:2'] }, source: file })
    expect(chooseMeeting({}, bare)).toEqual({ dht: { bootstrap: undefined }, source: 'the public bootstrap nodes' })
    // An empty $UTP_PUNCH_CONFIG is unset: the default location, which need not exist
    expect(chooseMeeting({}, { ...bare, UTP_PUNCH_CONFIG: '' })).toEqual({ dht: { bootstrap: undefined }, source: 'the public bootstrap nodes' })
    expect(chooseMeeting({ dhtBootstrap: 'n:1' }, bare)).toEqual({ dht: { bootstrap: ['n:1'] }, source: '--dht-bootstrap' })
    expect(chooseMeeting({ dht: false }, { ...bare, UTP_PUNCH_RENDEZVOUS: 'env.example:2' })).toEqual({ server: 'env.example:2', source: '$UTP_PUNCH_RENDEZVOUS' })
  })

  it('usage errors: two ways to meet, a bad server or node from any source, a list naming no node', () => {
    expect(outcome(() => chooseMeeting({ dht: true, rendezvous: 'a:1' }, bare))).toEqual(usage('--dht and --rendezvous name two ways to meet: give one'))
    expect(outcome(() => chooseMeeting({ rendezvous: 'nohost' }, bare))).toEqual(usage('--rendezvous must be HOST:PORT, got "nohost" (the port is missing)'))
    expect(outcome(() => chooseMeeting({}, { ...bare, UTP_PUNCH_RENDEZVOUS: 'x:0' }))).toEqual(usage('$UTP_PUNCH_RENDEZVOUS must be HOST:PORT with a port 1..65535, got "x:0"'))
    const { env, file } = configured('{"rendezvous": ":7000"}')
    expect(outcome(() => chooseMeeting({}, env))).toEqual(usage(`"rendezvous" in ${file} must be HOST:PORT, got ":7000" (the host is missing)`))
    expect(outcome(() => chooseMeeting({ dhtBootstrap: ' , ' }, bare))).toEqual(usage('--dht-bootstrap names no DHT node: give HOST:PORT[,HOST:PORT...]'))
    expect(outcome(() => chooseMeeting({ dhtBootstrap: 'a:1,b' }, bare))).toEqual(usage('--dht-bootstrap must be HOST:PORT, got "b" (the port is missing)'))
    expect(outcome(() => chooseMeeting({}, { ...bare, UTP_PUNCH_DHT_BOOTSTRAP: ',' }))).toEqual(usage('$UTP_PUNCH_DHT_BOOTSTRAP names no DHT node: give HOST:PORT[,HOST:PORT...]'))
    const empty = configured('{"dhtBootstrap": []}')
    expect(outcome(() => chooseMeeting({}, empty.env))).toEqual(usage(`"dhtBootstrap" in ${empty.file} names no DHT node: give HOST:PORT[,HOST:PORT...]`))
  })

  it('a config file that exists but cannot be used is an error naming it, even when the environment names a server', () => {
    const broken = (text: string): [string, unknown] => {
      const { env, file } = configured(text)
      return [file, outcome(() => chooseMeeting({}, { ...env, UTP_PUNCH_RENDEZVOUS: 'env.example:2' }))]
    }
    const jsonError = (text: string): string => {
      try {
        JSON.parse(text)
      } catch (e) {
        return (e as Error).message
      }
      return ''
    }
    let [file, got] = broken('{"rendezvous": ')
    expect(got).toEqual(usage(`the config file ${String(file)} is not valid JSON (${jsonError('{"rendezvous": ')}); it should look like {"rendezvous": "HOST:PORT"}`))
    for (const text of ['null', '[]', '"a:1"', '5']) {
      [file, got] = broken(text)
      expect([text, got]).toEqual([text, usage(`the config file ${String(file)} must hold a JSON object such as {"rendezvous": "HOST:PORT"}`)])
    }
    for (const value of ['5', 'null', '["a:1"]']) {
      [file, got] = broken(`{"rendezvous": ${value}}`)
      expect(got).toEqual(usage(`the config file ${String(file)}: "rendezvous" must be a string "HOST:PORT", got ${value.replace(/ /g, '')}`))
    }
    for (const value of ['"a:1"', '["a:1", 5]', '{}', 'null']) {
      [file, got] = broken(`{"dhtBootstrap": ${value}}`)
      expect(got).toEqual(usage(`the config file ${String(file)}: "dhtBootstrap" must be an array of "HOST:PORT" strings, got ${value.replace(/ /g, '')}`))
    }
  })

  it('a missing file is nothing configured, unless $UTP_PUNCH_CONFIG names it; a file that cannot be read says why', () => {
    const missing = path.join(tmp, 'missing.json')
    expect(outcome(() => chooseMeeting({}, { UTP_PUNCH_CONFIG: missing }))).toEqual(usage(`cannot read the config file ${missing}: it does not exist ($UTP_PUNCH_CONFIG names it)`))
    expect(outcome(() => chooseMeeting({}, { UTP_PUNCH_CONFIG: tmp }))).toEqual(usage(`cannot read the config file ${tmp}: it is a directory`))
    const { env, file } = configured('{}')
    vi.spyOn(fsModule, 'readFileSync').mockImplementationOnce(() => { throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }) })
    expect(outcome(() => chooseMeeting({}, env))).toEqual(usage(`cannot read the config file ${file}: permission denied`))
    vi.spyOn(fsModule, 'readFileSync').mockImplementationOnce(() => { throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }) })
    expect(outcome(() => chooseMeeting({}, env))).toEqual(usage(`cannot read the config file ${file}: EIO: i/o error, read`))
    // Not required (the default location) but unreadable: still an error
    const xdg = path.join(tmp, 'xdg-dir')
    fs.mkdirSync(path.join(xdg, 'utp-punch-rs', 'config.json'), { recursive: true })
    expect(outcome(() => chooseMeeting({}, { XDG_CONFIG_HOME: xdg }))).toEqual(usage(`cannot read the config file ${path.join(xdg, 'utp-punch-rs', 'config.json')}: it is a directory`))
    expect(chooseMeeting({}, configured('{}').env)).toEqual({ dht: { bootstrap: undefined }, source: 'the public bootstrap nodes' })
  })
})

describe('checkServer', () => {
  it('HOST:PORT or [IPv6]:PORT with a port 1..65535; a hint for the usual mistakes', () => {
    for (const ok of ['a:1', 'rv.example.org:65535', '1.2.3.4:80', '[::1]:7000', '[fe80::1%eth0]:9']) expect(checkServer(ok, 'x')).toBe(ok)
    const cases: Array<[string, string]> = [
      ['host', ' (the port is missing)'],
      [':80', ' (the host is missing)'],
      ['::1:80', ' (write an IPv6 address in brackets: [::1]:7000)'],
      ['fe80::1:80', ' (write an IPv6 address in brackets: [::1]:7000)'],
      ['a:b:c', ' (write an IPv6 address in brackets: [::1]:7000)'],
      ['host:', ''],
      ['host:x', ''],
      ['a b:1', ''],
      ['[::1]', ''],
      ['[::1]:', ''],
      ['[]:1', ''],
      ['host:-1', ''],
      ['host:1 ', ''],
      [' host:1', ''],
      ['x[::1]:80', ' (write an IPv6 address in brackets: [::1]:7000)'],
      ['[::1]:80x', '']
    ]
    for (const [value, hint] of cases) expect([value, outcome(() => checkServer(value, '--rendezvous'))]).toEqual([value, usage(`--rendezvous must be HOST:PORT, got ${JSON.stringify(value)}${hint}`)])
    for (const value of ['host:0', 'host:65536', '[::1]:99999']) {
      expect([value, outcome(() => checkServer(value, '--rendezvous'))]).toEqual([value, usage(`--rendezvous must be HOST:PORT with a port 1..65535, got ${JSON.stringify(value)}`)])
    }
  })
})
