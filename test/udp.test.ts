// The UDP facade (getUdpSocket) and hole punching over it
import * as dgram from 'dgram'
import { describe, expect, it } from 'vitest'

import { cleanupNodes, closedUdpPort, listeningNode, makeNode, once, requireFromRoot, sleep, type UtpError } from './helpers/utp'

interface RInfo { address: string, family: string, port: number, size: number }

/** What `heard` resolves to, as text, or 'nothing' once `ms` pass */
async function heardWithin (heard: Promise<Buffer>, ms: number): Promise<string> {
  return String(await Promise.race([heard, sleep(ms).then(() => 'nothing')]))
}

describe('UDP facade and punching', () => {
  cleanupNodes()

  it('non-uTP datagrams surface as message events; send() takes dgram argument forms', async () => {
    const n = makeNode()
    const { port } = await n.bindAsync(0, '127.0.0.1')
    const udp = n.getUdpSocket()
    expect(n.getUdpSocket()).toBe(udp)
    expect(udp.address().port).toBe(port)

    const peer = dgram.createSocket('udp4')
    await new Promise<void>(resolve => peer.bind(0, '127.0.0.1', () => resolve()))
    const peerPort = peer.address().port

    const got = once<[Buffer, RInfo]>(udp, 'message')
    const msgs: Array<[Buffer, RInfo]> = []
    udp.on('message', (m: Buffer, r: RInfo) => msgs.push([Buffer.from(m), r]))
    peer.send('tracker says hi', port, '127.0.0.1')
    await got
    expect(msgs[0][0].toString()).toBe('tracker says hi')
    expect(msgs[0][1]).toEqual({ address: '127.0.0.1', family: 'IPv4', port: peerPort, size: 15 })

    const received: string[] = []
    peer.on('message', m => received.push(m.toString()))
    const bytes = await new Promise<number | undefined>((resolve, reject) => {
      udp.send('one', peerPort, '127.0.0.1', (err, n) => err !== null ? reject(err) : resolve(n))
    })
    expect(bytes).toBe(3)
    udp.send(Buffer.from('xxtwoxx'), 2, 3, peerPort, '127.0.0.1')
    udp.send([Buffer.from('thr'), 'ee'], peerPort) // default address: loopback
    udp.send(new Uint8Array([102, 111, 117, 114]), peerPort, 'localhost')
    udp.setTTL(8)
    udp.send('five', peerPort, '127.0.0.1')
    for (let i = 0; i < 100 && received.length < 5; i++) await sleep(10)
    expect(received.sort()).toEqual(['five', 'four', 'one', 'three', 'two'])
    expect(() => udp.send('x', 70000)).toThrow(RangeError)
    expect(() => udp.setTTL(0)).toThrow(RangeError)
    peer.close()
  })

  it('datagrams that arrive together are each delivered whole, in order, with their own bytes', async () => {
    const n = makeNode()
    const { port } = await n.bindAsync(0, '127.0.0.1')
    const udp = n.getUdpSocket()
    const got: string[] = []
    udp.on('message', (m: Buffer) => got.push(m.toString()))
    const peer = dgram.createSocket('udp4')
    await new Promise<void>(resolve => peer.bind(0, '127.0.0.1', () => resolve()))
    // Sent in one go: most of them reach JavaScript in one batch, one after the other in its data
    const sent = Array.from({ length: 40 }, (_, i) => `datagram ${i} `.padEnd(20 + i, String.fromCharCode(97 + (i % 26))))
    for (const m of sent) peer.send(m, port, '127.0.0.1')
    for (let i = 0; i < 200 && got.length < sent.length; i++) await sleep(5)
    peer.close()
    expect(got).toEqual(sent)
  })

  it('punch succeeds between two nodes punching each other', async () => {
    const a = makeNode()
    const b = makeNode()
    const { port: pa } = await a.bindAsync(0, '127.0.0.1')
    const { port: pb } = await b.bindAsync(0, '127.0.0.1')
    const t0 = Date.now()
    const [ra, rb] = await Promise.all([a.punch(5, pb), b.punchAsync(5, pa, '127.0.0.1')])
    expect(ra).toBe(true)
    expect(rb).toBe(true)
    expect(Date.now() - t0).toBeLessThan(1500)
  })

  it('punch fails after its attempts when nobody answers, 500 ms apart', async () => {
    const silent = dgram.createSocket('udp4')
    await new Promise<void>(resolve => silent.bind(0, '127.0.0.1', () => resolve()))
    let probes = 0
    silent.on('message', () => probes++)
    const n = makeNode()
    const t0 = Date.now()
    const result = await new Promise<boolean>(resolve => {
      void n.punch(3, silent.address().port, '127.0.0.1', resolve)
    })
    const elapsed = Date.now() - t0
    expect(result).toBe(false)
    expect(probes).toBe(3)
    expect(elapsed).toBeGreaterThanOrEqual(1400)
    expect(elapsed).toBeLessThan(2500)
    silent.close()
  })

  it('close() cancels a punch in progress (callback gets false)', async () => {
    const n = makeNode()
    await n.bindAsync(0, '127.0.0.1')
    const result = n.punch(100, 9, '127.0.0.1')
    await sleep(50)
    n.close()
    expect(await result).toBe(false)
  })

  it('an unrelated node answers probes so the puncher succeeds even if only one side punches', async () => {
    const a = makeNode()
    const b = makeNode()
    await a.bindAsync(0, '127.0.0.1')
    const { port } = await b.bindAsync(0, '127.0.0.1')
    expect(await a.punch(3, port)).toBe(true)
  })

  it('a datagram over 65,507 bytes: EMSGSIZE in the callback, or as the facade\'s error without one', async () => {
    const n = makeNode()
    const { port } = await n.bindAsync(0, '127.0.0.1')
    const udp = n.getUdpSocket()
    const viaCallback = await new Promise<Error | null>(resolve => udp.send(Buffer.alloc(65_508), port, '127.0.0.1', (err) => resolve(err)))
    expect((viaCallback as NodeJS.ErrnoException | null)?.code).toBe('EMSGSIZE')
    const emitted = once<Error>(udp, 'error')
    udp.send(Buffer.alloc(65_508), port, '127.0.0.1')
    expect(((await emitted) as NodeJS.ErrnoException).code).toBe('EMSGSIZE')
    expect(n.stats()).toMatchObject({ rawDatagramsSent: 0, rawBytesSent: 0 })
    // the largest that fits still goes
    const sent = await new Promise<number | undefined>((resolve, reject) => udp.send(Buffer.alloc(65_507), port, '127.0.0.1', (err, bytes) => err !== null ? reject(err) : resolve(bytes)))
    expect(sent).toBe(65_507)
    expect(n.stats()).toMatchObject({ rawDatagramsSent: 1, rawBytesSent: 65_507 })
  })

  it('the facade emits \'close\' with its node; after close(): ERR_SOCKET_DGRAM_NOT_RUNNING in the callback; a host that does not resolve: its lookup error', async () => {
    const n = makeNode()
    await n.bindAsync(0, '127.0.0.1')
    const udp = n.getUdpSocket()
    const unresolved = await new Promise<Error | null>(resolve => udp.send('x', 4000, 'no-such-host.invalid', (err) => resolve(err)))
    expect((unresolved as NodeJS.ErrnoException | null)?.code).toBe('ENOTFOUND')
    // The facade closes with its node, as a dgram socket would: 'close' once
    let closes = 0
    udp.on('close', () => closes++)
    await n.closeAsync()
    expect(closes).toBe(1)
    const closedErr = await new Promise<Error | null>(resolve => udp.send('x', 4000, '127.0.0.1', (err) => resolve(err)))
    expect((closedErr as NodeJS.ErrnoException | null)?.code).toBe('ERR_SOCKET_DGRAM_NOT_RUNNING')
  })

  it('send() without an address goes to the loopback address of the bound family (::1 for a node bound to ::1, 127.0.0.1 for the dual-stack default)', async () => {
    const peer6 = dgram.createSocket('udp6')
    await new Promise<void>(resolve => peer6.bind(0, '::1', () => resolve()))
    const n6 = makeNode()
    await n6.bindAsync(0, '::1')
    const heard6 = once<Buffer>(peer6, 'message')
    n6.getUdpSocket().send('six', peer6.address().port)
    expect(String(await heard6)).toBe('six')
    // The default bind (::, both families): as the IPv4 socket utp-punch's programs used, 127.0.0.1
    const peer4 = dgram.createSocket('udp4')
    await new Promise<void>(resolve => peer4.bind(0, '127.0.0.1', () => resolve()))
    const dual = makeNode()
    const { address } = await dual.bindAsync()
    expect(address).toBe('::') // this machine has IPv6 (the ::1 socket above)
    const heard4 = once<Buffer>(peer4, 'message')
    dual.getUdpSocket().send('seven', peer4.address().port)
    // (::1 would need a udp6 socket on the same port: there is none, so nothing would arrive)
    expect(await heardWithin(heard4, 2000)).toBe('seven')
    peer6.close()
    peer4.close()
  })

  it('a name is looked up in the bound family: IPv6 for a node bound to ::1, IPv4 for 127.0.0.1, either for ::', async () => {
    // dns.lookup answers for the test (no resolver is asked): each family gets its own loopback address, so a
    // lookup in the wrong family sends to the wrong one, or from the wrong kind of socket
    const dns = requireFromRoot('dns') as { lookup: unknown }
    const realLookup = dns.lookup as (...args: unknown[]) => void
    const asked: Array<number | undefined> = []
    dns.lookup = (host: string, options: { family?: number }, cb: (err: Error | null, address: string, family: number) => void) => {
      if (host !== 'peer.example') return realLookup(host, options, cb) // the binds' own addresses
      asked.push(options.family)
      const v6 = options.family === 6
      process.nextTick(cb, null, v6 ? '::1' : '127.0.0.1', v6 ? 6 : 4)
    }
    try {
      const peer6 = dgram.createSocket('udp6')
      await new Promise<void>(resolve => peer6.bind(0, '::1', () => resolve()))
      const n6 = makeNode()
      await n6.bindAsync(0, '::1')
      const heard6 = once<Buffer>(peer6, 'message')
      expect(await new Promise(resolve => n6.getUdpSocket().send('eight', peer6.address().port, 'peer.example', resolve))).toBeNull()
      expect(await heardWithin(heard6, 2000)).toBe('eight')
      const n4 = makeNode()
      await n4.bindAsync(0, '127.0.0.1')
      const dual = makeNode()
      await dual.bindAsync()
      for (const n of [n4, dual]) await new Promise(resolve => n.getUdpSocket().send('x', 9, 'peer.example', resolve))
      expect(asked).toEqual([6, 4, 0])
      peer6.close()
    } finally {
      dns.lookup = realLookup
    }
  })

  // Linux and Android: elsewhere an unconnected UDP socket hears of no ICMP error
  it.runIf(process.platform === 'linux' || process.platform === 'android').each([{ ioThread: false }, { ioThread: true }])('a datagram sent right after one to a closed port still goes out: the ICMP error it meets is the other\'s (%o)', async (mode) => {
    // On loopback the port unreachable comes back during the first send, and Linux hands the error to the next
    // call on the socket, whichever datagram that is for. The send that meets it is not the one refused
    const peer = dgram.createSocket('udp4')
    await new Promise<void>(resolve => peer.bind(0, '127.0.0.1', () => resolve()))
    const heard: string[] = []
    peer.on('message', (m: Buffer) => heard.push(String(m)))
    const n = makeNode(mode)
    await n.bindAsync(0, '127.0.0.1')
    const udp = n.getUdpSocket()
    const errors: string[] = []
    udp.on('error', (e: UtpError) => errors.push(e.code))
    const closed = await closedUdpPort('127.0.0.1')
    const results: Array<Error | null> = []
    for (let i = 0; i < 5; i++) {
      await new Promise<void>(resolve => udp.send('into the void', closed, '127.0.0.1', (e) => { results.push(e); resolve() }))
      await new Promise<void>(resolve => udp.send(`heard ${i}`, peer.address().port, '127.0.0.1', (e) => { results.push(e); resolve() }))
    }
    for (let i = 0; i < 50 && heard.length < 5; i++) await sleep(10)
    expect(heard).toEqual(['heard 0', 'heard 1', 'heard 2', 'heard 3', 'heard 4'])
    expect(results).toEqual(Array(10).fill(null))
    expect(errors).toEqual([])
    expect(n.stats().unreachable, 'the port unreachables were read').toBeGreaterThanOrEqual(1)
    peer.close()
  })

  it('a datagram to an IP address sent in the same tick as close() still goes out; one to a name whose lookup ends after close() does not', async () => {
    // An address needs no lookup, so the datagram leaves before close() runs, as a program that sends a last
    // word and closes expects. A name's lookup ends after close(); the node is still closing (a connection's
    // writes wait for its reader), and the native socket would still send: the datagram must not go out. With a
    // callback, the callback says the socket is gone; without one, it is dropped silently, as dgram drops it
    const peer = dgram.createSocket('udp4')
    await new Promise<void>(resolve => peer.bind(0, '127.0.0.1', () => resolve()))
    const heard: string[] = []
    peer.on('message', (m: Buffer) => heard.push(String(m)))
    const { node: n, port } = await listeningNode({}, (s) => {
      s.on('error', () => {})
      for (let i = 0; i < 64; i++) s.write(Buffer.alloc(64 * 1024))
    })
    const reader = await makeNode().connectAsync(port, '127.0.0.1')
    reader.pause() // takes nothing: the server's writes wait, and so does its close()
    reader.on('error', () => {})
    await sleep(50)
    const udp = n.getUdpSocket()
    const errors: string[] = []
    udp.on('error', (e: UtpError) => errors.push(e.code))
    const first = once<Buffer>(peer, 'message')
    const sent = new Promise<Error | null>(resolve => udp.send('last word', peer.address().port, '127.0.0.1', resolve))
    const named = new Promise<Error | null>(resolve => udp.send('too late', peer.address().port, 'localhost', resolve))
    udp.send('too late, no callback', peer.address().port, 'localhost')
    let nodeClosed = false
    n.once('close', () => { nodeClosed = true })
    n.close()
    expect(await sent).toBeNull()
    expect(await named).toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
    expect(nodeClosed).toBe(false) // the lookups ended while the node was still closing, as this test needs
    expect(await heardWithin(first, 2000)).toBe('last word')
    await sleep(100)
    expect(heard).toEqual(['last word'])
    expect(errors).toEqual([])
    reader.destroy()
    peer.close()
  })

  it('sends waiting for the automatic bind when close() comes: ERR_SOCKET_DGRAM_NOT_RUNNING in the callback, dropped without an error when there is none', async () => {
    // A program that sends and closes at once must not crash on an 'error' nobody listens for
    const n = makeNode()
    const udp = n.getUdpSocket()
    const errors: string[] = []
    udp.on('error', (e: UtpError) => errors.push(e.code))
    const withCallback = new Promise<Error | null>(resolve => udp.send('x', 9, '127.0.0.1', resolve))
    udp.send('y', 9, '127.0.0.1')
    n.close()
    expect(await withCallback).toMatchObject({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
    await sleep(50)
    expect(errors).toEqual([])
  })
})
