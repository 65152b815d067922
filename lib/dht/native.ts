// Typed access to the DHT node of the native addon (crates/utp-node/src/dht.rs). Loaded on first use,
// through the same binding as the Node, so a missing addon gives the same clear error.

import { bindingPath, loadNative } from '../native'

export interface NativeDhtConfig {
  bootstrap: string[]
  host?: string
  port?: number
  server?: boolean
  requestTimeoutMs?: number
}

export interface NativeDhtInfo {
  id: string
  address: string
  port: number
  publicAddress?: string
  publicPort?: number
  firewalled: boolean
  server: boolean
  sizeEstimate: number
}

export interface NativeDhtGetResult {
  item?: { value: Buffer, seq: number }
  queried: number
  responded: number
  invalidValues: number
}

export interface NativeDht {
  bootstrapped (): Promise<boolean>
  info (): Promise<NativeDhtInfo>
  nodes (): Promise<string[]>
  putMutable (seed: Buffer, salt: Buffer, value: Buffer, seq: number, cas?: number | null): Promise<number>
  getMutable (publicKey: Buffer, salt: Buffer, moreRecentThan?: number | null): Promise<NativeDhtGetResult>
  close (): void
}

export interface DhtBinding {
  NativeDht: { open: (config: NativeDhtConfig) => Promise<NativeDht> }
  dhtPublicKey: (seed: Buffer) => Buffer
}

let cached: DhtBinding | null = null

export function loadDht (): DhtBinding {
  if (cached !== null) return cached
  loadNative() // throws ERR_UTP_NATIVE_MISSING with the whole story when the addon is not there
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const binding = require(bindingPath()) as Partial<DhtBinding>
  if (typeof binding.NativeDht?.open !== 'function' || typeof binding.dhtPublicKey !== 'function') {
    const err = new Error('utp-punch-rs: the native addon has no DHT node (rebuild it with `npm run build:native`)') as NodeJS.ErrnoException
    err.code = 'ERR_UTP_NATIVE_MISSING'
    throw err
  }
  cached = binding as DhtBinding
  return cached
}

/**
 * An async native DHT call's rejection as our error: napi-rs rejects with a plain Error, so the Rust side
 * puts the code in front of the message ("ERR_DHT_CLOSED: the DHT node is closed")
 */
export function nativeDhtError (e: unknown): Error {
  if (!(e instanceof Error)) return new Error(String(e))
  const m = /^((?:ERR_[A-Z_]+)|EINVAL): ([\s\S]*)$/.exec(e.message)
  if (m === null) return e
  const err = (m[1] === 'EINVAL' ? new RangeError(m[2]) : new Error(m[2])) as NodeJS.ErrnoException
  err.code = m[1] === 'EINVAL' ? 'ERR_INVALID_ARG_VALUE' : m[1]
  return err
}
