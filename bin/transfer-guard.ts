// What may end a transfer from outside its own reads and writes: the user cancelling (SIGINT/SIGTERM, through an
// AbortSignal), the peer cancelling, and silence. Every wait of the transfer runs through guard.run(), which
// rejects as soon as one of those happens, so a transfer blocked on a full send window or an empty receive
// buffer still ends at once, with a message in the user's terms instead of a transport error minutes later.

import { CliError } from './args'

export interface GuardOptions {
  /** Aborted when the user cancels: the transfer fails with `cancelled()` (ERR_CANCELLED) */
  signal?: AbortSignal
  /** No progress for this long fails the transfer with `idle()` (ERR_PEER_IDLE) */
  idleMs?: number
}

export class TransferGuard {
  private _reject: (e: Error) => void = () => {}
  private readonly _failed: Promise<never>
  private _error: Error | null = null
  private _last = Date.now()
  private _paused = false
  private readonly _timer: NodeJS.Timeout | undefined
  private readonly _onAbort = (): void => this.fail(this.cancelled())
  /** What the user is told when they cancel, and when the peer goes quiet (set by the transfer as it goes) */
  cancelled: () => CliError = () => new CliError('ERR_CANCELLED', 'cancelled')
  idle: (seconds: number) => CliError = (s) => new CliError('ERR_PEER_IDLE', `the other side stopped responding (nothing for ${s} s)`)

  constructor (private readonly _o: GuardOptions) {
    this._failed = new Promise<never>((_resolve, reject) => { this._reject = reject })
    this._failed.catch(() => {}) // observed through run(); never an unhandled rejection
    _o.signal?.addEventListener('abort', this._onAbort)
    if (_o.signal?.aborted === true) this._onAbort()
    const idleMs = _o.idleMs
    if (idleMs !== undefined) {
      this._timer = setInterval(() => {
        if (!this._paused && Date.now() - this._last >= idleMs) this.fail(this.idle(Math.round(idleMs / 100) / 10))
      }, Math.min(1000, Math.max(10, idleMs / 4)))
      this._timer.unref()
    }
  }

  /** The first reason the transfer must end, or null */
  get error (): Error | null {
    return this._error
  }

  /** Something moved: the idle clock starts over */
  touch (): void {
    this._last = Date.now()
  }

  /** Stops the idle clock while waiting for a person (the receiver's user deciding), not for the peer */
  async whilePaused<T>(p: Promise<T>): Promise<T> {
    this._paused = true
    try {
      return await this.run(p)
    } finally {
      this._paused = false
      this.touch()
    }
  }

  fail (e: Error): void {
    if (this._error !== null) return
    this._error = e
    this._reject(e)
  }

  /** `p`, unless the transfer must end first */
  async run<T>(p: Promise<T>): Promise<T> {
    // A wait that loses the race may still fail later (a write on the connection being closed): that is no
    // longer news, and must not become an unhandled rejection that kills the process with another status
    p.catch(() => {})
    if (this._error !== null) throw this._error
    return await Promise.race([p, this._failed])
  }

  dispose (): void {
    if (this._timer !== undefined) clearInterval(this._timer)
    this._o.signal?.removeEventListener('abort', this._onAbort)
  }
}
