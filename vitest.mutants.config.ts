// The suite StrykerJS runs (`npm run mutants`, docs/mutation.md): every vitest file except the NAT lab, which
// needs its network namespaces to itself and takes minutes per run, or only the files MUTANTS_TESTS names
// (comma-separated globs) for a run over part of the code. Stryker runs, per mutant, only the tests that
// covered it in its first (dry) run
import { defineConfig } from 'vitest/config'

import base from './vitest.config'

const only = process.env.MUTANTS_TESTS?.split(',').filter(Boolean)

// Spread, not mergeConfig: that would append these lists to the base ones
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: only?.length ? only : base.test?.include,
    exclude: ['test/natlab.test.ts', '**/node_modules/**']
  }
})
