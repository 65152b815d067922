'use strict'
// Sections of bench/RESULTS.md that separate benchmarks own: a section runs from its "## " heading to
// the next "## " heading or the end of the file, and a run replaces only its own.

const fs = require('fs')

/** Replace the section that starts with `heading` (a "## " line) by `text`, or append it */
function replaceSection (file, heading, text) {
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n'
  const at = old.startsWith(heading) ? 0 : old.indexOf(`\n${heading}`) + 1
  if (at <= 0 && !old.startsWith(heading)) {
    fs.writeFileSync(file, `${old.trimEnd()}\n\n${text.trimEnd()}\n`)
    return
  }
  const next = old.indexOf('\n## ', at + heading.length)
  const head = old.slice(0, at)
  const tail = next >= 0 ? old.slice(next + 1) : ''
  fs.writeFileSync(file, `${head}${text.trimEnd()}\n${tail ? `\n${tail}` : ''}`)
}

module.exports = { replaceSection }
