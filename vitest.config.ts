import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // The bulk-transfer files load the CPU; timing assertions elsewhere get their own process but not a
    // quiet machine, so keep the number of concurrent files modest
    maxWorkers: 4
  }
})
