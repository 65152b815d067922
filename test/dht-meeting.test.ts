// Meeting by code on a local Mainline DHT (12 nodes of ours, 6 of bittorrent-dht): the keys a code gives,
// sealed cards, and two peers finding each other in every order: one after the other, both at once, two of
// the same side, a code already used, and codes that differ.
import { createCipheriv, randomBytes } from 'crypto'
import { getEventListeners } from 'events'

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'

import { startDhtLab, type DhtLab } from './helpers/dht-lab.mjs'
import { requireFromRoot } from './helpers/utp'

const { DhtNode, dhtPublicKey } = requireFromRoot('./dist/lib/dht/node.js') as typeof import('../lib/dht/node')
const meeting = requireFromRoot('./dist/lib/dht/meeting.js') as typeof import('../lib/dht/meeting')
type DhtNode = import('../lib/dht/node').DhtNode
type Card = import('../lib/dht/meeting').Card

let lab: DhtLab
const nodes: DhtNode[] = []

beforeAll(async () => {
  lab = await startDhtLab({ host: '127.0.0.1', ours: 12, theirs: 6 })
}, 60_000)

afterAll(async () => {
  for (const n of nodes) n.close()
  await lab?.close()
})

async function dhtClient (): Promise<DhtNode> {
  const n = await DhtNode.open({ bootstrap: lab.bootstrap.slice(0, 2), host: '127.0.0.1' })
  nodes.push(n)
  await n.bootstrapped()
  return n
}

function card (side?: string): Omit<Card, 'at'> {
  return {
    nonce: randomBytes(8).toString('hex'),
    pake: randomBytes(33).toString('base64'),
    public: { address: '198.51.100.7', port: 40000 + Math.floor(Math.random() * 1000) },
    lan: [{ address: '192.168.1.20', port: 5000 }],
    mapping: 'independent',
    ...(side === undefined ? {} : { side })
  }
}

function code (): string {
  return `${1 + Math.floor(Math.random() * 9999)}-test-${randomBytes(6).toString('hex')}`
}

describe('meeting keys and cards', () => {
  it('one code gives both peers the same keys, another code other keys', async () => {
    const c = code()
    const [a, b, other] = await Promise.all([meeting.deriveMeetingKeys(c), meeting.deriveMeetingKeys(c), meeting.deriveMeetingKeys(c + 'x')])
    expect(a.publicKeys[0].equals(b.publicKeys[0]) && a.publicKeys[1].equals(b.publicKeys[1])).toBe(true)
    expect(a.salt.equals(b.salt) && a.cardKey.equals(b.cardKey) && a.context === b.context).toBe(true)
    expect(a.publicKeys[0].equals(a.publicKeys[1])).toBe(false)
    expect(a.publicKeys[0].equals(other.publicKeys[0]) || a.salt.equals(other.salt) || a.cardKey.equals(other.cardKey)).toBe(false)
  })

  it('a code gives the keys of the published derivation (known answer), so versions of the package meet', async () => {
    // Computed apart from this package, with Python's hashlib.scrypt (N 2^15, r 8, p 1), HKDF-SHA-256 written
    // out from RFC 5869 and the `cryptography` package's Ed25519: a change to a parameter or a label would
    // leave two releases unable to find each other's cards
    const k = await meeting.deriveMeetingKeys('7-known-answer-code')
    expect(k.seeds[0].toString('hex')).toBe('350bc891061dd7b22edbce33ccb46b4683299db839517c83dbafdda0e7c09542')
    expect(k.publicKeys.map(p => p.toString('hex'))).toEqual(['168c6fc7bb5d875c670dc7b9e7916098764cae4c5f86fa6609ddabdaa9d152d2',
      '9eba5ad93ffa6aac326ba82ea6fe97880ebf96106e310b5318f8d0500ba4efee'])
    expect(k.salt.toString('hex')).toBe('473d1d8c4deb95f8a0acef25e16b23f4')
    expect(k.cardKey.toString('hex')).toBe('518fc6e64ab371effeb2e1c17ab843b9493e896b67c8c8ace6565b92009a5ee7')
    expect(k.context).toBe('dht|cd9492a4a7765a5d945731e55420a4f0')
  })

  it('a sealed card opens only with its code, in its slot, untouched', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const c: Card = { ...card('send'), at: 1_700_000_000_000 }
    const sealed = meeting.sealCard(keys, 0, c)
    expect(sealed.length).toBeLessThanOrEqual(1000)
    expect(sealed.includes(Buffer.from('198.51.100.7'))).toBe(false) // nothing readable by the DHT
    expect(meeting.openCard(keys, 0, sealed)).toEqual(c)
    expect(meeting.openCard(keys, 1, sealed)).toBeNull() // moved to the other slot
    expect(meeting.openCard(await meeting.deriveMeetingKeys(code()), 0, sealed)).toBeNull()
    const flipped = Buffer.from(sealed)
    flipped[20] ^= 1
    expect(meeting.openCard(keys, 0, flipped)).toBeNull()
    expect(meeting.openCard(keys, 0, sealed.subarray(0, 20))).toBeNull()
  })

  it('a card that opens but is not a valid card is refused', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const base: Card = { ...card(), at: Date.now() }
    for (const bad of [{ nonce: 'x' }, { lan: [{ address: '10.0.0.1' }] }, { public: { address: '10.0.0.1', port: 0 } },
      { mapping: 'cone' }, { side: 'x'.repeat(33) }, { at: 'now' }, { used: 'yes' }, { left: 'yes' }, { pake: 'p'.repeat(201) }]) {
      const sealed = meeting.sealCard(keys, 0, { ...base, ...bad } as unknown as Card)
      expect(meeting.openCard(keys, 0, sealed), JSON.stringify(bad)).toBeNull()
    }
    // The two end marks travel as they were set
    for (const mark of [{ used: true }, { left: true }] as const) {
      expect(meeting.openCard(keys, 0, meeting.sealCard(keys, 0, { ...base, ...mark }))).toEqual({ ...base, ...mark })
    }
    // More LAN addresses than a card holds: the first 8 travel
    const many = Array.from({ length: 12 }, (_, i) => ({ address: `10.0.0.${i + 1}`, port: 1000 + i }))
    expect(meeting.openCard(keys, 0, meeting.sealCard(keys, 0, { ...base, lan: many }))?.lan).toEqual(many.slice(0, 8))
  })

  it('a card that opens is checked field by field, at each limit, and only its own fields are kept', async () => {
    // Sealed here, outside sealCard (which would cut the LAN list to 8): any JSON a holder of the code could send
    const keys = await meeting.deriveMeetingKeys(code())
    const sealRaw = (json: string): Buffer => {
      const iv = randomBytes(12)
      const c = createCipheriv('aes-256-gcm', keys.cardKey, iv)
      c.setAAD(Buffer.from('slot 0'))
      return Buffer.concat([iv, c.update(json, 'utf8'), c.final(), c.getAuthTag()])
    }
    const good = { nonce: '0123456789abcdef', pake: 'p', lan: [], at: 1 }
    const opens = (o: unknown): Card | null => meeting.openCard(keys, 0, sealRaw(JSON.stringify(o)))
    expect(opens(good)).toEqual(good)
    const endpoint = { address: '10.0.0.1', port: 5 }
    for (const bad of [null, 5, 'card', [good], { ...good, nonce: undefined }, { ...good, nonce: '0123456789ABCDEF' },
      { ...good, nonce: '0123456789abcdef0' }, { ...good, nonce: 'x0123456789abcde' }, { ...good, nonce: 1234567890123456 }, { ...good, pake: undefined }, { ...good, pake: 5 }, { ...good, pake: 'p'.repeat(201) },
      { ...good, lan: undefined }, { ...good, lan: endpoint }, { ...good, lan: Array(9).fill(endpoint) }, { ...good, lan: [null] }, { ...good, lan: [endpoint, { ...endpoint, port: 0 }] },
      { ...good, lan: ['10.0.0.1:5'] }, { ...good, lan: [{ address: 7, port: 5 }] }, { ...good, lan: [{ address: 'a'.repeat(65), port: 5 }] },
      { ...good, lan: [{ ...endpoint, port: 1.5 }] }, { ...good, lan: [{ ...endpoint, port: 0 }] }, { ...good, lan: [{ ...endpoint, port: 65536 }] }, { ...good, lan: [{ ...endpoint, port: '5' }] },
      { ...good, public: null }, { ...good, public: { ...endpoint, port: -1 } }, { ...good, side: 5 }, { ...good, side: 's'.repeat(33) }, { ...good, mapping: 'cone' }, { ...good, at: undefined },
      { ...good, at: null }, { ...good, used: false }, { ...good, left: false }, { ...good, pairedWith: '0123456789abcdef' },
      { ...good, used: true, pairedWith: '0123456789ABCDEF' }, { ...good, used: true, pairedWith: 5 }, { ...good, used: true, pairedWith: '0123456789abcde' }]) {
      expect(opens(bad), JSON.stringify(bad)).toBeNull()
    }
    // Each limit itself is allowed, and fields a card does not have are dropped
    const edge = { address: 'a'.repeat(64), port: 65535 }
    const full = { ...good, pake: 'p'.repeat(200), lan: Array(8).fill({ address: '10.0.0.1', port: 1 }), public: edge, side: 's'.repeat(32), mapping: 'dependent' }
    expect(opens({ ...full, extra: 1, public: { ...edge, extra: 2 }, lan: full.lan.map(e => ({ ...e, extra: 3 })) })).toEqual(full)
    expect(opens({ ...good, mapping: 'independent' })).toEqual({ ...good, mapping: 'independent' })
    expect(opens({ ...good, used: true, pairedWith: 'fedcba9876543210' })).toEqual({ ...good, used: true, pairedWith: 'fedcba9876543210' })
    expect(Object.keys(opens({ ...good, public: undefined, mapping: undefined, side: undefined, used: undefined, left: undefined, pairedWith: undefined }) ?? {}).sort())
      .toEqual(['at', 'lan', 'nonce', 'pake'])
  })

  it('a card too big for a DHT value is refused before anything is sent, with its size', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    expect(() => meeting.sealCard(keys, 0, { ...card(), side: 's'.repeat(1000), at: Date.now() })).toThrow(expect.objectContaining({
      code: 'ERR_DHT_CARD_TOO_BIG',
      message: expect.stringMatching(/^a meeting card is 1\d{3} bytes, over the DHT's 1000$/)
    }))
    // A card of exactly the DHT's 1,000 bytes still goes (the value limit, not what openCard accepts)
    const base: Card = { ...card(), side: '', at: Date.now() }
    const room = 1000 - meeting.sealCard(keys, 0, base).length
    expect(meeting.sealCard(keys, 0, { ...base, side: 's'.repeat(room) }).length).toBe(1000)
  })
})

/** An in-memory DHT with BEP 44's seq rule, whose next puts can be made to fail as a racing writer would */
function memoryDht (): { dht: DhtNode, conflicts: number, puts: number } {
  const items = new Map<string, { value: Buffer, seq: number }>()
  const state = { conflicts: 0, puts: 0, dht: null as unknown as DhtNode }
  const pk = (seed: Buffer): string => dhtPublicKey(seed).toString('hex')
  state.dht = {
    async put (seed: Buffer, salt: Buffer, value: Buffer, o: { seq: number }) {
      state.puts++
      const key = pk(seed) + salt.toString('hex')
      const old = items.get(key)
      if (state.conflicts > 0 || (old !== undefined && old.seq >= o.seq)) {
        if (state.conflicts > 0) state.conflicts--
        throw Object.assign(new Error('the DHT holds a different version of the item'), { code: 'ERR_DHT_CONFLICT' })
      }
      items.set(key, { value, seq: o.seq })
      return 8
    },
    async get (publicKey: Buffer, salt: Buffer) {
      return { item: items.get(publicKey.toString('hex') + salt.toString('hex')), queried: 8, responded: 8, invalidValues: 0 }
    }
  } as unknown as DhtNode
  return state
}

/**
 * A DHT whose lookups follow a script: `answer(slot, read)` gives what the `read`th lookup (from 1) of that slot
 * returns; puts succeed and change nothing. For paths a real DHT takes only now and then
 */
function scriptedDht (keys: import('../lib/dht/meeting').MeetingKeys,
  answer: (slot: 0 | 1, read: number) => { item?: { value: Buffer, seq: number }, invalidValues?: number }): { dht: DhtNode, puts: number } {
  const reads = [0, 0]
  const state = { puts: 0, dht: null as unknown as DhtNode }
  state.dht = {
    async put () { state.puts++; return 8 },
    async get (publicKey: Buffer) {
      const slot = publicKey.equals(keys.publicKeys[0]) ? 0 : 1
      const { item, invalidValues = 0 } = answer(slot, ++reads[slot])
      return { item, queried: 8, responded: 8, invalidValues }
    }
  } as unknown as DhtNode
  return state
}

describe('meeting, scripted on an in-memory DHT', () => {
  it('a put that loses a race is not an error: the peer reads again and still meets', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const mem = memoryDht()
    const first = meeting.meet({ dht: mem.dht, keys, card: card(), pollMs: 10 })
    await new Promise(resolve => setTimeout(resolve, 50))
    mem.conflicts = 2 // the second peer's first two puts meet a newer version
    const second = await meeting.meet({ dht: mem.dht, keys, card: card(), pollMs: 10 })
    expect(second.slot).toBe(1)
    expect((await first).slot).toBe(0)
    expect(mem.conflicts).toBe(0)
  })

  it('two peers that take slot 0 at once meet even where each lookup returns its own card on equal seqs', async () => {
    // Two faces on one store: a version is kept per writer, a read returns the highest seq and, of equal seqs,
    // the reader's own (as nodes that keep the first version they got can make it happen on a real DHT)
    const store = new Map<string, Array<{ value: Buffer, seq: number, by: number }>>()
    const face = (me: number): DhtNode => ({
      async put (seed: Buffer, salt: Buffer, value: Buffer, o: { seq: number }) {
        const key = dhtPublicKey(seed).toString('hex') + salt.toString('hex')
        const list = store.get(key) ?? []
        store.set(key, [...list.filter(v => v.by !== me), { value, seq: o.seq, by: me }])
        return 8
      },
      async get (publicKey: Buffer, salt: Buffer) {
        const list = store.get(publicKey.toString('hex') + salt.toString('hex')) ?? []
        const best = [...list].sort((x, y) => y.seq - x.seq || (x.by === me ? -1 : y.by === me ? 1 : 0))[0]
        return { item: best === undefined ? undefined : { value: best.value, seq: best.seq }, queried: 8, responded: 8, invalidValues: 0 }
      }
    }) as unknown as DhtNode
    const keys = await meeting.deriveMeetingKeys(code())
    const abort = AbortSignal.timeout(3000)
    const [a, b] = await Promise.all([meeting.meet({ dht: face(1), keys, card: card(), pollMs: 10, signal: abort }),
      meeting.meet({ dht: face(2), keys, card: card(), pollMs: 10, signal: abort })])
    expect(new Set([a.slot, b.slot])).toEqual(new Set([0, 1]))
  })

  it('a peer that gave way is found in slot 1 while lookups still return its old card in slot 0', async () => {
    // After the race for slot 0 the peer with the higher nonce moved to slot 1, leaving its card in slot 0.
    // Here every later lookup of slot 0 still returns that card (our puts went to nodes these lookups do not
    // reach), as a real DHT's lookups can: the peer must still be found in slot 1, where it waits for us
    const keys = await meeting.deriveMeetingKeys(code())
    const me = { ...card(), nonce: '0'.repeat(16) } // the lowest nonce: we keep slot 0
    const peer: Card = { ...card(), nonce: 'f'.repeat(16), at: Date.now() }
    let rounds = 0
    const scripted = scriptedDht(keys, (slot, read) => {
      rounds = Math.max(rounds, read)
      return read === 1 ? {} : { item: { value: meeting.sealCard(keys, slot, peer), seq: slot === 0 ? 1_000_000 : 7 } }
    })
    const met = await meeting.meet({ dht: scripted.dht, keys, card: me, pollMs: 10, signal: AbortSignal.timeout(2000) })
    expect(met.slot).toBe(0)
    expect(met.peer.nonce).toBe(peer.nonce)
    expect(rounds).toBe(2)
    expect(scripted.puts).toBe(1)
  })

  it('a peer that met us and marked its slot used before we read its card is still our peer; a used card naming another is burned', async () => {
    // A sender that goes on to a relay at once (no direct path) marks its slot used within the same second it
    // met the receiver: the receiver's next read finds only the used card, and must follow it, not give up
    for (const side of ['receive', undefined]) {
      const keys = await meeting.deriveMeetingKeys(code())
      const mem = memoryDht()
      const waiting = card(side)
      const rounds: string[] = []
      let published!: () => void
      const isPublished = new Promise<void>(resolve => { published = resolve })
      const first = meeting.meet({ dht: mem.dht, keys, card: waiting, pollMs: 20, signal: AbortSignal.timeout(3000), onPublished: () => published(), onRound: r => rounds.push(r.seen[1]) })
      await isPublished
      const second = card(side === undefined ? undefined : 'send')
      const met = await meeting.meet({ dht: mem.dht, keys, card: second, pollMs: 20 })
      expect(met.peer.nonce).toBe(waiting.nonce)
      await meeting.markUsed(mem.dht, keys, met.slot, second, met.seq, waiting.nonce)
      const got = await first
      expect(got.peer).toMatchObject({ nonce: second.nonce, pake: second.pake, public: second.public, used: true, pairedWith: waiting.nonce })
      expect(got.slot).toBe(0)
      expect(rounds.at(-1), String(side)).toMatch(/^used \(paired with us\) peer [0-9a-f]{4}… seq \d+$/)
      // A third peer with the code: that used card names someone else
      await expect(meeting.meet({ dht: mem.dht, keys, card: card(side === undefined ? undefined : 'send'), pollMs: 20 })).rejects.toMatchObject({ code: 'ERR_CODE_BURNED' })
    }
  })

  it('counts the items that do not open as cards, with those the DHT itself found forged', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const peer: Card = { ...card(), at: Date.now() }
    const { dht } = scriptedDht(keys, slot => slot === 0
      ? { item: { value: meeting.sealCard(keys, 0, peer), seq: 4 } }
      : { item: { value: randomBytes(100), seq: 9 }, invalidValues: 2 })
    const met = await meeting.meet({ dht, keys, card: card(), pollMs: 10 })
    expect(met).toMatchObject({ slot: 1, lookups: 3, invalidItems: 3 })
    expect(met.peer).toEqual(peer)
  })

  it('a side without a slot of its own meets any other side, and is refused by its own', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const mem = memoryDht()
    const first = meeting.meet({ dht: mem.dht, keys, card: card('alpha'), pollMs: 10 })
    await new Promise(resolve => setTimeout(resolve, 50))
    await expect(meeting.meet({ dht: mem.dht, keys, card: card('alpha'), pollMs: 10 })).rejects.toMatchObject({
      code: 'ERR_SAME_ROLE',
      message: 'the peer waiting under this code is also a "alpha" side: the other peer must take the other part (it keeps waiting)'
    })
    const second = await meeting.meet({ dht: mem.dht, keys, card: card('beta'), pollMs: 10 })
    expect([second.slot, (await first).slot]).toEqual([1, 0])
    expect(second.peer.side).toBe('alpha')
  })

  it('a waiting peer publishes its card again every refreshMs, and only then', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const waitAlone = async (refreshMs: number, side?: string): Promise<number> => {
      const mem = memoryDht()
      await expect(meeting.meet({ dht: mem.dht, keys, card: card(side), pollMs: 10, refreshMs, signal: AbortSignal.timeout(400) }))
        .rejects.toMatchObject({ code: 'ABORT_ERR', message: 'the meeting was aborted' })
      return mem.puts
    }
    for (const side of [undefined, 'send']) {
      expect(await waitAlone(60_000, side), String(side)).toBe(1)
      expect(await waitAlone(50, side), String(side)).toBeGreaterThanOrEqual(4)
    }
  })

  it('a withdrawn card frees its slot: the next peer takes slot 0 and does not meet the one that left', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const mem = memoryDht()
    const gone = card()
    const abort = new AbortController()
    let at: { slot: 0 | 1, seq: number } | undefined
    const waiting = meeting.meet({ dht: mem.dht, keys, card: gone, pollMs: 10, signal: abort.signal, onPublished: (slot, seq) => { at = { slot, seq } } })
    await new Promise(resolve => setTimeout(resolve, 50))
    abort.abort()
    await expect(waiting).rejects.toMatchObject({ code: 'ABORT_ERR' })
    if (at === undefined) throw new Error('the first peer never published')
    await meeting.withdraw(mem.dht, keys, at.slot, gone, at.seq)
    const left = await mem.dht.get(keys.publicKeys[0], keys.salt)
    expect(left.item?.seq).toBe(at.seq + 1)
    expect(meeting.openCard(keys, 0, left.item?.value ?? Buffer.alloc(0))).toMatchObject({ nonce: gone.nonce, left: true })
    const [a, b] = [card(), card()]
    const first = meeting.meet({ dht: mem.dht, keys, card: a, pollMs: 10 })
    await new Promise(resolve => setTimeout(resolve, 50))
    const second = await meeting.meet({ dht: mem.dht, keys, card: b, pollMs: 10 })
    expect([(await first).slot, second.slot]).toEqual([0, 1])
    expect([(await first).peer.nonce, second.peer.nonce]).toEqual([b.nonce, a.nonce])
  })

  it('each round of reads is reported as it was seen: slots, our slot and seq, refused puts, lookups', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    type Round = import('../lib/dht/meeting').MeetingRound
    /** The first `n` rounds a peer reports, then it is aborted */
    const firstRounds = async (dht: DhtNode, c: Omit<Card, 'at'>, n: number, onPublished?: (slot: 0 | 1, seq: number) => void): Promise<Round[]> => {
      const rounds: Round[] = []
      const abort = new AbortController()
      const waiting = meeting.meet({ dht, keys, card: c, pollMs: 10, signal: abort.signal, onRound: r => rounds.push(r), onPublished })
      await vi.waitUntil(() => rounds.length >= n)
      abort.abort()
      await expect(waiting).rejects.toMatchObject({ code: 'ABORT_ERR' })
      return rounds
    }
    const mem = memoryDht()
    const [a, b] = [card(), card()]
    let seqA = -1
    mem.conflicts = 1 // A's first put meets a newer version
    const roundsA = await firstRounds(mem.dht, a, 3, (_, seq) => { seqA = seq })
    expect(roundsA[0]).toMatchObject({ round: 1, slot: null, seen: ['empty', 'empty'], conflicts: 0, lookups: 2 })
    expect(roundsA[1]).toMatchObject({ round: 2, slot: null, seen: ['empty', 'empty'], conflicts: 1, lookups: 5 })
    expect(roundsA[2]).toEqual({ round: 3, slot: 0, seq: seqA, seen: [`ours seq ${seqA}`, 'empty'], conflicts: 1, lookups: 8 })
    // As the debug log and the timeout's message say it
    expect(meeting.describeRound(roundsA[0])).toBe('round 1 (no slot taken yet): slot 0 showed empty, slot 1 empty')
    expect(meeting.describeRound(roundsA[2])).toBe(`round 3 (our card in slot 0, seq ${seqA}; 1 put refused as out of date): slot 0 showed ours seq ${seqA}, slot 1 empty`)
    expect(meeting.describeRound({ ...roundsA[2], conflicts: 2 })).toContain('; 2 puts refused as out of date)')
    await meeting.withdraw(mem.dht, keys, 0, a, seqA)
    expect((await firstRounds(mem.dht, b, 1))[0].seen).toEqual([`left peer ${a.nonce.slice(0, 4)}… seq ${seqA + 1}`, 'empty'])
    // A fixed side reads only the other slot once published: its own shows as not read
    expect((await firstRounds(memoryDht().dht, card('receive'), 2)).slice(0, 2).map(r => r.seen)).toEqual([['empty', 'empty'], ['not read', 'empty']])
    const roundsS = await firstRounds(memoryDht().dht, card('send'), 2)
    expect(roundsS.slice(0, 2).map(r => r.seen)).toEqual([['empty', 'empty'], ['empty', 'not read']])
    expect(roundsS[1]).toMatchObject({ slot: 1 })
    // A sender finding the receiver there: slot 0 is the receiver's, whichever slot is ours
    const both = memoryDht()
    const receiver = card('receive')
    let receiverSeq = -1
    const waitingReceiver = meeting.meet({ dht: both.dht, keys, card: receiver, pollMs: 10, onPublished: (_, seq) => { receiverSeq = seq } })
    await vi.waitUntil(() => receiverSeq >= 0)
    const roundsSender: Array<import('../lib/dht/meeting').MeetingRound> = []
    await meeting.meet({ dht: both.dht, keys, card: card('send'), pollMs: 10, onRound: r => roundsSender.push(r) })
    await waitingReceiver
    expect(roundsSender[0].seen).toEqual([`peer ${receiver.nonce.slice(0, 4)}… seq ${receiverSeq}`, 'empty'])
    // What a slot can show besides: an item that is no card, a stale card, a used one (reported, then refused)
    const stale: Card = { ...card(), at: Date.now() - meeting.STALE_MS - 1000 }
    const used: Card = { ...card(), at: Date.now(), used: true }
    const roundsOdd: Array<import('../lib/dht/meeting').MeetingRound> = []
    const odd = scriptedDht(keys, (slot, read) => slot === 0
      ? { item: read === 1 ? { value: randomBytes(100), seq: 5 } : { value: meeting.sealCard(keys, 0, stale), seq: 6 } }
      : read === 1 ? {} : { item: { value: meeting.sealCard(keys, 1, used), seq: 7 } })
    await expect(meeting.meet({ dht: odd.dht, keys, card: card(), pollMs: 10, onRound: r => roundsOdd.push(r) })).rejects.toMatchObject({ code: 'ERR_CODE_BURNED' })
    expect(roundsOdd.map(r => r.seen)).toEqual([
      ['unreadable seq 5', 'empty'],
      [`stale peer ${stale.nonce.slice(0, 4)}… seq 6`, `used peer ${used.nonce.slice(0, 4)}… seq 7`]
    ])
  })

  it('other DHT errors end the meeting with their code', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const broken = { get: async () => { throw Object.assign(new Error('no DHT node'), { code: 'ERR_DHT_NO_NODES' }) } } as unknown as DhtNode
    await expect(meeting.meet({ dht: broken, keys, card: card(), pollMs: 10 })).rejects.toMatchObject({ code: 'ERR_DHT_NO_NODES' })
    // A put that fails for another reason than a newer version is not retried either, in both kinds of slot
    for (const side of [undefined, 'send']) {
      const mem = memoryDht()
      const failing = { get: mem.dht.get, put: async () => { throw Object.assign(new Error('no DHT node stored the item'), { code: 'ERR_DHT_PUT_FAILED' }) } } as unknown as DhtNode
      await expect(meeting.meet({ dht: failing, keys, card: card(side), pollMs: 10, signal: AbortSignal.timeout(2000) }))
        .rejects.toMatchObject({ code: 'ERR_DHT_PUT_FAILED' })
    }
  })

  it('a card older than STALE_MS is a peer that left: its slot is taken over', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const mem = memoryDht()
    const gone = { ...card(), at: Date.now() - meeting.STALE_MS - 1000 }
    await mem.dht.put(keys.seeds[0], keys.salt, meeting.sealCard(keys, 0, gone), { seq: 3 })
    // The two start together, so which one takes slot 0 is the nonce race's to settle (random
    // nonces): what matters is that the stale card's slot is taken and neither meets the gone peer
    const [a, b] = [card(), card()]
    const [fresh, late] = await Promise.all([meeting.meet({ dht: mem.dht, keys, card: a, pollMs: 10 }),
      meeting.meet({ dht: mem.dht, keys, card: b, pollMs: 10 })])
    expect(new Set([fresh.slot, late.slot])).toEqual(new Set([0, 1]))
    expect(late.peer.nonce).not.toBe(gone.nonce)
    expect(fresh.peer.nonce).not.toBe(gone.nonce)
    expect([fresh.peer.nonce, late.peer.nonce]).toEqual([b.nonce, a.nonce])
  })

  it('the sides with a slot of their own publish there first, even into an empty DHT', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    for (const [side, slot] of [['send', 1], ['receive', 0], ['other', 0], [undefined, 0]] as const) {
      const mem = memoryDht()
      const slots: number[] = []
      await expect(meeting.meet({ dht: mem.dht, keys, card: card(side), pollMs: 10, signal: AbortSignal.timeout(200), onPublished: (s) => slots.push(s) }))
        .rejects.toMatchObject({ code: 'ABORT_ERR' })
      expect(slots, String(side)).toEqual([slot])
    }
  })

  it('a side with a slot of its own that finds the other side already there meets it at once', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const mem = memoryDht()
    const receiver = { ...card('receive'), at: Date.now() }
    await mem.dht.put(keys.seeds[0], keys.salt, meeting.sealCard(keys, 0, receiver), { seq: 3 })
    const met = await meeting.meet({ dht: mem.dht, keys, card: card('send'), pollMs: 1000 })
    expect(met).toMatchObject({ slot: 1, lookups: 3, peer: { nonce: receiver.nonce } })
  })

  it('a peer that finds another already in slot 0 takes slot 1 at once, without racing for slot 0', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const mem = memoryDht()
    const first = { ...card(), at: Date.now() }
    await mem.dht.put(keys.seeds[0], keys.salt, meeting.sealCard(keys, 0, first), { seq: 3 })
    const slots: number[] = []
    const met = await meeting.meet({ dht: mem.dht, keys, card: card(), pollMs: 1000, onPublished: (s) => slots.push(s) })
    expect(met).toMatchObject({ slot: 1, lookups: 3, peer: { nonce: first.nonce } })
    expect(slots).toEqual([1])
  })

  it('the race for slot 0: the higher nonce moves to slot 1, the lower one stays and publishes again', async () => {
    // Every peer must apply the same rule, or both would move (or both stay): the rule is part of the protocol
    const keys = await meeting.deriveMeetingKeys(code())
    const race = async (mine: string, theirs: string, side?: string): Promise<{ slots: number[], met: Promise<unknown> }> => {
      const other = { ...card(side), nonce: theirs, at: Date.now() }
      // Slot 0 is empty at first, then holds the other's card, at a higher seq each time (it keeps racing)
      const { dht } = scriptedDht(keys, (slot, read) => slot === 0 && read > 1 ? { item: { value: meeting.sealCard(keys, 0, other), seq: 50 + read } } : {})
      const slots: number[] = []
      const met = meeting.meet({ dht, keys, card: { ...card(side), nonce: mine }, pollMs: 10, signal: AbortSignal.timeout(300), onPublished: (s) => slots.push(s) })
      await met.catch(() => {})
      return { slots, met }
    }
    const high = await race('f'.repeat(16), '0'.repeat(16))
    await expect(high.met).resolves.toMatchObject({ slot: 1, peer: { nonce: '0'.repeat(16) } })
    expect(high.slots).toEqual([0, 1])
    const low = await race('0'.repeat(16), 'f'.repeat(16))
    await expect(low.met).rejects.toMatchObject({ code: 'ABORT_ERR' })
    expect(low.slots.length).toBeGreaterThanOrEqual(3)
    expect(new Set(low.slots)).toEqual(new Set([0]))
    // Two of one side (without a slot of its own) racing: the one that would move learns it is the same side
    const same = await race('f'.repeat(16), '0'.repeat(16), 'alpha')
    await expect(same.met).rejects.toMatchObject({ code: 'ERR_SAME_ROLE' })
  })

  it('an abort ends the meeting at once, not after the poll it came in', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    for (const side of [undefined, 'send']) {
      const mem = memoryDht()
      const started = Date.now()
      await expect(meeting.meet({ dht: mem.dht, keys, card: card(side), pollMs: 60_000, signal: AbortSignal.timeout(200) }))
        .rejects.toMatchObject({ code: 'ABORT_ERR' })
      expect(Date.now() - started, String(side)).toBeLessThan(10_000)
    }
    // A meeting of many polls leaves no listener behind on the caller's signal
    const mem = memoryDht()
    const controller = new AbortController()
    const first = meeting.meet({ dht: mem.dht, keys, card: card(), pollMs: 10, signal: controller.signal })
    await new Promise(resolve => setTimeout(resolve, 300))
    await meeting.meet({ dht: mem.dht, keys, card: card(), pollMs: 10 })
    await first
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
  })

  it('a card exactly STALE_MS old is already stale, one a millisecond younger still live', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const now = 1_800_000_000_000
    const clock = vi.spyOn(Date, 'now').mockReturnValue(now)
    try {
      for (const age of [meeting.STALE_MS, meeting.STALE_MS - 1]) {
        const mem = memoryDht()
        const waiting = { ...card(), at: now - age }
        await mem.dht.put(keys.seeds[0], keys.salt, meeting.sealCard(keys, 0, waiting), { seq: 3 })
        const met = meeting.meet({ dht: mem.dht, keys, card: card(), pollMs: 10, signal: AbortSignal.timeout(300) })
        if (age === meeting.STALE_MS) await expect(met).rejects.toMatchObject({ code: 'ABORT_ERR' }) // took slot 0, waits
        else expect(await met).toMatchObject({ slot: 1, peer: { nonce: waiting.nonce } })
      }
    } finally {
      clock.mockRestore()
    }
  })
})

describe('meeting on the DHT', () => {
  it('the first peer takes slot 0, the second finds it and takes slot 1; each gets the other\'s card', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const [da, db] = await Promise.all([dhtClient(), dhtClient()])
    const ca = card('receive')
    const cb = card('send')
    const started = Date.now()
    const first = meeting.meet({ dht: da, keys, card: ca, pollMs: 300 })
    await new Promise(resolve => setTimeout(resolve, 3000))
    const second = await meeting.meet({ dht: db, keys, card: cb, pollMs: 300 })
    const a = await first
    expect(a.slot).toBe(0)
    expect(second.slot).toBe(1)
    expect(a.peer).toMatchObject(cb)
    expect(second.peer).toMatchObject(ca)
    expect(Date.now() - started).toBeLessThan(20_000)
  }, 40_000)

  it('two peers starting together both want slot 0 and still meet, one slot each', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const [da, db] = await Promise.all([dhtClient(), dhtClient()])
    const ca = card()
    const cb = card()
    const [a, b] = await Promise.all([meeting.meet({ dht: da, keys, card: ca, pollMs: 300 }), meeting.meet({ dht: db, keys, card: cb, pollMs: 300 })])
    expect(new Set([a.slot, b.slot])).toEqual(new Set([0, 1]))
    expect(a.peer.nonce).toBe(cb.nonce)
    expect(b.peer.nonce).toBe(ca.nonce)
  }, 40_000)

  it('a second peer of the same side fails with ERR_SAME_ROLE and the first keeps waiting for the right one', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const [da, db, dc] = await Promise.all([dhtClient(), dhtClient(), dhtClient()])
    const first = meeting.meet({ dht: da, keys, card: card('receive'), pollMs: 300 })
    await new Promise(resolve => setTimeout(resolve, 3000))
    await expect(meeting.meet({ dht: db, keys, card: card('receive'), pollMs: 300 })).rejects.toMatchObject({ code: 'ERR_SAME_ROLE' })
    const sender = await meeting.meet({ dht: dc, keys, card: card('send'), pollMs: 300 })
    expect(sender.peer.side).toBe('receive')
    expect((await first).peer.side).toBe('send')
  }, 60_000)

  it('a used code is refused with ERR_CODE_BURNED', async () => {
    const keys = await meeting.deriveMeetingKeys(code())
    const [da, db, dc] = await Promise.all([dhtClient(), dhtClient(), dhtClient()])
    const ca = card()
    const first = meeting.meet({ dht: da, keys, card: ca, pollMs: 300 })
    await new Promise(resolve => setTimeout(resolve, 2000))
    await meeting.meet({ dht: db, keys, card: card(), pollMs: 300 })
    const a = await first
    await meeting.markUsed(da, keys, a.slot, ca, a.seq, a.peer.nonce)
    await expect(meeting.meet({ dht: dc, keys, card: card(), pollMs: 300 })).rejects.toMatchObject({
      code: 'ERR_CODE_BURNED',
      message: 'this code was used by a pairing already: make a new one'
    })
  }, 60_000)

  it('peers with different codes never meet', async () => {
    const [da, db] = await Promise.all([dhtClient(), dhtClient()])
    const abort = new AbortController()
    const outcomes: string[] = []
    const run = async (c: string, dht: DhtNode): Promise<void> => {
      await meeting.meet({ dht, keys: await meeting.deriveMeetingKeys(c), card: card(), pollMs: 300, signal: abort.signal })
        .then(() => outcomes.push('met'), (e: { code?: string }) => outcomes.push(e.code ?? 'error'))
    }
    const both = Promise.all([run(code(), da), run(code(), db)])
    await new Promise(resolve => setTimeout(resolve, 6000))
    abort.abort()
    await both
    expect(outcomes).toEqual(['ABORT_ERR', 'ABORT_ERR'])
  }, 40_000)
})
