'use strict'
// Order statistics over plain arrays of numbers

function sorted (xs) {
  return Float64Array.from(xs).sort()
}

/** The q-quantile (0..1) by nearest rank; NaN for an empty list */
function quantile (xs, q) {
  if (xs.length === 0) return NaN
  const s = sorted(xs)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
}

function median (xs) {
  if (xs.length === 0) return NaN
  const s = sorted(xs)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

module.exports = { quantile, median }
