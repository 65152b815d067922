// The congestion controller choice: the `congestion` option, socket.setCongestion(), and what stats() says
import { describe, expect, it } from 'vitest'

import { cleanupNodes, closed, drainHash, listeningNode, makeNode, once, writeRandom, type Socket } from './helpers/utp'

const MiB = 1024 * 1024

describe('congestion control choice', () => {
  cleanupNodes()

  for (const ioThread of [false, true]) {
    describe(ioThread ? 'ioThread' : 'loop mode', () => {
      it('connections run the node\'s controller: ledbat by default, cubic when asked', async () => {
        let accepted: Socket | undefined
        const { port } = await listeningNode({ ioThread, congestion: 'cubic' }, s => { accepted = s })
        const plain = makeNode({ ioThread }).connect(port, '127.0.0.1')
        await once(plain, 'connect')
        expect(plain.stats()?.congestion).toBe('ledbat')
        const cubic = makeNode({ ioThread, congestion: 'cubic' }).connect(port, '127.0.0.1')
        await once(cubic, 'connect')
        expect(cubic.stats()?.congestion).toBe('cubic')
        // The server's node chose cubic for what it accepts
        expect(accepted?.stats()?.congestion).toBe('cubic')
        const s = cubic.stats()
        expect(s).not.toBeNull()
        for (const k of ['congestionEvents', 'spuriousTimeouts', 'blackHoles'] as const) {
          expect(typeof s?.[k]).toBe('number')
          expect(s?.[k]).toBeGreaterThanOrEqual(0)
        }
        plain.destroy()
        cubic.destroy()
      })

      it('setCongestion() switches one connection, also before it exists, and data still flows', async () => {
        const size = 4 * MiB
        let received: Promise<{ bytes: number, sha256: string }> | undefined
        const { port } = await listeningNode({ ioThread }, s => {
          s.setCongestion('cubic')
          expect(s.stats()?.congestion).toBe('cubic')
          received = drainHash(s)
        })
        // 'localhost' is looked up first: the choice waits for the native connection
        const socket = makeNode({ ioThread }).connect(port, 'localhost')
        expect(socket.stats()).toBeNull()
        socket.resume()
        socket.setCongestion('cubic')
        await once(socket, 'connect')
        expect(socket.stats()?.congestion).toBe('cubic')
        const sent = await writeRandom(socket, size)
        expect(received).toBeDefined()
        const got = await (received as NonNullable<typeof received>)
        expect(got).toEqual({ bytes: size, sha256: sent })
        // The handshake's packet-size upgrade rebuilds the controller: the choice survives it
        expect(socket.stats()?.congestion).toBe('cubic')
        socket.setCongestion('ledbat')
        expect(socket.stats()?.congestion).toBe('ledbat')
        await closed(socket)
        // The final numbers keep it
        expect(socket.stats()?.congestion).toBe('ledbat')
      })
    })
  }
})
