'use strict'
// One measurement in a fresh process: node --expose-gc child.js <transport> <scenario module> <params JSON>
// Prints a single line `RESULT <json>` and exits; any failure exits non-zero with the reason on stderr.

const path = require('path')

async function main () {
  const [transportName, scenarioName, paramsJson] = process.argv.slice(2)
  const transport = require(path.join(__dirname, 'transports', transportName))
  const scenario = require(path.join(__dirname, 'scenarios', scenarioName))
  const result = await scenario.run(transport, JSON.parse(paramsJson))
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0))
}

process.on('unhandledRejection', (err) => {
  throw err
})

main().catch((err) => {
  process.stderr.write(`${err && err.message ? err.message : String(err)}\n`, () => process.exit(1))
})
