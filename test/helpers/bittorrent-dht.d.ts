// The part of webtorrent's bittorrent-dht (no types of its own) that the DHT tests use
declare module 'bittorrent-dht' {
  import { EventEmitter } from 'events'

  interface BittorrentDhtOptions {
    bootstrap?: string[] | false
    host?: string | false
    verify?: (signature: Buffer, message: Buffer, publicKey: Buffer) => boolean
  }

  interface MutablePut {
    k: Buffer
    salt?: Buffer
    seq: number
    v: Buffer
    sign: (message: Buffer) => Buffer
  }

  export default class BittorrentDht extends EventEmitter {
    constructor (opts?: BittorrentDhtOptions)
    readonly ready: boolean
    readonly nodes: { count: () => number }
    listen (port: number, host: string, cb?: () => void): void
    address (): { address: string, port: number }
    get (target: Buffer, opts: { salt?: Buffer }, cb: (err: Error | null, res: { v: Buffer, seq: number } | null) => void): void
    put (opts: MutablePut, cb: (err: Error | null, hash: Buffer) => void): void
    destroy (cb?: () => void): void
  }
}
