// The package as npm users get it. `npm pack` makes the main tarball and this platform's binary package
// (npm/<platform> plus the addon built by `npm run build`); both are installed into a fresh project from the
// local tarballs only (--offline, an empty npm cache, no cargo or rustc on PATH), which then moves data over
// uTP from CommonJS and from ESM, runs the CLI, type-checks test/consumer against the installed types, and,
// with the main tarball alone, shows the error a user gets when the binary package is missing.
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type * as NativeModule from '../lib/native'
import { requireFromRoot, root } from './helpers/utp'

interface PackageJson {
  name: string
  version: string
  os?: string[]
  cpu?: string[]
  libc?: string[]
  main?: string
  files?: string[]
  optionalDependencies?: Record<string, string>
  napi: { binaryName: string, targets: string[] }
  scripts: Record<string, string>
}

const { nativePlatform, prebuiltPlatforms } = requireFromRoot('./dist/lib/native.js') as typeof NativeModule
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as PackageJson
const platform = nativePlatform()
const addon = path.join(root, `utp-punch-rs.${platform}.node`)
const napiBin = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const tscBin = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')

function readJson<T> (file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T
}

/** napi's platform id of a target triple (the npm/ directory and package suffix) */
function platformOf (triple: string): string {
  const { parseTriple } = requireFromRoot('@napi-rs/cli') as { parseTriple: (t: string) => { platformArchABI: string } }
  return parseTriple(triple).platformArchABI
}

/** The environment of a user without Rust: no directory holding cargo or rustc on PATH, no npm_* from our npm */
function userEnv (cache: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.toLowerCase().startsWith('npm_') && !k.startsWith('CARGO') && !k.startsWith('RUSTUP')) env[k] = v
  }
  env.PATH = (process.env.PATH ?? '').split(path.delimiter)
    .filter(dir => dir !== '' && !['cargo', 'rustc', 'cargo.exe', 'rustc.exe'].some(bin => fs.existsSync(path.join(dir, bin))))
    .join(path.delimiter)
  env.npm_config_cache = cache
  env.npm_config_update_notifier = 'false'
  return env
}

function run (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 60_000, shell: process.platform === 'win32' })
}

function ok (r: SpawnSyncReturns<string>, what: string): string {
  expect(r.status, `${what}\n${r.stdout}\n${r.stderr}\n${String(r.error ?? '')}`).toBe(0)
  return r.stdout
}

describe('npm/ platform packages', () => {
  const ids = pkg.napi.targets.map(platformOf)

  it('one npm/<platform> package per napi target, listed in optionalDependencies at the same version', () => {
    expect(ids.sort()).toEqual([...prebuiltPlatforms].sort())
    const dirs = fs.readdirSync(path.join(root, 'npm')).filter(d => fs.statSync(path.join(root, 'npm', d)).isDirectory())
    expect(dirs.sort()).toEqual([...ids].sort())
    expect(Object.keys(pkg.optionalDependencies ?? {}).sort()).toEqual(ids.map(id => `utp-punch-rs-${id}`).sort())
    for (const id of ids) {
      const sub = readJson<PackageJson>(path.join(root, 'npm', id, 'package.json'))
      expect(sub.name).toBe(`utp-punch-rs-${id}`)
      expect(sub.version).toBe(pkg.version)
      expect(pkg.optionalDependencies?.[sub.name]).toBe(pkg.version)
      expect(fs.readFileSync(path.join(root, 'npm', id, 'README.md'), 'utf8')).toContain(`# utp-punch-rs-${id}`)
    }
  })

  it('the manifests carry what `napi create-npm-dirs` (@napi-rs/cli v3) generates for the targets', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-npmdirs-'))
    try {
      fs.copyFileSync(path.join(root, 'package.json'), path.join(tmp, 'package.json'))
      execFileSync(process.execPath, [napiBin, 'create-npm-dirs'], { cwd: tmp, stdio: 'pipe' })
      for (const id of ids) {
        const generated = readJson<PackageJson>(path.join(tmp, 'npm', id, 'package.json'))
        const ours = readJson<PackageJson>(path.join(root, 'npm', id, 'package.json'))
        for (const key of ['name', 'version', 'os', 'cpu', 'libc', 'main', 'files'] as const) {
          expect(ours[key], `npm/${id} ${key}`).toEqual(generated[key])
        }
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })

  it.skipIf(!fs.existsSync(addon))(`\`napi prepublish --dry-run\` accepts npm/${platform} with the built addon`, () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-prepublish-'))
    try {
      const triple = pkg.napi.targets.find(t => platformOf(t) === platform) as string
      fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ ...pkg, napi: { ...pkg.napi, targets: [triple] } }))
      fs.cpSync(path.join(root, 'npm', platform), path.join(tmp, 'npm', platform), { recursive: true })
      fs.copyFileSync(addon, path.join(tmp, 'npm', platform, path.basename(addon)))
      execFileSync(process.execPath, [napiBin, 'prepublish', '-t', 'npm', '--no-gh-release', '--dry-run'], { cwd: tmp, stdio: 'pipe' })
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })
})

// A transfer with the installed package: a server and a client Node, 1 MiB each way, SHA-256 compared. It
// prints JSON: where the package and the addon were loaded from, and the result.
const TRANSFER = `
const { createHash, randomBytes } = require('crypto')
async function transfer (Node) {
  const server = new Node((socket) => socket.pipe(socket))
  const { port } = await server.bindAsync(0, '127.0.0.1')
  await server.listenAsync()
  const client = new Node()
  const socket = await client.connectAsync(port, '127.0.0.1')
  const data = randomBytes(1 << 20)
  const hash = createHash('sha256')
  let bytes = 0
  socket.on('data', (chunk) => { bytes += chunk.length; hash.update(chunk) })
  await new Promise((resolve, reject) => { socket.once('end', resolve); socket.once('error', reject); socket.end(data) })
  await Promise.all([client.closeAsync(), server.closeAsync()])
  const addon = Object.keys(require.cache).find((f) => f.endsWith('.node'))
  const same = hash.digest('hex') === createHash('sha256').update(data).digest('hex')
  return { bytes, same, addon }
}
`

const CJS = `'use strict'
${TRANSFER}
const Node = require('utp-punch-rs')
const { Node: Named, Socket, RendezvousServer } = require('utp-punch-rs')
transfer(Node).then((r) => console.log(JSON.stringify({
  ...r, main: require.resolve('utp-punch-rs'), named: Named === Node && typeof Socket === 'function' && typeof RendezvousServer === 'function'
})))
`

const ESM = `import { createRequire } from 'module'
import Node, { Node as Named, Socket, RendezvousServer, errors } from 'utp-punch-rs'
const require = createRequire(import.meta.url)
${TRANSFER}
const r = await transfer(Node)
const main = import.meta.resolve('utp-punch-rs')
console.log(JSON.stringify({ ...r, main, named: Named === Node && typeof Socket === 'function' && typeof RendezvousServer === 'function' && errors.codes.ETIMEDOUT === 'ETIMEDOUT' }))
`

const MISSING = `'use strict'
const Node = require('utp-punch-rs')
const node = new Node()
node.on('error', (err) => console.log(JSON.stringify({ code: err.code, platform: err.platform, packageName: err.packageName, message: err.message })))
node.bind(0, '127.0.0.1', () => console.log('bound: the addon loaded after all'))
`

interface TransferOutput { bytes: number, same: boolean, addon: string, main: string, named: boolean }

describe.skipIf(!fs.existsSync(addon))(`packed: utp-punch-rs and utp-punch-rs-${platform} installed from tarballs`, () => {
  let tmp = ''
  let app = ''
  let bare = ''
  let env: NodeJS.ProcessEnv = {}
  const mainTgz = `utp-punch-rs-${pkg.version}.tgz`
  const binTgz = `utp-punch-rs-${platform}-${pkg.version}.tgz`
  let mainFiles: string[] = []
  let binFiles: string[] = []

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-punch-rs-pack-'))
    env = userEnv(path.join(tmp, 'npm-cache'))
    const npm = (args: string[], cwd: string): string => ok(run('npm', args, cwd, env), `npm ${args.join(' ')} in ${cwd}`)
    const packed = (out: string): string[] => (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0].files.map(f => f.path).sort()

    // --ignore-scripts: `prepare` would rebuild the addon; the build is what we pack
    mainFiles = packed(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], root))
    const binDir = path.join(tmp, 'binary-package')
    fs.cpSync(path.join(root, 'npm', platform), binDir, { recursive: true })
    fs.copyFileSync(addon, path.join(binDir, path.basename(addon)))
    binFiles = packed(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], binDir))

    const install = ['install', '--offline', '--no-audit', '--no-fund', '--loglevel', 'error']
    app = path.join(tmp, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
    npm([...install, path.join(tmp, mainTgz), path.join(tmp, binTgz)], app)
    fs.writeFileSync(path.join(app, 'cjs.js'), CJS)
    fs.writeFileSync(path.join(app, 'esm.mjs'), ESM)

    bare = path.join(tmp, 'bare')
    fs.mkdirSync(bare)
    fs.writeFileSync(path.join(bare, 'package.json'), JSON.stringify({ name: 'bare', version: '1.0.0', private: true }))
    npm([...install, path.join(tmp, mainTgz)], bare)
    fs.writeFileSync(path.join(bare, 'missing.js'), MISSING)
  }, 90_000)

  afterAll(() => {
    if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true })
  })

  it('the environment has no Rust toolchain', () => {
    const r = spawnSync('cargo', ['--version'], { env, encoding: 'utf8' })
    expect(r.status === 0 ? r.stdout : 'absent').toBe('absent')
  })

  it('the main tarball: the build, the loader, the ESM wrapper and the CLI; no addon, no sources', () => {
    for (const f of ['package.json', 'README.md', 'LICENSE', 'binding.js', 'binding.d.ts', 'index.mjs', 'index.d.mts',
      'dist/index.js', 'dist/index.d.ts', 'dist/lib/node.js', 'dist/bin/cli.js', 'bin/utp-punch-rs.js']) {
      expect(mainFiles).toContain(f)
    }
    expect(mainFiles.filter(f => f.endsWith('.node') || /^(lib|test|crates|fuzz|npm|examples)\//.test(f) || f.endsWith('.rs'))).toEqual([])
    expect(mainFiles.filter(f => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.endsWith('.d.mts'))).toEqual([])
  })

  it(`the binary tarball: package.json, README.md and utp-punch-rs.${platform}.node only`, () => {
    expect(binFiles).toEqual(['README.md', `utp-punch-rs.${platform}.node`, 'package.json'].sort())
  })

  it('the installed package has no runtime dependencies: exactly the two packages were installed', () => {
    expect(fs.readdirSync(path.join(app, 'node_modules')).filter(d => !d.startsWith('.')).sort())
      .toEqual(['utp-punch-rs', `utp-punch-rs-${platform}`])
    expect(fs.readdirSync(path.join(bare, 'node_modules')).filter(d => !d.startsWith('.'))).toEqual(['utp-punch-rs'])
  })

  it("CommonJS: require('utp-punch-rs') moves 1 MiB each way with the addon from the binary package", () => {
    const out = JSON.parse(ok(run(process.execPath, ['cjs.js'], app, env), 'node cjs.js').trim()) as TransferOutput
    expect(out).toMatchObject({ bytes: 1 << 20, same: true, named: true })
    expect(out.main).toBe(path.join(fs.realpathSync(app), 'node_modules', 'utp-punch-rs', 'dist', 'index.js'))
    expect(out.addon).toBe(path.join(fs.realpathSync(app), 'node_modules', `utp-punch-rs-${platform}`, `utp-punch-rs.${platform}.node`))
  })

  it("ESM: import Node from 'utp-punch-rs' does the same", () => {
    const out = JSON.parse(ok(run(process.execPath, ['esm.mjs'], app, env), 'node esm.mjs').trim()) as TransferOutput
    expect(out).toMatchObject({ bytes: 1 << 20, same: true, named: true })
    expect(out.main).toMatch(/\/node_modules\/utp-punch-rs\/index\.mjs$/)
    expect(out.addon).toContain(path.join('node_modules', `utp-punch-rs-${platform}`, `utp-punch-rs.${platform}.node`))
  })

  it('the CLI: `npx utp-punch-rs --help` runs the installed bin', () => {
    const out = ok(run('npx', ['--offline', '--no-install', 'utp-punch-rs', '--help'], app, env), 'npx utp-punch-rs --help')
    expect(out).toMatch(/^usage: utp-punch-rs <command> \[options\]/)
    const help = ok(run('npx', ['--offline', '--no-install', 'utp-punch-rs', 'rendezvous', '--help'], app, env), 'npx utp-punch-rs rendezvous --help')
    expect(help).toContain('usage: utp-punch-rs rendezvous')
  })

  it('test/consumer type-checks against the installed types (CommonJS and ESM, nodenext)', () => {
    const dir = path.join(app, 'consumer')
    fs.mkdirSync(dir, { recursive: true })
    for (const f of ['consumer.cts', 'consumer.mts']) fs.copyFileSync(path.join(root, 'test', 'consumer', f), path.join(dir, f))
    // The repository's compiler options (nodenext, strict, no skipLibCheck); @types/node from the repository
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
      extends: path.join(root, 'test', 'consumer', 'tsconfig.json'),
      compilerOptions: { typeRoots: [path.join(root, 'node_modules', '@types')] },
      files: ['consumer.cts', 'consumer.mts']
    }))
    const r = run(process.execPath, [tscBin, '-p', dir, '--traceResolution'], dir, env)
    ok(r, 'tsc on the consumer')
    const resolved = r.stdout.split('\n').filter(l => l.includes("Module name 'utp-punch-rs' was successfully resolved"))
    expect(resolved).toHaveLength(2)
    for (const l of resolved) expect(l).toContain(path.join(fs.realpathSync(app), 'node_modules', 'utp-punch-rs') + path.sep)
    expect(resolved.some(l => l.includes('index.d.mts'))).toBe(true)
    expect(resolved.some(l => l.includes(path.join('dist', 'index.d.ts')))).toBe(true)
  })

  it('without the binary package: requiring works, using it fails with ERR_UTP_NATIVE_MISSING and the way out', () => {
    const out = ok(run(process.execPath, ['missing.js'], bare, env), 'node missing.js').trim()
    const err = JSON.parse(out) as { code: string, platform: string, packageName: string, message: string }
    expect(err.code).toBe('ERR_UTP_NATIVE_MISSING')
    expect(err.platform).toBe(platform)
    expect(err.packageName).toBe(`utp-punch-rs-${platform}`)
    expect(err.message).toContain(`no native addon for ${platform} (${process.platform} ${process.arch}`)
    expect(err.message).toContain(`\`npm install utp-punch-rs-${platform}@${pkg.version}\``)
    expect(err.message).toContain('npm run build')
    expect(err.message).toContain('cargo')
    expect(err.message).toContain('https://github.com/npm/cli/issues/4828')
  })
})
