// Bencoding (BEP 3), the KRPC wire format: just enough for the pings reflect.ts sends from the uTP socket and
// the answers it reads. Decoding is strict and bounded, since the bytes come from strangers: a malformed
// datagram is null, never an exception and never a deep recursion.

export type BValue = number | Buffer | BValue[] | { [key: string]: BValue }

const MAX_DEPTH = 16

export function bencode (v: BValue): Buffer {
  const parts: Buffer[] = []
  const put = (x: BValue): void => {
    if (typeof x === 'number') {
      if (!Number.isSafeInteger(x)) throw new RangeError(`bencode: not an integer: ${x}`)
      parts.push(Buffer.from(`i${x}e`))
    } else if (Buffer.isBuffer(x)) {
      parts.push(Buffer.from(`${x.length}:`), x)
    } else if (Array.isArray(x)) {
      parts.push(Buffer.from('l'))
      x.forEach(put)
      parts.push(Buffer.from('e'))
    } else {
      parts.push(Buffer.from('d'))
      // Keys in raw byte order, as BEP 3 requires
      for (const k of Object.keys(x).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
        const key = Buffer.from(k)
        parts.push(Buffer.from(`${key.length}:`), key)
        put(x[k])
      }
      parts.push(Buffer.from('e'))
    }
  }
  put(v)
  return Buffer.concat(parts)
}

/** The value `buf` holds, with nothing after it; null when it is not exactly one well-formed value */
export function bdecode (buf: Buffer): BValue | null {
  let i = 0
  const digits = (end: number): number | null => {
    const s = buf.toString('latin1', i, end)
    if (!/^(0|-?[1-9]\d*)$/.test(s) || s.length > 15) return null
    return Number(s)
  }
  const value = (depth: number): BValue | null => {
    if (i >= buf.length || depth > MAX_DEPTH) return null
    const c = buf[i]
    if (c === 0x69) { // i<digits>e
      const end = buf.indexOf(0x65, i + 1)
      if (end < 0) return null
      i++
      const n = digits(end)
      i = end + 1
      return n
    }
    if (c >= 0x30 && c <= 0x39) { // <length>:<bytes>
      const colon = buf.indexOf(0x3a, i)
      if (colon < 0) return null
      const n = digits(colon)
      if (n === null || n < 0 || colon + 1 + n > buf.length) return null
      i = colon + 1 + n
      return buf.subarray(colon + 1, i)
    }
    if (c === 0x6c) { // l...e
      i++
      const list: BValue[] = []
      while (i < buf.length && buf[i] !== 0x65) {
        const item = value(depth + 1)
        if (item === null) return null
        list.push(item)
      }
      if (i >= buf.length) return null
      i++
      return list
    }
    if (c === 0x64) { // d...e, keys byte strings
      i++
      const dict: { [key: string]: BValue } = Object.create(null) as { [key: string]: BValue }
      while (i < buf.length && buf[i] !== 0x65) {
        const key = value(depth + 1)
        if (!Buffer.isBuffer(key)) return null
        const item = value(depth + 1)
        if (item === null) return null
        dict[key.toString('latin1')] = item
      }
      if (i >= buf.length) return null
      i++
      return dict
    }
    return null
  }
  const v = value(0)
  return v !== null && i === buf.length ? v : null
}

export function isDict (v: BValue | null | undefined): v is { [key: string]: BValue } {
  return typeof v === 'object' && v !== null && !Buffer.isBuffer(v) && !Array.isArray(v)
}
