// Mutation testing reaches into CLI child processes. StrykerJS (`npm run mutants`, docs/mutation.md) switches
// mutants on inside the vitest worker and records which test covered which mutant there; a `utp-punch-rs`
// child process would run the unmutated code and report no coverage, so every mutant only the CLI reaches
// would look untested. Under Stryker, children get the active mutant through the environment variable the
// instrumented code reads, and send their coverage back through a file the parent merges into the running
// test's record. Outside Stryker (no `__stryker__` global) nothing changes.
import { existsSync, readFileSync, rmSync } from 'fs'
import { tmpdir } from 'os'
import * as path from 'path'

interface Coverage { static: Record<string, number>, perTest: Record<string, Record<string, number>> }
interface StrykerGlobal { activeMutant?: string, currentTestId?: string, mutantCoverage?: Coverage }

const PRELOAD = path.join(__dirname, 'mutants-child-preload.cjs')
let children = 0

export interface ChildBridge {
  /** Node flags to put before the script */
  execArgv: string[]
  env: NodeJS.ProcessEnv
  /** Call once the child exited: merges its coverage into the test that started it */
  collect: () => void
}

/** How to start a child under Stryker, or undefined when not running under Stryker */
export function mutantsBridge (env: NodeJS.ProcessEnv): ChildBridge | undefined {
  const ns = (globalThis as { __stryker__?: StrykerGlobal }).__stryker__
  if (ns === undefined) return undefined
  if (ns.activeMutant !== undefined) {
    return { execArgv: [], env: { ...env, __STRYKER_ACTIVE_MUTANT__: ns.activeMutant }, collect: () => {} }
  }
  // The dry run: coverage belongs to the test running when the child started
  const testId = ns.currentTestId
  const out = path.join(tmpdir(), `utp-mutants-${process.pid}-${++children}.json`)
  return {
    execArgv: ['--require', PRELOAD],
    env: { ...env, UTP_MUTANTS_COVERAGE_OUT: out },
    collect: () => {
      if (!existsSync(out)) return
      const child = JSON.parse(readFileSync(out, 'utf8')) as Coverage
      rmSync(out, { force: true })
      const cov = ns.mutantCoverage ?? (ns.mutantCoverage = { static: {}, perTest: {} })
      const into = testId === undefined ? cov.static : (cov.perTest[testId] ??= {})
      // In the child no test was running: everything it covered, at load or later, is this test's
      for (const hits of [child.static, ...Object.values(child.perTest)]) {
        for (const [id, n] of Object.entries(hits)) into[id] = (into[id] ?? 0) + n
      }
    }
  }
}
