// A CommonJS TypeScript consumer of utp-punch-rs that touches every public name, type-checked (never run)
// with `tsc -p test/consumer` against the built package (self-reference) and, in test/pack.test.ts, against
// the packed tarball installed into a fresh project. The @ts-expect-error lines prove the types are not `any`.
import Node = require('utp-punch-rs')

import type { Duplex } from 'stream'

type Socket = Node.Socket

const options: Node.NodeOptions = {
  bufferSize: 64,
  mtu: 1000,
  timeout: 5000,
  resend: 100,
  keepAlive: 1000,
  maxConnections: 100,
  allowHalfOpen: false,
  congestion: 'cubic'
}
const defaults: Readonly<Required<Node.NodeOptions>> = Node.defaults
// @ts-expect-error mtu is a number
const badOptions: Node.NodeOptions = { mtu: '1000' }
// @ts-expect-error congestion is 'ledbat' or 'cubic'
const badCongestion: Node.NodeOptions = { congestion: 'bbr' }

export async function server (): Promise<void> {
  const node: Node = new Node(options, (socket: Socket) => {
    socket.pipe(socket)
  })
  const same: typeof Node = Node.Node
  const also = new same({ ...defaults, keepAlive: 0 })
  also.unref().ref()
  node.on('bound', (a: Node.AddressInfo) => console.log(a.address, a.family, a.port))
  node.on('listening', () => console.log('listening'))
  node.on('connection', (s: Socket) => console.log(s.remoteAddress))
  node.on('connect', (s: Socket) => console.log(s.id))
  node.on('timeout', (s: Socket) => s.destroy())
  node.once('close', () => console.log('closed'))
  node.on('error', (err: Error) => console.log((err as Node.UtpError).code))
  node.on('error', (err) => console.log(err.code, err.syscall))
  node.on('connection', (s) => s.on('migrate', (m: Node.MigrateInfo) => console.log(m.address, m.port, m.from?.address)))
  node.prependOnceListener('bound', (a) => console.log(a.family))
  node.on('my-own-event', (x: number, y: string) => console.log(x, y))
  const events: Node.NodeEvents['connection'] | Node.SocketEvents['migrate'] | undefined = undefined
  console.log(events)
  // @ts-expect-error a 'connection' listener gets a Socket
  node.on('connection', (s: string) => s)
  // @ts-expect-error 'listening' carries nothing
  node.emit('listening', 1)
  node.bind(0, '127.0.0.1', (address) => console.log(address.port))
  node.listen(() => console.log(node.address().port))
  const counts: number[] = [node.maxConnections, node.serverConnections, node.clientConnections]
  console.log(counts)
  node.close(() => console.log('closed'))
  await also.closeAsync()
}

export async function client (port: number): Promise<string> {
  const node = new Node()
  const bound: Node.AddressInfo = await node.bindAsync(0, '127.0.0.1')
  console.log(bound.family === 'IPv4' || bound.family === 'IPv6')
  await node.listenAsync()
  const socket: Socket = await node.connectAsync(port, '127.0.0.1')
  const duplex: Duplex = socket
  const s2: Socket = node.connect(port, '127.0.0.1', (s) => s.end('bye'))
  const s3: Socket = node.connect(port, (s) => s.end())
  s2.setTimeout(1000, () => s2.destroy())
  console.log(s2.getTimeout(), s2.getMtu(), s3.connecting, s3.remoteFamily, s3.remotePort)
  const stats: Node.ConnectionStats | null = socket.stats()
  if (stats !== null) console.log(stats.rtt, stats.cwnd, stats.retransmits, stats.bytesSent)
  if (stats !== null) console.log(stats.congestionEvents, stats.spuriousTimeouts, stats.blackHoles)
  const mode: Node.Congestion | undefined = stats?.congestion
  socket.setCongestion(mode === 'ledbat' ? 'cubic' : 'ledbat')
  const full: Node.SocketStats | null = socket.stats()
  if (full !== null) {
    const path: 'lan' | 'direct' | 'birthday' | 'relay' | undefined = full.path
    console.log(full.rttMs, full.rttVarMs, full.rtoMs, full.queuingDelayMs, full.open, full.mtu, path)
  }
  const nodeStats: Node.NodeStats = node.stats()
  console.log(nodeStats.address?.port, nodeStats.listening, nodeStats.connectionsOpened, nodeStats.packetsSent, nodeStats.rawDatagramsReceived,
    nodeStats.unmatchedPackets, nodeStats.resetsSent, nodeStats.refused)
  // @ts-expect-error node.stats() is not nullable
  const nope: null = node.stats()
  console.log(nope)
  console.log(socket.address().port, socket.id)
  // @ts-expect-error the port is a number
  node.connect('7000')
  duplex.end('hello')
  let text = ''
  for await (const chunk of socket) text += String(chunk)
  await node.closeAsync()
  return text
}

export async function punching (peerPort: number, peerHost: string): Promise<boolean> {
  const node = new Node()
  const ok: boolean = await node.punch(10, peerPort, peerHost)
  const ok2: boolean = await node.punchAsync(5, peerPort, peerHost)
  await node.punch(3, peerPort, (success: boolean) => console.log(success))
  node.close()
  return ok && ok2
}

export function datagrams (node: Node): void {
  const udp: Node.UdpSocketFacade = node.getUdpSocket()
  const cb: Node.SendCallback = (err, bytes) => console.log(err?.message, bytes)
  udp.on('message', (msg: Buffer, rinfo: Node.RemoteInfo) => {
    console.log(msg.length, rinfo.address, rinfo.family, rinfo.port, rinfo.size)
    udp.send('pong', rinfo.port, rinfo.address)
  })
  udp.send('ping', 7000, '127.0.0.1', cb)
  udp.send(Buffer.from('ping'), 7000, cb)
  udp.send(Buffer.from('xxpingxx'), 2, 4, 7000, '127.0.0.1', cb)
  udp.send([Buffer.from('a'), 'b'], 7000)
  console.log(udp.setTTL(3), udp.address().port)
  udp.unref().ref()
  udp.close(() => console.log('node closed'))
}

export async function natTraversal (node: Node): Promise<Socket> {
  const mapped: Node.stun.StunAddress = await node.stun('stun.example.org:3478', { timeoutMs: 2000 })
  console.log(mapped.address, mapped.port, mapped.family)
  const nat: Node.stun.NatBehaviorResult = await node.natType('stun.example.org:3478')
  const mapping: Node.stun.NatBehavior = nat.mapping
  console.log(mapping, nat.filtering, nat.natted, nat.summary, nat.publicAddress.port)
  const opts: Node.RendezvousOptions = { server: 'rendezvous.example.org:7000', code: 'purple-otter', relay: true, timeoutMs: 30_000, birthday: true, followMoves: true }
  const result: Node.RendezvousResult = await node.rendezvous(opts)
  const path: 'lan' | 'direct' | 'birthday' | 'relay' = result.path
  const carrier: Node = result.node
  result.socket.on('migrate', (m: { address: string, port: number }) => console.log(m.address, m.port, carrier.address().port))
  // @ts-expect-error 'migrate' hands over an object
  result.socket.on('migrate', (m: number) => m)
  const p: Node.RendezvousPath | undefined = result.socket.stats()?.path
  const t: Node.RendezvousTimings = result.timings
  console.log(p, t.registeredMs, t.pairedMs, t.punchedMs, t.relayMs, t.serverRttMs)
  const failed: Node.RendezvousError | undefined = undefined
  console.log(failed, Node.rendezvousCodes.ERR_PUNCH_FAILED, Node.rendezvousCodes.ERR_RENDEZVOUS_TIMEOUT)
  const role: 'connect' | 'accept' = result.role
  console.log(path, role, result.remote.address, result.timings.connectedMs)
  // @ts-expect-error the code is required
  await node.rendezvous({ server: 'rendezvous.example.org:7000' })
  return result.socket
}

export async function rendezvousServer (): Promise<Node.RendezvousServer> {
  const serverOptions: Node.RendezvousServerOptions = { port: 0, host: '127.0.0.1', relay: true, relayRate: 1_000_000, http: false }
  const server = new Node.RendezvousServer(serverOptions)
  server.on('paired', (p: Node.PairedInfo) => console.log(p.code, p.connect.port, p.accept.port))
  const { address, port } = await server.listen()
  const st: Node.RendezvousStats = server.stats()
  console.log(st.moves, st.relayedBytes)
  console.log(address, port, server.address().port, server.stats().pairings)
  await server.close()
  return server
}

export async function secureStream (socket: Socket, peerMessage: Buffer): Promise<Node.SecureSocket> {
  const pake: Node.Pake = Node.Pake.start('purple-otter', 'example')
  const message: Buffer = pake.message
  const key: Buffer = Node.deriveKey(pake.finish(peerMessage), 'stream')
  const options: Node.SecureOptions = { role: 'initiator', key }
  const secure: Node.SecureSocket = await Node.secureSocket(socket, options, 5000)
  const inner: Socket = secure.socket
  const role: Node.SecureRole = 'responder'
  console.log(message.length, secure.encrypted, inner.remotePort, secure.stats()?.rtt, role, Node.secureCodes.ERR_WRONG_CODE)
  // @ts-expect-error a key or a psk is required
  await Node.secureSocket(socket, { role: 'initiator' })
  return await Node.secureSocket(socket, { role: 'responder', psk: 'correct horse battery staple' })
}

export function errorHandling (err: unknown): string {
  const codes = Node.errors.codes
  const timedOut: 'ETIMEDOUT' = codes.ETIMEDOUT
  const e: Node.UtpError = Node.errors.createError(codes.ERR_INVALID_ARG_VALUE, 'bad', RangeError)
  if ((err as Node.UtpError).code === codes.ECONNREFUSED) return 'refused'
  if ((err as Node.UtpError).code === codes.ERR_UTP_NATIVE_MISSING) return 'no native addon'
  if ((err as Node.UtpError).code === codes.ERR_UTP_TOO_MANY_CONNECTIONS) return 'full'
  return `${timedOut} ${e.code}`
}

export function stunCodec (): boolean {
  const id: Buffer = Node.stun.newTransactionId()
  const request: Buffer = Node.stun.encodeBindingRequest(id)
  const parsed: Node.stun.StunMessage = Node.stun.decodeStunMessage(request)
  console.log(parsed.type === Node.stun.StunType.BINDING_REQUEST, Node.stun.parseServer('example.org:3478').port)
  return Node.stun.isStunMessage(request)
}

console.log(badOptions, badCongestion)
