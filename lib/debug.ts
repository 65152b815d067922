// Debug logging: `NODE_DEBUG=utp-punch-rs node app.js` prints lifecycle lines to stderr
// ("UTP-PUNCH-RS <pid>: node 1 bound 127.0.0.1:4000"). Off by default. Callers test `debugEnabled` before
// building any message, and nothing logs per packet, so a disabled log costs one boolean check per event.

import * as util from 'util'

const log = util.debuglog('utp-punch-rs')

/** Whether NODE_DEBUG names utp-punch-rs (read once, when the package loads) */
export const debugEnabled: boolean = log.enabled

/** util.format-style message; call only under `if (debugEnabled)` */
export function debug (format: string, ...args: unknown[]): void {
  log(format, ...args)
}

/** 'host:port', bracketing IPv6 */
export function hostPort (address: string | undefined, port: number | undefined): string {
  if (address === undefined) return `?:${port ?? '?'}`
  return address.includes(':') ? `[${address}]:${port ?? '?'}` : `${address}:${port ?? '?'}`
}

/** 'CODE: message' on one line, for debug output */
export function describeError (e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  const msg = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ')
  return typeof code === 'string' ? `${code}: ${msg}` : msg
}
