// A one-line progress bar on stderr, only when stderr is a terminal: pipes and logs stay quiet.

const WIDTH = 24

export class Progress {
  private _last = 0
  private readonly _t0 = Date.now()
  private _drawn = false

  constructor (private readonly _label: string, private readonly _total: number, private readonly _out: NodeJS.WriteStream = process.stderr) {}

  get enabled (): boolean {
    return this._out.isTTY === true
  }

  update (done: number, force = false): void {
    if (!this.enabled) return
    const now = Date.now()
    if (!force && now - this._last < 100) return
    this._last = now
    const frac = this._total > 0 ? Math.min(1, done / this._total) : 1
    const filled = Math.round(frac * WIDTH)
    const secs = Math.max(0.001, (now - this._t0) / 1000)
    const bar = '#'.repeat(filled) + '.'.repeat(WIDTH - filled)
    const line = `${this._label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${mb(done)}/${mb(this._total)} MB ${mb(done / secs)} MB/s`
    this._out.write(`\r${line}\x1b[K`)
    this._drawn = true
  }

  /** Leave the bar's line (before a summary or an error is printed) */
  end (): void {
    if (this._drawn) this._out.write('\n')
    this._drawn = false
  }
}

export function mb (bytes: number): string {
  return (bytes / 1e6).toFixed(bytes >= 1e8 ? 0 : 2)
}
