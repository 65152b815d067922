// The local end of a rendezvous on its own: our LAN candidates from a scripted interface list, which peer
// candidates a socket can reach and in which order (lib/rendezvous/candidates.ts); binding the node when
// nobody did, the server's lookup in the right family, and the DHT bootstrap entries' addresses
// (lib/rendezvous/local.ts), with DNS scripted and a fake clock.
import * as dns from 'dns'
import { EventEmitter } from 'events'
import type * as os from 'os'
import { afterEach, describe, expect, it, vi } from 'vitest'

import type * as CandidatesModule from '../lib/rendezvous/candidates'
import type * as LocalModule from '../lib/rendezvous/local'
import { fakeClockFromZero, requireFromRoot } from './helpers/utp'

const { lanCandidates, canReach, orderCandidates, describeCandidate } = requireFromRoot('./dist/lib/rendezvous/candidates.js') as typeof CandidatesModule
const local = requireFromRoot('./dist/lib/rendezvous/local.js') as typeof LocalModule
// The module object the library calls, so that a spy on it is seen there
const osModule = requireFromRoot('os') as typeof os
type AddressInfo = import('../lib/native').AddressInfo

afterEach(() => { vi.restoreAllMocks() })

const iface = (address: string, internal = false): os.NetworkInterfaceInfo => ({
  address, internal, family: address.includes(':') ? 'IPv6' : 'IPv4', netmask: '', mac: '', cidr: null, ...(address.includes(':') ? { scopeid: 0 } : {})
}) as os.NetworkInterfaceInfo

function interfaces (list: Record<string, string[] | undefined>, internal: string[] = []): void {
  vi.spyOn(osModule, 'networkInterfaces').mockReturnValue(Object.fromEntries(Object.entries(list).map(([name, addresses]) =>
    [name, addresses?.map(a => iface(a, internal.includes(a)))])) as NodeJS.Dict<os.NetworkInterfaceInfo[]>)
}
const bound = (address: string, port = 4000): AddressInfo => ({ address, port, family: address.includes(':') ? 'IPv6' : 'IPv4' })

describe('lanCandidates', () => {
  it('a wildcard bind offers every usable interface address, IPv4 first; IPv6 only on ::', () => {
    interfaces({
      lo: ['127.0.0.1', '::1'],
      eth0: ['2001:db8::5', '192.168.1.20', 'fe80::1', 'FE90::2', '2001:db8::fe80:1'],
      wlan0: ['10.0.0.7', '169.254.3.3', '::ffff:10.0.0.8', 'feb0::3', 'fec0::4'],
      gone: undefined
    }, ['127.0.0.1', '::1'])
    expect(lanCandidates(bound('::'))).toEqual([
      { address: '192.168.1.20', port: 4000 }, { address: '10.0.0.7', port: 4000 }, { address: '10.0.0.8', port: 4000 },
      { address: '2001:db8::5', port: 4000 }, { address: '2001:db8::fe80:1', port: 4000 }, { address: 'fec0::4', port: 4000 }
    ])
    expect(lanCandidates(bound('0.0.0.0'))).toEqual([
      { address: '192.168.1.20', port: 4000 }, { address: '10.0.0.7', port: 4000 }
    ])
    expect(lanCandidates(bound('::ffff:0.0.0.0'))).toEqual(lanCandidates(bound('0.0.0.0')))
  })

  it('at most 16', () => {
    interfaces({ eth0: Array.from({ length: 20 }, (_, i) => `10.0.0.${i + 1}`) })
    expect(lanCandidates(bound('0.0.0.0')).map(c => c.address)).toEqual(Array.from({ length: 16 }, (_, i) => `10.0.0.${i + 1}`))
  })

  it('a bind to one address offers that address only, and none for loopback', () => {
    interfaces({ eth0: ['192.168.1.20', '10.0.0.7'] })
    expect(lanCandidates(bound('192.168.1.20'))).toEqual([{ address: '192.168.1.20', port: 4000 }])
    expect(lanCandidates(bound('::FFFF:10.0.0.7'))).toEqual([{ address: '10.0.0.7', port: 4000 }])
    expect(lanCandidates(bound('2001:DB8::5'))).toEqual([{ address: '2001:db8::5', port: 4000 }])
    for (const loopback of ['127.0.0.1', '127.8.9.1', '::1']) expect(lanCandidates(bound(loopback))).toEqual([])
  })
})

describe('candidates a socket can reach, in order', () => {
  it('canReach: a dual-stack socket reaches both families, any other only its own', () => {
    expect(['192.0.2.1', '2001:db8::1'].map(a => canReach(bound('::'), a))).toEqual([true, true])
    expect(['192.0.2.1', '2001:db8::1'].map(a => canReach(bound('0.0.0.0'), a))).toEqual([true, false])
    expect(['192.0.2.1', '2001:db8::1'].map(a => canReach(bound('::1'), a))).toEqual([false, true])
    expect(canReach(bound('::ffff:10.0.0.1'), '192.0.2.1')).toBe(true)
  })

  it('orderCandidates: LAN first or last, reachable only, deduplicated (a public address also on the LAN stays lan)', () => {
    let n = 0
    const nonce = (): string => `n${++n}`
    const peer = {
      public: { address: '203.0.113.5', port: 40000 },
      lan: [{ address: '192.168.1.20', port: 4000 }, { address: '2001:db8::5', port: 4000 }, { address: '::ffff:192.168.1.20', port: 4000 }, { address: '203.0.113.5', port: 40000 }]
    }
    const lanFirst = orderCandidates(peer, bound('0.0.0.0'), true, nonce)
    expect(lanFirst).toEqual([
      { address: '192.168.1.20', port: 4000, kind: 'lan', nonce: 'n1', sent: 0, acked: false },
      { address: '203.0.113.5', port: 40000, kind: 'lan', nonce: 'n2', sent: 0, acked: false }
    ])
    const publicFirst = orderCandidates(peer, bound('::'), false, nonce)
    expect(publicFirst.map(describeCandidate)).toEqual(['203.0.113.5:40000 (lan)', '192.168.1.20:4000 (lan)', '[2001:db8::5]:4000 (lan)'])
    const onlyPublic = orderCandidates({ public: peer.public, lan: [] }, bound('::'), true, nonce)
    expect(onlyPublic.map(describeCandidate)).toEqual(['203.0.113.5:40000 (public)'])
  })
})

/** A node as the rendezvous sees it before binding: address() throws until bound */
class ScriptedNode extends EventEmitter {
  at: AddressInfo | null = null
  bindAsync = vi.fn(async (): Promise<AddressInfo> => {
    this.at = bound('::', 5000)
    return this.at
  })

  address (): AddressInfo {
    if (this.at === null) throw Object.assign(new Error('getsockname EBADF'), { code: 'EBADF' })
    return this.at
  }
}
const asTransport = (n: ScriptedNode): Parameters<typeof local.ensureBound>[0] => n as unknown as Parameters<typeof local.ensureBound>[0]

describe('ensureBound', () => {
  it('takes the bound address, or binds a free dual-stack port', async () => {
    const n = new ScriptedNode()
    n.at = bound('10.0.0.2')
    expect(await local.ensureBound(asTransport(n))).toEqual(bound('10.0.0.2'))
    expect(n.bindAsync).not.toHaveBeenCalled()
    n.at = null
    expect(await local.ensureBound(asTransport(n))).toEqual(bound('::', 5000))
    expect(n.bindAsync.mock.calls).toEqual([[]])
  })

  it('passes a failed bind on, and waits for a bind under way: its address, or its error', async () => {
    const n = new ScriptedNode()
    const refused = Object.assign(new Error('bind EACCES'), { code: 'EACCES' })
    n.bindAsync.mockRejectedValueOnce(refused)
    await expect(local.ensureBound(asTransport(n))).rejects.toBe(refused)

    const busy = Object.assign(new Error('already'), { code: 'ERR_SOCKET_ALREADY_BOUND' })
    n.bindAsync.mockRejectedValue(busy)
    const waiting = local.ensureBound(asTransport(n))
    await new Promise(resolve => setImmediate(resolve))
    n.emit('bound', bound('10.0.0.9', 7000))
    expect(await waiting).toEqual(bound('10.0.0.9', 7000))
    expect(n.listenerCount('bound') + n.listenerCount('error')).toBe(0)

    const failing = local.ensureBound(asTransport(n))
    await new Promise(resolve => setImmediate(resolve))
    const inUse = Object.assign(new Error('bind EADDRINUSE'), { code: 'EADDRINUSE' })
    n.emit('error', inUse)
    await expect(failing).rejects.toBe(inUse)
    expect(n.listenerCount('bound') + n.listenerCount('error')).toBe(0)
  })
})

describe('the server\'s address and the bootstrap nodes\'', () => {
  it('lookup: IP literals as they are (normalized), names in the family the socket reaches', async () => {
    const calls: unknown[] = []
    vi.spyOn(dns.promises, 'lookup').mockImplementation((async (host: string, o: { family: number }) => {
      calls.push([host, o.family])
      return { address: o.family === 6 ? '2001:DB8::7' : '::ffff:192.0.2.7', family: o.family }
    }) as unknown as typeof dns.promises.lookup)
    expect(await local.lookup('::FFFF:192.0.2.1', bound('::'))).toBe('192.0.2.1')
    expect(calls).toEqual([])
    expect(await local.lookup('rv.example', bound('10.0.0.2'))).toBe('192.0.2.7')
    expect(await local.lookup('rv.example', bound('::ffff:10.0.0.2'))).toBe('192.0.2.7')
    expect(await local.lookup('rv.example', bound('::'))).toBe('192.0.2.7')
    expect(await local.lookup('rv.example', bound('::1'))).toBe('2001:db8::7')
    expect(calls).toEqual([['rv.example', 4], ['rv.example', 4], ['rv.example', 0], ['rv.example', 6]])
  })

  describe('bootstrapEndpoints', () => {
    fakeClockFromZero()

    it('IPv4 literals as they are, names resolved to every IPv4 address; malformed, IPv6 and failed entries left out', async () => {
      const asked: unknown[] = []
      vi.spyOn(dns.promises, 'lookup').mockImplementation((async (host: string, o: object) => {
        asked.push([host, o])
        if (host === 'gone.example') throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' })
        return [{ address: '198.51.100.1', family: 4 }, { address: '198.51.100.2', family: 4 }]
      }) as unknown as typeof dns.promises.lookup)
      const found = await local.bootstrapEndpoints(['192.0.2.1:6881', '[2001:db8::1]:6881', 'router.example:6881', 'gone.example:6881', 'no-port', 'x:0'])
      expect(found).toEqual([
        { address: '192.0.2.1', port: 6881 }, { address: '198.51.100.1', port: 6881 }, { address: '198.51.100.2', port: 6881 }
      ])
      expect(asked).toEqual([['router.example', { family: 4, all: true }], ['gone.example', { family: 4, all: true }]])
      expect(vi.getTimerCount()).toBe(0)
    })

    it('leaves out a name that does not resolve within the time given, and no more', async () => {
      vi.spyOn(dns.promises, 'lookup').mockImplementation((async (host: string) => await new Promise(resolve => {
        setTimeout(() => resolve([{ address: host === 'slow.example' ? '198.51.100.9' : '198.51.100.8', family: 4 }]), host === 'slow.example' ? 1500 : 999)
      })) as unknown as typeof dns.promises.lookup)
      const p = local.bootstrapEndpoints(['slow.example:1', 'quick.example:2'], 1000)
      await vi.advanceTimersByTimeAsync(1000)
      expect(await p).toEqual([{ address: '198.51.100.8', port: 2 }])
      const byDefault = local.bootstrapEndpoints(['slow.example:1'])
      await vi.advanceTimersByTimeAsync(1500)
      expect(await byDefault).toEqual([{ address: '198.51.100.9', port: 1 }])
    })
  })
})
