// An ES module TypeScript consumer of utp-punch-rs: the default and named imports of index.mjs, with the
// types of index.d.mts. Type-checked (never run) like consumer.cts; the @ts-expect-error lines prove the
// types are not `any`.
import Node, {
  Node as NamedNode,
  RendezvousServer,
  Socket,
  UdpSocketFacade,
  defaults,
  errors,
  stun,
  rendezvousCodes,
  generateCode,
  parseCode,
  secureSocket,
  SecureSocket,
  type ParsedCode,
  type AddressInfo,
  type ConnectionStats,
  type MigrateInfo,
  type NodeEvents,
  type NodeStats,
  type RendezvousPath,
  type SocketEvents,
  type SocketStats,
  type NodeOptions,
  type RemoteInfo,
  type RendezvousOptions,
  type RendezvousResult,
  type RendezvousServerOptions,
  type SendCallback,
  type UtpError
} from 'utp-punch-rs'

const same: typeof Node = NamedNode
const options: NodeOptions = { ...defaults, timeout: 10_000, allowHalfOpen: true }
// @ts-expect-error keepAlive is a number
const bad: NodeOptions = { keepAlive: true }

export async function echo (): Promise<number> {
  const server = new same(options, (socket: Socket) => socket.pipe(socket))
  const address: AddressInfo = await server.bindAsync(0, '127.0.0.1')
  await server.listenAsync()
  const node = new Node()
  const socket = await node.connectAsync(address.port, '127.0.0.1')
  if (!(socket instanceof Socket)) throw new Error('not a Socket')
  const stats: ConnectionStats | null = socket.stats()
  const full: SocketStats | null = socket.stats()
  const path: RendezvousPath | undefined = full?.path
  const ns: NodeStats = node.stats()
  console.log(path, full?.rttMs, ns.bytesReceived, ns.address?.port)
  socket.on('migrate', (m: MigrateInfo) => console.log(m.address))
  // @ts-expect-error a 'migrate' listener's argument is checked
  socket.on('migrate', (m: boolean) => m)
  const tuple: NodeEvents['bound'] = [address]
  const ev: SocketEvents['timeout'] = []
  console.log(tuple, ev)
  socket.end('hello')
  let bytes = 0
  for await (const chunk of socket) bytes += (chunk as Buffer).length
  await Promise.all([node.closeAsync(), server.closeAsync()])
  return bytes + (stats?.rtt ?? 0)
}

export function datagrams (node: Node): UdpSocketFacade {
  const udp = node.getUdpSocket()
  const cb: SendCallback = (err: Error | null, bytes?: number) => console.log(err, bytes)
  udp.on('message', (msg: Buffer, rinfo: RemoteInfo) => udp.send(msg, rinfo.port, rinfo.address, cb))
  // @ts-expect-error the port comes second
  udp.send('hello', '127.0.0.1')
  return udp
}

export async function traversal (node: Node): Promise<Socket> {
  const punched: boolean = await node.punch(10, 7000, '198.51.100.7')
  const mapped: stun.StunAddress = await node.stun('stun.example.org:3478')
  const nat: stun.NatBehaviorResult = await node.natType('stun.example.org:3478')
  console.log(punched, mapped.address, nat.summary)
  const opts: RendezvousOptions = { server: 'rendezvous.example.org:7000', code: 'purple-otter', relay: false, signal: AbortSignal.timeout(60_000) }
  const { socket, utpSocket, path, encrypted }: RendezvousResult = await node.rendezvous(opts)
  console.log(path, encrypted, socket.writable)
  return utpSocket
}

export async function serve (): Promise<void> {
  const serverOptions: RendezvousServerOptions = { port: 7000, host: '0.0.0.0', maxRelays: 16, rateLimit: { perSecond: 20, burst: 40 } }
  const server = new RendezvousServer(serverOptions)
  await server.listen()
  console.log(server.stats().activeRelays)
  await server.close()
}

export function codeOf (err: unknown): string | undefined {
  const e = err as UtpError
  if (e.code === errors.codes.ECONNRESET) return 'reset'
  if (e.code === rendezvousCodes.ERR_PUNCH_FAILED) return 'no path'
  // @ts-expect-error not an error code of the package
  const nope: typeof errors.codes.ETIMEDOUT = 'ENOPE'
  return nope
}

console.log(bad)

/** The security names of the ESM entry: a generated code parsed, and a socket secured with a pre-shared secret */
export async function secured (socket: Socket): Promise<SecureSocket> {
  const parsed: ParsedCode = parseCode(generateCode())
  // @ts-expect-error the nameplate is a string, not a number
  const n: number | undefined = parsed.nameplate
  console.log(n)
  return await secureSocket(socket, { role: 'initiator', psk: parsed.secret })
}
