// The rendezvous prober on its own (lib/rendezvous/prober.ts), on a fake clock: what it sends to whom and
// when (the low-TTL first probe, the interval), which answers it trusts, how the connect side picks a path
// (at once, or after the LAN grace), what the accept side takes from `select`, peer-reflexive and
// birthday candidates and their bounds. The end-to-end runs are in rendezvous.test.ts and the NAT lab.
import { describe, expect, it, vi } from 'vitest'

import type * as CandidatesModule from '../lib/rendezvous/candidates'
import type * as ProberModule from '../lib/rendezvous/prober'
import type * as ProtocolModule from '../lib/rendezvous/protocol'
import { ourAuth, peer, stranger } from './helpers/peer-auth'
import { fakeClockFromZero, requireFromRoot } from './helpers/utp'

const { Prober, pathOf } = requireFromRoot('./dist/lib/rendezvous/prober.js') as typeof ProberModule
type Candidate = CandidatesModule.Candidate
type CandidateKind = CandidatesModule.CandidateKind
type Message = ProtocolModule.Message
type Endpoint = ProtocolModule.Endpoint

interface Sent { at: number, m: Message, to: string, ttl?: number }

const INTERVAL = 200
const GRACE = 300

function candidate (address: string, port: number, kind: CandidateKind, nonce = `${kind}-${port}`): Candidate {
  return { address, port, kind, nonce, sent: 0, acked: false }
}
const key = (e: Endpoint): string => e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`

interface Harness { p: InstanceType<typeof Prober>, sent: Sent[], winners: Candidate[], verified: string[] }

function prober (o: Partial<ProberModule.ProberOptions> & { candidates: Candidate[] }): Harness {
  const sent: Sent[] = []
  const winners: Candidate[] = []
  const verified: string[] = []
  const auth = ourAuth()
  const p = new Prober({
    role: 'connect',
    auth,
    intervalMs: INTERVAL,
    lowTtl: 2,
    preferLan: true,
    graceMs: GRACE,
    send: (m, to, ttl) => sent.push({ at: Date.now(), m, to: key(to), ...(ttl === undefined ? {} : { ttl }) }),
    onWinner: c => winners.push(c),
    onVerified: k => verified.push(k),
    ...o
  })
  return { p, sent, winners, verified }
}

const LAN = candidate('192.168.1.20', 4000, 'lan')
const PUBLIC = candidate('203.0.113.5', 40000, 'public')
const fresh = (...cs: Candidate[]): Candidate[] => cs.map(c => ({ ...c }))
const probes = (sent: Sent[]): string[] => sent.filter(s => s.m.t === 'probe').map(s => `${s.at} ${s.to}${s.ttl === undefined ? '' : ` ttl ${s.ttl}`}`)

fakeClockFromZero()

describe('Prober: probing', () => {
  it('probes every candidate at once and every interval; the first probe to a public address only with the low TTL', () => {
    const { p, sent } = prober({ candidates: fresh(LAN, PUBLIC) })
    p.start()
    p.start() // a second start() adds no second timer
    vi.advanceTimersByTime(2 * INTERVAL)
    expect(probes(sent)).toEqual([
      '0 192.168.1.20:4000', '0 203.0.113.5:40000 ttl 2',
      '200 192.168.1.20:4000', '200 203.0.113.5:40000',
      '400 192.168.1.20:4000', '400 203.0.113.5:40000'
    ])
    expect(sent.map(s => s.m)).toEqual([LAN, PUBLIC, LAN, PUBLIC, LAN, PUBLIC].map(c => peer.probe(c.nonce)))
    expect(p.candidates.map(c => c.sent)).toEqual([3, 3])
    expect(p.describe()).toBe('192.168.1.20:4000 (lan), 203.0.113.5:40000 (public)')

    p.stopProbing()
    vi.advanceTimersByTime(5 * INTERVAL)
    expect(sent).toHaveLength(6)
    // Stopped: an address learned now is answered, not probed; start() probes again, the new one too
    p.handle(peer.probe('theirs'), { address: '203.0.113.5', port: 40001 })
    expect(sent.slice(6).map(s => s.m.t)).toEqual(['probe-ack'])
    p.start()
    expect(probes(sent).slice(6)).toEqual(['1400 192.168.1.20:4000', '1400 203.0.113.5:40000', '1400 203.0.113.5:40001'])
  })

  it('sends the first public probe with the normal TTL when lowTtl is 0, and copies its candidate list', () => {
    const list = fresh(PUBLIC)
    const { p, sent } = prober({ candidates: list, lowTtl: 0 })
    p.start()
    expect(probes(sent)).toEqual(['0 203.0.113.5:40000'])
    list.push(candidate('198.51.100.1', 1, 'public'))
    expect(p.candidates).toHaveLength(1)
  })

  it('ignores what does not verify: another key, another pairing, not a probe message', () => {
    const { p, sent, verified } = prober({ candidates: fresh(PUBLIC) })
    const from = { address: '198.51.100.7', port: 7000 }
    p.handle(stranger.probe('n1'), from)
    p.handle({ ...peer.probe('n1'), pair: 'cd'.repeat(16) }, from)
    p.handle({ t: 'keepalive' } as unknown as Message, from)
    p.handle(stranger.ack(PUBLIC.nonce), PUBLIC)
    expect(sent).toHaveLength(0)
    expect(verified).toEqual([])
    expect([p.heardPeer, p.beenHeard, p.candidates.length, p.candidates[0].acked]).toEqual([false, false, 1, false])
  })
})

describe('Prober: answering and learning', () => {
  it('acks a valid probe to its source, trusts that address once, and probes it as a peer-reflexive candidate', () => {
    const { p, sent, verified } = prober({ candidates: fresh(PUBLIC) })
    p.start()
    const from = { address: '203.0.113.5', port: 40001 } // the peer's NAT picked another port for us
    p.handle(peer.probe('theirs'), from)
    p.handle(peer.probe('theirs-again'), from)
    expect(verified).toEqual(['203.0.113.5:40001'])
    expect(p.verified.has('203.0.113.5:40001')).toBe(true)
    expect(p.heardPeer).toBe(true)
    const learned = p.candidates[1]
    expect(learned).toMatchObject({ address: '203.0.113.5', port: 40001, kind: 'peer', sent: 1, acked: false })
    expect(learned.nonce).toMatch(/^[0-9a-f]{16}$/)
    expect(sent.slice(1).map(s => [s.m, s.to, s.ttl])).toEqual([
      [peer.ack('theirs'), '203.0.113.5:40001', undefined],
      [peer.probe(learned.nonce), '203.0.113.5:40001', undefined],
      [peer.ack('theirs-again'), '203.0.113.5:40001', undefined]
    ])
  })

  it('learns at most 8 addresses, as learnedKind says, and probes them only while probing', () => {
    const { p, sent } = prober({ candidates: fresh(PUBLIC), learnedKind: 'birthday' })
    for (let i = 1; i <= 10; i++) p.handle(peer.probe(`n${i}`), { address: '203.0.113.5', port: 50000 + i })
    expect(p.candidates.map(c => c.kind)).toEqual(['public', ...Array(8).fill('birthday')])
    expect(p.birthdayFound).toBe(false) // learned, not acked
    expect(p.candidates.every(c => c.sent === 0)).toBe(true) // not started: acks only
    expect(sent.every(s => s.m.t === 'probe-ack')).toBe(true)
    expect(sent).toHaveLength(10)
  })

  it('takes an ack from another address than the probed one as a new candidate (LAN if the probe was), not as a path', () => {
    const { p, winners } = prober({ candidates: fresh(LAN, PUBLIC) })
    p.start()
    p.handle(peer.ack(LAN.nonce), { address: '192.168.1.21', port: 4000 })
    p.handle(peer.ack(PUBLIC.nonce), { address: '203.0.113.5', port: 40009 })
    p.handle(peer.ack('not-ours'), PUBLIC)
    expect(p.candidates.map(c => [key(c), c.kind, c.acked])).toEqual([
      ['192.168.1.20:4000', 'lan', false], ['203.0.113.5:40000', 'public', false],
      ['192.168.1.21:4000', 'lan', false], ['203.0.113.5:40009', 'peer', false]
    ])
    expect([p.beenHeard, winners.length]).toEqual([false, 0])
  })
})

describe('Prober: the connect side picks a path', () => {
  it('takes a LAN ack at once: select to it, onWinner once, probing stops', () => {
    const { p, sent, winners } = prober({ candidates: fresh(LAN, PUBLIC) })
    p.start()
    vi.advanceTimersByTime(50)
    p.handle(peer.ack(LAN.nonce), LAN)
    expect(winners.map(key)).toEqual(['192.168.1.20:4000'])
    expect(p.punchedAt).toBe(50)
    expect(sent[sent.length - 1]).toEqual({ at: 50, m: peer.select('lan'), to: '192.168.1.20:4000' })
    p.handle(peer.ack(PUBLIC.nonce), PUBLIC)
    vi.advanceTimersByTime(10 * INTERVAL)
    expect(winners).toHaveLength(1)
    expect(sent.filter(s => s.m.t === 'probe')).toHaveLength(2)
  })

  it('takes a LAN ack at once even while another LAN candidate has not answered', () => {
    const second = candidate('192.168.1.30', 4000, 'lan', 'second-lan')
    const { p, winners } = prober({ candidates: fresh(LAN, second, PUBLIC) })
    p.start()
    p.handle(peer.ack(second.nonce), second)
    expect(winners.map(key)).toEqual(['192.168.1.30:4000'])
  })

  it('after a public ack waits the grace for a LAN one; a LAN ack in the grace wins', () => {
    const { p, winners } = prober({ candidates: fresh(LAN, PUBLIC) })
    p.start()
    p.handle(peer.probe('theirs'), PUBLIC)
    p.handle(peer.ack(PUBLIC.nonce), PUBLIC)
    expect([p.heardPeer, p.beenHeard, p.punchedAt]).toEqual([true, true, null]) // nothing chosen yet
    vi.advanceTimersByTime(GRACE - 1)
    expect(p.candidates.map(c => c.sent)).toEqual([2, 2]) // the LAN candidate may still answer: probing goes on
    expect(winners).toHaveLength(0)
    p.handle(peer.ack(LAN.nonce), LAN)
    expect(winners).toHaveLength(0) // the grace timer decides
    vi.advanceTimersByTime(1)
    expect(winners.map(c => c.kind)).toEqual(['lan'])
  })

  it('without a LAN answer, takes the public path when the grace ends', () => {
    const { p, sent, winners } = prober({ candidates: fresh(LAN, PUBLIC) })
    p.start()
    p.handle(peer.ack(PUBLIC.nonce), PUBLIC)
    vi.advanceTimersByTime(GRACE - 1)
    expect(winners).toHaveLength(0)
    vi.advanceTimersByTime(1)
    expect(winners.map(key)).toEqual(['203.0.113.5:40000'])
    expect(sent[sent.length - 1]).toEqual({ at: GRACE, m: peer.select('direct'), to: '203.0.113.5:40000' })
    expect(p.punchedAt).toBe(GRACE)
  })

  it.each([
    ['LAN not preferred', { preferLan: false }, fresh(LAN, PUBLIC)],
    ['no grace', { graceMs: 0 }, fresh(LAN, PUBLIC)],
    ['no LAN candidate', {}, fresh(PUBLIC)],
    ['no LAN candidate, a peer-reflexive one unanswered', {}, fresh(PUBLIC, candidate('203.0.113.5', 40001, 'peer'))]
  ] as const)('takes a public ack at once when there is nothing to wait for: %s', (_what, o, candidates) => {
    const { p, winners } = prober({ candidates: candidates.map(c => ({ ...c })), ...o })
    p.start()
    p.handle(peer.ack(PUBLIC.nonce), PUBLIC)
    expect(winners.map(key)).toEqual(['203.0.113.5:40000'])
  })

  it('prefers an acked LAN path over a better-ranked public one only when preferLan is set', () => {
    for (const preferLan of [true, false]) {
      const { p, winners } = prober({ candidates: fresh(PUBLIC, LAN, candidate('192.168.1.30', 4000, 'lan', 'second-lan')), preferLan })
      p.start()
      p.handle(peer.ack(PUBLIC.nonce), PUBLIC) // with preferLan: the grace starts
      p.handle(peer.ack(LAN.nonce), LAN)
      vi.advanceTimersByTime(GRACE)
      expect(winners.map(c => c.kind)).toEqual([preferLan ? 'lan' : 'public'])
    }
  })

  it('close() cancels a pending grace and everything after it', () => {
    const { p, sent, winners } = prober({ candidates: fresh(LAN, PUBLIC) })
    p.start()
    p.handle(peer.ack(PUBLIC.nonce), PUBLIC)
    p.close()
    expect(vi.getTimerCount()).toBe(0) // the grace timer too
    vi.advanceTimersByTime(10 * GRACE)
    expect(winners).toHaveLength(0)
    const before = sent.length
    p.handle(peer.probe('late'), PUBLIC)
    p.start()
    vi.advanceTimersByTime(10 * INTERVAL)
    expect(sent).toHaveLength(before)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('ignores select on the connect side', () => {
    const { p } = prober({ candidates: fresh(PUBLIC) })
    p.start()
    p.handle(peer.select('direct'), PUBLIC)
    expect([p.selected, p.punchedAt]).toEqual([null, null])
    vi.advanceTimersByTime(INTERVAL)
    expect(p.candidates[0].sent).toBe(2) // still probing
  })
})

describe('Prober: the accept side', () => {
  it('stops probing once it has heard the peer and been heard, and keeps answering', () => {
    const { p, sent, winners } = prober({ role: 'accept', candidates: fresh(PUBLIC) })
    p.start()
    vi.advanceTimersByTime(100)
    p.handle(peer.ack(PUBLIC.nonce), PUBLIC) // heard and been heard at once
    expect(p.punchedAt).toBe(100)
    expect(winners).toHaveLength(0) // the connect side chooses
    vi.advanceTimersByTime(10 * INTERVAL)
    expect(probes(sent)).toEqual(['0 203.0.113.5:40000 ttl 2'])
    p.handle(peer.probe('more'), PUBLIC)
    expect(sent[sent.length - 1].m).toEqual(peer.ack('more'))
    expect(p.punchedAt).toBe(100)
  })

  it('keeps probing while only heard from (a probe) and not yet answered', () => {
    const { p } = prober({ role: 'accept', candidates: fresh(PUBLIC) })
    p.start()
    p.handle(peer.probe('theirs'), PUBLIC)
    expect([p.heardPeer, p.beenHeard, p.punchedAt]).toEqual([true, false, null])
    vi.advanceTimersByTime(INTERVAL)
    expect(p.candidates[0].sent).toBe(2)
  })

  it('takes select: the path and where it came from; stops probing; the first punchedAt stays', () => {
    const { p } = prober({ role: 'accept', candidates: fresh(PUBLIC) })
    p.start()
    vi.advanceTimersByTime(70)
    p.handle(peer.select('birthday'), { address: '203.0.113.5', port: 40077 })
    expect(p.selected).toEqual({ path: 'birthday', from: { address: '203.0.113.5', port: 40077 } })
    expect(p.punchedAt).toBe(70)
    vi.advanceTimersByTime(INTERVAL)
    p.handle(peer.select('direct'), PUBLIC)
    expect(p.punchedAt).toBe(70)
    expect(p.selected?.path).toBe('direct')
    expect(p.candidates[0].sent).toBe(1)
  })
})

describe('Prober: birthday probing', () => {
  it('an ack of the spray nonce is a path found at that port: a birthday candidate, chosen', () => {
    const { p, sent, winners } = prober({ candidates: fresh(PUBLIC), preferLan: false })
    expect(p.sprayNonce()).toBe(p.sprayNonce())
    expect(p.sprayNonce()).toMatch(/^[0-9a-f]{16}$/)
    expect(p.birthdayFound).toBe(false)
    p.start()
    p.handle(peer.ack(p.sprayNonce()), { address: '203.0.113.5', port: 61234 })
    expect(p.birthdayFound).toBe(true)
    expect(p.candidates[1]).toMatchObject({ address: '203.0.113.5', port: 61234, kind: 'birthday', acked: true, sent: 0 })
    expect(winners.map(key)).toEqual(['203.0.113.5:61234'])
    expect(sent[sent.length - 1].m).toEqual(peer.select('birthday'))
    expect(p.beenHeard).toBe(true)
  })

  it('a port first learned from a probe becomes birthday when its spray ack comes; repeats change nothing', () => {
    const { p, winners } = prober({ role: 'connect', candidates: fresh(PUBLIC), preferLan: false })
    const at = { address: '203.0.113.5', port: 61234 }
    p.handle(peer.probe('theirs'), at)
    expect(p.candidates[1].kind).toBe('peer')
    p.handle(peer.ack(p.sprayNonce()), at)
    p.handle(peer.ack(p.sprayNonce()), at)
    expect(p.candidates.map(c => [c.kind, c.acked])).toEqual([['public', false], ['birthday', true]])
    expect(winners).toHaveLength(1)
  })

  it('a spray ack from a known candidate that is not peer-reflexive keeps its kind', () => {
    const { p, winners } = prober({ candidates: fresh(PUBLIC), preferLan: false })
    p.handle(peer.ack(p.sprayNonce()), PUBLIC)
    expect(p.candidates.map(c => [c.kind, c.acked])).toEqual([['public', true]])
    expect(p.birthdayFound).toBe(false)
    expect(winners.map(c => c.kind)).toEqual(['public'])
  })

  it('keeps at most 8 birthday candidates', () => {
    const { p } = prober({ role: 'accept', candidates: fresh(PUBLIC) })
    for (let i = 0; i < 12; i++) p.handle(peer.ack(p.sprayNonce()), { address: '203.0.113.5', port: 61000 + i })
    expect(p.candidates.filter(c => c.kind === 'birthday').map(c => c.port)).toEqual(Array.from({ length: 8 }, (_, i) => 61000 + i))
  })

  it('names the path of each kind of candidate', () => {
    expect((['lan', 'public', 'peer', 'birthday'] as const).map(kind => pathOf(candidate('10.0.0.1', 1, kind)))).toEqual(['lan', 'direct', 'direct', 'birthday'])
  })
})
