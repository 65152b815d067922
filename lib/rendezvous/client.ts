// rendezvous(node, opts): meet a peer through a rendezvous server and come out with a connected uTP socket.
//
// The same call on both peers: register under the key of the shared code (auth.ts; the code itself stays
// here) with our half of a PAKE from the node's own socket, learn the peer's candidates, its PAKE message and
// our role, derive the pairing's keys and prove them to each other with confirm MACs through the server (a
// mismatch fails both sides with ERR_WRONG_CODE and burns the code). Only then probe the peer's candidates,
// every datagram authenticated (prober.ts), at the agreed moment; the 'connect' peer opens
// the uTP connection to the winning candidate while the 'accept' peer takes the connection that comes from
// an address its peer probed from. When probing finds nothing (or the direct connection fails), both move to
// a relay on the server (relay.ts), unless either opted out. The uTP connection then carries the encrypted
// stream (lib/secure) keyed by the pairing's "stream" key, unless the caller opted out with `encrypt: false`.
// See protocol.ts for the messages.

import { createHash, randomBytes } from 'crypto'

import { DEFAULT_DHT_BOOTSTRAP, DhtNode } from '../dht/node'
import { debug, debugEnabled } from '../debug'
import { deriveMeetingKeys, describeRound, markUsed, meet, withdraw, type Card, type MeetingKeys, type MeetingResult, type MeetingRound } from '../dht/meeting'
import { reflectUntilKnown } from '../dht/reflect'
import { asError, notRunning } from '../errors'
import type { AddressInfo } from '../native'
import { normalizeAddress } from '../options'
import { secureSocket, type SecureSocket } from '../secure'
import type { Socket } from '../socket'
import type { Transport } from '../transport'
import { parseCode } from './code'
import { codeKey, confirmMac, macEquals, PairingPake, PeerAuth, type PairingKeys } from './auth'
import { adoptPort, BirthdayPorts, BirthdaySpray, birthdayRole, type BirthdayHit } from './birthday'
import { describeCandidate, lanCandidates, orderCandidates, type Candidate } from './candidates'
import { gaveUpCode, natText, rendezvousError, type RendezvousError } from './errors'
import { bootstrapEndpoints, ensureBound, lookup } from './local'
import { Prober, nonce as probeNonce, pathOf } from './prober'
import { resolveOptions, type RendezvousOptions, type RendezvousStatus, type ResolvedOptions } from './options'
import { encode, endpointKey, type DirectPath, type Endpoint, type ErrorMsg, type Mapping, type Message, type PeerMsg, type RelayAllocatedMsg } from './protocol'
import type { RendezvousPath, RendezvousResult, RendezvousTimings } from './result'
import { ConnectionWatch, RETRY_MIN_MS } from './watch'
import { Wire } from './wire'

export type { RendezvousOptions, RendezvousStatus } from './options'

export type { RendezvousPath, RendezvousResult, RendezvousTimings } from './result'

type Phase = 'register' | 'wait-peer' | 'confirm' | 'punch' | 'connect' | 'relay'

/** Why punching failed on the accepting side that heard its peer's probes but got no connection */
const HEARD_NO_CONNECTION = 'the peer was heard but its connection never arrived'
const REGISTER_RETRY_MS = 500
const RELAY_RETRY_MS = 500
const HELLO_RETRY_MS = 200
const LAN_GRACE_MS = 150
const MAX_PENDING = 16
const CHECK_RETRY_MS = 250
const CHECK_TRIES = 8
const CONFIRM_RETRY_MS = 500
/** pake-failed copies sent as we fail (the server burns the key on the first that arrives) */
const PAKE_FAILED_COPIES = 3

/** The server's cookie for each node's address, per server (requests from the same socket reuse it) */
const cookies = new WeakMap<Transport, Map<string, string>>()

/**
 * Meet the peer registered under the same code; resolves with a connected stream (encrypted unless
 * `encrypt: false`). See RendezvousOptions
 */
export async function rendezvous<N extends Transport> (node: N, opts: RendezvousOptions & { encrypt: false }): Promise<RendezvousResult<N, Socket>>
export async function rendezvous<N extends Transport> (node: N, opts: RendezvousOptions & { encrypt?: true }): Promise<RendezvousResult<N, SecureSocket>>
export async function rendezvous<N extends Transport> (node: N, opts: RendezvousOptions): Promise<RendezvousResult<N>>
export async function rendezvous<N extends Transport> (node: N, opts: RendezvousOptions): Promise<RendezvousResult<N>> {
  // result.node is `node` or one of its _sibling()s, which are of its class
  return await new Session(node, resolveOptions(opts)).run() as RendezvousResult<N>
}

/** "5 s", "1.5 s", "300 ms" */
function seconds (ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`
}

class Session {
  private readonly _t0 = Date.now()
  private readonly _nonce = randomBytes(8).toString('hex')
  /** What the server sees of the code */
  private readonly _key: string
  private _pake: PairingPake
  /** The code as both peers spell it (a generated code in its canonical form) */
  private readonly _code: string
  /** Over the DHT: the node (ours to close unless the caller gave it), the meeting's keys, card and outcome */
  private _dht: {
    node: DhtNode
    own: boolean
    keys?: MeetingKeys
    card?: Omit<Card, 'at'>
    /** Where our card is while we wait, and the outcome */
    published?: { slot: 0 | 1, seq: number }
    /** The last round of reads: what a timeout reports */
    round?: MeetingRound
    met?: MeetingResult
    stop: AbortController
  } | null = null
  private _keys: PairingKeys | null = null
  private _auth: PeerAuth | null = null
  /** The peer proved it derived our keys (its confirm MAC verified) */
  private _confirmed = false
  private _confirmTimer: NodeJS.Timeout | null = null
  /** When probing may start (Date.now()), as the server scheduled it */
  private _startAt = 0
  private _lastRetry = 0
  private _phase: Phase = 'register'
  private _done = false
  private _resolve!: (r: RendezvousResult) => void
  private _reject!: (e: Error) => void
  private readonly _timers = new Set<NodeJS.Timeout>()
  private _bound!: AddressInfo
  private _server!: Endpoint
  private _wire: Wire | null = null
  private _registerTimer: NodeJS.Timeout | null = null
  private _lastSent = 0
  /** Any message from the server arrived (it exists and reaches us) */
  private _heardServer = false
  private _rtt: number | undefined
  private _registeredMs = -1
  private _pairedMs = -1
  private _relayMs: number | undefined
  private _peer: PeerMsg | null = null
  private _prober: Prober | null = null
  private _relay: { port: number, token: string } | null = null
  private _relayRequestTimer: NodeJS.Timeout | null = null
  private _helloTimer: NodeJS.Timeout | null = null
  private _relayReady = false
  private _connecting: Socket | null = null
  private readonly _pending: Array<{ socket: Socket, node: Transport }> = []
  private readonly _onConnection = (s: Socket): void => this._incoming(s, this._node)
  private _observed: Endpoint | null = null
  private _mapping: Mapping | undefined
  private _checkTimer: NodeJS.Timeout | null = null
  /** The server's second port (mapping checks), once it named one */
  private _checkPort: number | null = null
  private _spray: BirthdaySpray | null = null
  private _ports: BirthdayPorts | null = null
  /** Birthday probing's hard side: the extra port that heard the peer, and probing from it */
  private _aux: { node: Transport, wire: Wire, prober: Prober } | null = null
  /** After success: the registration kept while the socket lives, following NAT rebinding */
  private _watch: ConnectionWatch | null = null
  private readonly _onNodeClose = (): void => this._fail(notRunning())
  private readonly _onAbort = (): void => this._fail(rendezvousError('ABORT_ERR', 'the rendezvous was aborted', { cause: this._o.signal?.reason }))

  constructor (private readonly _node: Transport, private readonly _o: ResolvedOptions) {
    // A generated code typed with other case or separators is the same code (the CLI does the same)
    const code = parseCode(_o.code).code
    this._code = code
    this._key = codeKey(code)
    this._pake = new PairingPake(code, this._key)
  }

  run (): Promise<RendezvousResult> {
    return new Promise((resolve, reject) => {
      this._resolve = resolve
      this._reject = reject
      this._start().catch((e: Error) => this._fail(e))
    })
  }

  private get _now (): number {
    return Date.now() - this._t0
  }

  private _after (ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this._timers.delete(t)
      fn()
    }, ms)
    this._timers.add(t)
    return t
  }

  private _every (ms: number, fn: () => void): NodeJS.Timeout {
    const t = setInterval(fn, ms)
    this._timers.add(t)
    return t
  }

  private _clear (t: NodeJS.Timeout | null): null {
    if (t !== null) {
      clearTimeout(t)
      this._timers.delete(t)
    }
    return null
  }

  // ---- registration -----------------------------------------------------------------------------------------

  private async _start (): Promise<void> {
    const { signal } = this._o
    if (signal?.aborted === true) {
      this._onAbort()
      return
    }
    signal?.addEventListener('abort', this._onAbort, { once: true })
    this._after(this._o.timeoutMs, () => this._fail(this._timeoutError()))
    this._bound = await ensureBound(this._node)
    if (this._o.server === null) {
      await this._startDht()
      return
    }
    const address = await lookup(this._o.server.host, this._bound)
    if (this._done) return
    this._server = { address, port: this._o.server.port }
    this._listen()
    this._status({ state: 'registering', server: endpointKey(this._server) })
    this._register()
    this._registerTimer = this._every(REGISTER_RETRY_MS, () => this._register())
    this._after(this._o.serverTimeoutMs, () => {
      if (!this._heardServer) this._fail(rendezvousError('ERR_SERVER_UNREACHABLE', `the rendezvous server ${endpointKey(this._server)} did not answer in ${seconds(this._o.serverTimeoutMs)} (wrong address, not running, or UDP blocked on the way)`))
    })
    this._every(this._o.keepaliveMs, () => {
      if (this._registeredMs < 0) return
      this._lastSent = Date.now()
      this._send({ t: 'keepalive', nonce: this._nonce, ...(this._rtt === undefined ? {} : { rtt: this._rtt }), ...this._cookieField() })
    })
  }

  /** Take connections and our wire's messages (probes, and the server's) from the node */
  private _listen (): void {
    this._node.on('connection', this._onConnection)
    this._node.once('close', this._onNodeClose)
    this._wire = new Wire(this._node, (m, from) => {
      // We run inside the node's event dispatch: a throw here must end this rendezvous, not the process
      try {
        this._onMessage(m, from)
      } catch (e) {
        this._fail(e as Error)
      }
    })
  }

  // ---- meeting on the DHT (docs/dht.md) ------------------------------------------------------------------------

  /** Join the DHT, learn where our socket is seen, publish our card, wait for the peer's; then punch as usual */
  private async _startDht (): Promise<void> {
    const o = this._o.dht as NonNullable<ResolvedOptions['dht']>
    this._listen()
    this._status({ state: 'joining-dht' })
    const stop = new AbortController()
    const bootstrap = o.bootstrap ?? [...DEFAULT_DHT_BOOTSTRAP]
    let node: DhtNode
    try {
      node = o.node ?? await DhtNode.open({ bootstrap })
    } catch (e) {
      const err = asError(e) as { code?: string, message: string }
      if (err.code !== 'ERR_DHT_BOOTSTRAP') throw e
      this._fail(rendezvousError('ERR_DHT_UNREACHABLE', `cannot join the DHT: ${err.message} (offline, or no DNS?)`))
      return
    }
    this._dht = { node, own: o.node === undefined, stop }
    if (this._done) {
      this._closeDht()
      return
    }
    // The bootstrap nodes are asked where our socket is seen too: a node that has just joined knows few others
    const [joined, keys, seeds] = await Promise.all([node.bootstrapped(), deriveMeetingKeys(this._code), o.node === undefined ? bootstrapEndpoints(bootstrap) : []])
    if (this._done) return
    if (!joined) {
      this._fail(rendezvousError('ERR_DHT_UNREACHABLE', `no DHT node answered (joined through ${o.node !== undefined ? 'the given DhtNode' : bootstrap.join(', ')}): unreachable, or UDP blocked on the way`))
      return
    }
    const seen = await reflectUntilKnown(this._node, async () => [...await node.nodes(), ...seeds])
    if (this._done) return
    if (debugEnabled) debug('dht reflect %s: %d nodes asked, %d answers from %d addresses: mapping %s', this._nonce.slice(0, 4), seen.asked, seen.answers, seen.addresses, seen.mapping ?? 'unknown')
    this._mapping = seen.mapping
    this._pake = new PairingPake(this._code, keys.context)
    const card: Omit<Card, 'at'> = {
      nonce: this._nonce,
      pake: this._pake.message,
      lan: this._o.shareLan ? lanCandidates(this._bound) : [],
      ...(seen.public === undefined ? {} : { public: seen.public }),
      ...(seen.mapping === undefined ? {} : { mapping: seen.mapping }),
      ...(this._o.side === undefined ? {} : { side: this._o.side })
    }
    Object.assign(this._dht, { keys, card })
    this._phase = 'wait-peer'
    this._registeredMs = this._now
    this._status({ state: 'published', ...(seen.public === undefined ? {} : { observed: seen.public }), ...(seen.mapping === undefined ? {} : { mapping: seen.mapping }) })
    let met: MeetingResult
    try {
      const d = this._dht
      met = await meet({
        dht: node,
        keys,
        card,
        signal: stop.signal,
        onPublished: (slot, seq) => { d.published = { slot, seq } },
        onRound: r => {
          d.round = r
          if (debugEnabled) debug('dht meeting %s: %s', this._nonce.slice(0, 4), describeRound(r))
        }
      })
    } catch (e) {
      const err = e as { code?: string, message: string }
      if (err.code === 'ERR_SAME_ROLE' || err.code === 'ERR_CODE_BURNED') this._fail(rendezvousError(err.code, err.message, err.code === 'ERR_SAME_ROLE' ? { side: this._o.side } : {}))
      else if (err.code !== 'ABORT_ERR') this._fail(asError(e))
      return
    }
    if (this._done) return
    this._dht.met = met
    const peer = met.peer
    const [first, second] = met.slot === 0 ? [this._nonce, peer.nonce] : [peer.nonce, this._nonce]
    this._onDhtPeer({
      t: 'peer',
      nonce: this._nonce,
      pair: first + second,
      // The first to arrive waits for the connection, as with the server
      role: met.slot === 0 ? 'accept' : 'connect',
      // The peers learn of each other seconds apart: each probes from when it knows, for punchTimeoutMs
      startInMs: 0,
      // Without an answer from the DHT about its address, the peer can only be reached on its LAN addresses
      public: peer.public ?? peer.lan[0] ?? { address: '0.0.0.0', port: 0 },
      lan: peer.lan,
      relay: false,
      ...(seen.mapping === undefined ? {} : { mapping: seen.mapping }),
      ...(peer.mapping === undefined ? {} : { peerMapping: peer.mapping }),
      pake: peer.pake
    })
  }

  /** The peer's card: its PAKE message gives the keys; it proved the code by sealing the card, so punch now */
  private _onDhtPeer (m: PeerMsg): void {
    this._peer = m
    this._pairedMs = this._now
    this._startAt = Date.now()
    this._status({ state: 'paired', role: m.role })
    const keys = this._pake.finish(m.pake)
    if (keys === null) {
      this._fail(rendezvousError('ERR_WRONG_CODE', 'the peer\'s PAKE message was not valid: someone who holds the code tampered with the pairing; make a new code'))
      return
    }
    this._keys = keys
    this._auth = new PeerAuth(keys, m.pair)
    this._confirmed = true
    this._startPunching(m)
  }

  /**
   * Met on the DHT but no direct path: meet again at the configured relay server and take its relay. Both
   * peers come here (each when its own punching gives up). At the server they register under a code derived
   * from the meeting's keys, so the server learns nothing of the user's code, not even its nameplate
   */
  private _relayAfterDht (server: string, reason: string): void {
    const keys = this._dht?.keys
    if (keys === undefined) {
      this._fail(this._punchFailed('(no relay)', reason))
      return
    }
    const o = this._o
    this._status({ state: 'relay', reason })
    const code = 'relay-' + createHash('sha256').update(`${keys.context}|relay`).digest('hex').slice(0, 32)
    const left = Math.max(1, o.timeoutMs - (Date.now() - this._t0))
    const resolve = this._resolve
    const reject = this._reject
    this._end()
    rendezvous(this._node, {
      server,
      code,
      forceRelay: true,
      encrypt: o.encrypt,
      timeoutMs: left,
      ...(o.side === undefined ? {} : { side: o.side }),
      ...(o.signal === undefined ? {} : { signal: o.signal }),
      // Our caller already heard 'relay'; the second meeting's own steps are details of it
      onStatus: (s) => { if (s.state !== 'relay' && s.state !== 'punching') this._status(s) }
    }).then(resolve, reject)
  }

  /** Mark the code used on the DHT once paired (best effort), then close the DHT node if it is ours */
  private _closeDht (): void {
    const d = this._dht
    if (d === null) return
    this._dht = null
    d.stop.abort()
    const close = (): void => { if (d.own) d.node.close() }
    if (d.met !== undefined && d.keys !== undefined && d.card !== undefined) {
      markUsed(d.node, d.keys, d.met.slot, d.card, d.met.seq, d.met.peer.nonce).then(close, close)
    } else if (d.published !== undefined && d.keys !== undefined && d.card !== undefined) {
      withdraw(d.node, d.keys, d.published.slot, d.card, d.published.seq).then(close, close)
    } else {
      close()
    }
  }

  /** Tell the caller's onStatus where we are; its exceptions are not ours to handle */
  private _status (status: RendezvousStatus): void {
    try {
      this._o.onStatus?.(status)
    } catch {}
  }

  private _send (m: Message): void {
    if (this._o.server !== null) this._wire?.send(m, this._server)
  }

  private get _cookie (): string | undefined {
    return cookies.get(this._node)?.get(endpointKey(this._server))
  }

  private _setCookie (cookie: string): void {
    let byServer = cookies.get(this._node)
    if (byServer === undefined) cookies.set(this._node, byServer = new Map())
    byServer.set(endpointKey(this._server), cookie)
  }

  private _cookieField (): { cookie?: string } {
    const cookie = this._cookie
    return cookie === undefined ? {} : { cookie }
  }

  /** Whether a datagram comes from the server (its main port, or `port`): nobody else may steer us */
  private _fromServer (from: Endpoint, port = this._server.port): boolean {
    return from.port === port && normalizeAddress(from.address) === this._server.address
  }

  /** The server wants proof we own our address: keep its cookie, repeat what is pending with it at once */
  private _onRetry (cookie: string): void {
    const now = Date.now()
    if (now - this._lastRetry < RETRY_MIN_MS) return // forged retries cannot make us loop
    this._lastRetry = now
    this._setCookie(cookie)
    if (this._registeredMs < 0) this._register()
    if (this._checkTimer !== null && this._checkPort !== null) this._wire?.send({ t: 'check', nonce: this._nonce, ...this._cookieField() }, { address: this._server.address, port: this._checkPort })
    if (this._relayRequestTimer !== null) this._send({ t: 'relay-request', nonce: this._nonce, ...this._cookieField() })
  }

  private _register (): void {
    const lan = this._o.shareLan ? lanCandidates(this._bound) : []
    this._lastSent = Date.now()
    this._send({
      t: 'register',
      key: this._key,
      pake: this._pake.message,
      nonce: this._nonce,
      lan,
      relay: this._o.relay,
      ...(this._o.nat === undefined ? {} : { nat: this._o.nat.slice(0, 32) }),
      ...(this._o.side === undefined ? {} : { side: this._o.side }),
      ...(this._rtt === undefined ? {} : { rtt: this._rtt }),
      ...this._cookieField()
    })
  }

  private _onMessage (m: Message, from: Endpoint): void {
    if (this._done) {
      this._watch?.handle(m, from)
      return
    }
    if (m.t === 'probe' || m.t === 'probe-ack' || m.t === 'select') {
      // From the peer's candidates: the prober checks their MACs
      this._prober?.handle(m, from)
      return
    }
    if (this._o.server === null) return // over the DHT there is no server to hear from
    if (m.t === 'relay-hello-ack') {
      if (this._relay !== null && this._fromServer(from, this._relay.port) && m.ready && m.token === this._relay.token) this._onRelayReady()
      return
    }
    if (m.t === 'check-ack' || (m.t === 'retry' && this._checkPort !== null && this._fromServer(from, this._checkPort))) {
      if (this._checkPort === null || !this._fromServer(from, this._checkPort)) return
    } else if (!this._fromServer(from)) {
      return // the server's messages come from the server: anyone else who knows our nonce is ignored
    }
    this._heardServer = true
    switch (m.t) {
      case 'retry':
        this._onRetry(m.cookie)
        return
      case 'registered':
        if (m.nonce !== this._nonce || this._registeredMs >= 0) return
        this._rtt = Math.min(Date.now() - this._lastSent, 600_000)
        this._registeredMs = this._now
        this._observed = m.observed
        this._registerTimer = this._clear(this._registerTimer)
        if (this._phase === 'register') this._phase = 'wait-peer'
        this._status({ state: 'registered', observed: m.observed })
        if (m.checkPort !== undefined) this._checkMapping(m.checkPort)
        return
      case 'check-ack':
        if (m.nonce !== this._nonce || this._observed === null) return
        this._checkTimer = this._clear(this._checkTimer)
        this._mapping ??= endpointKey(m.observed) === endpointKey(this._observed) ? 'independent' : 'dependent'
        return
      case 'keepalive-ack':
        if (m.nonce === this._nonce) this._rtt = Math.min(Date.now() - this._lastSent, 600_000)
        return
      case 'peer':
        if (m.nonce !== this._nonce) return
        this._send({ t: 'peer-ack', nonce: this._nonce })
        if (this._peer === null) this._onPeer(m)
        return
      case 'peer-confirm':
        // Acked only once we can check it (it may overtake `peer`: then the server's repeat brings it again)
        if (m.nonce !== this._nonce || this._keys === null) return
        this._send({ t: 'peer-confirm-ack', nonce: this._nonce })
        this._onPeerConfirm(m.mac)
        return
      case 'relay-allocated':
        if (m.nonce === this._nonce) this._onRelayAllocated(m)
        return
      case 'peer-gone':
        if (m.nonce === this._nonce) this._onPeerGone(m.code)
        return
      case 'error':
        if (m.nonce === this._nonce) this._onServerError(m)
    }
  }

  /** Send `check` to the server's second port: the server compares the source port it sees there */
  private _checkMapping (port: number): void {
    if (this._checkTimer !== null) return
    this._checkPort = port
    let tries = 0
    const to = { address: this._server.address, port }
    const check = (): void => {
      if (++tries > CHECK_TRIES) this._checkTimer = this._clear(this._checkTimer)
      else this._wire?.send({ t: 'check', nonce: this._nonce, ...this._cookieField() }, to)
    }
    check()
    this._checkTimer = this._every(CHECK_RETRY_MS, check)
  }

  private _onServerError (m: ErrorMsg): void {
    if (m.code === 'ERR_NOT_REGISTERED' && this._peer === null) {
      // Our registration expired (keepalives lost): register again
      this._registeredMs = -1
      this._registerTimer ??= this._every(REGISTER_RETRY_MS, () => this._register())
      this._register()
      return
    }
    if (this._peer !== null) {
      // The server dropped the pairing while we confirmed: the peer found our confirm MAC wrong (pake-failed)
      if (this._phase === 'confirm' && (m.code === 'ERR_NOT_REGISTERED' || m.code === 'ERR_CODE_BURNED')) {
        this._wrongCode()
        return
      }
      // Once paired we only need the server for the relay; other complaints (a lost keepalive) do not matter
      if (this._phase === 'relay') this._fail(this._punchFailed(`and the relay is unavailable (${m.code}: ${m.message})`))
      return
    }
    if (m.code === 'ERR_SAME_ROLE' && this._o.side !== undefined) {
      const side = this._o.side
      this._fail(rendezvousError('ERR_SAME_ROLE', `the peer waiting under this code is also a "${side}" side: the other peer must take the other part (it keeps waiting)`, { side }))
      return
    }
    this._fail(rendezvousError('ERR_RENDEZVOUS_REFUSED', `the rendezvous server refused: ${m.message} (${m.code})`, { serverCode: m.code }))
  }

  // ---- probing ------------------------------------------------------------------------------------------------

  private _onPeer (m: PeerMsg): void {
    this._peer = m
    this._phase = 'confirm'
    if (this._registeredMs < 0) this._registeredMs = this._now
    this._pairedMs = this._now
    this._startAt = Date.now() + m.startInMs
    this._registerTimer = this._clear(this._registerTimer)
    this._status({ state: 'paired', role: m.role })
    const keys = this._pake.finish(m.pake)
    if (keys === null) {
      this._wrongCode()
      return
    }
    this._keys = keys
    this._auth = new PeerAuth(keys, m.pair)
    // Confirm until the peer shows it has ours: the server stores it and forwards it in peer-confirm, but
    // nothing tells us it arrived, so we go on until the peer speaks to us (it does only after verifying our
    // confirm: an authenticated probe, or its relay hello). Stopping at the peer's confirm would leave the
    // peer waiting for good when our one copy was lost.
    const confirm = (): void => this._send({ t: 'confirm', nonce: this._nonce, mac: confirmMac(keys, m.role, m.pair) })
    confirm()
    this._confirmTimer = this._every(CONFIRM_RETRY_MS, confirm)
    this._after(this._o.confirmTimeoutMs, () => {
      if (this._phase === 'confirm') this._fail(this._timeoutError())
    })
  }

  /** The peer's confirm MAC, forwarded by the server: proof it derived our keys, i.e. holds our code */
  private _onPeerConfirm (mac: string): void {
    const peer = this._peer
    if (peer === null || this._keys === null || this._phase !== 'confirm') return
    const theirs = peer.role === 'connect' ? 'accept' : 'connect'
    if (!macEquals(mac, confirmMac(this._keys, theirs, peer.pair))) {
      this._wrongCode()
      return
    }
    this._confirmed = true
    this._startPunching(peer)
  }

  /** An authenticated message from the peer: it verified our confirm, so stop sending it; its connection may be waiting */
  private _onPeerHeard (): void {
    this._confirmTimer = this._clear(this._confirmTimer)
    this._checkPending()
  }

  /** The peer ran the PAKE with another code (or someone tried to intercept): burn the code, fail loudly */
  private _wrongCode (): void {
    for (let i = 0; i < PAKE_FAILED_COPIES; i++) this._send({ t: 'pake-failed', nonce: this._nonce })
    this._fail(rendezvousError('ERR_WRONG_CODE', 'the peer\'s code did not match: wrong code, or someone tried to intercept the pairing; the code is now burned, make a new one'))
  }

  /** Confirmed: set up probing (and birthday probing) for the scheduled start; nothing went to a candidate before */
  private _startPunching (m: PeerMsg): void {
    const auth = this._auth as PeerAuth
    this._phase = 'punch'
    const candidates = orderCandidates(m, this._bound, this._o.lanFirst, probeNonce)
    const birthday = this._o.birthday && !this._o.forceRelay ? birthdayRole(m.mapping ?? this._mapping, m.peerMapping) : null
    this._prober = new Prober({
      role: m.role,
      auth,
      candidates,
      intervalMs: this._o.probeIntervalMs,
      lowTtl: this._o.lowTtl,
      preferLan: this._o.lanFirst,
      graceMs: LAN_GRACE_MS,
      send: (msg, to, ttl) => this._wire?.send(msg, to, ttl),
      onWinner: (c) => this._onWinner(c),
      onVerified: () => this._onPeerHeard(),
      learnedKind: birthday === 'easy' ? 'birthday' : 'peer'
    })
    if (m.role === 'accept') this._node.listenAsync().catch((e: Error) => this._fail(e))
    if (!this._o.forceRelay) this._status({ state: 'punching', candidates: candidates.map(describeCandidate) })
    if (this._o.forceRelay) {
      this._relayOrFail('relay forced by the forceRelay option')
      return
    }
    if (this._relay !== null) {
      // The peer asked for the relay while we were confirming
      this._onRelayAllocated({ t: 'relay-allocated', nonce: this._nonce, port: this._relay.port, token: this._relay.token }, true)
      return
    }
    if (birthday === 'easy') {
      const prober = this._prober
      const probe = auth.probe(prober.sprayNonce())
      this._spray = new BirthdaySpray({
        address: normalizeAddress(m.public.address),
        count: this._o.birthdayProbes,
        rate: this._o.birthdayRate,
        send: (to) => {
          // Once a sprayed probe was answered (or another path won) the rest are noise
          if (prober.birthdayFound || prober.punchedAt !== null) this._spray?.stop()
          else this._wire?.send(probe, to)
        }
      })
    } else if (birthday === 'hard') {
      this._openPorts(m, auth)
    }
    const startInMs = Math.max(0, this._startAt - Date.now())
    this._after(startInMs, () => {
      if (this._phase !== 'punch') return // the relay was asked for before the start (by us or by the peer)
      this._prober?.start()
      this._spray?.start()
      this._ports?.start()
    })
    this._after(startInMs + this._o.punchTimeoutMs, () => this._onPunchTimeout())
  }

  // ---- birthday probing, hard side --------------------------------------------------------------------------

  private _openPorts (m: PeerMsg, auth: PeerAuth): void {
    const target = { address: normalizeAddress(m.public.address), port: m.public.port }
    const ports = new BirthdayPorts({
      parent: this._node,
      host: this._bound.address,
      count: this._o.birthdayPorts,
      auth,
      target,
      refreshMs: Math.max(1000, this._o.probeIntervalMs),
      lowTtl: this._o.lowTtl,
      probe: () => auth.probe(probeNonce()),
      onHit: (hit, msg, from) => this._onBirthdayHit(hit, msg, from)
    })
    this._ports = ports
    // Binding takes a moment: ports that are ready when probing starts probe then, later ones join on open
    ports.open().then(() => {
      if (this._ports === ports && this._phase === 'punch' && this._prober !== null && this._startedProbing()) ports.start()
    }).catch(() => {})
  }

  private _startedProbing (): boolean {
    return (this._prober?.candidates ?? []).some(c => c.sent > 0)
  }

  /** One of our extra ports heard the peer: probe (and connect or accept) from it like from the main socket */
  private _onBirthdayHit (hit: BirthdayHit, msg: Message, from: Endpoint): void {
    const peer = this._peer as PeerMsg
    if (this._done || this._phase !== 'punch') {
      hit.wire.close()
      hit.node.close()
      return
    }
    const target = { address: normalizeAddress(peer.public.address), port: peer.public.port }
    const prober = new Prober({
      role: peer.role,
      auth: this._auth as PeerAuth,
      candidates: [{ ...target, kind: 'birthday', nonce: probeNonce(), sent: 0, acked: false }],
      intervalMs: this._o.probeIntervalMs,
      lowTtl: 0,
      preferLan: false,
      graceMs: 0,
      send: (m, to, ttl) => hit.wire.send(m, to, ttl),
      onWinner: (c) => this._onWinner(c, hit.node),
      onVerified: () => this._onPeerHeard()
    })
    this._aux = { node: hit.node, wire: hit.wire, prober }
    this._ports?.setHandler((m, f) => {
      try {
        prober.handle(m, f)
      } catch (e) {
        this._fail(e as Error)
      }
    })
    if (peer.role === 'accept') {
      hit.node.on('connection', (s: Socket) => this._incoming(s, hit.node))
      hit.node.listenAsync().catch((e: Error) => this._fail(e))
    }
    prober.start()
    prober.handle(msg, from)
  }

  private _onPunchTimeout (): void {
    if (this._phase !== 'punch') return
    const reason = this._punchFailure()
    if (reason !== HEARD_NO_CONNECTION) {
      this._relayOrFail(reason)
      return
    }
    // We heard the peer: its connection may still be on the way
    this._after(this._o.acceptGraceMs, () => {
      if (this._phase === 'punch') this._relayOrFail(reason)
    })
  }

  /** What went wrong when punching finds no path, by our role and what we heard */
  private _punchFailure (): string {
    if (this._peer?.role === 'connect') return 'no probe was answered'
    const heard = (this._prober as Prober).heardPeer || this._aux?.prober.heardPeer === true
    return heard && this._o.acceptGraceMs !== 0 ? HEARD_NO_CONNECTION : 'no probe from the peer arrived'
  }

  private _onWinner (c: Candidate, node: Transport = this._node): void {
    if (this._phase !== 'punch') return
    this._phase = 'connect'
    this._stopBirthday(node)
    this._connect(c, pathOf(c), node)
  }

  /** A path was chosen: stop spraying and close the extra ports, all but `keep` */
  private _stopBirthday (keep: Transport | null): void {
    this._spray?.stop()
    this._ports?.close()
    if (this._aux !== null && this._aux.node !== keep) {
      this._aux.prober.close()
      this._aux.wire.close()
      this._aux.node.close()
      this._aux = null
    }
  }

  private _connect (to: Endpoint, path: RendezvousPath, node: Transport = this._node): void {
    let socket: Socket
    try {
      socket = node.connect(to.port, to.address)
    } catch (e) {
      // The node is closing (connect() throws then, as utp-punch's did): the rendezvous ends with it
      this._fail(asError(e))
      return
    }
    this._connecting = socket
    const cleanup = (): void => {
      socket.removeListener('connect', onConnect)
      socket.removeListener('error', onError)
      socket.removeListener('close', onClose)
    }
    const onConnect = (): void => {
      cleanup()
      this._connecting = null
      this._finish(socket, path, to, node)
    }
    const onError = (err: Error): void => {
      cleanup()
      this._connecting = null
      socket.destroy()
      const why = `the uTP connection to ${endpointKey(to)} failed (${(err as { code?: string }).code ?? err.message})`
      if (path === 'relay') this._fail(this._punchFailed(`and ${why} through the relay`))
      else this._relayOrFail(why)
    }
    const onClose = (): void => onError(new Error('closed before connecting'))
    socket.once('connect', onConnect)
    socket.once('error', onError)
    socket.once('close', onClose)
  }

  // ---- accepting ----------------------------------------------------------------------------------------------

  private _incoming (s: Socket, node: Transport): void {
    if (this._done || this._peer?.role !== 'accept') return
    if (this._acceptIfOurs(s, node)) return
    // Maybe from a source we have not verified yet (its probe may still be on the way)
    this._pending.push({ socket: s, node })
    if (this._pending.length > MAX_PENDING) this._pending.shift()
  }

  private _checkPending (): void {
    for (const p of this._pending) {
      if (!p.socket.destroyed && this._acceptIfOurs(p.socket, p.node)) return
    }
  }

  /** The peer's connection: from an address it probed us from, or from its relay port */
  private _acceptIfOurs (s: Socket, node: Transport): boolean {
    if (s.remoteAddress === undefined || !this._confirmed) return false
    const from = { address: normalizeAddress(s.remoteAddress), port: s.remotePort }
    const key = endpointKey(from)
    let path: RendezvousPath
    if (node !== this._node) {
      // On an extra port of birthday probing
      if (this._aux?.node !== node || !this._aux.prober.verified.has(key)) return false
      path = 'birthday'
    } else if (this._relay !== null && key === endpointKey({ address: this._server.address, port: this._relay.port })) {
      path = 'relay'
    } else if (this._prober?.verified.has(key) === true) {
      path = this._directPath(from)
    } else {
      return false
    }
    this._finish(s, path, from, node)
    return true
  }

  private _directPath (from: Endpoint): DirectPath {
    const selected = this._prober?.selected ?? null
    if (selected !== null) return selected.path
    const known = this._prober?.candidates.find(c => endpointKey(c) === endpointKey(from))
    if (known !== undefined && known.kind !== 'peer') return pathOf(known)
    return this._peer?.lan.some(e => normalizeAddress(e.address) === from.address) === true ? 'lan' : 'direct'
  }

  // ---- relay --------------------------------------------------------------------------------------------------

  private _relayOrFail (reason: string): void {
    if (this._done || this._phase === 'relay') return
    if (this._peer?.relay !== true) {
      if (this._o.server === null && this._o.relay && this._o.dht?.relay !== undefined) {
        this._relayAfterDht(this._o.dht.relay, reason)
        return
      }
      this._fail(this._punchFailed(this._noRelayWhy(), reason))
      return
    }
    this._phase = 'relay'
    this._status({ state: 'relay', reason })
    this._prober?.stopProbing()
    this._stopBirthday(null)
    if (this._relay !== null) {
      this._hello()
      return
    }
    const request = (): void => this._send({ t: 'relay-request', nonce: this._nonce, ...this._cookieField() })
    request()
    this._relayRequestTimer = this._every(RELAY_RETRY_MS, request)
  }

  /** Why there is no relay to fall back on, as ERR_PUNCH_FAILED's message ends */
  private _noRelayWhy (): string {
    return !this._o.relay
      ? '(relay disabled)'
      : this._o.server === null
        ? '(no relay: pairing over the DHT has no server to relay through; dht.relay names one)'
        : '(no relay: the peer or the server does not allow one)'
  }

  /** `again`: the allocation arrived while we confirmed, and we act on it now */
  private _onRelayAllocated (m: RelayAllocatedMsg, again = false): void {
    if ((this._relay !== null && !again) || this._peer === null) return
    this._relay = { port: m.port, token: m.token }
    this._relayRequestTimer = this._clear(this._relayRequestTimer)
    if (!this._confirmed) return // nothing goes to the relay before the peer proved it holds the code
    // The peer gave up on a direct path: either side goes to the relay (its status, no more probing or birthday
    // ports, its start skipped), or is there already (our own fallback) and says hello
    if (this._phase === 'punch') this._relayOrFail('the peer asked for the relay')
    else if (this._phase === 'relay') this._hello()
    // (phase 'connect', the connecting side's direct attempt under way: the relay is there if it fails)
    if (this._peer.role === 'accept') this._checkPending()
  }

  private _hello (): void {
    if (this._helloTimer !== null || this._relay === null) return
    const relay = this._relay
    const to = { address: this._server.address, port: relay.port }
    const hello = (): void => this._wire?.send({ t: 'relay-hello', token: relay.token }, to)
    hello()
    this._helloTimer = this._every(HELLO_RETRY_MS, hello)
  }

  private _onRelayReady (): void {
    this._helloTimer = this._clear(this._helloTimer)
    this._confirmTimer = this._clear(this._confirmTimer) // the peer said hello: it verified our confirm
    if (this._relayReady || this._relay === null) return
    this._relayReady = true
    this._relayMs = this._now
    if (this._peer?.role === 'connect' && this._phase === 'relay') this._connect({ address: this._server.address, port: this._relay.port }, 'relay')
  }

  // ---- the end --------------------------------------------------------------------------------------------------

  /**
   * The peer gave up (the server passed its bye on). When its punching failed while ours was under way, ours has
   * failed too, and our own ERR_PUNCH_FAILED says more (our candidates and NAT types) than its code alone
   */
  private _onPeerGone (code: string): void {
    const connecting = this._phase === 'punch' || this._phase === 'connect' || this._phase === 'relay'
    if (code !== 'ERR_PUNCH_FAILED' || !connecting) {
      this._fail(rendezvousError('ERR_PEER_GAVE_UP', `the peer gave up the rendezvous (${code} on its side)`, { peerCode: code }))
      return
    }
    // Still punching, ours fails now in the words of our own punch timeout (there is no relay to fall back on: with
    // one allowed, the peer would have asked for it rather than fail); err.peerCode says the peer's came first. On
    // the relay, that the peer's end of it failed
    const err = this._phase === 'relay'
      ? this._punchFailed(`and the peer's attempt failed too (${code} on its side)`)
      : this._punchFailed(this._noRelayWhy(), this._punchFailure())
    this._fail(Object.assign(err, { peerCode: code }))
  }

  private _punchFailed (tail: string, reason?: string): RendezvousError {
    const tried = this._prober?.candidates.map(describeCandidate) ?? []
    const ours = natText(this._o.nat, this._peer?.mapping ?? this._mapping)
    const theirs = natText(this._peer?.peerNat, this._peer?.peerMapping)
    const nat = ours !== undefined || theirs !== undefined ? ` (NAT types: ours ${ours ?? 'unknown'}, peer's ${theirs ?? 'unknown'})` : ''
    const what = this._o.forceRelay ? 'no relay for a forced relay' : `hole punching failed${reason === undefined ? '' : `: ${reason}`}`
    const triedText = tried.length > 0 ? `; tried ${tried.join(', ')}` : '; no usable candidates'
    return rendezvousError('ERR_PUNCH_FAILED', `${what}${nat}${triedText} ${tail}`, { candidates: tried })
  }

  private _timeoutError (): RendezvousError {
    const ms = this._o.timeoutMs
    if (this._o.server === null) {
      if (this._phase === 'register') return rendezvousError('ERR_RENDEZVOUS_TIMEOUT', `could not join the DHT and publish within ${ms} ms`)
      if (this._phase === 'wait-peer') {
        const round = this._dht?.round
        const saw = round === undefined ? '' : `; the meeting's last ${describeRound(round)}`
        return rendezvousError('ERR_RENDEZVOUS_TIMEOUT', `no peer appeared on the DHT under this code within ${ms} ms (the peer must use the same code, and be online now)${saw}`)
      }
    }
    switch (this._phase) {
      case 'register':
        return rendezvousError('ERR_RENDEZVOUS_TIMEOUT', `no answer from the rendezvous server ${endpointKey(this._server ?? { address: this._o.server?.host ?? '', port: this._o.server?.port ?? 0 })} within ${ms} ms`)
      case 'wait-peer':
        return rendezvousError('ERR_RENDEZVOUS_TIMEOUT', `no peer registered under this code within ${ms} ms`)
      case 'confirm':
        return rendezvousError('ERR_RENDEZVOUS_TIMEOUT', `the peer never proved it holds the code (no confirm from it within ${Math.min(ms, this._o.confirmTimeoutMs)} ms)`)
      case 'relay':
        return rendezvousError('ERR_RENDEZVOUS_TIMEOUT', `the relay did not connect us within ${ms} ms`)
      default:
        return rendezvousError('ERR_RENDEZVOUS_TIMEOUT', `no connection to the peer within ${ms} ms; tried ${this._prober?.describe() ?? 'nothing'}`)
    }
  }

  private _finish (socket: Socket, path: RendezvousPath, remote: Endpoint, node: Transport): void {
    if (this._done) return
    const peer = this._peer as PeerMsg
    const timings: RendezvousTimings = { registeredMs: this._registeredMs, pairedMs: this._pairedMs, connectedMs: this._now }
    const punchedAt = (node === this._node ? this._prober : this._aux?.prober)?.punchedAt ?? null
    if (punchedAt !== null) timings.punchedMs = punchedAt - this._t0
    if (this._relayMs !== undefined && path === 'relay') timings.relayMs = this._relayMs
    if (this._rtt !== undefined) timings.serverRttMs = this._rtt
    const result: RendezvousResult = {
      socket,
      path,
      node,
      remote: { address: remote.address, port: remote.port },
      role: peer.role,
      timings,
      encrypted: false,
      utpSocket: socket,
      unauthenticatedDropped: this._auth?.invalid ?? 0
    }
    socket._setPath(path)
    const ours = peer.mapping ?? this._mapping
    if (ours !== undefined || peer.peerMapping !== undefined) {
      result.mapping = {}
      if (ours !== undefined) result.mapping.ours = ours
      if (peer.peerMapping !== undefined) result.mapping.peer = peer.peerMapping
    }
    // Following NAT rebinding needs the server; over the DHT the connection is on its own. A relay lives as
    // long as the pairing's registrations, so on the relay path ours is kept (and its bye sent only after the
    // socket closed) whatever followMoves says: a bye now would close the relay under the connection
    const handOver = (this._o.followMoves || path === 'relay') && this._wire !== null && this._o.server !== null
    this._end(node, handOver)
    if (node !== this._node) adoptPort(this._node, node, socket)
    if (handOver) {
      this._watch = new ConnectionWatch({
        socket,
        wire: this._wire as Wire,
        server: this._server,
        nonce: this._nonce,
        auth: this._auth as PeerAuth,
        cookie: () => this._cookie,
        setCookie: (c) => this._setCookie(c),
        keepaliveMs: this._o.keepaliveMs,
        quietMs: this._o.quietMs,
        relay: path === 'relay' ? this._relay : null,
        // The server sees the peer's main port: only an endpoint-independent NAT maps the
        // connection's port the same way, and a birthday path is by definition not that
        followable: path !== 'birthday' && peer.peerMapping !== 'dependent',
        sendFromSocketNode: (m, to) => node._sendRaw(encode(m), to.port, to.address, undefined, () => {})
      })
    }
    this._secure(result)
  }

  /** Wrap the connection into the encrypted stream keyed by the pairing's "stream" key, unless opted out */
  private _secure (result: RendezvousResult): void {
    if (!this._o.encrypt) {
      this._resolve(result)
      return
    }
    const socket = result.utpSocket
    const role = result.role === 'connect' ? 'initiator' : 'responder'
    secureSocket(socket, { role, key: (this._keys as PairingKeys).stream }).then((secure) => {
      this._resolve({ ...result, socket: secure, encrypted: true })
    }, (err: Error) => {
      socket.destroy()
      this._reject(err)
    })
  }

  private _fail (err: Error): void {
    if (this._done) return
    if (this._connecting !== null) this._connecting.destroy()
    this._connecting = null
    this._end(null, false, gaveUpCode(err))
    this._reject(err)
  }

  /**
   * Stop everything; `handOver` keeps the registration and the wire for the connection's watch. `gaveUp`: the code
   * this side failed with, which the bye carries so that the server tells a paired peer at once
   */
  private _end (keep: Transport | null = null, handOver = false, gaveUp?: string): void {
    this._done = true
    for (const t of this._timers) clearTimeout(t)
    this._timers.clear()
    this._prober?.close()
    this._stopBirthday(keep)
    if (this._aux !== null) {
      // The socket lives on this port now: its probing is over, its wire no longer needed
      this._aux.prober.close()
      this._aux.wire.close()
    }
    if (!handOver) {
      // Free the code on the server at once (best effort: otherwise the registration expires)
      if (this._wire !== null) this._send({ t: 'bye', nonce: this._nonce, ...(gaveUp === undefined ? {} : { gaveUp }) })
      this._wire?.close()
    }
    this._node.removeListener('connection', this._onConnection)
    this._node.removeListener('close', this._onNodeClose)
    this._o.signal?.removeEventListener('abort', this._onAbort)
    this._closeDht()
  }
}
