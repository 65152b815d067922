// Where the rendezvous server binds (lib/server/sockets.ts) and what its /metrics says (lib/server/metrics.ts),
// each on its own: the local addresses chosen for a wildcard host (from a given interface list), one socket
// per address on one port, cleanup when an address cannot be bound, and the Prometheus text.
import * as dgram from 'dgram'
import type * as os from 'os'
import { describe, expect, it } from 'vitest'

import type * as MetricsModule from '../lib/server/metrics'
import type * as ServerModule from '../lib/server/server'
import type * as SocketsModule from '../lib/server/sockets'
import { requireFromRoot } from './helpers/utp'

const { localAddresses, bindAll, bindUdp, closeAll, isWildcard } = requireFromRoot('./dist/lib/server/sockets.js') as typeof SocketsModule
const { prometheusText } = requireFromRoot('./dist/lib/server/metrics.js') as typeof MetricsModule

const nic = (address: string, family: 'IPv4' | 'IPv6'): os.NetworkInterfaceInfo =>
  ({ address, family, netmask: '', mac: '00:00:00:00:00:00', internal: false, cidr: null, ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as os.NetworkInterfaceInfo

describe('where the rendezvous server binds', () => {
  it('a wildcard host means every usable local address of its family; another host means itself', () => {
    const interfaces = {
      lo: [nic('127.0.0.1', 'IPv4'), nic('::1', 'IPv6')],
      eth0: [nic('192.0.2.7', 'IPv4'), nic('FE80::1', 'IPv6'), nic('2001:db8::7', 'IPv6')],
      eth1: [nic('192.0.2.7', 'IPv4')], // the same address twice is bound once
      down: undefined
    }
    expect(localAddresses('0.0.0.0', interfaces)).toEqual(['127.0.0.1', '192.0.2.7'])
    expect(localAddresses('::', interfaces)).toEqual(['127.0.0.1', '::1', '192.0.2.7', '2001:db8::7'])
    expect(localAddresses('192.0.2.7', interfaces)).toEqual(['192.0.2.7'])
    expect(localAddresses('::1', interfaces)).toEqual(['::1'])
    // No interfaces at all (a bare container): the wildcard itself
    expect(localAddresses('0.0.0.0', {})).toEqual(['0.0.0.0'])
    expect(localAddresses('::', { lo: [nic('fe80::2', 'IPv6')] })).toEqual(['::'])
    expect([isWildcard('0.0.0.0'), isWildcard('::'), isWildcard('::0'), isWildcard('127.0.0.1')]).toEqual([true, true, false, false])
  })

  it('binds one socket per address on the port the first got, and closes them all when one cannot be bound', async () => {
    const bound = await bindAll(['127.0.0.1', '127.0.0.2', '::1'], 0, () => {})
    const port = bound[0].socket.address().port
    expect(bound.map(b => [b.address, b.socket.address().address, b.socket.address().port])).toEqual([['127.0.0.1', '127.0.0.1', port], ['127.0.0.2', '127.0.0.2', port], ['::1', '::1', port]])
    await closeAll(bound)
    await closeAll(bound) // closing twice is harmless
    for (const b of bound) expect(() => b.socket.address()).toThrow(/Not running/)
    // 192.0.2.1 is not an address of this host: the two bound before it are closed again, so their port is
    // free on both addresses at once
    await expect(bindAll(['127.0.0.1', '127.0.0.2', '192.0.2.1'], port, () => {})).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' })
    const again = await bindAll(['127.0.0.1', '127.0.0.2'], port, () => {})
    expect(again.map(b => b.socket.address().port)).toEqual([port, port])
    await closeAll(again)
  })

  it('an IPv6 address gets an IPv6-only socket, the \'::\' fallback a dual-stack one; later errors go to onError', async () => {
    const v6 = await bindUdp('::1', 0, () => {})
    const dual = await bindUdp('::', 0, () => {})
    const v4client = dgram.createSocket('udp4')
    const got = new Promise<string>(resolve => dual.once('message', (_m, rinfo) => resolve(rinfo.address)))
    v4client.send('hi', dual.address().port, '127.0.0.1')
    expect(await got).toBe('::ffff:127.0.0.1')
    // The per-address socket takes no IPv4: binding IPv4 on its port number elsewhere is possible only if
    // it is IPv6-only, which a dual-stack '::' socket on that port would forbid
    const sameV4Port = dgram.createSocket('udp4')
    await new Promise<void>((resolve, reject) => { sameV4Port.once('error', reject); sameV4Port.bind(v6.address().port, '127.0.0.1', resolve) })
    let errors = 0
    const counted = await bindUdp('127.0.0.1', 0, () => { errors++ })
    counted.emit('error', new Error('ICMP port unreachable'))
    expect(errors).toBe(1)
    for (const s of [v6, dual, v4client, sameV4Port, counted]) s.close()
  })
})

describe('/metrics', () => {
  it('gives HELP, TYPE and a sample for each metric, and the refusals by code, sorted, with label values escaped', () => {
    const stats = {
      registrations: 3, pairings: 1, relays: 2, relayedBytes: 1000, rateLimited: 4, unverifiedDropped: 5, quotaRefused: 6,
      retries: 7, errors: 8, pakeFailures: 9, expired: 10, moves: 11, activeRegistrations: 12, activePairings: 13,
      activeRelays: 14, burnedKeys: 15, uptimeSeconds: 16, refusals: { ERR_FULL: 2, 'A"B\\C\nD': 1 }
    } as unknown as ServerModule.RendezvousStats
    const text = prometheusText(stats)
    expect(text.endsWith('\n')).toBe(true)
    const lines = text.trimEnd().split('\n')
    expect(lines.slice(0, 3)).toEqual([
      '# HELP utp_punch_rendezvous_registrations_total Registrations accepted since start',
      '# TYPE utp_punch_rendezvous_registrations_total counter',
      'utp_punch_rendezvous_registrations_total 3'
    ])
    const samples = Object.fromEntries(lines.filter(l => !l.startsWith('#')).map(l => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]))
    expect(samples).toEqual({
      utp_punch_rendezvous_registrations_total: 3,
      utp_punch_rendezvous_pairings_total: 1,
      utp_punch_rendezvous_relays_total: 2,
      utp_punch_rendezvous_relayed_bytes_total: 1000,
      utp_punch_rendezvous_rate_limited_datagrams_total: 4,
      utp_punch_rendezvous_unverified_dropped_datagrams_total: 5,
      utp_punch_rendezvous_quota_refusals_total: 6,
      utp_punch_rendezvous_retries_total: 7,
      utp_punch_rendezvous_errors_total: 8,
      utp_punch_rendezvous_pake_failures_total: 9,
      utp_punch_rendezvous_expired_registrations_total: 10,
      utp_punch_rendezvous_moves_total: 11,
      utp_punch_rendezvous_registrations: 12,
      utp_punch_rendezvous_pairings: 13,
      utp_punch_rendezvous_relays: 14,
      utp_punch_rendezvous_burned_keys: 15,
      utp_punch_rendezvous_uptime_seconds: 16,
      'utp_punch_rendezvous_refusals_total{code="A_B_C_D"}': 1,
      'utp_punch_rendezvous_refusals_total{code="ERR_FULL"}': 2
    })
    expect(lines.slice(-4)).toEqual([
      '# HELP utp_punch_rendezvous_refusals_total Error replies sent, by error code',
      '# TYPE utp_punch_rendezvous_refusals_total counter',
      'utp_punch_rendezvous_refusals_total{code="A_B_C_D"} 1',
      'utp_punch_rendezvous_refusals_total{code="ERR_FULL"} 2'
    ])
    // Every metric has its HELP and TYPE, gauges for what is alive now
    expect(lines.filter(l => l.startsWith('# TYPE') && l.endsWith(' gauge')).length).toBe(5)
    expect(lines.filter(l => l.startsWith('# HELP')).length).toBe(18)
  })
})
