// The bridge that carries StrykerJS's active mutant into CLI child processes and their coverage back
// (test/helpers/mutants-child.ts): if it broke, every mutant only the CLI reaches would look untested or survive
import { spawnSync } from 'child_process'
import { afterEach, describe, expect, it } from 'vitest'

import { mutantsBridge } from './helpers/mutants-child'

interface Ns { activeMutant?: string, currentTestId?: string, mutantCoverage?: { static: Record<string, number>, perTest: Record<string, Record<string, number>> } }
const g = globalThis as { __stryker__?: Ns }

describe('mutation testing bridge to CLI child processes', () => {
  afterEach(() => { delete g.__stryker__ })

  it('outside Stryker it changes nothing', () => {
    expect(mutantsBridge(process.env)).toBeUndefined()
  })

  it('passes the active mutant through the environment variable the instrumented code reads', () => {
    g.__stryker__ = { activeMutant: '42' }
    const bridge = mutantsBridge({ KEEP: 'yes' })
    expect(bridge?.env).toEqual({ KEEP: 'yes', __STRYKER_ACTIVE_MUTANT__: '42' })
    expect(bridge?.execArgv).toEqual([])
  })

  it('in the dry run, adds what the child covered to the test that started it', () => {
    g.__stryker__ = { currentTestId: 'file#a test', mutantCoverage: { static: {}, perTest: { 'file#a test': { 1: 1 } } } }
    const bridge = mutantsBridge(process.env)
    expect(bridge).toBeDefined()
    if (bridge === undefined) return
    // A child that covered mutants 1 (at load) and 7 (later), as instrumented code records it
    const child = spawnSync(process.execPath, [...bridge.execArgv, '-e',
      'globalThis.__stryker__ = { mutantCoverage: { static: { 1: 2 }, perTest: { x: { 7: 1 } } } }'], { env: bridge.env })
    expect(child.status).toBe(0)
    g.__stryker__.currentTestId = 'another test'
    bridge.collect()
    expect(g.__stryker__.mutantCoverage?.perTest['file#a test']).toEqual({ 1: 3, 7: 1 })
    expect(g.__stryker__.mutantCoverage?.perTest['another test']).toBeUndefined()
  })
})
