// Two peers that share only a code meet on the Mainline DHT: each publishes a card (its first PAKE message and
// where it can be reached) as a BEP 44 mutable item, and reads the other's. Nothing else of ours is involved.
//
// Where to meet: a slow KDF (scrypt) of the code gives two signing keys, one per slot, a BEP 44 salt, and a
// key that encrypts the cards. Only holders of the code can compute the keys, so only they can write the
// slots (the DHT checks the signatures), and the cards are AES-256-GCM sealed, so a DHT node storing them sees
// neither addresses nor anything about the code. A node could still guess codes offline against the public
// keys; scrypt makes each guess cost ~100 ms and 32 MiB, and a generated code has about 2^37 choices.
//
// Slots: a "receive" side takes slot 0 and a "send" side slot 1, each reading the other's. Without those
// sides, the first peer takes slot 0 (it will accept), the second finds it there and takes slot 1 (it will
// connect); two peers that both find slot 0 empty race for it: each keeps reading it, and the one with the
// higher nonce gives way and moves to slot 1. When pairing is over, both slots get a "used" card: the code
// is single-use, and a third party using it later gets ERR_CODE_BURNED instead of a stale peer.

import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, randomInt, scrypt } from 'crypto'

import { createError } from '../errors'
import { dhtPublicKey, MAX_DHT_VALUE, type DhtNode } from './node'

export interface Endpoint { address: string, port: number }

/** What a peer publishes about itself */
export interface Card {
  /** Random per meeting, 16 hex digits: tells the two peers (and their races) apart */
  nonce: string
  /** The first SPAKE2 message, base64 */
  pake: string
  /** The uTP socket's public address as DHT nodes saw it */
  public?: Endpoint
  lan: Endpoint[]
  mapping?: 'independent' | 'dependent'
  side?: string
  /** Unix ms when it was (re)published: a card not refreshed for STALE_MS belongs to a peer that left */
  at: number
  /** The pairing this card's peer was in is over: the code is used up */
  used?: boolean
  /**
   * With `used`: the nonce of the peer it paired with. That peer may not have read the live card before this
   * one replaced it (a peer that went on to a relay marks its slot at once): for it, this is still its peer
   */
  pairedWith?: string
  /** Its peer gave up without pairing (cancelled, failed): the slot is free again, the code unspent */
  left?: boolean
}

export interface MeetingKeys {
  /** Signing seeds of slot 0 and 1, and their public keys */
  seeds: [Buffer, Buffer]
  publicKeys: [Buffer, Buffer]
  salt: Buffer
  cardKey: Buffer
  /** Context for the PAKE: both peers derive the same one, nobody else can */
  context: string
}

export interface MeetingResult {
  peer: Card
  /** Our slot: 0 accepts, 1 connects; and the seq our card has there (markUsed writes after it) */
  slot: 0 | 1
  seq: number
  /** Puts and gets it took, and forged or broken items the DHT returned on the way */
  lookups: number
  invalidItems: number
}

export interface MeetingOptions {
  dht: DhtNode
  keys: MeetingKeys
  card: Omit<Card, 'at'>
  /** Read the slots again after this long, ms. Default 1,000 */
  pollMs?: number
  /** Publish the card again (fresh `at`) this often while waiting, ms. Default 60,000 */
  refreshMs?: number
  signal?: AbortSignal
  /** Our card is in `slot` at `seq` now: what withdraw() needs if the meeting is given up */
  onPublished?: (slot: 0 | 1, seq: number) => void
  /** What each round of reads saw: says why a meeting that never ends is waiting (the timeout's message) */
  onRound?: (round: MeetingRound) => void
}

/** One round of reading both slots */
export interface MeetingRound {
  round: number
  /** Our slot so far (null: none yet), and our card's seq there */
  slot: 0 | 1 | null
  seq: number
  /** What slot 0 and slot 1 showed, e.g. "empty", "ours seq 12", "peer 9f3a… seq 14", "stale peer … seq 3" */
  seen: [string, string]
  /** Puts the DHT refused because it held a newer version, so far */
  conflicts: number
  lookups: number
}

/** "round 12 (our card in slot 0, seq 40; 1 put refused as out of date): slot 0 showed ours seq 40, slot 1 empty" */
export function describeRound (r: MeetingRound): string {
  const where = r.slot === null ? 'no slot taken yet' : `our card in slot ${r.slot}, seq ${r.seq}`
  const refused = r.conflicts === 0 ? '' : `; ${r.conflicts} put${r.conflicts === 1 ? '' : 's'} refused as out of date`
  return `round ${r.round} (${where}${refused}): slot 0 showed ${r.seen[0]}, slot 1 ${r.seen[1]}`
}

/**
 * Sides with a slot of their own (the CLI's): the receiver accepts from slot 0, the sender connects from slot 1.
 * Other sides, or none, claim slots in arrival order
 */
const FIXED_SLOTS: Record<string, 0 | 1> = { receive: 0, send: 1 }

/** A card older than this is a peer that gave up (or crashed) without marking the slot */
export const STALE_MS = 5 * 60_000
const MAX_LAN = 8
const KDF_SALT = 'utp-punch-rs dht meeting v1'

/** The keys of a code (about 100 ms of scrypt): call once per pairing */
export async function deriveMeetingKeys (code: string): Promise<MeetingKeys> {
  const master = await new Promise<Buffer>((resolve, reject) => {
    scrypt(code, KDF_SALT, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }, (err, key) => err !== null ? reject(err) : resolve(key))
  })
  const derive = (label: string, n: number): Buffer => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), label, n))
  const seeds: [Buffer, Buffer] = [derive('slot 0 key', 32), derive('slot 1 key', 32)]
  return {
    seeds,
    publicKeys: [dhtPublicKey(seeds[0]), dhtPublicKey(seeds[1])],
    salt: derive('salt', 16),
    cardKey: derive('card key', 32),
    context: 'dht|' + derive('pake context', 16).toString('hex')
  }
}

/** A card sealed for a slot: 12-byte IV, AES-256-GCM of its JSON (the slot as associated data), 16-byte tag */
export function sealCard (keys: MeetingKeys, slot: 0 | 1, card: Card): Buffer {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', keys.cardKey, iv)
  cipher.setAAD(Buffer.from(`slot ${slot}`))
  const json = JSON.stringify({ ...card, lan: card.lan.slice(0, MAX_LAN) })
  const sealed = Buffer.concat([iv, cipher.update(json, 'utf8'), cipher.final(), cipher.getAuthTag()])
  if (sealed.length > MAX_DHT_VALUE) throw createError('ERR_DHT_CARD_TOO_BIG', `a meeting card is ${sealed.length} bytes, over the DHT's ${MAX_DHT_VALUE}`)
  return sealed
}

/** The card in a slot's value; null when it does not open with the code's key or is not a card */
export function openCard (keys: MeetingKeys, slot: 0 | 1, value: Buffer): Card | null {
  if (value.length < 12 + 16 + 2) return null
  try {
    const decipher = createDecipheriv('aes-256-gcm', keys.cardKey, value.subarray(0, 12))
    decipher.setAAD(Buffer.from(`slot ${slot}`))
    decipher.setAuthTag(value.subarray(value.length - 16))
    const json = Buffer.concat([decipher.update(value.subarray(12, value.length - 16)), decipher.final()]).toString('utf8')
    return checkCard(JSON.parse(json))
  } catch {
    return null
  }
}

function checkCard (c: unknown): Card | null {
  if (typeof c !== 'object' || c === null) return null
  const o = c as Record<string, unknown>
  const endpoint = (e: unknown): e is Endpoint => typeof e === 'object' && e !== null &&
    typeof (e as Endpoint).address === 'string' && (e as Endpoint).address.length <= 64 &&
    Number.isInteger((e as Endpoint).port) && (e as Endpoint).port > 0 && (e as Endpoint).port <= 65535
  if (typeof o.nonce !== 'string' || !/^[0-9a-f]{16}$/.test(o.nonce)) return null
  if (typeof o.pake !== 'string' || o.pake.length > 200) return null
  if (!Array.isArray(o.lan) || o.lan.length > MAX_LAN || !o.lan.every(endpoint)) return null
  if (o.public !== undefined && !endpoint(o.public)) return null
  if (o.mapping !== undefined && o.mapping !== 'independent' && o.mapping !== 'dependent') return null
  if (o.side !== undefined && (typeof o.side !== 'string' || o.side.length > 32)) return null
  if (typeof o.at !== 'number' || !Number.isFinite(o.at)) return null
  if (o.used !== undefined && o.used !== true) return null
  if (o.pairedWith !== undefined && (o.used !== true || typeof o.pairedWith !== 'string' || !/^[0-9a-f]{16}$/.test(o.pairedWith))) return null
  if (o.left !== undefined && o.left !== true) return null
  return {
    nonce: o.nonce,
    pake: o.pake,
    lan: o.lan.map(e => ({ address: e.address, port: e.port })),
    at: o.at,
    ...(o.public === undefined ? {} : { public: { address: o.public.address, port: o.public.port } }),
    ...(o.mapping === undefined ? {} : { mapping: o.mapping }),
    ...(o.side === undefined ? {} : { side: o.side }),
    ...(o.used === true ? { used: true } : {}),
    ...(o.pairedWith === undefined ? {} : { pairedWith: o.pairedWith }),
    ...(o.left === true ? { left: true } : {})
  }
}

interface SlotState { card: Card | null, seq: number | undefined }

/**
 * Publish our card and wait for the peer's. Resolves with the peer's card and our slot; rejects with
 * ERR_SAME_ROLE (the peer waiting has our `side`: it keeps waiting, we did not take a slot), ERR_CODE_BURNED
 * (the code was used by a pairing before), ABORT_ERR, or the DHT's errors (ERR_DHT_NO_NODES when it is out of
 * reach). It never times out by itself: the caller's signal says when to give up
 */
export async function meet (opts: MeetingOptions): Promise<MeetingResult> {
  const { dht, keys, signal } = opts
  const pollMs = opts.pollMs ?? 1000
  const refreshMs = opts.refreshMs ?? 60_000
  let lookups = 0
  let invalidItems = 0
  let conflicts = 0
  let rounds = 0
  let mine: 0 | 1 | null = null
  // A random start, not 1: two peers that both take an empty slot 0 would otherwise write equal seqs, and a
  // lookup may then return each its own card for ever (nodes keep the first of equal versions), so neither
  // sees the other. With different seqs every lookup returns the same one, and the race below settles
  let mySeq = randomInt(0, 1 << 20)
  let published = 0

  const read = async (slot: 0 | 1): Promise<SlotState> => {
    lookups++
    const r = await dht.get(keys.publicKeys[slot], keys.salt)
    invalidItems += r.invalidValues
    if (r.item === undefined) return { card: null, seq: undefined }
    const card = openCard(keys, slot, r.item.value)
    if (card === null) invalidItems++
    return { card, seq: r.item.seq }
  }
  /** Whether the card went out; false when the DHT held a newer version than we had read (a race: read again) */
  const publish = async (slot: 0 | 1, after: number | undefined): Promise<boolean> => {
    lookups++
    mySeq = Math.max(mySeq, (after ?? 0)) + 1
    try {
      await dht.put(keys.seeds[slot], keys.salt, sealCard(keys, slot, { ...opts.card, at: Date.now() }), { seq: mySeq })
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_DHT_CONFLICT') {
        conflicts++
        return false
      }
      throw e
    }
    published = Date.now()
    mine = slot
    opts.onPublished?.(slot, mySeq)
    return true
  }
  // A card marked used by a peer that paired with us is still our peer's: it met us and went on (to punch, to
  // a relay) before we read its live card, and we must follow it there, not take the code for burned
  const ourPairing = (c: Card | null): boolean => c?.used === true && c.pairedWith === opts.card.nonce
  const live = (c: Card | null): c is Card => c !== null && (c.used !== true || ourPairing(c)) && c.left !== true && c.nonce !== opts.card.nonce && Date.now() - c.at < STALE_MS
  const sameSide = (c: Card): boolean => opts.card.side !== undefined && c.side === opts.card.side
  const stopIfAborted = (): void => {
    if (signal?.aborted === true) throw createError('ABORT_ERR', 'the meeting was aborted')
  }
  const describe = (st: SlotState | null): string => {
    if (st === null) return 'not read'
    if (st.seq === undefined) return 'empty'
    const c = st.card
    if (c === null) return `unreadable seq ${st.seq}`
    const who = c.nonce === opts.card.nonce ? 'ours' : `peer ${c.nonce.slice(0, 4)}…`
    const how = ourPairing(c) ? 'used (paired with us) ' : c.used === true ? 'used ' : c.left === true ? 'left ' : Date.now() - c.at >= STALE_MS ? 'stale ' : ''
    return `${how}${who} seq ${st.seq}`
  }
  /** Report a round of reads (in the slot order given) before acting on it */
  const seen = (s0: SlotState | null, s1: SlotState | null): void => {
    rounds++
    opts.onRound?.({ round: rounds, slot: mine, seq: mySeq, seen: [describe(s0), describe(s1)], conflicts, lookups })
  }
  const burned = (...states: SlotState[]): void => {
    if (states.some(st => st.card?.used === true && !ourPairing(st.card))) throw createError('ERR_CODE_BURNED', 'this code was used by a pairing already: make a new one')
  }

  const fixed = opts.card.side === undefined ? undefined : FIXED_SLOTS[opts.card.side]
  if (fixed !== undefined) {
    // Our side has a slot of its own: publish there while reading the other's, then poll the other's. No
    // race for a slot, so no lookups spent settling one (a read of an empty slot waits out the lookup's
    // slowest node, seconds on a real DHT)
    const other = fixed === 0 ? 1 : 0
    const seenFixed = (own: SlotState | null, theirs: SlotState): void => fixed === 0 ? seen(own, theirs) : seen(theirs, own)
    for (;;) {
      stopIfAborted()
      const [own, theirs] = await Promise.all([read(fixed), read(other)])
      seenFixed(own, theirs)
      burned(own, theirs)
      if (live(own.card)) throw sameRole(opts.card.side as string)
      if (await publish(fixed, own.seq)) {
        if (live(theirs.card)) return { peer: theirs.card, slot: fixed, seq: mySeq, lookups, invalidItems }
        break
      }
      await sleep(pollMs, signal)
    }
    for (;;) {
      await sleep(pollMs, signal)
      stopIfAborted()
      const [theirs] = await Promise.all([read(other), Date.now() - published > refreshMs ? publish(fixed, mySeq) : null])
      seenFixed(null, theirs)
      burned(theirs)
      if (live(theirs.card)) return { peer: theirs.card, slot: fixed, seq: mySeq, lookups, invalidItems }
    }
  }

  for (;;) {
    stopIfAborted()
    const [s0, s1] = await Promise.all([read(0), read(1)])
    seen(s0, s1)
    burned(s0, s1)
    if (mine === null) {
      if (!live(s0.card)) {
        await publish(0, s0.seq)
      } else {
        if (sameSide(s0.card)) throw sameRole(s0.card.side as string)
        if (await publish(1, s1.seq)) return { peer: s0.card, slot: 1, seq: mySeq, lookups, invalidItems }
      }
    } else if (mine === 0) {
      if (live(s1.card)) {
        // The peer is in slot 1 whatever slot 0 still shows. Read first because a peer that gave way in the
        // race below leaves its card in slot 0, and lookups that keep returning that card (nodes our puts do
        // not reach) would otherwise keep us republishing slot 0 and never looking here
        return { peer: s1.card, slot: 0, seq: mySeq, lookups, invalidItems }
      } else if (live(s0.card)) {
        // Both took slot 0: the higher nonce gives way
        if (s0.card.nonce < opts.card.nonce) {
          if (sameSide(s0.card)) throw sameRole(s0.card.side as string)
          if (await publish(1, s1.seq)) return { peer: s0.card, slot: 1, seq: mySeq, lookups, invalidItems }
        } else {
          await publish(0, s0.seq)
        }
      } else if (Date.now() - published > refreshMs) {
        await publish(0, s0.seq)
      }
    }
    await sleep(pollMs, signal)
  }
}

/**
 * Mark our slot used: the code cannot pair again (best effort; the item would expire anyway). `peer` is the
 * nonce of the peer we met: if it has not read our live card yet, it reads this one as ours and follows us
 */
export async function markUsed (dht: DhtNode, keys: MeetingKeys, slot: 0 | 1, card: Omit<Card, 'at'>, seq: number, peer: string): Promise<void> {
  await dht.put(keys.seeds[slot], keys.salt, sealCard(keys, slot, { ...card, at: Date.now(), used: true, pairedWith: peer }), { seq: seq + 1 })
}

/**
 * Take our card back when we give up without pairing, so that running again with the same code (after a
 * cancel, a failure) does not find our own old card and take it for another peer of our side (best effort;
 * a card not refreshed for STALE_MS counts as gone anyway)
 */
export async function withdraw (dht: DhtNode, keys: MeetingKeys, slot: 0 | 1, card: Omit<Card, 'at'>, seq: number): Promise<void> {
  await dht.put(keys.seeds[slot], keys.salt, sealCard(keys, slot, { ...card, at: Date.now(), left: true }), { seq: seq + 1 })
}

function sameRole (side: string): Error {
  return createError('ERR_SAME_ROLE', `the peer waiting under this code is also a "${side}" side: the other peer must take the other part (it keeps waiting)`)
}

async function sleep (ms: number, signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>(resolve => {
    const t = setTimeout(done, ms)
    function done (): void {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}
