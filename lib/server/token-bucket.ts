// A token bucket: `rate` tokens per second, at most `burst` saved up. The server uses one per source IP
// (messages) and one per relay allocation (bytes).

export class TokenBucket {
  private _tokens: number
  private _last: number

  constructor (readonly rate: number, readonly burst: number, now = Date.now()) {
    this._tokens = burst
    this._last = now
  }

  /** Take `n` tokens if there are that many; false (and nothing taken) otherwise */
  take (n = 1, now = Date.now()): boolean {
    this._refill(now)
    if (this._tokens < n) return false
    this._tokens -= n
    return true
  }

  /** Full again: nothing has been taken for a while, so the bucket can be forgotten */
  isFull (now = Date.now()): boolean {
    this._refill(now)
    return this._tokens >= this.burst
  }

  private _refill (now: number): void {
    const elapsed = Math.max(0, now - this._last) / 1000
    this._last = now
    this._tokens = Math.min(this.burst, this._tokens + elapsed * this.rate)
  }
}
