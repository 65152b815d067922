'use strict'
// Stream helpers shared by the scenarios

const { once } = require('events')

const { slice } = require('./pattern')

/** Write `total` pattern bytes in `writeSize` writes, waiting for 'drain' whenever write() says so */
async function sendPattern (stream, total, writeSize) {
  for (let offset = 0; offset < total; offset += writeSize) {
    if (!stream.write(slice(offset, Math.min(writeSize, total - offset)))) await once(stream, 'drain')
  }
}

/** Answer every chunk with the same bytes */
function echo (stream) {
  stream.on('data', (chunk) => stream.write(chunk))
  stream.on('error', () => {})
}

/** Resolves after `n` more bytes arrived on `stream` (it must already be flowing) */
function bytesArriving (stream, n) {
  return new Promise((resolve, reject) => {
    let got = 0
    const onData = (chunk) => {
      got += chunk.length
      if (got >= n) {
        stream.removeListener('data', onData)
        stream.removeListener('error', reject)
        resolve()
      }
    }
    stream.on('data', onData)
    stream.once('error', reject)
  })
}

module.exports = { sendPattern, echo, bytesArriving }
