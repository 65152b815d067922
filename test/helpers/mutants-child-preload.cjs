// Loaded with --require into CLI child processes during StrykerJS's dry run (see mutants-child.ts): on exit,
// write which mutants this process covered to the file the parent test named
'use strict'
const { writeFileSync } = require('fs')

const out = process.env.UTP_MUTANTS_COVERAGE_OUT
if (out) {
  process.on('exit', () => {
    const cov = globalThis.__stryker__ && globalThis.__stryker__.mutantCoverage
    writeFileSync(out, JSON.stringify(cov || { static: {}, perTest: {} }))
  })
}
