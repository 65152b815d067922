// A `node -e` script in a child process, run against the package built in this tree (dist/). Under StrykerJS
// the child runs the active mutant and reports its coverage back (helpers/mutants-child.ts), like the CLI's.
import { spawn, type ChildProcess } from 'child_process'

import { mutantsBridge } from './mutants-child'
import { root } from './utp'

/** Starts `script` with the repository root as its working directory, so it can require('./dist/index.js') */
export function spawnScript (script: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const bridge = mutantsBridge(env)
  const child = spawn(process.execPath, [...bridge?.execArgv ?? [], '-e', script], {
    cwd: root, env: bridge?.env ?? env, stdio: ['ignore', 'pipe', 'pipe']
  })
  if (bridge !== undefined) child.once('exit', bridge.collect)
  return child
}
