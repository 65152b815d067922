// Wire compatibility with libutp, the uTP the BitTorrent world speaks, through the utp-native binding:
// our client to its server and its client to our server, 8 MiB each way, checksummed.
import { createHash, randomBytes } from 'crypto'
import { describe, expect, it } from 'vitest'
import { createRelay, onlyTheSyn } from './helpers/relay'
import { cleanupNodes, drainHash, listeningNode, makeNode, once, requireFromRoot, sleep, type Socket } from './helpers/utp'

type LibutpSocket = import('stream').Duplex
interface LibutpServer {
  listen (port: number, host: string, cb: () => void): void
  address (): { port: number }
  close (): void
}
interface Libutp {
  createServer (onconnection: (s: LibutpSocket) => void): LibutpServer
  connect (port: number, host: string): LibutpSocket
}
const libutp = requireFromRoot('utp-native') as Libutp

const SIZE = 8 << 20
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

cleanupNodes()

/** One line for the record: bytes, time, and what our end of the connection counted */
function report (name: string, t0: number, sock: Socket): void {
  const s = sock.stats()
  console.log(`[libutp interop] ${name}: ${SIZE} bytes each way in ${((Date.now() - t0) / 1000).toFixed(2)} s, ` +
    `our retransmits ${s?.retransmits ?? '?'}, timeouts ${s?.timeouts ?? '?'}, mtu ${s?.mtu ?? '?'}`)
}

describe('interop with libutp (utp-native)', () => {
  it('our client -> libutp server: 8 MiB each way', async () => {
    const up = randomBytes(SIZE)
    const down = randomBytes(SIZE)
    const server = libutp.createServer((sock) => {
      // libutp's server only speaks after the client's first data; echo a different payload back
      void drainHash(sock).then((got) => {
        serverGot = got
        sock.end(down)
      })
    })
    let serverGot: { bytes: number, sha256: string } | undefined
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)))
    try {
      const node = makeNode()
      await node.bindAsync(0, '127.0.0.1')
      const sock = node.connect(port, '127.0.0.1')
      const t0 = Date.now()
      const received = drainHash(sock)
      sock.end(up)
      const got = await received
      expect(serverGot).toEqual({ bytes: SIZE, sha256: sha256(up) })
      expect(got).toEqual({ bytes: SIZE, sha256: sha256(down) })
      report('our client -> libutp server', t0, sock)
    } finally {
      server.close()
    }
  })

  it('libutp client -> our server: 8 MiB each way', async () => {
    const up = randomBytes(SIZE)
    const down = randomBytes(SIZE)
    let serverGot: Promise<{ bytes: number, sha256: string }> | undefined
    let ours: Socket | undefined
    const { port } = await listeningNode({ allowHalfOpen: true }, (sock: Socket) => {
      ours = sock
      serverGot = drainHash(sock)
      // Send back while still receiving: both directions at once
      sock.end(down)
    })
    const client = libutp.connect(port, '127.0.0.1')
    const t0 = Date.now()
    const received = drainHash(client)
    client.end(up)
    const got = await received
    expect(got).toEqual({ bytes: SIZE, sha256: sha256(down) })
    expect(serverGot).toBeDefined()
    expect(await serverGot).toEqual({ bytes: SIZE, sha256: sha256(up) })
    if (ours !== undefined) report('libutp client -> our server', t0, ours)
    client.destroy()
  })

  it('a libutp connection and raw datagrams share our one port', async () => {
    const echoed: string[] = []
    const { node, port } = await listeningNode(undefined, (s) => {
      s.setEncoding('utf8')
      s.on('data', (d: string) => {
        echoed.push(d)
        s.end(`ours heard ${d}`)
      })
    })
    const raw = node.getUdpSocket()
    const message = once<Buffer>(raw, 'message')
    const { createSocket } = await import('dgram')
    const probe = createSocket('udp4')
    try {
      // A libutp client connects to the port while a plain datagram arrives on it
      const client = libutp.connect(port, '127.0.0.1')
      const reply = new Promise<string>((resolve, reject) => {
        let text = ''
        client.on('data', (d: Buffer) => { text += d.toString() })
        client.once('end', () => resolve(text))
        client.once('error', reject)
      })
      client.write('hello from libutp')
      probe.send(Buffer.from('not utp'), port, '127.0.0.1')
      expect(await reply).toBe('ours heard hello from libutp')
      expect((await message).toString()).toBe('not utp')
      expect(echoed).toEqual(['hello from libutp'])
      client.destroy()
    } finally {
      probe.close()
    }
  })

  it('a libutp client whose handshake our closing node answered but never announced: libutp believes our RESET', async () => {
    let announced = false
    const { node: server, port } = await listeningNode({}, () => { announced = true })
    // libutp's first data after our SYN-ACK would confirm the handshake: it is lost
    const relay = await createRelay(port, { drop: onlyTheSyn })
    const client = libutp.connect(relay.port, '127.0.0.1')
    try {
      const failed = new Promise<string>((resolve) => client.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message)))
      client.resume()
      // libutp's connect completes on our SYN-ACK
      await once(client, 'connect')
      client.write('hello')
      for (let i = 0; i < 100 && relay.stats.dropped === 0; i++) await sleep(10)
      expect(announced).toBe(false)
      await server.closeAsync()
      // libutp looks at its connections on a 500 ms tick; without the RESET it retransmits for its whole timeout
      expect(await Promise.race([failed, sleep(3000).then(() => 'no error in 3 s')])).toBe('UTP_ECONNRESET')
    } finally {
      client.destroy()
      await relay.close()
    }
  })
})
