// The `code` values of the secure layer's errors (native failures carry them already as `err.code`)

/** Codes of errors from secureSocket(), SecureSocket and Pake (docs/api.md, "Security") */
export const secureCodes = {
  /** The peer holds another key or pre-shared secret (or uses the other mode): both sides fail the handshake with it */
  ERR_WRONG_CODE: 'ERR_WRONG_CODE',
  /** The peer did not finish the handshake within its time limit */
  ERR_HANDSHAKE_TIMEOUT: 'ERR_HANDSHAKE_TIMEOUT',
  /** The peer is not running the encrypted-stream handshake (an unencrypted peer, another version, the same role) */
  ERR_NOT_SECURE: 'ERR_NOT_SECURE',
  /** A record failed authentication (tampered, replayed, reordered) or the stream ended without its authenticated close */
  ERR_DECRYPT: 'ERR_DECRYPT',
  /** Pake.finish() got something that is not a SPAKE2 message, or its own message reflected */
  ERR_PAKE_MESSAGE: 'ERR_PAKE_MESSAGE',
  /** The connection closed before the handshake finished */
  ERR_HANDSHAKE_CLOSED: 'ERR_HANDSHAKE_CLOSED'
} as const
