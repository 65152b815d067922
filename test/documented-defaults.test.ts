// The defaults the docs state are the defaults the code uses (issue 14: docs/api.md and bench/README.md said
// `bufferSize` defaults to 64 while the code used 1024). Each options table of docs/api.md and README.md is
// parsed and its "default" column compared with what the code fills in for an option left out.
import * as fs from 'fs'
import * as path from 'path'

import { describe, expect, it } from 'vitest'

import type * as RendezvousOptionsModule from '../lib/rendezvous/options'
import type * as ServerOptionsModule from '../lib/server/options'
import { requireFromRoot, root, utp } from './helpers/utp'

const { resolveOptions } = requireFromRoot('./dist/lib/rendezvous/options.js') as typeof RendezvousOptionsModule
const { resolveServerOptions } = requireFromRoot('./dist/lib/server/options.js') as typeof ServerOptionsModule

const read = (file: string): string => fs.readFileSync(path.join(root, file), 'utf8')

/**
 * The options table that follows `heading` in `markdown`: option name → the first `code` span of its default
 * cell as a JavaScript value (`1024`, `'ledbat'`, `{ perSecond: 20, burst: 40 }`); rows without one (required
 * options, callbacks, signals) are left out
 */
function documentedDefaults (markdown: string, heading: string): Record<string, unknown> {
  const from = markdown.indexOf(heading)
  if (from < 0) throw new Error(`no heading ${heading}`)
  const lines = markdown.slice(from).split('\n')
  const header = lines.findIndex(l => /^\| option \| default \|/.test(l))
  const out: Record<string, unknown> = {}
  for (const row of lines.slice(header + 2)) {
    if (!row.startsWith('|')) break
    const [names, dflt] = row.split('|').slice(1, 3).map(c => c.trim())
    const value = /`([^`]+)`/.exec(dflt)
    if (value === null) continue
    const parsed: unknown = new Function(`return (${value[1]})`)()
    for (const name of names.matchAll(/`([A-Za-z]+)`/g)) out[name[1]] = parsed
  }
  return out
}

/** `only` keys of `o` */
function pick (o: object, only: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => only.includes(k)))
}

describe('documented defaults equal the code\'s', () => {
  it('docs/api.md: every Node option, with Node.defaults', () => {
    const documented = documentedDefaults(read('docs/api.md'), '### Constructor and options')
    expect(documented).toEqual({ ...utp.Node.defaults })
  })

  it('README.md: every Node option it lists, with Node.defaults, and none missing', () => {
    const documented = documentedDefaults(read('README.md'), '### `new Node([options], [onconnection])`')
    expect(documented).toEqual({ ...utp.Node.defaults })
  })

  it('the doc comments of NodeOptions (lib/options.ts, shipped as index.d.ts) name the same defaults', () => {
    const source = read('lib/options.ts')
    const body = source.slice(source.indexOf('export interface NodeOptions'), source.indexOf('export type ResolvedOptions'))
    const commented: Record<string, unknown> = {}
    for (const m of body.matchAll(/\/\*\*([\s\S]*?)\*\/\s*(\w+)\?:/g)) {
      const text = m[1].replace(/\s*\*\s*/g, ' ')
      const value = /[Dd]efault:? ('[a-z]+'|[\d]+|true|false)/.exec(text)
      commented[m[2]] = value === null ? 'no default stated' : new Function(`return (${value[1]})`)()
    }
    expect(commented).toEqual({ ...utp.Node.defaults })
  })

  it('docs/api.md: rendezvous options, with what resolveOptions fills in', () => {
    const documented = documentedDefaults(read('docs/api.md'), '### Rendezvous options')
    const resolved = resolveOptions({ server: '127.0.0.1:7000', code: '1-x' }) as unknown as Record<string, unknown>
    expect(Object.keys(documented).length).toBeGreaterThan(15)
    expect(documented).toEqual(pick(resolved, Object.keys(documented)))
  })

  it('docs/api.md: RendezvousServer options, with what resolveServerOptions fills in', () => {
    const documented = documentedDefaults(read('docs/api.md'), '## RendezvousServer')
    const resolved = resolveServerOptions({}) as unknown as Record<string, unknown>
    expect(Object.keys(documented).length).toBeGreaterThan(20)
    expect(documented).toEqual(pick(resolved, Object.keys(documented)))
  })

  it('bench/README.md: the defaults it says the benchmark runs with', () => {
    const line = read('bench/README.md').split('\n').find(l => l.includes('default options (')) ?? ''
    const stated = Object.fromEntries([...line.matchAll(/`(\w+)` (\d+)/g)].map(m => [m[1], Number(m[2])]))
    // Before (main): { mtu: 1000, bufferSize: 64 }
    expect(stated).toEqual(pick(utp.Node.defaults, ['mtu', 'bufferSize']))
  })
})
