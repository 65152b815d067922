// Where the rendezvous server binds (lib/server/sockets.ts), on its own: the local addresses chosen for a
// wildcard host (from a given interface list), one socket per address on one port, cleanup when an address
// cannot be bound, the dual-stack fallback.
import * as dgram from 'dgram'
import type * as os from 'os'
import { describe, expect, it } from 'vitest'

import type * as SocketsModule from '../lib/server/sockets'
import { requireFromRoot } from './helpers/utp'

const { localAddresses, bindAll, bindUdp, closeAll, isWildcard } = requireFromRoot('./dist/lib/server/sockets.js') as typeof SocketsModule

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

  it('the \'::\' fallback is dual-stack (IPv4 peers arrive mapped); a per-address IPv6 socket leaves IPv4 alone; later errors go to onError', async () => {
    const v6 = await bindUdp('::1', 0, () => {})
    const dual = await bindUdp('::', 0, () => {})
    const v4client = dgram.createSocket('udp4')
    const got = new Promise<string>(resolve => dual.once('message', (_m, rinfo) => resolve(rinfo.address)))
    v4client.send('hi', dual.address().port, '127.0.0.1')
    expect(await got).toBe('::ffff:127.0.0.1')
    // The socket bound to ::1 holds nothing of IPv4: 127.0.0.1 on the same port number is free. (Whether it is
    // also marked IPv6-only cannot be seen: a socket bound to one IPv6 address gets no IPv4 either way.)
    const sameV4Port = dgram.createSocket('udp4')
    await new Promise<void>((resolve, reject) => { sameV4Port.once('error', reject); sameV4Port.bind(v6.address().port, '127.0.0.1', resolve) })
    let errors = 0
    const counted = await bindUdp('127.0.0.1', 0, () => { errors++ })
    counted.emit('error', new Error('ICMP port unreachable'))
    expect(errors).toBe(1)
    for (const s of [v6, dual, v4client, sameV4Port, counted]) s.close()
  })
})
