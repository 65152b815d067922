// Attacks on the rendezvous server's HTTP side: /stats read from another interface, and connections held
// open by sending nothing (or half a header). Each test logs its measure and failed on the server of main.
import { afterEach, describe, expect, it } from 'vitest'

import type * as ServerModule from '../lib/server/server'
import { closedAfter } from './helpers/server-harness'
import { requireFromRoot } from './helpers/utp'

const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
type Server = ServerModule.RendezvousServer

const servers: Server[] = []
afterEach(async () => { await Promise.all(servers.splice(0).map(async s => await s.close())) })

async function start (options: ServerModule.RendezvousServerOptions = {}): Promise<number> {
  const server = new RendezvousServer({ port: 0, mappingCheck: false, ...options })
  servers.push(server)
  return (await server.listen()).port
}

const measure = (what: string, value: unknown): void => console.log(`MEASURE ${what}: ${JSON.stringify(value)}`)

describe('attacks on the rendezvous server\'s HTTP side', () => {
  it('binds HTTP to loopback by default: /stats is not served on other addresses, even with a wildcard UDP host', async () => {
    const port = await start({ host: '0.0.0.0' })
    // 127.0.0.2 stands for "another interface": the wildcard socket of main answered there
    const elsewhere = await fetch(`http://127.0.0.2:${port}/stats`).then(r => r.status, (e: Error) => (e.cause as NodeJS.ErrnoException | undefined)?.code ?? e.message)
    const local = await fetch(`http://127.0.0.1:${port}/stats`).then(r => r.status)
    measure('/stats from another address, and from loopback', { elsewhere, local })
    expect(elsewhere).toBe('ECONNREFUSED')
    expect(local).toBe(200)
    // An explicit httpHost serves there
    const open = await start({ host: '127.0.0.1', httpHost: '127.0.0.3' })
    expect(await fetch(`http://127.0.0.3:${open}/healthz`).then(r => r.status)).toBe(200)
  })

  it('closes idle and half-sent HTTP connections within the timeout (5 s by default)', async () => {
    const port = await start({ host: '127.0.0.1' })
    const [idle, partial] = await Promise.all([closedAfter(port, () => {}, 9000), closedAfter(port, c => c.write('GET /stats HTTP/1.1\r\nHost: x\r\n'), 9000)])
    measure('ms an idle / half-sent HTTP connection is held', { idle, partial })
    expect(idle).toBeLessThan(7000)
    expect(partial).toBeLessThan(7000)
  })
})
