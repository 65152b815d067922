// StrykerJS over lib/ and bin/ (`npm run mutants -- js`; method and results in docs/mutation.md).
// The tests run the compiled package, as users do: vitest's global setup compiles the instrumented sources to
// dist/ in Stryker's sandbox, and test/helpers/mutants-child.ts carries the active mutant into the CLI child
// processes and their coverage back. MUTANTS_FILES (comma-separated globs) narrows the run to part of the code,
// MUTANTS_TESTS (see vitest.mutants.config.ts) to part of the suite.
const only = process.env.MUTANTS_FILES?.split(',').filter(Boolean)

export default {
  testRunner: 'vitest',
  // related: false because tests load dist/ with require(), which vitest cannot trace back to the sources
  vitest: { configFile: 'vitest.mutants.config.ts', related: false },
  coverageAnalysis: 'perTest',
  mutate: only?.length ? only : ['index.ts', 'lib/**/*.ts', 'bin/**/*.ts'],
  // Mutants in module-level code run every test of the suite each: they are counted, not run
  ignoreStatic: true,
  // One runner: the network tests are timing-bounded, and a test failing from load would count as a kill
  concurrency: 1,
  dryRunTimeoutMinutes: 30,
  timeoutMS: 30_000,
  // Results carry over: a later run retests only mutants whose code or tests changed
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  // event-recorder writes each mutant's result as it comes (reports/mutation/events/): a run stopped early
  // still leaves what it found
  reporters: ['clear-text', 'progress', 'json', 'html', 'event-recorder'],
  eventReporter: { baseDir: 'reports/mutation/events' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true
}
