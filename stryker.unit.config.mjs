// StrykerJS beside a long run: the same settings as stryker.config.mjs with a temporary directory and reports
// of its own (reports/mutation-unit/), for quick runs over unit test files (docs/mutation.md), e.g.
// MUTANTS_FILES=lib/punch.ts MUTANTS_TESTS=test/punch.test.ts npx stryker run stryker.unit.config.mjs --force
import base from './stryker.config.mjs'

export default {
  ...base,
  tempDirName: '.stryker-tmp-unit',
  incrementalFile: 'reports/mutation-unit/stryker-incremental.json',
  eventReporter: { baseDir: 'reports/mutation-unit/events' },
  jsonReporter: { fileName: 'reports/mutation-unit/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation-unit/mutation.html' }
}
