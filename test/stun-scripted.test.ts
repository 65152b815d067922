// STUN's client and NAT discovery driven through a scripted node on a fake clock: the socket is an
// EventEmitter that records each request (when, where, which CHANGE-REQUEST flags) and answers as a script
// says, so the retransmission schedule, each way a transaction ends, the bind and lookup paths and every
// RFC 5780 verdict are checked to the millisecond without real timeouts. stun.test.ts runs the same code
// against real sockets, a simulated NAT and coturn.
import * as dns from 'dns'
import { EventEmitter, getEventListeners } from 'events'
import { afterEach, describe, expect, it, vi } from 'vitest'

import { fakeClockFromZero, requireFromRoot } from './helpers/utp'

const stun = requireFromRoot('./dist/lib/stun.js') as typeof import('../lib/stun')
type StunNode = import('../lib/stun').StunNode
type StunError = import('../lib/stun').StunError
type AddressInfo = import('../lib/native').AddressInfo
const { StunAttr, StunType } = stun

interface Request { at: number, port: number, address: string, flags: number, id: Buffer }
type Reply = (msg: Buffer, from?: { address: string, port: number }) => void

/** A node's UDP socket as STUN sees it: requests recorded, answers from `script` */
class ScriptedUdp extends EventEmitter {
  readonly requests: Request[] = []
  script: (req: Request, reply: Reply) => void = () => {}
  /** Given to the send callback, as dgram reports a failed send */
  sendError: Error | null = null
  /** Thrown by send() itself */
  sendThrows: Error | null = null

  send (bytes: Buffer, port: number, address: string, cb: (err: Error | null) => void): void {
    if (this.sendThrows !== null) throw this.sendThrows
    const msg = stun.decodeStunMessage(bytes)
    const flags = msg.attributes.find(a => a.type === StunAttr.CHANGE_REQUEST)?.value.readUInt32BE(0) ?? 0
    const req = { at: Date.now(), port, address, flags, id: msg.transactionId }
    this.requests.push(req)
    queueMicrotask(() => {
      cb(this.sendError)
      this.script(req, (m, from = { address, port }) => {
        this.emit('message', m, { address: from.address, port: from.port, family: from.address.includes(':') ? 'IPv6' : 'IPv4', size: m.length })
      })
    })
  }
}

class ScriptedNode extends EventEmitter {
  readonly udp = new ScriptedUdp()
  local: AddressInfo = { address: '10.0.0.2', port: 5000, family: 'IPv4' }
  /** Thrown by address(), as a node not bound yet (EBADF) or closed throws */
  addressError: Error | null = null
  bindAsync = vi.fn(async (_port: number): Promise<AddressInfo> => {
    this.addressError = null
    return this.local
  })

  getUdpSocket (): ScriptedUdp { return this.udp }
  address (): AddressInfo {
    if (this.addressError !== null) throw this.addressError
    return this.local
  }

  get asStunNode (): StunNode { return this as unknown as StunNode }
}

const coded = (code: string, message = code): Error => Object.assign(new Error(message), { code })
const success = (id: Buffer, mapped: { address: string, port: number }, other?: { address: string, port: number }): Buffer =>
  stun.encodeStunMessage(StunType.BINDING_SUCCESS, id, [
    stun.encodeAddressAttribute(StunAttr.XOR_MAPPED_ADDRESS, mapped, id),
    ...(other === undefined ? [] : [stun.encodeAddressAttribute(StunAttr.OTHER_ADDRESS, other, id)])
  ])

/** How p ended, once every timer that could end it has run; 'pending' if nothing did */
async function outcome<T> (p: Promise<T>): Promise<{ value?: T, error?: StunError, at: number } | 'pending'> {
  let result: { value?: T, error?: StunError, at: number } | 'pending' = 'pending'
  p.then(value => { result = { value, at: Date.now() } }, (error: StunError) => { result = { error, at: Date.now() } })
  await vi.runAllTimersAsync()
  return result
}

fakeClockFromZero()
afterEach(() => { vi.restoreAllMocks() })

const SERVER = '192.0.2.1:3478'

describe('stunBinding through a scripted socket', () => {
  it('retransmits at 0, 500 and 1500 ms, then gives up Rm x RTO (8 s) after the last request, saying how many it sent', async () => {
    const n = new ScriptedNode()
    const t0 = Date.now()
    const r = await outcome(stun.stunBinding(n.asStunNode, SERVER, { retransmits: 2, timeoutMs: 60_000 }))
    expect(n.udp.requests.map(q => q.at - t0)).toEqual([0, 500, 1500])
    expect(n.udp.requests.map(q => `${q.address}:${q.port}`)).toEqual([SERVER, SERVER, SERVER])
    expect(r).toMatchObject({ at: t0 + 9500, error: { code: 'ERR_STUN_TIMEOUT', message: `no STUN response from ${SERVER} to 3 requests` } })
    expect(vi.getTimerCount()).toBe(0)
    expect(n.udp.listenerCount('message') + n.udp.listenerCount('close')).toBe(0)
  })

  it('ends at the time budget first, with its own message, and clears every timer and listener on success', async () => {
    const n = new ScriptedNode()
    const t0 = Date.now()
    const budget = await outcome(stun.stunBinding(n.asStunNode, SERVER))
    expect(budget).toMatchObject({ at: t0 + 3000, error: { code: 'ERR_STUN_TIMEOUT', message: `STUN Binding to ${SERVER} timed out after 3000 ms` } })
    expect(n.udp.requests.map(q => q.at - t0)).toEqual([0, 500, 1500])

    n.udp.script = (req, reply) => reply(success(req.id, { address: '198.51.100.9', port: 40000 }))
    const user = new AbortController()
    const p = stun.stunBinding(n.asStunNode, SERVER, { signal: user.signal, timeoutMs: 60_000 })
    await vi.advanceTimersByTimeAsync(0)
    expect(await p).toMatchObject({ mapped: { address: '198.51.100.9', port: 40000 }, from: { address: '192.0.2.1', port: 3478 } })
    expect(vi.getTimerCount()).toBe(0) // neither the budget nor a retransmission left behind
    expect(getEventListeners(user.signal, 'abort')).toHaveLength(0)
    expect(n.udp.listenerCount('message') + n.udp.listenerCount('close')).toBe(0)
  })

  it('ends at once with the error of a failed send, whether the callback reports it or send() throws', async () => {
    const n = new ScriptedNode()
    const unreachable = coded('EHOSTUNREACH', 'send EHOSTUNREACH 192.0.2.1:3478')
    n.udp.sendError = unreachable
    const t0 = Date.now()
    expect(await outcome(stun.stunBinding(n.asStunNode, SERVER))).toEqual({ error: unreachable, at: t0 })
    expect(n.udp.requests).toHaveLength(1)

    n.udp.sendError = null
    const closed = coded('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running')
    n.udp.sendThrows = closed
    expect(await outcome(stun.stunBinding(n.asStunNode, SERVER))).toEqual({ error: closed, at: t0 })
    expect(vi.getTimerCount()).toBe(0)
  })

  it('ends at once when the socket closes under it', async () => {
    const n = new ScriptedNode()
    const p = stun.stunBinding(n.asStunNode, SERVER)
    await vi.advanceTimersByTimeAsync(100)
    n.udp.emit('close')
    const t = Date.now()
    expect(await outcome(p)).toMatchObject({ at: t, error: { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' } })
    expect(n.udp.requests).toHaveLength(1)
  })

  it('reads an error answer without ERROR-CODE as code 0 with no reason, and takes no mapped address from a request', async () => {
    const n = new ScriptedNode()
    n.udp.script = (req, reply) => reply(stun.encodeStunMessage(StunType.BINDING_ERROR, req.id))
    const bare = await outcome(stun.stunBinding(n.asStunNode, SERVER))
    expect(bare).toMatchObject({ error: { code: 'ERR_STUN_ERROR_RESPONSE', message: `STUN server ${SERVER} answered with error 0`, stunCode: 0, stunReason: '' } })

    // A request (or anything not a success) carrying an address is not an answer
    n.udp.script = (req, reply) => {
      reply(stun.encodeStunMessage(StunType.BINDING_REQUEST, req.id, [stun.encodeAddressAttribute(StunAttr.XOR_MAPPED_ADDRESS, { address: '198.51.100.1', port: 1 }, req.id)]))
      reply(success(req.id, { address: '198.51.100.2', port: 2 }))
    }
    const r = await outcome(stun.stunBinding(n.asStunNode, SERVER))
    expect(r).toMatchObject({ value: { mapped: { address: '198.51.100.2', port: 2 } } })
  })

  it('sends nothing when aborted before the first request, even by an abort just before it', async () => {
    const n = new ScriptedNode()
    const user = new AbortController()
    const getUdpSocket = n.getUdpSocket.bind(n)
    // The abort lands just before the transaction starts, after the last wait that watches the signal
    n.getUdpSocket = () => { user.abort(); return getUdpSocket() }
    const r = await outcome(stun.stunBinding(n.asStunNode, SERVER, { signal: user.signal }))
    expect(r).toMatchObject({ at: 0, error: { code: 'ABORT_ERR' } })
    expect(n.udp.requests).toHaveLength(0)
  })

  it('says a non-string server is not a string', async () => {
    const n = new ScriptedNode()
    const r = await outcome(stun.stunBinding(n.asStunNode, 3478 as unknown as string))
    expect(r).toMatchObject({ error: { code: 'ERR_INVALID_ARG_TYPE', message: 'The "server" argument must be of type string. Received type number (3478)' } })
  })
})

describe('stunBinding binds the node first when it must', () => {
  it('binds a node that is not bound yet (EBADF), or lets a closed one (NOT_RUNNING) report through its bind', async () => {
    const n = new ScriptedNode()
    n.udp.script = (req, reply) => reply(success(req.id, { address: '198.51.100.9', port: 40000 }))
    n.addressError = coded('EBADF', 'getsockname EBADF')
    expect(await outcome(stun.stunBinding(n.asStunNode, SERVER))).toMatchObject({ value: { mapped: { port: 40000 } } })
    expect(n.bindAsync.mock.calls).toEqual([[0]])

    n.addressError = coded('ERR_SOCKET_DGRAM_NOT_RUNNING', 'from address()')
    const fromBind = coded('ERR_SOCKET_DGRAM_NOT_RUNNING', 'from bindAsync()')
    n.bindAsync.mockRejectedValueOnce(fromBind)
    expect(await outcome(stun.stunBinding(n.asStunNode, SERVER))).toEqual({ error: fromBind, at: 0 })
  })

  it('passes any other error of address() on, without binding', async () => {
    const n = new ScriptedNode()
    const odd = coded('EINVAL', 'getsockname EINVAL')
    n.addressError = odd
    expect(await outcome(stun.stunBinding(n.asStunNode, SERVER))).toEqual({ error: odd, at: 0 })
    expect(n.bindAsync).not.toHaveBeenCalled()
    expect(n.udp.requests).toHaveLength(0)
  })

  it('waits for a bind under way (ALREADY_BOUND), then sends; ends at once if the node closes or the caller aborts first', async () => {
    const n = new ScriptedNode()
    n.udp.script = (req, reply) => reply(success(req.id, { address: '198.51.100.9', port: 40000 }))
    n.addressError = coded('EBADF')
    n.bindAsync.mockRejectedValue(coded('ERR_SOCKET_ALREADY_BOUND'))

    const bound = stun.stunBinding(n.asStunNode, SERVER)
    await vi.advanceTimersByTimeAsync(200)
    expect(n.udp.requests).toHaveLength(0)
    n.addressError = null
    n.emit('bound')
    expect(await outcome(bound)).toMatchObject({ value: { mapped: { port: 40000 } } })
    expect(n.listenerCount('bound') + n.listenerCount('close')).toBe(0)

    n.addressError = coded('EBADF')
    const closing = stun.stunBinding(n.asStunNode, SERVER)
    await vi.advanceTimersByTimeAsync(200)
    n.emit('close')
    const t = Date.now()
    expect(await outcome(closing)).toMatchObject({ at: t, error: { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' } })

    const user = new AbortController()
    const aborted = stun.stunBinding(n.asStunNode, SERVER, { signal: user.signal })
    await vi.advanceTimersByTimeAsync(200)
    user.abort()
    expect(await outcome(aborted)).toMatchObject({ at: t + 200, error: { code: 'ABORT_ERR' } })
    expect(n.listenerCount('bound') + n.listenerCount('close')).toBe(0)

    // Aborted while the bind was being refused: no wait for a 'bound' that will not come
    const early = new AbortController()
    n.bindAsync.mockImplementationOnce(async () => { early.abort(); throw coded('ERR_SOCKET_ALREADY_BOUND') })
    expect(await outcome(stun.stunBinding(n.asStunNode, SERVER, { signal: early.signal }))).toMatchObject({ error: { code: 'ABORT_ERR' } })
    expect(n.udp.requests).toHaveLength(1)
  })
})

describe('stunBinding looks a host name up in the family the node can reach', () => {
  it('asks DNS only for names, for IPv4 on an IPv4 socket, either on a dual-stack one and IPv6 on an IPv6-only one', async () => {
    const familyOf = (args: unknown[]): number => (args[1] as { family: number }).family
    const answer = async (...args: unknown[]): Promise<unknown> => ({ address: familyOf(args) === 6 ? '2001:db8::1' : '192.0.2.1', family: 4 })
    const lookup = vi.spyOn(dns.promises, 'lookup').mockImplementation(answer as typeof dns.promises.lookup)
    const n = new ScriptedNode()
    n.udp.script = (req, reply) => reply(success(req.id, { address: '198.51.100.9', port: 40000 }))
    await outcome(stun.stunBinding(n.asStunNode, SERVER))
    expect(lookup).not.toHaveBeenCalled()
    const families: Array<[string, number]> = []
    for (const local of [{ address: '10.0.0.2', family: 'IPv4' }, { address: '::', family: 'IPv6' }, { address: '::1', family: 'IPv6' }] as const) {
      n.local = { ...local, port: 5000 }
      lookup.mockClear()
      await outcome(stun.stunBinding(n.asStunNode, 'stun.example:3478'))
      families.push([local.address, familyOf(lookup.mock.calls[0])])
    }
    expect(families).toEqual([['10.0.0.2', 4], ['::', 0], ['::1', 6]])
    expect(n.udp.requests.map(q => q.address)).toEqual(['192.0.2.1', '192.0.2.1', '192.0.2.1', '2001:db8::1'])
  })

  it('stops waiting for a lookup when aborted, before or during it', async () => {
    vi.spyOn(dns.promises, 'lookup').mockImplementation(async () => await new Promise(() => {}))
    const n = new ScriptedNode()
    const during = new AbortController()
    const p = stun.stunBinding(n.asStunNode, 'stun.example:3478', { signal: during.signal })
    await vi.advanceTimersByTimeAsync(100)
    during.abort()
    expect(await outcome(p)).toMatchObject({ at: 100, error: { code: 'ABORT_ERR' } })

    // Aborted while the node was binding, before the lookup started
    const before = new AbortController()
    n.addressError = coded('EBADF')
    n.bindAsync.mockImplementationOnce(async () => { before.abort(); return n.local })
    expect(await outcome(stun.stunBinding(n.asStunNode, 'stun.example:3478', { signal: before.signal }))).toMatchObject({ at: 100, error: { code: 'ABORT_ERR' } })
    // A lookup that never ends still ends at the budget
    expect(await outcome(stun.stunBinding(n.asStunNode, 'stun.example:3478', { timeoutMs: 700 }))).toMatchObject({ at: 800, error: { code: 'ERR_STUN_TIMEOUT' } })
    expect(n.udp.requests).toHaveLength(0)
  })
})

// ---- NAT discovery ---------------------------------------------------------------------------------------------

const PRIMARY = { address: '192.0.2.1', port: 3478 }
const OTHER = { address: '192.0.2.2', port: 3479 }

/**
 * An RFC 5780 server at PRIMARY with its other address OTHER, behind which a NAT maps our socket to
 * `mapped(dest)` and lets an answer from `from` through if `passes(from)`. `silent` destinations never answer.
 */
function rfc5780 (n: ScriptedNode, nat: { mapped: (dest: string) => number, mappedIp?: (dest: string) => string, passes: (from: string, contacted: Set<string>) => boolean, other?: typeof OTHER | null, silent?: string[], refuseChange?: boolean }): void {
  const contacted = new Set<string>()
  const ips = [PRIMARY.address, OTHER.address]
  const ports = [PRIMARY.port, OTHER.port]
  n.udp.script = (req, reply) => {
    const dest = `${req.address}:${req.port}`
    contacted.add(dest)
    if (nat.silent?.includes(dest) === true) return
    if (req.flags !== 0 && nat.refuseChange === true) {
      reply(stun.encodeStunMessage(StunType.BINDING_ERROR, req.id, [stun.encodeErrorCode(420, 'Unknown Attribute')]))
      return
    }
    const address = (req.flags & 4) !== 0 ? ips[1 - ips.indexOf(req.address)] : req.address
    const port = (req.flags & 2) !== 0 ? ports[1 - ports.indexOf(req.port)] : req.port
    if (!nat.passes(`${address}:${port}`, contacted)) return
    const other = nat.other === undefined ? OTHER : nat.other
    reply(success(req.id, { address: nat.mappedIp?.(dest) ?? '203.0.113.7', port: nat.mapped(dest) }, other ?? undefined), { address, port })
  }
}
const EIM = (): number => 40000
const ADM = (dest: string): number => dest.startsWith(PRIMARY.address) ? 40000 : 40001
const APDM = (dest: string): number => ({ [`${PRIMARY.address}:${PRIMARY.port}`]: 40000, [`${OTHER.address}:${PRIMARY.port}`]: 40001 })[dest] ?? 40002
const EIF = (): boolean => true
const ADF = (from: string, contacted: Set<string>): boolean => [...contacted].some(c => c.split(':')[0] === from.split(':')[0])
const APDF = (from: string, contacted: Set<string>): boolean => contacted.has(from)

const discover = async (n: ScriptedNode, opts = {}): Promise<import('../lib/stun').NatBehaviorResult> => {
  const r = await outcome(stun.natBehavior(n.asStunNode, `${PRIMARY.address}:${PRIMARY.port}`, { timeoutMs: 400, ...opts }))
  if (r === 'pending' || r.error !== undefined) throw r === 'pending' ? new Error('natBehavior did not end') : r.error
  return r.value as import('../lib/stun').NatBehaviorResult
}

describe('natBehavior against a scripted RFC 5780 server and NAT', () => {
  it('runs the tests in RFC 5780\'s order: I, filtering II (other IP and port) and III (other port), mapping II and III', async () => {
    const n = new ScriptedNode()
    rfc5780(n, { mapped: APDM, passes: APDF })
    const r = await discover(n)
    expect(n.udp.requests.map(q => [`${q.address}:${q.port}`, q.flags])).toEqual([
      ['192.0.2.1:3478', 0], ['192.0.2.1:3478', 6], ['192.0.2.1:3478', 2], ['192.0.2.2:3478', 0], ['192.0.2.2:3479', 0]
    ])
    expect(r).toMatchObject({ mapping: 'address-and-port-dependent', filtering: 'address-and-port-dependent', natted: true })
    expect(r.summary).toBe('public address 203.0.113.7:40000; mapping address-and-port-dependent, filtering address-and-port-dependent (a "symmetric" NAT)')
  })

  it.each([
    [EIM, EIF, 'endpoint-independent', 'endpoint-independent', ' (a "full cone" NAT)'],
    [EIM, ADF, 'endpoint-independent', 'address-dependent', ' (a "restricted cone" NAT)'],
    [EIM, APDF, 'endpoint-independent', 'address-and-port-dependent', ' (a "port-restricted cone" NAT)'],
    [ADM, EIF, 'address-dependent', 'endpoint-independent', ' (a "symmetric" NAT)']
  ] as const)('verdict %#: mapping %s, filtering %s', async (mapped, passes, mapping, filtering, nickname) => {
    const n = new ScriptedNode()
    rfc5780(n, { mapped, passes })
    const r = await discover(n)
    expect(r.summary).toBe(`public address 203.0.113.7:40000; mapping ${mapping}, filtering ${filtering}${nickname}`)
  })

  it('tells a mapping that changes only the IP address (a NAT with a pool of addresses) from one that keeps it', async () => {
    const n = new ScriptedNode()
    rfc5780(n, { mapped: EIM, mappedIp: dest => dest.startsWith(PRIMARY.address) ? '203.0.113.7' : '203.0.113.8', passes: EIF })
    expect((await discover(n)).mapping).toBe('address-dependent')
  })

  it('gives no nickname when there is no NAT', async () => {
    const n = new ScriptedNode()
    n.local = { address: '203.0.113.7', port: 40000, family: 'IPv4' }
    rfc5780(n, { mapped: EIM, passes: EIF })
    expect((await discover(n)).summary).toBe('public address 203.0.113.7:40000 (our own: no NAT); mapping endpoint-independent, filtering endpoint-independent')
  })

  it('leaves a verdict unknown, with no nickname, when the server refuses CHANGE-REQUEST or the other address is silent or refuses', async () => {
    const refusing = new ScriptedNode()
    rfc5780(refusing, { mapped: EIM, passes: EIF, refuseChange: true })
    expect((await discover(refusing)).summary).toBe('public address 203.0.113.7:40000; mapping endpoint-independent, filtering unknown')

    const silentOther = new ScriptedNode()
    rfc5780(silentOther, { mapped: ADM, passes: EIF, silent: ['192.0.2.2:3478'] })
    expect((await discover(silentOther)).summary).toBe('public address 203.0.113.7:40000; mapping unknown, filtering endpoint-independent')

    const silentThird = new ScriptedNode()
    rfc5780(silentThird, { mapped: ADM, passes: EIF, silent: ['192.0.2.2:3479'] })
    expect((await discover(silentThird)).mapping).toBe('unknown')

    const refusingOther = new ScriptedNode()
    rfc5780(refusingOther, { mapped: ADM, passes: EIF })
    const script = refusingOther.udp.script
    refusingOther.udp.script = (req, reply) => req.address === OTHER.address
      ? reply(stun.encodeStunMessage(StunType.BINDING_ERROR, req.id, [stun.encodeErrorCode(500, 'Server Error')]))
      : script(req, reply)
    expect((await discover(refusingOther)).mapping).toBe('unknown')
  })

  it('passes on any other failure of a later test', async () => {
    for (const failing of [(q: Request) => q.flags !== 0, (q: Request) => q.address === OTHER.address]) {
      const n = new ScriptedNode()
      rfc5780(n, { mapped: ADM, passes: EIF })
      const unreachable = coded('ENETUNREACH')
      const send = n.udp.send.bind(n.udp)
      n.udp.send = (bytes, port, address, cb) => send(bytes, port, address, (err) => {
        const q = n.udp.requests[n.udp.requests.length - 1]
        cb(failing(q) ? unreachable : err)
      })
      const r = await outcome(stun.natBehavior(n.asStunNode, `${PRIMARY.address}:${PRIMARY.port}`, { timeoutMs: 400 }))
      expect(r).toMatchObject({ error: unreachable })
    }
  })

  it('says when the server cannot tell: no OTHER-ADDRESS, or one on its own IP', async () => {
    const none = new ScriptedNode()
    rfc5780(none, { mapped: EIM, passes: EIF, other: null })
    expect(await discover(none)).toMatchObject({ mapping: 'unknown', filtering: 'unknown', summary: 'public address 203.0.113.7:40000; mapping and filtering unknown: 192.0.2.1:3478 gives no OTHER-ADDRESS (no RFC 5780 support)' })
    const sameIp = new ScriptedNode()
    rfc5780(sameIp, { mapped: EIM, passes: EIF, other: { address: PRIMARY.address, port: 3479 } })
    expect(await discover(sameIp)).toMatchObject({ mapping: 'unknown', filtering: 'unknown', summary: 'public address 203.0.113.7:40000; mapping and filtering unknown: 192.0.2.1:3478 has no second IP address' })
    expect(sameIp.udp.requests).toHaveLength(1)
  })

  it('passes its options to each transaction: the timeout, the retransmissions and the signal', async () => {
    const n = new ScriptedNode()
    const r = await outcome(stun.natBehavior(n.asStunNode, `${PRIMARY.address}:${PRIMARY.port}`, { timeoutMs: 700, retransmits: 0 }))
    expect(r).toMatchObject({ at: 700, error: { code: 'ERR_STUN_TIMEOUT' } })
    expect(n.udp.requests).toHaveLength(1)
    const user = new AbortController()
    user.abort()
    expect(await outcome(stun.natBehavior(n.asStunNode, `${PRIMARY.address}:${PRIMARY.port}`, { signal: user.signal }))).toMatchObject({ error: { code: 'ABORT_ERR' } })
  })

  it.each([
    ['a specific address, mapped to itself', { address: '203.0.113.7', port: 40000 }, false],
    ['a specific address, mapped to another IP', { address: '203.0.113.8', port: 40000 }, true],
    ['a specific address, mapped to another port', { address: '203.0.113.7', port: 5000 }, true],
    ['0.0.0.0, mapped to an address of this host', { address: '0.0.0.0', port: 40000 }, false],
    ['::, mapped to an address of this host', { address: '::', port: 40000 }, false],
    ['0.0.0.0, mapped to an address not on this host', { address: '0.0.0.0', port: 40000 }, true]
  ] as const)('natted: bound to %s', async (what, local, natted) => {
    const n = new ScriptedNode()
    n.local = { ...local, family: local.address.includes(':') ? 'IPv6' : 'IPv4' }
    const wildcard = local.address === '0.0.0.0' || local.address === '::'
    const mappedIp = wildcard ? (natted ? '192.0.2.77' : '127.0.0.1') : '203.0.113.7'
    n.udp.script = (req, reply) => reply(success(req.id, { address: mappedIp, port: 40000 }))
    const r = await discover(n)
    expect(r.natted).toBe(natted)
    expect(r.summary.startsWith(`public address ${mappedIp}:40000${natted ? '' : ' (our own: no NAT)'}; mapping and filtering unknown`)).toBe(true)
  })
})

describe('mappingFromServers against scripted servers', () => {
  const servers = ['192.0.2.1:3478', '192.0.2.2:3478', '192.0.2.3:3478']

  it('needs an array of at least two servers, each well formed', async () => {
    const n = new ScriptedNode()
    await expect(stun.mappingFromServers(n.asStunNode, '192.0.2.1:3478' as unknown as string[])).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_TYPE', message: 'The "servers" argument must be an instance of Array. Received type string (\'192.0.2.1:3478\')'
    })
    await expect(stun.mappingFromServers(n.asStunNode, [servers[0]])).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE', message: "The argument 'servers' must name at least two STUN servers. Received [ '192.0.2.1:3478' ]"
    })
    expect(n.udp.requests).toHaveLength(0)
  })

  it('sums the answers up: all alike, different, or too few', async () => {
    const n = new ScriptedNode()
    const ports: Record<string, number> = { '192.0.2.1': 40000, '192.0.2.2': 40000, '192.0.2.3': 40007 }
    n.udp.script = (req, reply) => reply(success(req.id, { address: '203.0.113.7', port: ports[req.address] }))
    const alike = await outcome(stun.mappingFromServers(n.asStunNode, servers.slice(0, 2)))
    expect(alike).toMatchObject({ value: { mapping: 'endpoint-independent', summary: '2 STUN servers all saw 203.0.113.7:40000: mapping endpoint-independent' } })
    const different = await outcome(stun.mappingFromServers(n.asStunNode, servers))
    expect(different).toMatchObject({ value: { mapping: 'endpoint-dependent', summary: 'STUN servers saw different mappings (203.0.113.7:40000, 203.0.113.7:40007): mapping endpoint-dependent (a symmetric NAT)' } })

    ports['192.0.2.2'] = 0 // stands for silence below
    n.udp.script = (req, reply) => { if (ports[req.address] !== 0) reply(success(req.id, { address: '203.0.113.7', port: ports[req.address] })) }
    const before = n.udp.requests.length
    const few = await outcome(stun.mappingFromServers(n.asStunNode, servers.slice(0, 2), { timeoutMs: 600, retransmits: 0 }))
    expect(few).toMatchObject({ at: 600, value: { mapping: 'unknown', publicAddress: { port: 40000 }, summary: 'only 1 of 2 STUN servers answered; mapping unknown' } })
    expect(n.udp.requests.slice(before).map(q => q.address)).toEqual(['192.0.2.1', '192.0.2.2']) // retransmits: 0 passed on
  })
})
