// What the CLI tells its user, on its own: failures in the user's terms (bin/failures.ts) with the code kept for
// scripts, and the status line for each state in text and --json (bin/status.ts). The CLI's use of them, in child
// processes, is in cli-status.test.ts and cli-cancel.test.ts.
import { PassThrough } from 'stream'
import { describe, expect, it } from 'vitest'

import type * as ArgsModule from '../bin/args'
import type * as FailuresModule from '../bin/failures'
import type * as StatusModule from '../bin/status'
import { requireFromRoot } from './helpers/utp'

const { inUserTerms, lostPeer } = requireFromRoot('./dist/bin/failures.js') as typeof FailuresModule
const { StatusLines } = requireFromRoot('./dist/bin/status.js') as typeof StatusModule
const { CliError } = requireFromRoot('./dist/bin/args.js') as typeof ArgsModule

const sys = (code: unknown, message: string): Error => Object.assign(new Error(message), { code })
const shape = (e: unknown): unknown => {
  const c = e as ArgsModule.CliError
  return [c instanceof CliError, c.code, c.message, c.stage, c.peerMessage]
}

describe('failures in the user\'s terms', () => {
  it('rendezvous: a name that does not resolve, or could not be looked up, named without its port or brackets', () => {
    const r = (e: unknown, server?: string): unknown => shape(inUserTerms(e, { stage: 'rendezvous', server }))
    expect(r(sys('ENOTFOUND', 'getaddrinfo ENOTFOUND rv.example'), 'rv.example:8000'))
      .toEqual([true, 'ENOTFOUND', 'cannot find the rendezvous server rv.example: the name does not resolve', 'rendezvous', undefined])
    expect(r(sys('EAI_AGAIN', 'getaddrinfo EAI_AGAIN'), '[::1]:8000'))
      .toEqual([true, 'EAI_AGAIN', 'cannot find the rendezvous server ::1: the name could not be looked up (no DNS answer; offline?)', 'rendezvous', undefined])
    expect(r(sys('ENOTFOUND', 'x'))).toEqual([true, 'ENOTFOUND', 'cannot find the rendezvous server the server: the name does not resolve', 'rendezvous', undefined])
    expect(r(sys('ENOTFOUND', 'x'), 'host:80:extra')).toEqual([true, 'ENOTFOUND', 'cannot find the rendezvous server host:80:extra: the name does not resolve', 'rendezvous', undefined])
    // Anything else keeps its own words, on one line
    expect(r(sys('ETIMEDOUT', 'no answer\n  from the server'), 'rv:1')).toEqual([true, 'ETIMEDOUT', 'no answer from the server', 'rendezvous', undefined])
  })

  it('transfer: timeouts and resets as what the peer did; other failures keep their words; codes kept or ERR_FAILED', () => {
    const t = (e: unknown, peer?: 'sender' | 'receiver'): unknown => shape(inUserTerms(e, { stage: 'transfer', peer }))
    expect(t(sys('ETIMEDOUT', 'read ETIMEDOUT 127.0.0.1:41353'), 'receiver')).toEqual([true, 'ETIMEDOUT', 'the receiver stopped responding (the connection timed out)', 'transfer', undefined])
    expect(t(sys('ECONNRESET', 'read ECONNRESET'), 'sender')).toEqual([true, 'ECONNRESET', 'the sender closed the connection', 'transfer', undefined])
    expect(t(sys('EPIPE', 'write EPIPE'))).toEqual([true, 'EPIPE', 'the peer closed the connection', 'transfer', undefined])
    expect(t(sys('ENOTFOUND', 'getaddrinfo ENOTFOUND x'))).toEqual([true, 'ENOTFOUND', 'getaddrinfo ENOTFOUND x', 'transfer', undefined])
    expect(t(sys(5, 'odd code'))).toEqual([true, 'ERR_FAILED', 'odd code', 'transfer', undefined])
    expect(t('a string thrown')).toEqual([true, 'ERR_FAILED', 'a string thrown', 'transfer', undefined])
    expect(t(null)).toEqual([true, 'ERR_FAILED', 'null', 'transfer', undefined])
  })

  it('a CliError keeps its words and peer message; it gets the stage it failed in unless it has one', () => {
    const plain = new CliError('ERR_TOO_LARGE', 'refused a file of 3 GB\nlarger than --max-size', undefined, 'too large')
    expect(shape(inUserTerms(plain, { stage: 'transfer' }))).toEqual([true, 'ERR_TOO_LARGE', 'refused a file of 3 GB\nlarger than --max-size', 'transfer', 'too large'])
    const staged = new CliError('ERR_X', 'x', 'rendezvous')
    expect(inUserTerms(staged, { stage: 'transfer' })).toBe(staged)
  })

  it('lostPeer: a transport failure mid-transfer says where; anything else is passed on untouched', () => {
    const l = (e: unknown): unknown => {
      const out = lostPeer(e, 'receiver', 'after 6.29 of 52.43 MB')
      return out === e ? 'unchanged' : shape(out)
    }
    expect(l(sys('ETIMEDOUT', 'read ETIMEDOUT'))).toEqual([true, 'ETIMEDOUT', 'the receiver stopped responding after 6.29 of 52.43 MB (the connection timed out)', undefined, undefined])
    for (const code of ['ECONNRESET', 'EPIPE']) expect(l(sys(code, 'x'))).toEqual([true, code, 'the receiver closed the connection after 6.29 of 52.43 MB', undefined, undefined])
    expect(l(new CliError('ERR_TRANSFER_CLOSED', 'the connection closed while sending'))).toEqual([true, 'ERR_TRANSFER_CLOSED', 'the receiver closed the connection after 6.29 of 52.43 MB', undefined, undefined])
    for (const e of [new CliError('ETIMEDOUT', 'already in words'), new CliError('ERR_REFUSED', 'refused'), sys('EACCES', 'denied'), sys(undefined, 'none'), 'text']) {
      expect(l(e)).toBe('unchanged')
    }
  })
})

describe('status lines', () => {
  const capture = (mode: StatusModule.StatusMode): { lines: StatusModule.StatusLines, err: () => string, out: () => string } => {
    const stderr = new PassThrough()
    const stdout = new PassThrough()
    return {
      lines: new StatusLines({ mode, stderr, stdout }),
      err: () => String(stderr.read() ?? ''),
      out: () => String(stdout.read() ?? '')
    }
  }
  const everyState = (s: StatusModule.StatusLines): void => {
    s.contacting('rv.example:8000', '--rendezvous')
    s.joiningDht(undefined, 'the default bootstrap nodes')
    s.joiningDht(['a:1', 'b:2'], 'UTP_PUNCH_DHT_BOOTSTRAP')
    s.rendezvous({ state: 'registering' } as never)
    s.rendezvous({ state: 'joining-dht' } as never)
    s.rendezvous({ state: 'published', observed: '1.2.3.4:5', mapping: 'endpoint-independent' } as never)
    s.rendezvous({ state: 'published' } as never)
    s.rendezvous({ state: 'registered', observed: '1.2.3.4:5' } as never)
    s.rendezvous({ state: 'paired', role: 'a' } as never)
    s.rendezvous({ state: 'punching', candidates: [] } as never)
    s.rendezvous({ state: 'punching', candidates: ['1.2.3.4:5', '[::1]:6'] } as never)
    s.rendezvous({ state: 'relay', reason: 'symmetric NAT' } as never)
    s.connected('direct', '1.2.3.4:5', true)
    s.connected('relay', '9.9.9.9:1', false)
    s.offering()
    s.transferring('sending', 'a.bin', 3e6)
    s.transferring('receiving', 'stdin', null)
    s.done()
  }

  it('text: one sentence per state on stderr, nothing on stdout', () => {
    const c = capture('text')
    everyState(c.lines)
    expect(c.out()).toBe('')
    expect(c.err().split('\n')).toEqual([
      'contacting the rendezvous server rv.example:8000 (from --rendezvous)',
      'joining the BitTorrent DHT through the default bootstrap nodes',
      'joining the BitTorrent DHT through a:1, b:2 (from UTP_PUNCH_DHT_BOOTSTRAP)',
      'published on the DHT, waiting for the peer',
      'published on the DHT, waiting for the peer',
      'registered, waiting for the peer',
      'peer found, checking that it holds the same code',
      'code confirmed, trying paths: none known',
      'code confirmed, trying paths: 1.2.3.4:5, [::1]:6',
      'no direct path (symmetric NAT), going through the server\'s relay',
      'connected via direct path to 1.2.3.4:5, encrypted',
      'connected via relay path to 9.9.9.9:1, not encrypted',
      'waiting for the receiver to accept',
      'sending a.bin (3.00 MB)',
      'receiving stdin (size unknown)',
      'done',
      ''
    ])
  })

  it('--json: the same states as status events on stdout with their details; off: nothing', () => {
    const c = capture('json')
    everyState(c.lines)
    expect(c.err()).toBe('')
    const events = c.out().trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    expect(events).toEqual([
      { event: 'status', state: 'contacting', server: 'rv.example:8000', source: '--rendezvous', message: 'contacting the rendezvous server rv.example:8000 (from --rendezvous)' },
      { event: 'status', state: 'contacting', dht: true, bootstrap: null, source: 'the default bootstrap nodes', message: 'joining the BitTorrent DHT through the default bootstrap nodes' },
      { event: 'status', state: 'contacting', dht: true, bootstrap: ['a:1', 'b:2'], source: 'UTP_PUNCH_DHT_BOOTSTRAP', message: 'joining the BitTorrent DHT through a:1, b:2 (from UTP_PUNCH_DHT_BOOTSTRAP)' },
      { event: 'status', state: 'registered', observed: '1.2.3.4:5', mapping: 'endpoint-independent', message: 'published on the DHT, waiting for the peer' },
      { event: 'status', state: 'registered', observed: null, mapping: null, message: 'published on the DHT, waiting for the peer' },
      { event: 'status', state: 'registered', observed: '1.2.3.4:5', message: 'registered, waiting for the peer' },
      { event: 'status', state: 'paired', role: 'a', message: 'peer found, checking that it holds the same code' },
      { event: 'status', state: 'punching', candidates: [], message: 'code confirmed, trying paths: none known' },
      { event: 'status', state: 'punching', candidates: ['1.2.3.4:5', '[::1]:6'], message: 'code confirmed, trying paths: 1.2.3.4:5, [::1]:6' },
      { event: 'status', state: 'relay', reason: 'symmetric NAT', message: 'no direct path (symmetric NAT), going through the server\'s relay' },
      { event: 'status', state: 'connected', path: 'direct', remote: '1.2.3.4:5', encrypted: true, message: 'connected via direct path to 1.2.3.4:5, encrypted' },
      { event: 'status', state: 'connected', path: 'relay', remote: '9.9.9.9:1', encrypted: false, message: 'connected via relay path to 9.9.9.9:1, not encrypted' },
      { event: 'status', state: 'offering', message: 'waiting for the receiver to accept' },
      { event: 'status', state: 'transferring', name: 'a.bin', bytes: 3e6, message: 'sending a.bin (3.00 MB)' },
      { event: 'status', state: 'transferring', name: 'stdin', bytes: null, message: 'receiving stdin (size unknown)' },
      { event: 'status', state: 'done', message: 'done' }
    ])
    // The message comes last, after the details
    expect(Object.keys(events[0]).at(-1)).toBe('message')
    const off = capture('off')
    everyState(off.lines)
    expect([off.err(), off.out()]).toEqual(['', ''])
  })
})
