// `utp-punch-rs rendezvous` on its own (bin/rendezvous-command.ts): each flag reaching its server option, every
// bad value's usage error, the library's own range errors as usage errors, and the log lines in text and JSON
// for each server event, run in-process on loopback. The deployed command is in server-production.test.ts.
import { PassThrough } from 'stream'
import { afterEach, describe, expect, it, vi } from 'vitest'

import type * as ArgsModule from '../bin/args'
import type * as CommandModule from '../bin/rendezvous-command'
import type * as ServerModule from '../lib/server/server'
import { requireFromRoot } from './helpers/utp'

const { rendezvousOptions, rendezvousCommand } = requireFromRoot('./dist/bin/rendezvous-command.js') as typeof CommandModule
const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
const { UsageError } = requireFromRoot('./dist/bin/args.js') as typeof ArgsModule

afterEach(() => { vi.restoreAllMocks() })

const outcome = (fn: () => unknown): unknown => {
  try {
    return fn()
  } catch (e) {
    return [e instanceof UsageError ? 'UsageError' : 'other', (e as { code?: string }).code, (e as Error).message]
  }
}
const usage = (message: string): unknown => ['UsageError', 'ERR_USAGE', message]
const opts = (line: string): unknown => outcome(() => rendezvousOptions(line === '' ? [] : line.split(' ')))

describe('rendezvous command options', () => {
  it('the defaults: only what the command decides, the rest left to the library', () => {
    // Strictly: an option not given is absent, not undefined
    expect(opts('')).toStrictEqual({ port: 7000, host: '0.0.0.0', http: true, relay: true, mappingCheck: true, checkPort: 0 })
  })

  it('every flag reaches its option', () => {
    expect(opts('--port 0 --host :: --no-http --http-host ::1 --http-timeout 2s --no-relay --relay-rate 2MB/s --relay-idle 30 --max-relays 5 ' +
      '--relays-per-prefix 2 --relay-budget 1GB/10m --registration-ttl 90s --max-registrations 100 --registrations-per-prefix 3 ' +
      '--registration-rate 5/s:10 --registration-rate-global 60/s:120 --burn-time 1m --max-message-size 64 --rate-limit 7 ' +
      '--unverified-rate 100/s:200 --start-delay 250ms --no-mapping-check --check-port 7001 --mapping-wait 2s')).toEqual({
      port: 0,
      host: '::',
      http: false,
      httpHost: '::1',
      httpTimeoutMs: 2000,
      relay: false,
      relayRate: 2e6,
      relayIdleMs: 30_000,
      maxRelays: 5,
      relaysPerPrefix: 2,
      relayBudget: { bytes: 1e9, windowMs: 600_000 },
      registrationTtlMs: 90_000,
      maxRegistrations: 100,
      registrationsPerPrefix: 3,
      registrationRate: { perPrefix: { perSecond: 5, burst: 10 }, global: { perSecond: 60, burst: 120 } },
      burnMs: 60_000,
      maxMessageSize: 64,
      rateLimit: { perSecond: 7, burst: 14 },
      unverifiedRate: { perSecond: 100, burst: 200 },
      startDelayMs: 250,
      mappingCheck: false,
      checkPort: 7001,
      mappingWaitMs: 2000
    })
  })

  it('the forms of rates, sizes per second and budgets; one registration rate keeps the other\'s default', () => {
    const pick = (line: string, key: string): unknown => (rendezvousOptions(line.split(' ')) as Record<string, unknown>)[key]
    expect(pick('--registration-rate 3', 'registrationRate')).toEqual({ perPrefix: { perSecond: 3, burst: 6 }, global: { perSecond: 50, burst: 100 } })
    expect(pick('--registration-rate-global 7/s', 'registrationRate')).toEqual({ perPrefix: { perSecond: 10, burst: 40 }, global: { perSecond: 7, burst: 14 } })
    expect(pick('--rate-limit 0.2', 'rateLimit')).toEqual({ perSecond: 0.2, burst: 1 })
    expect(pick('--rate-limit 1.5/s', 'rateLimit')).toEqual({ perSecond: 1.5, burst: 3 })
    expect(pick('--relay-rate 1000000', 'relayRate')).toBe(1e6)
    expect(pick('--relay-rate 1KiB/s', 'relayRate')).toBe(1024)
    expect(pick('--relay-budget 36GB/1h', 'relayBudget')).toEqual({ bytes: 36e9, windowMs: 3_600_000 })
    expect(pick('--relay-budget 1GB/0.5h', 'relayBudget')).toEqual({ bytes: 1e9, windowMs: 1_800_000 })
    expect(pick('--relay-budget 5MB/10', 'relayBudget')).toEqual({ bytes: 5e6, windowMs: 10_000 })
    expect(pick('--relay-budget 5MB/500ms', 'relayBudget')).toEqual({ bytes: 5e6, windowMs: 500 })
    expect(pick('--max-relays 0', 'maxRelays')).toBe(0)
    expect(pick('--relay-rate 1', 'relayRate')).toBe(1)
    expect(pick('--relay-budget 1GB/1ms', 'relayBudget')).toEqual({ bytes: 1e9, windowMs: 1 })
    expect(pick('--rate-limit 1.25/s', 'rateLimit')).toEqual({ perSecond: 1.25, burst: 3 })
  })

  it('refuses bad values, naming the flag', () => {
    expect(opts('extra')).toEqual(usage('unexpected argument extra'))
    expect(opts('--host example.org')).toEqual(usage('--host must be an IP address, got example.org'))
    expect(opts('--http-host localhost')).toEqual(usage('--http-host must be an IP address, got localhost'))
    expect(opts('--host=')).toEqual(usage('--host needs a value'))
    for (const bad of ['x', '-1', '1.5', '']) expect([bad, outcome(() => rendezvousOptions(['--max-relays', bad]))]).toEqual([bad, usage(`--max-relays must be a whole number >= 0, got ${bad}`)])
    expect(opts('--max-message-size 63')).toEqual(usage('--max-message-size must be a whole number >= 64, got 63'))
    for (const name of ['registration-rate', 'registration-rate-global', 'rate-limit', 'unverified-rate']) {
      expect(opts(`--${name} x`)).toEqual(usage(`--${name} must be a rate such as 20/s or 20/s:40 (per second, with a burst), got x`))
    }
    for (const name of ['max-relays', 'relays-per-prefix', 'max-registrations', 'registrations-per-prefix']) {
      expect(opts(`--${name} x`)).toEqual(usage(`--${name} must be a whole number >= 0, got x`))
    }
    for (const bad of ['0/s', 'fast', '-1MB/s', '/s1MB']) expect([bad, opts(`--relay-rate ${bad}`)]).toEqual([bad, usage(`--relay-rate must be a positive rate such as 1MB/s, got ${bad}`)])
    for (const bad of ['36GB', '36GB/1d', '/1h', '36GB/', 'lots/1h', '/1GB/1h']) expect([bad, opts(`--relay-budget ${bad}`)]).toEqual([bad, usage(`--relay-budget must be SIZE/DURATION such as 36GB/1h, got ${bad}`)])
    expect(opts('--relay-budget 1GB/0.0000001h')).toEqual(usage('--relay-budget: the window must be at least 1 ms'))
    expect(opts('--relay-budget 1GB/0')).toEqual(usage('--relay-budget must be at least 1 ms'))
    for (const bad of ['x', '20/m', '20/s:', '20/s:x', '-1']) {
      expect([bad, opts(`--rate-limit ${bad}`)]).toEqual([bad, usage(`--rate-limit must be a rate such as 20/s or 20/s:40 (per second, with a burst), got ${bad}`)])
    }
    expect(opts('--unverified-rate 5/s:0')).toEqual(usage('--unverified-rate: the burst must be at least 1'))
    expect(opts('--port 70000')).toEqual(usage('--port must be a port number 0..65535, got 70000'))
    expect(opts('--check-port x')).toEqual(usage('--check-port must be a port number 0..65535, got x'))
    expect(opts('--burn-time 1h')).toEqual(usage('--burn-time must be a duration such as 30, 30s, 500ms or 2m, got 1h'))
  })
})

describe('rendezvous command run', () => {
  /** Starts the command; returns its output so far, the server it made and a way to stop it as SIGTERM does */
  const run = async (argv: string[]): Promise<{ out: () => string, server: ServerModule.RendezvousServer, stop: () => void, status: Promise<number>, listenersBefore: number[] }> => {
    const listenersBefore = [process.listeners('SIGINT').length, process.listeners('SIGTERM').length]
    const stdout = new PassThrough()
    let text = ''
    stdout.on('data', (d: Buffer) => { text += d.toString() })
    const listen = vi.spyOn(RendezvousServer.prototype, 'listen')
    const made = (): ServerModule.RendezvousServer | undefined => listen.mock.contexts[0] as ServerModule.RendezvousServer | undefined
    const before = process.listeners('SIGTERM')
    const status = rendezvousCommand(['--host', '127.0.0.1', '--port', '0', '--no-mapping-check', ...argv], { stdout }, () => 99)
    while (made() === undefined || process.listeners('SIGTERM').length === before.length) await new Promise(resolve => setTimeout(resolve, 5))
    const server = made() as ServerModule.RendezvousServer
    const added = process.listeners('SIGTERM').filter(l => !before.includes(l))
    expect(added).toHaveLength(1)
    // The same stop on SIGINT
    expect(process.listeners('SIGINT')).toContain(added[0])
    return { out: () => text, server, stop: () => { (added[0] as () => void)() }, status, listenersBefore }
  }
  const events = (s: ServerModule.RendezvousServer): void => {
    s.emit('paired', { key: 'k1', connect: { address: '1.2.3.4', port: 5 }, accept: { address: '::1', port: 6 } })
    s.emit('relay', { key: 'k2', ports: [7001, 7002] })
    s.emit('moved', { key: 'k3', to: { address: '9.8.7.6', port: 4 } })
    s.emit('burned', { key: 'k4', reason: 'used' })
  }
  const ts = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

  it('--help answers without starting anything; the library\'s range errors are usage errors', async () => {
    const listen = vi.spyOn(RendezvousServer.prototype, 'listen')
    expect(await rendezvousCommand(['--help'], { stdout: new PassThrough() }, () => 42)).toBe(42)
    expect(listen).not.toHaveBeenCalled()
    let libraryMessage = ''
    try {
      void new RendezvousServer({ port: 0, httpTimeoutMs: 10 })
    } catch (e) {
      libraryMessage = (e as Error).message
    }
    expect(libraryMessage).not.toBe('')
    expect(await rendezvousCommand(['--http-timeout', '10ms'], { stdout: new PassThrough() }, () => 0).then(() => 'started', (e: Error) => outcome(() => { throw e }))).toEqual(usage(libraryMessage))
  })

  it('text: the listening line first, then a timestamped line per event, and the stats when stopped', async () => {
    const r = await run([])
    events(r.server)
    const port = r.server.address().port
    r.stop()
    expect(await r.status).toBe(0)
    const lines = r.out().trim().split('\n')
    expect(lines[0]).toBe(`rendezvous server listening on 127.0.0.1:${port}`)
    const rest = lines.slice(1).map(l => l.split(' '))
    for (const words of rest) expect(words[0]).toMatch(ts)
    expect(rest.map(w => w.slice(1).join(' '))).toEqual([
      'paired 1.2.3.4:5 (connects) with [::1]:6 (key k1)',
      'relay allocated on ports 7001 and 7002 (key k2)',
      'a paired peer moved to 9.8.7.6:4 (NAT rebinding): its peer was told',
      'key k4 burned (used)',
      expect.stringMatching(/^closed after \d+ s: 0 pairings, 0 relays$/)
    ])
    expect([process.listeners('SIGINT').length, process.listeners('SIGTERM').length]).toEqual(r.listenersBefore)
  })

  it('--json: the same as JSON lines with their fields', async () => {
    const r = await run(['--json'])
    events(r.server)
    const port = r.server.address().port
    r.stop()
    await r.status
    const lines = r.out().trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    for (const l of lines) expect(l.ts).toMatch(ts)
    const stats = r.server.stats()
    const logged = lines.at(-1) as { stats: { uptimeSeconds: number } }
    expect(lines.map(({ ts: _, ...rest }) => rest)).toEqual([
      { level: 'info', event: 'listening', address: '127.0.0.1', port },
      { level: 'info', event: 'paired', key: 'k1', connect: { address: '1.2.3.4', port: 5 }, accept: { address: '::1', port: 6 } },
      { level: 'info', event: 'relay', key: 'k2', ports: [7001, 7002] },
      { level: 'info', event: 'moved', key: 'k3', to: { address: '9.8.7.6', port: 4 } },
      { level: 'info', event: 'burned', key: 'k4', reason: 'used' },
      { level: 'info', event: 'closed', stats: JSON.parse(JSON.stringify({ ...stats, uptimeSeconds: logged.stats.uptimeSeconds })) }
    ])
  })
})
