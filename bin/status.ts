// Status lines for `send` and `receive`: one line on stderr for each change of state ("registered, waiting for
// the peer", "connected via direct path to 1.2.3.4:5000, encrypted"), on a terminal and in a pipe or log
// alike, so a user (or a log reader) can always tell what the command is waiting for. With --json the same
// states are {"event":"status","state",...,"message"} lines on stdout; --quiet silences them.

import type { RendezvousStatus } from '../lib/rendezvous/options'
import { humanBytes } from './incoming'

/** The states a transfer goes through, in order (relay only when no direct path works) */
export type TransferState =
  | 'contacting' | 'registered' | 'paired' | 'punching' | 'relay' | 'connected'
  | 'offering' | 'transferring' | 'done'

export type StatusMode = 'text' | 'json' | 'off'

export interface StatusOptions {
  mode: StatusMode
  /** Where text lines go */
  stderr: NodeJS.WritableStream
  /** Where JSON lines go */
  stdout: NodeJS.WritableStream
}

export class StatusLines {
  constructor (private readonly _o: StatusOptions) {}

  /** Report `state` with its sentence and, for --json, its details */
  report (state: TransferState, message: string, detail: Record<string, unknown> = {}): void {
    if (this._o.mode === 'text') this._o.stderr.write(`${message}\n`)
    else if (this._o.mode === 'json') this._o.stdout.write(JSON.stringify({ event: 'status', state, ...detail, message }) + '\n')
  }

  /** Before anything goes out over the DHT: the nodes it joins through, and which setting named them */
  joiningDht (bootstrap: string[] | undefined, source: string): void {
    const through = bootstrap === undefined ? source : `${bootstrap.join(', ')} (from ${source})`
    this.report('contacting', `joining the BitTorrent DHT through ${through}`, { dht: true, bootstrap: bootstrap ?? null, source })
  }

  /** Before anything goes out: which server, and which setting named it */
  contacting (server: string, source: string): void {
    this.report('contacting', `contacting the rendezvous server ${server} (from ${source})`, { server, source })
  }

  /** A step of the library's rendezvous (RendezvousOptions.onStatus) */
  rendezvous (s: RendezvousStatus): void {
    // 'registering' and 'joining-dht' were said by contacting() or joiningDht(), before the name was looked up
    switch (s.state) {
      case 'published':
        this.report('registered', 'published on the DHT, waiting for the peer', { observed: s.observed ?? null, mapping: s.mapping ?? null })
        return
      case 'registered':
        this.report('registered', 'registered, waiting for the peer', { observed: s.observed })
        return
      case 'paired':
        this.report('paired', 'peer found, checking that it holds the same code', { role: s.role })
        return
      case 'punching':
        this.report('punching', `code confirmed, trying paths: ${s.candidates.length === 0 ? 'none known' : s.candidates.join(', ')}`, { candidates: s.candidates })
        return
      case 'relay':
        this.report('relay', `no direct path (${s.reason}), going through the server's relay`, { reason: s.reason })
    }
  }

  connected (path: string, remote: string, encrypted: boolean): void {
    this.report('connected', `connected via ${path} path to ${remote}, ${encrypted ? 'encrypted' : 'not encrypted'}`, { path, remote, encrypted })
  }

  /** The sender's offer went out; the receiver (or its user) decides */
  offering (): void {
    this.report('offering', 'waiting for the receiver to accept')
  }

  /** The bytes start moving: `verb` 'sending' or 'receiving' */
  transferring (verb: string, name: string, bytes: number | null): void {
    this.report('transferring', `${verb} ${name} (${bytes === null ? 'size unknown' : humanBytes(bytes)})`, { name, bytes })
  }

  done (): void {
    this.report('done', 'done')
  }
}
