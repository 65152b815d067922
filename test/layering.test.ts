// The transport (lib/node.ts, lib/socket.ts and everything they import) knows nothing of the layers built on
// it: no import, direct or transitive, reaches STUN, rendezvous, the server or the secure channel. Those
// depend on lib/transport.ts's interface, and lib/api.ts attaches them to Node.
import * as fs from 'fs'
import * as path from 'path'
import { describe, expect, it } from 'vitest'

const root = path.join(__dirname, '..')
const UPPER = /^lib\/(stun|rendezvous|server|secure|api)(\/|\.ts$)|^lib\/stun\.ts$/

/** Relative imports (value and type) of a source file, as repository paths */
function importsOf (file: string): string[] {
  const text = fs.readFileSync(path.join(root, file), 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'|^\s*import\s+'(\.[^']+)'/gm)) {
    const spec = m[1] ?? m[2]
    const base = path.join(path.dirname(file), spec)
    const candidates = [`${base}.ts`, path.join(base, 'index.ts')]
    const found = candidates.find(c => fs.existsSync(path.join(root, c)))
    if (found !== undefined) out.push(found.split(path.sep).join('/'))
  }
  return out
}

/** Every file reachable from `start` through relative imports */
function closure (start: string[]): Map<string, string> {
  const via = new Map<string, string>(start.map(f => [f, '(root)']))
  const queue = [...start]
  while (queue.length > 0) {
    const f = queue.shift() as string
    for (const g of importsOf(f)) {
      if (via.has(g)) continue
      via.set(g, f)
      queue.push(g)
    }
  }
  return via
}

describe('layering', () => {
  it('lib/node.ts and lib/socket.ts import nothing (even transitively) from stun, rendezvous, server or secure', () => {
    const reached = closure(['lib/node.ts', 'lib/socket.ts'])
    expect(reached.size).toBeGreaterThan(5)
    const upward = [...reached].filter(([f]) => UPPER.test(f)).map(([f, from]) => `${from} -> ${f}`)
    expect(upward).toEqual([])
  })

  it('STUN and rendezvous code reach the transport through its interface, never the Node class file', () => {
    const files = ['lib/stun', 'lib/rendezvous'].flatMap(d => fs.readdirSync(path.join(root, d)).map(f => `${d}/${f}`)).filter(f => f.endsWith('.ts'))
    const offenders = files.filter(f => importsOf(f).includes('lib/node.ts'))
    expect(offenders).toEqual([])
  })

  it('the CLI takes Node from lib/api.ts (with stun/natType/rendezvous attached), never from lib/node.ts', () => {
    const files = fs.readdirSync(path.join(root, 'bin')).filter(f => f.endsWith('.ts')).map(f => `bin/${f}`)
    expect(files.length).toBeGreaterThan(0)
    expect(files.filter(f => importsOf(f).includes('lib/node.ts'))).toEqual([])
  })
})
