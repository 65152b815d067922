// The tests exercise the compiled package (dist/), exactly what ships: compile it once before any test file
import { execFileSync } from 'child_process'
import * as path from 'path'

export default function setup (): void {
  const root = path.join(__dirname, '..', '..')
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], {
    stdio: 'inherit'
  })
}
