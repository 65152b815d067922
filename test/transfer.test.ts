// Bulk data over loopback: 64 MiB in each direction at the same time, compared by sha256, with loopback-sized
// and internet-sized packets (test/helpers/paths.ts)
import { describe, expect, it } from 'vitest'

import { expectMode, PATH_MODES, withMode } from './helpers/paths'
import { cleanupNodes, closed, drainHash, listeningNode, makeNode, writeRandom, type Socket } from './helpers/utp'

const MiB = 1024 * 1024
/**
 * How long both 64 MiB may take. 0.39-0.65 s measured with either packet size on a loaded two-core machine
 * (internet-sized ones are ten times as many packets, 52-56 thousand sent by each side, at about the same speed)
 */
const TRANSFER_BOUND_MS = 2000

describe.each(PATH_MODES)('bulk transfer with $name', (mode) => {
  cleanupNodes()

  it('64 MiB each way at once arrives intact', async () => {
    const size = 64 * MiB
    let serverSide: Promise<[string, { bytes: number, sha256: string }]> | undefined
    let serverSocket: Socket | undefined
    // Both directions end independently: without allowHalfOpen the first side to finish would end the other
    const options = withMode(mode, { allowHalfOpen: true })
    const { port } = await listeningNode(options, socket => {
      serverSocket = socket
      serverSide = Promise.all([writeRandom(socket, size), drainHash(socket)])
    })
    const socket = makeNode(options).connect(port)
    const started = Date.now()
    const [sent, received] = await Promise.all([writeRandom(socket, size), drainHash(socket)])
    expect(serverSide).toBeDefined()
    const [serverSent, serverReceived] = await (serverSide as NonNullable<typeof serverSide>)
    const secs = (Date.now() - started) / 1000
    console.log(`${mode.name}: 64 MiB each way in ${secs.toFixed(2)} s (${((2 * size) / MiB / secs).toFixed(1)} MiB/s in total), ` +
      `${socket.stats()?.packetsSent} packets of ${socket.stats()?.mtu} bytes sent by the client`)
    expect(received.bytes).toBe(size)
    expect(serverReceived.bytes).toBe(size)
    expect(received.sha256).toBe(serverSent)
    expect(serverReceived.sha256).toBe(sent)
    expectMode(socket, mode, size)
    expectMode(serverSocket as Socket, mode, size)
    expect(secs * 1000).toBeLessThan(TRANSFER_BOUND_MS)
    await closed(socket)
  })
})
