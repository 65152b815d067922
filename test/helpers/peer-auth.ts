// One pairing's peer-to-peer MACs for the unit tests of the rendezvous' direct parts (prober, watch): the side
// under test, its peer (same pairing, same key) and a stranger (same pairing id, another key).
import type * as AuthModule from '../../lib/rendezvous/auth'
import { requireFromRoot } from './utp'

const { PeerAuth } = requireFromRoot('./dist/lib/rendezvous/auth.js') as typeof AuthModule

const keys = { probe: Buffer.alloc(32, 1), confirm: Buffer.alloc(32, 2), stream: Buffer.alloc(32, 3) }
const PAIR = 'ab'.repeat(16)

/** A fresh PeerAuth for the side under test (each counts its own invalid MACs) */
export const ourAuth = (): AuthModule.PeerAuth => new PeerAuth(keys, PAIR)
/** The peer's MACs */
export const peer = ourAuth()
/** A stranger who knows the pairing id but not the key */
export const stranger = new PeerAuth({ ...keys, probe: Buffer.alloc(32, 9) }, PAIR)
