// Faulty networks through a UDP relay: a vanished peer, loss/duplication/reordering, hostile datagrams; with
// loopback-sized and internet-sized packets (test/helpers/paths.ts)
import * as dgram from 'dgram'
import { afterEach, describe, expect, it } from 'vitest'

import { expectMode, expectPacketSize, PATH_MODES, withMode } from './helpers/paths'
import { createRelay, kernelDrops, type Relay } from './helpers/relay'
import { cleanupNodes, closed, drainHash, listeningNode, makeNode, once, sleep, writeRandom, type Socket } from './helpers/utp'

const MiB = 1024 * 1024
/** How long 4 MiB sprayed with forged datagrams may take: 30-420 ms measured in either mode, loaded machine */
const HOSTILE_BOUND_MS = 1500
/**
 * How long 8 MiB through the lossy relay may take. Loopback packets: 60-270 ms measured, so 1.5 s. Internet-sized
 * packets are about twelve times as many datagrams through the relay (a JavaScript process): 140-380 ms in 17 of 18
 * runs on a loaded machine, once 845 ms (3 timer expiries while the load average was 9); the same bound holds
 */
const LOSSY_RELAY_BOUND_MS: Record<string, number> = { 'loopback packets': 1500, 'internet-sized packets': 1500 }

describe.each(PATH_MODES)('faulty networks with $name', (mode) => {
  const relays: Relay[] = []
  // after-hooks run last-registered first: nodes close (through their relays) before the relays go
  afterEach(async () => {
    await Promise.all(relays.splice(0).map(r => r.close()))
  })
  cleanupNodes()

  it('a peer that vanishes gives timeout and ETIMEDOUT within about the configured timeout', async () => {
    const timeout = 1500
    let serverSocket!: Socket
    const { node: server, port } = await listeningNode(withMode(mode, { timeout }), s => {
      serverSocket = s
      s.on('error', () => {}) // the server side times out too
      s.resume()
    })
    const relay = await createRelay(port)
    relays.push(relay)
    const client = makeNode(withMode(mode, { timeout }))
    const socket = client.connect(relay.port)
    await once(socket, 'connect')
    // The server announces the connection once our confirmation of its SYN-ACK arrives: a moment later
    if (serverSocket === undefined) await once(server, 'connection')
    socket.write('before')
    await once(serverSocket, 'data')
    expectPacketSize(socket, mode)

    relay.faults.blackhole = true
    const t0 = Date.now()
    socket.write('into the void')
    const events: string[] = []
    const nodeTimeout = once<Socket>(client, 'timeout')
    socket.on('timeout', () => events.push(`timeout@${Date.now() - t0}`))
    const err = await new Promise<NodeJS.ErrnoException>(resolve => socket.once('error', resolve))
    const elapsed = Date.now() - t0
    console.log(`vanished peer: ${events.join(', ')}, error after ${elapsed} ms`)
    expect(err.code).toBe('ETIMEDOUT')
    expect(events.length).toBe(1)
    expect(elapsed).toBeGreaterThanOrEqual(1000)
    expect(elapsed).toBeLessThanOrEqual(4000)
    expect(await nodeTimeout).toBe(socket)
    await closed(socket)
  })

  it('8 MiB through 5% loss with duplication and reordering arrives intact', async () => {
    let serverSide: Promise<{ bytes: number, sha256: string }> | undefined
    let serverSocket: Socket | undefined
    const { port } = await listeningNode(withMode(mode), s => {
      serverSocket = s
      serverSide = drainHash(s)
    })
    const relay = await createRelay(port, { loss: 0.05, dup: 0.02, reorder: 0.02, reorderDelay: 8 }, 0x5eed)
    relays.push(relay)
    const socket = makeNode(withMode(mode)).connect(relay.port)
    socket.resume()
    const t0 = Date.now()
    const sent = await writeRandom(socket, 8 * MiB)
    await once(socket, 'finish')
    expect(serverSide).toBeDefined()
    const got = await (serverSide as NonNullable<typeof serverSide>)
    const elapsed = Date.now() - t0
    const ours = socket.stats()
    console.log(`lossy relay (${mode.name}): 8 MiB in ${elapsed} ms, ${JSON.stringify(relay.stats)}, ${ours?.packetsSent} packets of ` +
      `${ours?.mtu} bytes, retransmits ${ours?.retransmits}, timeouts ${ours?.timeouts} (${ours?.spuriousTimeouts} found spurious), ` +
      `rtt ${ours?.rtt} µs, duplicates received by the server ${serverSocket?.stats()?.duplicates}, dropped by the relay's full receive buffer ${kernelDrops(relay.port)}`)
    // Losses are repaired from SACKs and duplicate ACKs, not by waiting for the retransmission timer: 60-270 ms
    // and 0-1 timer expiries here. With SACK loss detection switched off this test still passed (issue 14),
    // taking 1.1-1.9 s with 10-15 expiries
    expectMode(socket, mode, 8 * MiB)
    // The loss is the fault model's, not the relay's own receive buffer overflowing: with the default buffer the
    // kernel dropped 95-118 of the loopback packets besides the model's 28-30, bursts that cost up to 5 timer
    // expiries and failed the timeout bound below in 2 of 6 runs on a loaded machine
    expect(kernelDrops(relay.port) ?? 0).toBe(0)
    expect(elapsed).toBeLessThan(LOSSY_RELAY_BOUND_MS[mode.name])
    expect(socket.stats()?.timeouts).toBeLessThanOrEqual(4)
    expect(got.bytes).toBe(8 * MiB)
    expect(got.sha256).toBe(sent)
    expect(relay.stats.dropped).toBeGreaterThan(0)
  })

  it('hostile datagrams from another address during a transfer change nothing', async () => {
    const client = makeNode(withMode(mode))
    const { port: clientPort } = await client.bindAsync(0, '127.0.0.1')
    let serverSide: Promise<{ bytes: number, sha256: string }> | undefined
    let strangers = 0
    const { port } = await listeningNode(withMode(mode), s => {
      if (s.remotePort === clientPort) {
        serverSide = drainHash(s)
        return
      }
      // Random junk can be a well-formed SYN: a listening node accepts it like any connection. The
      // stranger never answers, so that connection just fails; it must not disturb the real one
      strangers++
      s.on('error', () => {})
      s.resume()
    })
    const socket = client.connect(port, '127.0.0.1')
    socket.resume()
    await once(socket, 'connect')

    // Forged uTP headers (DATA, STATE, RESET) for every connection id, at both nodes' ports, plus random junk
    const attacker = dgram.createSocket('udp4')
    await new Promise<void>(resolve => attacker.bind(0, '127.0.0.1', () => resolve()))
    let sprayed = 0
    let id = 0
    const burst = (): void => {
      for (let k = 0; k < 64; k++, id = (id + 1) & 0xffff) {
        for (const type of [0, 2, 3]) {
          const pkt = Buffer.alloc(type === 0 ? 120 : 20)
          pkt[0] = (type << 4) | 1
          pkt.writeUInt16BE(id, 2)
          pkt.writeUInt32BE((Math.random() * 0xffffffff) >>> 0, 4)
          pkt.writeUInt32BE(0x10000, 12)
          pkt.writeUInt16BE((Math.random() * 0xffff) | 0, 16)
          pkt.writeUInt16BE((Math.random() * 0xffff) | 0, 18)
          attacker.send(pkt, port, '127.0.0.1')
          attacker.send(pkt, clientPort, '127.0.0.1')
          sprayed += 2
        }
        const junk = Buffer.alloc(1 + ((Math.random() * 200) | 0))
        for (let i = 0; i < junk.length; i++) junk[i] = (Math.random() * 256) | 0
        attacker.send(junk, port, '127.0.0.1')
        sprayed++
      }
    }
    const sprayer = setInterval(burst, 1)
    let sent: string
    let got: { bytes: number, sha256: string }
    let sprayedBefore = 0
    let sprayedDuring = 0
    const t0 = Date.now()
    try {
      // The first bursts go out before the transfer starts: a transfer over in a few ms (16 KB packets on an idle
      // machine) still meets a thousand forged datagrams queued at both ends
      while (sprayed < 1000) await sleep(1)
      sprayedBefore = sprayed
      sent = await writeRandom(socket, 4 * MiB)
      sprayedDuring = sprayed - sprayedBefore
      expect(serverSide).toBeDefined()
      got = await (serverSide as NonNullable<typeof serverSide>)
    } finally {
      clearInterval(sprayer)
      attacker.close()
    }
    const elapsed = Date.now() - t0
    console.log(`hostile (${mode.name}): ${sprayedBefore} forged/junk datagrams before and ${sprayedDuring} during the transfer of ` +
      `${elapsed} ms, ${socket.stats()?.packetsSent} packets of ${socket.getMtu()} bytes sent; ${strangers} junk SYNs accepted`)
    expect(got.bytes).toBe(4 * MiB)
    expect(got.sha256).toBe(sent)
    expect(sprayedBefore).toBeGreaterThanOrEqual(1000)
    expectMode(socket, mode, 4 * MiB)
    expect(elapsed).toBeLessThan(HOSTILE_BOUND_MS)
    await closed(socket)
  })
})
