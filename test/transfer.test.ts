// Bulk data over loopback: 64 MiB in each direction at the same time, compared by sha256
import { describe, expect, it } from 'vitest'

import { cleanupNodes, closed, drainHash, listeningNode, makeNode, writeRandom } from './helpers/utp'

const MiB = 1024 * 1024

describe('bulk transfer', () => {
  cleanupNodes()

  it('64 MiB each way at once arrives intact', async () => {
    const size = 64 * MiB
    let serverSide: Promise<[string, { bytes: number, sha256: string }]> | undefined
    // Both directions end independently: without allowHalfOpen the first side to finish would end the other
    const options = { allowHalfOpen: true }
    const { port } = await listeningNode(options, socket => {
      serverSide = Promise.all([writeRandom(socket, size), drainHash(socket)])
    })
    const socket = makeNode(options).connect(port)
    const started = Date.now()
    const [sent, received] = await Promise.all([writeRandom(socket, size), drainHash(socket)])
    expect(serverSide).toBeDefined()
    const [serverSent, serverReceived] = await (serverSide as NonNullable<typeof serverSide>)
    const secs = (Date.now() - started) / 1000
    console.log(`64 MiB each way in ${secs.toFixed(2)} s (${((2 * size) / MiB / secs).toFixed(1)} MiB/s in total)`)
    expect(received.bytes).toBe(size)
    expect(serverReceived.bytes).toBe(size)
    expect(received.sha256).toBe(serverSent)
    expect(serverReceived.sha256).toBe(sent)
    await closed(socket)
  })
})
