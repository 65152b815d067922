// The public API assembled: lib/node.ts is the transport and imports nothing above it, so the methods built
// on the transport (node.stun(), node.natType(), node.rendezvous()) and the names of the upper layers are
// attached to Node here, with a declaration merge that gives them the same public types as before.
// index.ts (the package entry) exports the Node this module returns. Code that calls those methods imports Node
// from here (or the entry), never from lib/node.ts: the types are merged everywhere, the methods only once
// this module ran.

import * as dhtModule from './dht/node'
import { Node } from './node'
import type { Socket } from './socket'
import * as rendezvousModule from './rendezvous'
import * as secureModule from './secure'
import { rendezvous } from './rendezvous/methods'
import * as stunModule from './stun'
import { natType, stun } from './stun/methods'

/* eslint-disable @typescript-eslint/no-namespace */
declare module './node' {
  interface Node {
    /**
     * This node's public address as a STUN server ('host:port') sees it, asked from the node's own socket,
     * so it is the mapping peers reach uTP through. Rejects with code ERR_STUN_TIMEOUT or ERR_STUN_ERROR_RESPONSE.
     */
    stun (server: string, options?: stunModule.StunBindingOptions): Promise<stunModule.StunAddress>
    /**
     * NAT behaviour discovery (RFC 5780: mapping and filtering) against a STUN server that offers
     * OTHER-ADDRESS and CHANGE-REQUEST, such as coturn; 'unknown' parts when the server does not.
     */
    natType (server: string, options?: stunModule.NatDiscoveryOptions): Promise<stunModule.NatBehaviorResult>
    /**
     * Meet a peer through a rendezvous server (`server`), or on the BitTorrent Mainline DHT (`dht`), under a
     * shared code and end up with a connected Socket, whichever way works: LAN addresses, the public addresses
     * punched from both sides, or the server's relay (there is none over the DHT). Symmetric: both peers make the same call. Rejects with ERR_PUNCH_FAILED (naming the NAT
     * types and candidates) when no path works and `relay` is false, ERR_WRONG_CODE when the peer's code
     * differs, or ERR_RENDEZVOUS_TIMEOUT. `socket` is an encrypted SecureSocket unless `encrypt: false`.
     */
    rendezvous (options: rendezvousModule.RendezvousOptions & { encrypt: false }): Promise<rendezvousModule.RendezvousResult<Node, Socket>>
    rendezvous (options: rendezvousModule.RendezvousOptions & { encrypt?: true }): Promise<rendezvousModule.RendezvousResult<Node, secureModule.SecureSocket>>
    rendezvous (options: rendezvousModule.RendezvousOptions): Promise<rendezvousModule.RendezvousResult<Node>>
  }
  namespace Node {
    export import stun = stunModule
    export import RendezvousServer = rendezvousModule.RendezvousServer
    export type RendezvousOptions = rendezvousModule.RendezvousOptions
    export type RendezvousResult = rendezvousModule.RendezvousResult<Node>
    export type RendezvousServerOptions = rendezvousModule.RendezvousServerOptions
    export type RendezvousPath = rendezvousModule.RendezvousPath
    export type RendezvousTimings = rendezvousModule.RendezvousTimings
    export type RendezvousStatus = rendezvousModule.RendezvousStatus
    export type RendezvousError = rendezvousModule.RendezvousError
    export type RendezvousStats = rendezvousModule.RendezvousStats
    export type PairedInfo = rendezvousModule.PairedInfo
    export const rendezvousCodes: typeof rendezvousModule.rendezvousCodes
    /** A fresh single-use pairing code, "4127-otter-pretzel-canoe": a nameplate the server sees and three secret words */
    export const generateCode: typeof rendezvousModule.generateCode
    export const parseCode: typeof rendezvousModule.parseCode
    export const CODE_WORDS: typeof rendezvousModule.CODE_WORDS
    export type ParsedCode = rendezvousModule.ParsedCode
    export import Pake = secureModule.Pake
    export const deriveKey: typeof secureModule.deriveKey
    export const secureCodes: typeof secureModule.secureCodes
    export const secureSocket: typeof secureModule.secureSocket
    export import SecureSocket = secureModule.SecureSocket
    export type SecureOptions = secureModule.SecureOptions
    export type SecureRole = secureModule.SecureRole
    export import DhtNode = dhtModule.DhtNode
    export type DhtNodeOptions = dhtModule.DhtNodeOptions
    export type DhtItem = dhtModule.DhtItem
    export type DhtGetResult = dhtModule.DhtGetResult
    export type DhtInfo = dhtModule.DhtInfo
    export const DEFAULT_DHT_BOOTSTRAP: typeof dhtModule.DEFAULT_DHT_BOOTSTRAP
    export const dhtPublicKey: typeof dhtModule.dhtPublicKey
  }
}
/* eslint-enable @typescript-eslint/no-namespace */

// Methods as a class would define them: writable, configurable, not enumerable
for (const [name, value] of Object.entries({ stun, natType, rendezvous })) {
  Object.defineProperty(Node.prototype, name, { value, writable: true, configurable: true, enumerable: false })
}
Object.assign(Node, {
  stun: stunModule,
  RendezvousServer: rendezvousModule.RendezvousServer,
  rendezvousCodes: rendezvousModule.rendezvousCodes,
  generateCode: rendezvousModule.generateCode,
  parseCode: rendezvousModule.parseCode,
  CODE_WORDS: rendezvousModule.CODE_WORDS,
  Pake: secureModule.Pake,
  deriveKey: secureModule.deriveKey,
  secureCodes: secureModule.secureCodes,
  secureSocket: secureModule.secureSocket,
  SecureSocket: secureModule.SecureSocket,
  DhtNode: dhtModule.DhtNode,
  DEFAULT_DHT_BOOTSTRAP: dhtModule.DEFAULT_DHT_BOOTSTRAP,
  dhtPublicKey: dhtModule.dhtPublicKey
})

export { Node }
