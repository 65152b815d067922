// Failures of send and receive in the user's terms: what happened to them ("the receiver stopped responding"),
// not the transport's words for it (`read ETIMEDOUT 127.0.0.1:41353`). The `code` stays the library's or the
// system's, for --json and scripts; only the message changes.

import { CliError } from './args'

export interface FailureContext {
  stage: 'rendezvous' | 'transfer'
  /** The rendezvous server as the user gave it (rendezvous stage) */
  server?: string
  /** Who is on the other side (transfer stage) */
  peer?: 'sender' | 'receiver'
}

/** `e` as a CliError with a message a user understands and its original code */
export function inUserTerms (e: unknown, ctx: FailureContext): CliError {
  const code = codeOf(e)
  const message = e instanceof Error ? e.message.replace(/\s*\n\s*/g, ' ') : String(e)
  if (e instanceof CliError) return e.stage === undefined ? new CliError(e.code, e.message, ctx.stage, e.peerMessage) : e
  const text = ctx.stage === 'rendezvous' ? rendezvousText(code, message, ctx.server ?? 'the server') : transferText(code, message, ctx.peer ?? 'peer')
  return new CliError(code, text ?? message, ctx.stage)
}

function rendezvousText (code: string, message: string, server: string): string | undefined {
  const host = server.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1')
  switch (code) {
    case 'ENOTFOUND':
      return `cannot find the rendezvous server ${host}: the name does not resolve`
    case 'EAI_AGAIN':
      return `cannot find the rendezvous server ${host}: the name could not be looked up (no DNS answer; offline?)`
  }
  return undefined
}

function transferText (code: string, message: string, peer: string): string | undefined {
  switch (code) {
    case 'ETIMEDOUT':
      return `the ${peer} stopped responding (the connection timed out)`
    case 'ECONNRESET':
    case 'EPIPE':
      return `the ${peer} closed the connection`
  }
  return undefined
}

function codeOf (e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'ERR_FAILED'
}

/**
 * A transport failure in the middle of a transfer (the connection timed out, was reset or closed) as what
 * happened to the user: "the receiver stopped responding after 6.29 of 52.43 MB (the connection timed out)".
 * `e` unchanged when it is not one; the code stays, for --json
 */
export function lostPeer (e: unknown, peer: 'sender' | 'receiver', where: string): unknown {
  const code = codeOf(e)
  if (e instanceof CliError && code !== 'ERR_TRANSFER_CLOSED') return e
  const what = code === 'ETIMEDOUT'
    ? `the ${peer} stopped responding ${where} (the connection timed out)`
    : code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_TRANSFER_CLOSED'
      ? `the ${peer} closed the connection ${where}`
      : undefined
  return what === undefined ? e : new CliError(code, what)
}
