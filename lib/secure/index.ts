// The secure layer: SPAKE2, key derivation and (socket.ts) encrypted streams over a connected Socket.
// It sits above the transport: it uses Socket and errors, never rendezvous or STUN.

export { Pake, deriveKey } from './pake'
export { secureCodes } from './errors'
export { SecureSocket, secureSocket, defaultHandshakeTimeout, type SecureOptions, type SecureRole } from './socket'
