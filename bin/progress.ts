// Transfer progress in one of three forms: a bar redrawn in place on a terminal, a plain line every few
// seconds when stderr is a pipe or a file (logs stay readable), or JSON objects on stdout for --json.
// The rate is measured over the last few seconds, and the ETA is based on it.

const WIDTH = 24
/** The rate is measured over this much recent history */
const WINDOW_MS = 3000

export type ProgressMode = 'bar' | 'lines' | 'json' | 'off'

export interface ProgressOptions {
  mode: ProgressMode
  /** stderr for 'bar' and 'lines', stdout for 'json' */
  out: NodeJS.WritableStream
  /** Least time between two updates, ms (default: 100 for 'bar', 5000 for 'lines', 1000 for 'json') */
  intervalMs?: number
  /** The clock (tests) */
  now?: () => number
  /** Bytes already there when the transfer starts (a resumed one): the rate counts only what moves now */
  initial?: number
}

/** The progress mode for a stream: a bar on a terminal, plain lines otherwise */
export function autoMode (stream: NodeJS.WritableStream & { isTTY?: boolean }): ProgressMode {
  return stream.isTTY === true ? 'bar' : 'lines'
}

/** What a transfer reports its progress to */
export interface ProgressSink {
  update(done: number, force?: boolean): void
  end(): void
}

/** Reports nothing */
export const noProgress: ProgressSink = { update () {}, end () {} }

export class Progress implements ProgressSink {
  private readonly _mode: ProgressMode
  private readonly _out: NodeJS.WritableStream
  private readonly _interval: number
  private readonly _now: () => number
  private readonly _t0: number
  private _last: number
  private _drawn = false
  /** Some progress was written (lines and json: a forced update then writes the final state too) */
  private _printed = false
  /** Recent (time, bytes) samples for the rate */
  private readonly _samples: Array<[number, number]> = []
  private readonly _initial: number

  /** `label` is the verb ('sending'), `name` the file name, `total` null when unknown (a stream) */
  constructor (private readonly _label: string, private readonly _name: string, private readonly _total: number | null, o: ProgressOptions) {
    this._mode = o.mode
    this._out = o.out
    this._interval = o.intervalMs ?? (o.mode === 'bar' ? 100 : o.mode === 'json' ? 1000 : 5000)
    this._now = o.now ?? Date.now
    this._t0 = this._now()
    this._last = this._t0
    this._initial = o.initial ?? 0
    this._samples.push([this._t0, this._initial])
  }

  get enabled (): boolean {
    return this._mode !== 'off'
  }

  /**
   * `done` bytes so far; drawn when the interval passed since the last draw. `force` draws the bar now; plain
   * lines and JSON only if some were written already (a quick transfer prints none)
   */
  update (done: number, force = false): void {
    if (this._mode === 'off') return
    const now = this._now()
    if (force ? this._mode !== 'bar' && !this._printed : now - this._last < this._interval) return
    this._printed = true
    this._last = now
    this._sample(now, done)
    const rate = this._rate(now, done)
    const total = this._total
    if (total === null) {
      this._unknownTotal(now, done, rate)
      return
    }
    const eta = rate > 0 && done < total ? (total - done) / rate : done >= total ? 0 : undefined
    const pct = total > 0 ? Math.min(100, (done / total) * 100) : 100
    switch (this._mode) {
      case 'bar': {
        const filled = Math.round((pct / 100) * WIDTH)
        const bar = '#'.repeat(filled) + '.'.repeat(WIDTH - filled)
        const line = `${this._label} ${this._name} [${bar}] ${pct.toFixed(0).padStart(3)}% ${mb(done)}/${mb(total)} MB ` +
          `${mb(rate)} MB/s ETA ${clock(eta)}`
        this._out.write(`\r${line}\x1b[K`)
        this._drawn = true
        return
      }
      case 'lines':
        this._out.write(`${this._label} ${this._name}: ${pct.toFixed(0)}% (${mb(done)} of ${mb(total)} MB), ${mb(rate)} MB/s, ETA ${clock(eta)}\n`)
        return
      case 'json':
        this._out.write(JSON.stringify({
          event: 'progress',
          name: this._name,
          bytes: done,
          total: this._total,
          seconds: round((now - this._t0) / 1000, 3),
          megabytesPerSecond: round(rate / 1e6, 3),
          etaSeconds: eta === undefined ? null : round(eta, 1)
        }) + '\n')
    }
  }

  /** A stream of unknown size: bytes and rate, no percentage or ETA */
  private _unknownTotal (now: number, done: number, rate: number): void {
    const text = `${this._label} ${this._name}: ${mb(done)} MB, ${mb(rate)} MB/s`
    if (this._mode === 'bar') {
      this._out.write(`\r${text}\x1b[K`)
      this._drawn = true
    } else if (this._mode === 'lines') {
      this._out.write(`${text}\n`)
    } else {
      this._out.write(JSON.stringify({ event: 'progress', name: this._name, bytes: done, total: null, seconds: round((now - this._t0) / 1000, 3), megabytesPerSecond: round(rate / 1e6, 3), etaSeconds: null }) + '\n')
    }
  }

  /** Leave the bar's line (before a summary or an error is printed) */
  end (): void {
    if (this._drawn) this._out.write('\n')
    this._drawn = false
  }

  private _sample (now: number, done: number): void {
    this._samples.push([now, done])
    while (this._samples.length > 2 && now - this._samples[1][0] >= WINDOW_MS) this._samples.shift()
  }

  /** Bytes per second over the recent window (since the start while it is shorter than half a second) */
  private _rate (now: number, done: number): number {
    const [t, d] = this._samples[0]
    const span = now - t
    if (span >= 500) return ((done - d) * 1000) / span
    return ((done - this._initial) * 1000) / Math.max(1, now - this._t0)
  }
}

/** Decimal megabytes, two decimals below 100 MB */
export function mb (bytes: number): string {
  return (bytes / 1e6).toFixed(bytes >= 1e8 ? 0 : 2)
}

/** Seconds as m:ss or h:mm:ss ('-:--' when unknown) */
export function clock (seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '-:--'
  const s = Math.ceil(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

export function round (n: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(n * f) / f
}
