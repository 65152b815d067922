// Rendezvous servers and bare test clients for one test file, closed after each test: the harness of the
// rendezvous-server*.test.ts files; and the time a server's TCP side keeps a slow connection.
import * as net from 'net'
import { afterEach } from 'vitest'

import type * as ServerModule from '../../lib/server/server'
import { pairUp, RendezvousPeer, type Msg } from './rendezvous-peer'
import { requireFromRoot } from './utp'

const { RendezvousServer } = requireFromRoot('./dist/lib/server/server.js') as typeof ServerModule
type Server = ServerModule.RendezvousServer
type At = { address: string, port: number }

export interface ServerHarness {
  /** A server on 127.0.0.1 and a free port, with `options` */
  startServer: (options?: ServerModule.RendezvousServerOptions) => Promise<{ server: Server, at: At }>
  /** A bare client bound to `host` (and `port`, 0 for any) */
  peer: (at: At, host?: string, port?: number) => Promise<RendezvousPeer>
  /** Two clients registered under `key` and told of each other */
  paired: (at: At, key: string) => Promise<Awaited<ReturnType<typeof pairUp>>>
  /** Servers started some other way, to be closed with the rest */
  servers: Server[]
}

export function serverHarness (): ServerHarness {
  const servers: Server[] = []
  const peers: RendezvousPeer[] = []
  afterEach(async () => {
    for (const p of peers.splice(0)) p.close()
    await Promise.all(servers.splice(0).map(async s => await s.close()))
  })
  return {
    servers,
    async startServer (options = {}) {
      const server = new RendezvousServer({ port: 0, host: '127.0.0.1', ...options })
      servers.push(server)
      const { port } = await server.listen()
      return { server, at: { address: '127.0.0.1', port } }
    },
    async peer (at, host = '127.0.0.1', port = 0) {
      const p = await RendezvousPeer.open(at, host, port)
      peers.push(p)
      return p
    },
    async paired (at, key) {
      const r = await pairUp(at, key)
      peers.push(r.a, r.b)
      return r
    }
  }
}

/** The code of an error reply, else the reply's type, or 'timeout' for none */
export const errorCode = (m: Msg | null): string | undefined => m === null ? 'timeout' : m.t === 'error' ? m.code : m.t

/** ms until the server closes a connection that does `act` (given the socket), or `limitMs` */
export async function closedAfter (port: number, act: (c: net.Socket) => void, limitMs: number): Promise<number> {
  const t0 = Date.now()
  return await new Promise(resolve => {
    const c = net.connect(port, '127.0.0.1', () => act(c))
    const done = (): void => { clearTimeout(timer); c.destroy(); resolve(Date.now() - t0) }
    const timer = setTimeout(done, limitMs)
    c.on('data', () => {})
    c.on('close', done)
    c.on('error', () => {})
  })
}
