'use strict'
// The byte stream every bulk sender writes and every receiver checks: a pseudo-random pattern of
// PERIOD bytes (xorshift32, fixed seed) repeated forever. PERIOD is not a multiple of the 64 KiB
// write size, so a lost, repeated or reordered chunk lands on different bytes and fails the check.
// The pattern is stored twice back to back, so any slice of up to PERIOD bytes starting anywhere
// in the first copy is contiguous: checking a chunk is one memcmp (Buffer#equals), no hashing.

const PERIOD = (1 << 20) + 4092

function makePattern () {
  const words = new Uint32Array(PERIOD / 4)
  let x = 0x9e3779b9
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    words[i] = x >>> 0
  }
  const once = Buffer.from(words.buffer)
  return Buffer.concat([once, once])
}

const twice = makePattern()

/** The bytes at stream offset `offset`, `length` <= PERIOD long (a view, never copied) */
function slice (offset, length) {
  const at = offset % PERIOD
  return twice.subarray(at, at + length)
}

/** Checks received chunks against the pattern; resolves `done` once `total` bytes matched */
class Verifier {
  constructor (total) {
    this.total = total
    this.received = 0
    this.finishedAt = 0n
    this.done = new Promise((resolve, reject) => {
      this._resolve = resolve
      this._reject = reject
    })
  }

  push (chunk) {
    if (this.received + chunk.length > this.total) {
      return this._fail(`received more than the ${this.total} bytes sent`)
    }
    for (let i = 0; i < chunk.length;) {
      const n = Math.min(chunk.length - i, PERIOD)
      if (!chunk.subarray(i, i + n).equals(slice(this.received, n))) {
        return this._fail(`corrupt data near byte ${this.received}`)
      }
      this.received += n
      i += n
    }
    if (this.received === this.total) {
      this.finishedAt = process.hrtime.bigint()
      this._resolve()
    }
  }

  _fail (message) {
    this._reject(new Error(message))
  }
}

module.exports = { PERIOD, slice, Verifier }
