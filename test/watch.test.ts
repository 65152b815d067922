// The connection watch on its own (lib/rendezvous/watch.ts), on a fake clock, with a scripted socket and
// wire: keepalives and their cookie, the nudges of a quiet connection, which peer-moved announcements are
// acknowledged, validated and followed, path validation's probes and its end, retries, and close(). The
// NAT lab's rebinding tests run the same code between real NATs.
import { EventEmitter } from 'events'
import { describe, expect, it, vi } from 'vitest'

import type * as ProtocolModule from '../lib/rendezvous/protocol'
import type * as WatchModule from '../lib/rendezvous/watch'
import { ourAuth, peer, stranger } from './helpers/peer-auth'
import { fakeClockFromZero, requireFromRoot } from './helpers/utp'

const { ConnectionWatch, SEQ_WINDOW } = requireFromRoot('./dist/lib/rendezvous/watch.js') as typeof WatchModule
type Message = ProtocolModule.Message
type Endpoint = ProtocolModule.Endpoint

const SERVER = { address: '198.51.100.1', port: 3478 }
const NONCE = 'n'.repeat(16)
const PEER_AT = { address: '203.0.113.5', port: 40000 }
const MOVED = { address: '203.0.113.5', port: 40123 }
const KEEPALIVE = 1000
const QUIET = 1500
/** The watch's RETRY_MIN_MS */
const RETRY = 100

/** The socket as the watch sees it: its peer's address, a receive counter, migrate() */
class FakeSocket extends EventEmitter {
  remoteAddress: string | undefined = PEER_AT.address
  remotePort: number | undefined = PEER_AT.port
  packetsReceived = 0
  statsGone = false
  migrateWorks = true
  readonly migrated: Endpoint[] = []
  stats (): { packetsReceived: number } | null { return this.statsGone ? null : { packetsReceived: this.packetsReceived } }
  _migrate (port: number, address: string): boolean {
    if (!this.migrateWorks) return false
    this.migrated.push({ address, port })
    this.remoteAddress = address
    this.remotePort = port
    return true
  }
}

interface Out { at: number, m: Message, to: string }
const key = (e: Endpoint): string => `${e.address}:${e.port}`

function watch (o: Partial<WatchModule.WatchOptions> = {}): {
  w: InstanceType<typeof ConnectionWatch>
  socket: FakeSocket
  wire: Out[]
  fromNode: Out[]
  cookies: string[]
  closed: () => number
  setCookie: (c: string | undefined) => void
} {
  const socket = new FakeSocket()
  const wire: Out[] = []
  const fromNode: Out[] = []
  const cookies: string[] = []
  let wireClosed = 0
  let cookie: string | undefined
  const w = new ConnectionWatch({
    socket: socket as unknown as WatchModule.WatchOptions['socket'],
    wire: { send: (m: Message, to: Endpoint) => wire.push({ at: Date.now(), m, to: key(to) }), close: () => { wireClosed++ } } as unknown as WatchModule.WatchOptions['wire'],
    server: SERVER,
    nonce: NONCE,
    auth: ourAuth(),
    cookie: () => cookie,
    setCookie: c => cookies.push(c),
    keepaliveMs: KEEPALIVE,
    quietMs: QUIET,
    followable: true,
    relay: null,
    sendFromSocketNode: (m, to) => fromNode.push({ at: Date.now(), m, to: key(to) }),
    ...o
  })
  return { w, socket, wire, fromNode, cookies, closed: () => wireClosed, setCookie: c => { cookie = c } }
}

const moved = (seq: number, to: Endpoint = MOVED, nonce = NONCE): Message => ({ t: 'peer-moved', nonce, public: to, seq })
const ofType = (out: Out[], t: string): Out[] => out.filter(x => x.m.t === t)

fakeClockFromZero()

describe('ConnectionWatch: keepalives and quiet connections', () => {
  it('sends a keepalive every keepaliveMs, with the cookie once there is one', () => {
    const { w, wire, setCookie } = watch({ quietMs: 60_000 })
    vi.advanceTimersByTime(KEEPALIVE)
    setCookie('c1')
    vi.advanceTimersByTime(KEEPALIVE)
    expect(ofType(wire, 'keepalive')).toEqual([
      { at: 1000, m: { t: 'keepalive', nonce: NONCE }, to: key(SERVER) },
      { at: 2000, m: { t: 'keepalive', nonce: NONCE, cookie: 'c1' }, to: key(SERVER) }
    ])
    w.close()
  })

  it('stops keepalives when the server says it forgot us, and only then', () => {
    const { w, wire } = watch()
    w.handle({ t: 'error', code: 'ERR_NOT_REGISTERED', message: 'x', nonce: NONCE }, { address: '198.51.100.9', port: 3478 })
    w.handle({ t: 'error', code: 'ERR_NOT_REGISTERED', message: 'x', nonce: 'other' }, SERVER)
    w.handle({ t: 'error', code: 'ERR_RATE_LIMITED', message: 'x', nonce: NONCE }, SERVER)
    vi.advanceTimersByTime(KEEPALIVE)
    expect(ofType(wire, 'keepalive')).toHaveLength(1)
    w.handle({ t: 'error', code: 'ERR_NOT_REGISTERED', message: 'x', nonce: NONCE }, SERVER)
    vi.advanceTimersByTime(5 * KEEPALIVE)
    expect(ofType(wire, 'keepalive')).toHaveLength(1)
    expect(vi.getTimerCount()).toBe(0) // the sampling stops too
  })

  it('nudges the server once the connection is quiet for quietMs, then once a second while it stays quiet', () => {
    const { w, socket, wire } = watch({ keepaliveMs: 60_000 })
    socket.packetsReceived = 5
    vi.advanceTimersByTime(250) // the first sample sees 5 packets: not quiet
    vi.advanceTimersByTime(QUIET + 500)
    vi.advanceTimersByTime(1000)
    expect(ofType(wire, 'keepalive').map(x => x.at)).toEqual([1750, 2750])
    socket.packetsReceived++ // the peer speaks again
    vi.advanceTimersByTime(QUIET)
    expect(ofType(wire, 'keepalive').map(x => x.at)).toEqual([1750, 2750])
    vi.advanceTimersByTime(250)
    expect(ofType(wire, 'keepalive').map(x => x.at)).toEqual([1750, 2750, 5000])
    expect(ofType(wire, 'relay-hello')).toHaveLength(0)
    w.close()
  })

  it('counts quiet from the first sample, whatever the socket had received before', () => {
    const { w, socket, wire } = watch({ keepaliveMs: 60_000 })
    socket.packetsReceived = 1
    vi.advanceTimersByTime(QUIET + 250)
    expect(ofType(wire, 'keepalive').map(x => x.at)).toEqual([1750])
    w.close()
  })

  it('on the relay path a nudge also says relay-hello to the relay port; a socket without stats is never quiet', () => {
    const { w, wire } = watch({ keepaliveMs: 60_000, relay: { port: 3500, token: 'tok' } })
    vi.advanceTimersByTime(QUIET + 250)
    expect(wire.map(x => [x.at, x.m, x.to])).toEqual([
      [1750, { t: 'keepalive', nonce: NONCE }, key(SERVER)],
      [1750, { t: 'relay-hello', token: 'tok' }, '198.51.100.1:3500']
    ])
    w.close()

    const gone = watch({ keepaliveMs: 60_000 })
    gone.socket.statsGone = true
    vi.advanceTimersByTime(10 * QUIET)
    expect(gone.wire).toHaveLength(0)
    gone.w.close()
  })
})

describe('ConnectionWatch: peer-moved', () => {
  it('acknowledges every peer-moved of ours from the server, and validates the new address with fresh probes', () => {
    const { w, wire, fromNode } = watch()
    w.handle(moved(1), { address: '198.51.100.9', port: 3478 }) // not the server
    w.handle(moved(1, MOVED, 'other'), SERVER) // not our registration
    expect(wire).toHaveLength(0)
    w.handle(moved(1), SERVER)
    w.handle(moved(1), SERVER) // a repeat: acknowledged, nothing more
    expect(ofType(wire, 'peer-moved-ack').map(x => [x.m, x.to])).toEqual([
      [{ t: 'peer-moved-ack', nonce: NONCE, seq: 1 }, key(SERVER)], [{ t: 'peer-moved-ack', nonce: NONCE, seq: 1 }, key(SERVER)]
    ])
    vi.advanceTimersByTime(500)
    expect(fromNode.map(x => [x.at, x.m.t, x.to])).toEqual([[0, 'probe', key(MOVED)], [250, 'probe', key(MOVED)], [500, 'probe', key(MOVED)]])
    const nonces = fromNode.map(x => (x.m as { nonce: string }).nonce)
    expect(new Set(nonces).size).toBe(3)
    expect(fromNode.map(x => x.m)).toEqual(nonces.map(n => peer.probe(n)))
    w.close()
  })

  it('follows once a valid ack of one of its probes comes from exactly that address', () => {
    const { w, socket, fromNode } = watch()
    const migrations: unknown[] = []
    socket.on('migrate', e => migrations.push(e))
    w.handle(moved(3), SERVER)
    vi.advanceTimersByTime(250)
    const [first, second] = fromNode.map(x => (x.m as { nonce: string }).nonce)
    w.handle(peer.ack('not-ours'), MOVED)
    w.handle(peer.ack(first), { address: MOVED.address, port: MOVED.port + 1 })
    w.handle(stranger.ack(first), MOVED)
    expect(socket.migrated).toEqual([])
    w.handle(peer.ack(first), MOVED)
    expect(socket.migrated).toEqual([MOVED])
    expect(migrations).toEqual([{ address: MOVED.address, port: MOVED.port, from: PEER_AT }])
    // The validation is over: no more probes, and a later ack does nothing
    w.handle(peer.ack(second), MOVED)
    vi.advanceTimersByTime(1000)
    expect(fromNode).toHaveLength(2)
    expect(socket.migrated).toHaveLength(1)
    // seq 3 was followed: 2 and 3 are old, 4 is new
    w.handle(moved(3, PEER_AT), SERVER)
    w.handle(moved(2, PEER_AT), SERVER)
    expect(fromNode).toHaveLength(2)
    w.handle(moved(4, PEER_AT), SERVER)
    expect(fromNode).toHaveLength(3)
    expect(w.rejectedMoves).toBe(0)
    w.close()
  })

  it('gives up after 12 more probes, 250 ms apart, and counts the move as rejected', () => {
    const { w, fromNode } = watch()
    w.handle(moved(1), SERVER)
    vi.advanceTimersByTime(12 * 250)
    expect(fromNode).toHaveLength(13)
    expect(w.rejectedMoves).toBe(0)
    vi.advanceTimersByTime(250)
    expect(w.rejectedMoves).toBe(1)
    vi.advanceTimersByTime(10_000)
    expect(fromNode).toHaveLength(13)
    // An ack that comes too late moves nothing; the same seq can be announced again and validated
    w.handle(peer.ack((fromNode[0].m as { nonce: string }).nonce), MOVED)
    w.handle(moved(1), SERVER)
    expect(fromNode).toHaveLength(14)
    w.close()
  })

  it('takes a seq only inside the window above the last one followed', () => {
    const { w, fromNode } = watch()
    w.handle(moved(0), SERVER)
    w.handle(moved(SEQ_WINDOW), SERVER)
    expect(fromNode).toHaveLength(0)
    w.handle(moved(SEQ_WINDOW - 1), SERVER)
    expect(fromNode).toHaveLength(1)
    w.close()
  })

  it('one validation per address, the highest seq kept; at most 4 at once', () => {
    const { w, socket, fromNode } = watch()
    w.handle(moved(1), SERVER)
    w.handle(moved(5), SERVER) // the same address: no second validation
    expect(fromNode).toHaveLength(1)
    w.handle(peer.ack((fromNode[0].m as { nonce: string }).nonce), MOVED)
    expect(socket.migrated).toEqual([MOVED])
    w.handle(moved(5, PEER_AT), SERVER) // seq 5 was taken with the move
    expect(fromNode).toHaveLength(1)

    const many = watch()
    for (let i = 1; i <= 6; i++) many.w.handle(moved(i, { address: '203.0.113.5', port: 41000 + i }), SERVER)
    expect(many.fromNode.map(x => x.to)).toEqual([1, 2, 3, 4].map(i => `203.0.113.5:${41000 + i}`))
    many.w.close()
    expect(many.w.rejectedMoves).toBe(4)
    w.close()
  })

  it('follows only a move newer than the last one followed, whichever validates first', () => {
    const { w, socket, fromNode } = watch()
    const other = { address: '203.0.113.5', port: 40456 }
    const nonceTo = (to: Endpoint): string => (fromNode.find(x => x.to === key(to))?.m as { nonce: string }).nonce
    w.handle(moved(2), SERVER)
    w.handle(moved(3, other), SERVER)
    w.handle(peer.ack(nonceTo(other)), other)
    w.handle(peer.ack(nonceTo(MOVED)), MOVED) // validated, but older than the move followed
    expect(socket.migrated).toEqual([other])
    // The same seq at two addresses (one forged): the first to validate wins
    const twice = watch()
    twice.w.handle(moved(2), SERVER)
    twice.w.handle(moved(2, other), SERVER)
    const nonce = (to: Endpoint): string => (twice.fromNode.find(x => x.to === key(to))?.m as { nonce: string }).nonce
    twice.w.handle(peer.ack(nonce(MOVED)), MOVED)
    twice.w.handle(peer.ack(nonce(other)), other)
    expect(twice.socket.migrated).toEqual([MOVED])
    w.close()
    twice.w.close()
  })

  it('announces no migration when the connection got to the validated address by itself', () => {
    const { w, socket, fromNode } = watch()
    const migrations: unknown[] = []
    socket.on('migrate', e => migrations.push(e))
    w.handle(moved(1), SERVER)
    socket.remoteAddress = MOVED.address
    socket.remotePort = MOVED.port
    w.handle(peer.ack((fromNode[0].m as { nonce: string }).nonce), MOVED)
    expect([socket.migrated, migrations]).toEqual([[], []])
    w.close()
  })

  it('does not probe where the connection already is, nor when the peer cannot be followed, nor on the relay path', () => {
    const here = watch()
    here.w.handle(moved(2, PEER_AT), SERVER)
    here.w.handle(moved(2), SERVER) // seq 2 counted as followed: this one is a repeat
    expect(here.fromNode).toHaveLength(0)
    here.w.handle(moved(3), SERVER)
    expect(here.fromNode).toHaveLength(1)
    here.w.close()

    const unfollowable = watch({ followable: false })
    unfollowable.w.handle(moved(1), SERVER)
    expect(unfollowable.fromNode).toHaveLength(0)
    expect(ofType(unfollowable.wire, 'peer-moved-ack')).toHaveLength(1)
    unfollowable.w.close()

    const relayed = watch({ relay: { port: 3500, token: 'tok' } })
    relayed.w.handle(moved(7), SERVER)
    relayed.w.handle(moved(7), SERVER)
    expect(relayed.fromNode).toHaveLength(0)
    expect(ofType(relayed.wire, 'peer-moved-ack')).toHaveLength(2)
    relayed.w.close()
  })

  it('a validated path the socket cannot migrate to is not announced; an unconnected socket reports from: null', () => {
    const { w, socket, fromNode } = watch()
    const migrations: unknown[] = []
    socket.on('migrate', e => migrations.push(e))
    socket.migrateWorks = false
    w.handle(moved(1), SERVER)
    w.handle(peer.ack((fromNode[0].m as { nonce: string }).nonce), MOVED)
    expect(migrations).toEqual([])
    socket.migrateWorks = true
    socket.remoteAddress = undefined
    socket.remotePort = undefined
    w.handle(moved(2, PEER_AT), SERVER)
    w.handle(peer.ack((fromNode[1].m as { nonce: string }).nonce), PEER_AT)
    expect(migrations).toEqual([{ address: PEER_AT.address, port: PEER_AT.port, from: null }])
    w.close()
  })
})

describe('ConnectionWatch: the peer\'s probes, retries, close', () => {
  it('answers the peer\'s valid probes from the socket\'s node, and nothing else', () => {
    const { w, fromNode } = watch()
    const at = { address: '203.0.113.5', port: 40999 }
    w.handle(stranger.probe('x'), at)
    w.handle(peer.probe('y'), at)
    expect(fromNode.map(x => [x.m, x.to])).toEqual([[peer.ack('y'), key(at)]])
    w.close()
  })

  it('repeats the keepalive with a retry\'s cookie at once, at most once per 100 ms, and only for the server', () => {
    const { w, wire, cookies } = watch()
    w.handle({ t: 'retry', cookie: 'forged' }, { address: '198.51.100.9', port: 3478 })
    vi.advanceTimersByTime(RETRY)
    w.handle({ t: 'retry', cookie: 'c1' }, SERVER)
    w.handle({ t: 'retry', cookie: 'c2' }, SERVER)
    vi.advanceTimersByTime(RETRY - 1)
    w.handle({ t: 'retry', cookie: 'c3' }, SERVER)
    vi.advanceTimersByTime(1)
    w.handle({ t: 'retry', cookie: 'c4' }, SERVER)
    expect(cookies).toEqual(['c1', 'c4'])
    expect(ofType(wire, 'keepalive').map(x => x.at)).toEqual([RETRY, 2 * RETRY])
    w.close()
  })

  it('close(): bye and the wire closed at once, or 2 s later on the relay path; validations end; the socket closing closes it', () => {
    const { w, wire, closed } = watch()
    w.handle(moved(1), SERVER)
    w.close()
    w.close()
    expect(ofType(wire, 'bye').map(x => [x.at, x.m, x.to])).toEqual([[0, { t: 'bye', nonce: NONCE }, key(SERVER)]])
    expect(closed()).toBe(1)
    expect(w.rejectedMoves).toBe(1)
    w.handle(moved(2), SERVER)
    w.handle({ t: 'retry', cookie: 'c' }, SERVER)
    expect(wire).toHaveLength(2) // the ack of the first move, and bye
    expect(vi.getTimerCount()).toBe(0)

    const relayed = watch({ relay: { port: 3500, token: 'tok' } })
    relayed.socket.emit('close')
    vi.advanceTimersByTime(1999)
    expect([ofType(relayed.wire, 'bye').length, relayed.closed()]).toEqual([0, 0])
    vi.advanceTimersByTime(1)
    expect([ofType(relayed.wire, 'bye').length, relayed.closed()]).toEqual([1, 1])
  })
})

