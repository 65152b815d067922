// What the secure-stream tests share: a matching pair of psk options and how a secureSocket() call settles
import type { Node as NodeClass } from '../../lib/node'
import type { UtpError } from './utp'

type SecureSocket = NodeClass.SecureSocket

/** Both sides of one psk: the client initiates */
export const pskOptions = { client: { role: 'initiator', psk: 'correct horse battery staple' }, server: { role: 'responder', psk: 'correct horse battery staple' } } as const

/** What secureSocket() settles to: the SecureSocket, or its error and how long after `started` it came */
export type Outcome = { ok: true, secure: SecureSocket } | { ok: false, error: UtpError, ms: number }

export async function settle (p: Promise<SecureSocket>, started = Date.now()): Promise<Outcome> {
  try {
    return { ok: true, secure: await p }
  } catch (e) {
    return { ok: false, error: e as UtpError, ms: Date.now() - started }
  }
}
