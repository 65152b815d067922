// Loading the native addon (lib/native.ts) on its own: the compiled loader is copied into scratch package roots
// whose binding.js loads, exports nothing, is missing or fails, so every message a user can get is checked
// whole; the platform id from process.platform, arch and the C library. The real missing-package case, from
// a packed tarball, is in pack.test.ts.
import * as fs from 'fs'
import { createRequire } from 'module'
import * as os from 'os'
import * as path from 'path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'

import type * as DhtModule from '../lib/dht/native'
import type * as NativeModule from '../lib/native'
import { requireFromRoot, root } from './helpers/utp'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'utp-loader-'))
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }) })
afterEach(() => { vi.restoreAllMocks() })

let roots = 0
/**
 * A package root holding the compiled loader at dist/lib/native.js and the given binding.js (none: undefined),
 * package.json and Cargo.toml; returns the root and a fresh copy of the loader module
 */
function packageWith (binding: string | undefined, o: { version?: string | null, cargo?: boolean } = {}): { dir: string, native: typeof NativeModule } {
  const dir = path.join(tmp, `root-${++roots}`)
  fs.mkdirSync(path.join(dir, 'dist', 'lib'), { recursive: true })
  fs.copyFileSync(path.join(root, 'dist', 'lib', 'native.js'), path.join(dir, 'dist', 'lib', 'native.js'))
  if (binding !== undefined) fs.writeFileSync(path.join(dir, 'binding.js'), binding)
  if (o.version !== null) fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(o.version === undefined ? { name: 'x' } : { version: o.version }))
  if (o.cargo === true) fs.writeFileSync(path.join(dir, 'Cargo.toml'), '')
  const native = createRequire(path.join(dir, 'package.json'))('./dist/lib/native.js') as typeof NativeModule
  return { dir, native }
}

/** As packageWith(), with the DHT's loader (dist/lib/dht/native.js) beside it; a fresh copy of that */
function dhtPackageWith (binding: string): { dir: string, dht: typeof DhtModule } {
  const { dir } = packageWith(binding)
  fs.mkdirSync(path.join(dir, 'dist', 'lib', 'dht'))
  fs.copyFileSync(path.join(root, 'dist', 'lib', 'dht', 'native.js'), path.join(dir, 'dist', 'lib', 'dht', 'native.js'))
  return { dir, dht: createRequire(path.join(dir, 'package.json'))('./dist/lib/dht/native.js') as typeof DhtModule }
}

/** A binding.js that throws as napi-rs's does when no binary loads: one error, the places it looked as causes */
const failing = (...causes: string[]): string => `
  let cause
  for (const m of ${JSON.stringify(causes)}.reverse()) cause = new Error(m, cause === undefined ? undefined : { cause })
  throw new Error('Cannot find native binding. npm has a bug related to optional dependencies (https://github.com/npm/cli/issues/4828). ' +
    'Please try \`npm i\` again after removing both package-lock.json and node_modules directory.', { cause })
`

const loadError = (native: typeof NativeModule): Error & { code?: string, platform?: string, packageName?: string } => {
  try {
    native.loadNative()
  } catch (e) {
    return e as Error & { code?: string }
  }
  throw new Error('loadNative() did not throw')
}

const real = { platform: Object.getOwnPropertyDescriptor(process, 'platform'), arch: Object.getOwnPropertyDescriptor(process, 'arch') }
/** process.platform and process.arch as another machine has them, until the test ends */
const platformIs = (platform: string, arch: string): void => {
  Object.defineProperty(process, 'platform', { value: platform, configurable: true, enumerable: true })
  Object.defineProperty(process, 'arch', { value: arch, configurable: true, enumerable: true })
}
afterEach(() => {
  Object.defineProperty(process, 'platform', real.platform as PropertyDescriptor)
  Object.defineProperty(process, 'arch', real.arch as PropertyDescriptor)
})

describe('loadNative', () => {
  it('returns the binding\'s NativeNode, once loaded never again from disk', () => {
    const { dir, native } = packageWith('let n = 0; module.exports = { NativeNode: class NativeNode { static loads = ++n } }')
    const first = native.loadNative()
    expect([first.name, (first as unknown as { loads: number }).loads]).toEqual(['NativeNode', 1])
    // Even were binding.js required again, the loader does not ask
    delete require.cache[path.join(dir, 'binding.js')]
    fs.writeFileSync(path.join(dir, 'binding.js'), 'throw new Error("read again")')
    expect(native.loadNative()).toBe(first)
  })

  it('a binding without NativeNode: ERR_UTP_NATIVE_MISSING, rebuild', () => {
    for (const exported of ['{}', '{ NativeNode: 5 }']) {
      const e = loadError(packageWith(`module.exports = ${exported}`).native)
      expect([exported, e.code, e.message]).toEqual([exported, 'ERR_UTP_NATIVE_MISSING', 'utp-punch-rs: the native addon does not export NativeNode (rebuild it with `npm run build:native`)'])
    }
  })

  it('no binary for a published platform: what was looked for, the package to install with its version, and how to build', () => {
    platformIs('darwin', 'arm64')
    const { dir, native } = packageWith(failing('Cannot find module \'./utp-punch-rs.darwin-arm64.node\'', 'Cannot find module \'utp-punch-rs-darwin-arm64\''), { version: '1.2.3', cargo: true })
    const e = loadError(native)
    expect([e.code, e.platform, e.packageName, (e.cause as Error).message]).toEqual(['ERR_UTP_NATIVE_MISSING', 'darwin-arm64', 'utp-punch-rs-darwin-arm64', expect.stringMatching(/^Cannot find native binding\. npm has a bug/)])
    expect(e.message).toBe(
      `utp-punch-rs: no native addon for darwin-arm64 (darwin arm64). Looked for ${path.join(dir, 'utp-punch-rs.darwin-arm64.node')} and for the package utp-punch-rs-darwin-arm64; neither is installed.\n` +
      'Install the prebuilt binary: `npm install utp-punch-rs-darwin-arm64@1.2.3`. npm leaves it out when optional dependencies are omitted (--omit=optional, --no-optional) ' +
      'and when a package-lock.json made on another platform lacks it (https://github.com/npm/cli/issues/4828: delete node_modules and package-lock.json and run `npm install` again).\n' +
      `Or build it from source: run \`npm run build\` in ${dir} (needs Rust's cargo: https://rustup.rs).`)
  })

  it('a binary that is there but will not load: the first real failure, and reinstall; an installed copy has no sources', () => {
    platformIs('linux', 'x64')
    vi.spyOn(process.report, 'getReport').mockReturnValue({ header: { glibcVersionRuntime: '2.36' } } as never)
    const { native } = packageWith(failing('Cannot find module \'./utp-punch-rs.linux-x64-gnu.node\'', '/x/utp-punch-rs.linux-x64-gnu.node: invalid ELF header', 'second failure'), { version: '2.0.0' })
    expect(loadError(native).message).toBe(
      'utp-punch-rs: the native addon for linux-x64-gnu (linux x64, glibc) was found but failed to load: /x/utp-punch-rs.linux-x64-gnu.node: invalid ELF header\n' +
      'Reinstall utp-punch-rs so that npm fetches utp-punch-rs-linux-x64-gnu@2.0.0 again, or build it from source: this installed copy has no Rust sources, so clone the ' +
      'utp-punch-rs repository, run `npm install` there (it runs `npm run build`, which needs Rust\'s cargo: https://rustup.rs) and install that directory instead.')
    // A binding.js that throws something other than an Error
    expect(loadError(packageWith('throw "odd"', { version: null }).native).message).toMatch(/^utp-punch-rs: the native addon for linux-x64-gnu \(linux x64, glibc\) was found but failed to load: odd\nReinstall utp-punch-rs so that npm fetches utp-punch-rs-linux-x64-gnu again, or /)
  })

  it('a platform nothing is published for: the list of those that are; no version without a readable package.json', () => {
    platformIs('freebsd', 'x64')
    const { dir, native } = packageWith(undefined, { version: null, cargo: true })
    const e = loadError(native)
    expect([e.platform, e.packageName]).toEqual(['freebsd-x64', 'utp-punch-rs-freebsd-x64'])
    expect(e.message).toBe(
      'utp-punch-rs: no prebuilt native addon is published for freebsd-x64 (freebsd x64); prebuilt ones exist for linux-x64-gnu, linux-x64-musl, linux-arm64-gnu, ' +
      `linux-arm64-musl, darwin-x64, darwin-arm64, win32-x64-msvc. Looked for ${path.join(dir, 'utp-punch-rs.freebsd-x64.node')} and for the package utp-punch-rs-freebsd-x64.\n` +
      `To use utp-punch-rs here, build it from source: run \`npm run build\` in ${dir} (needs Rust's cargo: https://rustup.rs).`)
    // A package.json that is not JSON, or has no version: no version in the advice
    platformIs('darwin', 'x64')
    const broken = packageWith(failing('Cannot find module \'a\''), { version: undefined })
    fs.writeFileSync(path.join(broken.dir, 'package.json'), '{')
    expect(loadError(broken.native).message).toContain('`npm install utp-punch-rs-darwin-x64`. npm leaves')
    expect(loadError(packageWith(failing('Cannot find module \'a\'')).native).message).toContain('`npm install utp-punch-rs-darwin-x64`. npm leaves')
  })

  it('musl on Linux is named in the message; a cause of null ends the chain', () => {
    platformIs('linux', 'arm64')
    vi.spyOn(process.report, 'getReport').mockReturnValue({ header: {} } as never)
    const fsCjs = requireFromRoot('fs') as typeof fs
    const readFileSync = fsCjs.readFileSync as (...a: unknown[]) => unknown
    vi.spyOn(fsCjs, 'readFileSync').mockImplementation(((file: string, ...rest: unknown[]) =>
      file === '/usr/bin/ldd' ? 'musl libc (aarch64)' : readFileSync(file, ...rest)) as never)
    const { native } = packageWith(`throw Object.assign(new Error('Cannot find module \\'./utp-punch-rs.linux-arm64-musl.node\\''), { cause: null })`)
    expect(loadError(native).message).toMatch(/^utp-punch-rs: no native addon for linux-arm64-musl \(linux arm64, musl\)\. Looked for /)
  })

  it('a cause chain that loops ends; only not-found messages means not found', () => {
    platformIs('darwin', 'x64')
    const { native } = packageWith(`
      const e = new Error('Cannot find module \\'x\\'')
      e.cause = e
      throw e
    `)
    expect(loadError(native).message).toMatch(/^utp-punch-rs: no native addon for darwin-x64 \(darwin x64\)\. /)
  })
})

describe('loadDht', () => {
  const node = 'NativeNode: class NativeNode {}'
  it('returns the binding with the DHT node, once loaded never again from disk', () => {
    const { dir, dht } = dhtPackageWith(`module.exports = { ${node}, NativeDht: { open () {} }, dhtPublicKey () {}, mark: 7 }`)
    const first = dht.loadDht()
    expect((first as unknown as { mark: number }).mark).toBe(7)
    delete require.cache[path.join(dir, 'binding.js')]
    fs.writeFileSync(path.join(dir, 'binding.js'), 'throw new Error("read again")')
    expect(dht.loadDht()).toBe(first)
  })

  it('an addon without the DHT node: ERR_UTP_NATIVE_MISSING, rebuild; without the addon: loadNative()\'s error', () => {
    for (const exported of ['{}', '{ NativeDht: {}, dhtPublicKey () {} }', '{ NativeDht: { open: 1 }, dhtPublicKey () {} }', '{ NativeDht: { open () {} } }', '{ NativeDht: { open () {} }, dhtPublicKey: 1 }']) {
      const { dht } = dhtPackageWith(`module.exports = { ${node}, ...${exported} }`)
      let e: (Error & { code?: string }) | undefined
      try { dht.loadDht() } catch (err) { e = err as Error & { code?: string } }
      expect([exported, e?.code, e?.message]).toEqual([exported, 'ERR_UTP_NATIVE_MISSING', 'utp-punch-rs: the native addon has no DHT node (rebuild it with `npm run build:native`)'])
    }
    const { dht } = dhtPackageWith('module.exports = {}')
    expect(() => dht.loadDht()).toThrow('utp-punch-rs: the native addon does not export NativeNode (rebuild it with `npm run build:native`)')
  })
})

describe('the platform id', () => {
  const { nativePlatform, bindingPath, prebuiltPlatforms } = requireFromRoot('./dist/lib/native.js') as typeof NativeModule
  const fsModule = requireFromRoot('fs') as typeof fs

  it('glibc or musl on Linux, msvc on Windows, platform-arch elsewhere', () => {
    platformIs('linux', 'arm64')
    const report = vi.spyOn(process.report, 'getReport').mockReturnValue({ header: { glibcVersionRuntime: '2.31' } } as never)
    const ldd = vi.spyOn(fsModule, 'readFileSync').mockReturnValue('musl libc (x86_64)\nVersion 1.2.4' as never)
    // The report naming glibc is enough: ldd is not read
    expect(nativePlatform()).toBe('linux-arm64-gnu')
    expect(ldd).not.toHaveBeenCalled()
    // No glibc in the report: ldd says which
    report.mockReturnValue({ header: {} } as never)
    expect(nativePlatform()).toBe('linux-arm64-musl')
    expect(ldd).toHaveBeenCalledWith('/usr/bin/ldd', 'utf8')
    ldd.mockReturnValue('ldd (GNU libc) 2.36' as never)
    expect(nativePlatform()).toBe('linux-arm64-gnu')
    // No report and no ldd: glibc, the common case
    report.mockImplementation(() => { throw new Error('no report') })
    ldd.mockImplementation(() => { throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' }) })
    expect(nativePlatform()).toBe('linux-arm64-gnu')
    platformIs('win32', 'x64')
    expect(nativePlatform()).toBe('win32-x64-msvc')
    platformIs('darwin', 'arm64')
    expect(nativePlatform()).toBe('darwin-arm64')
    expect(prebuiltPlatforms).toEqual(['linux-x64-gnu', 'linux-x64-musl', 'linux-arm64-gnu', 'linux-arm64-musl', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc'])
  })

  it('binding.js is found upward from the loader, at most four levels, else expected at the package root', () => {
    expect(bindingPath()).toBe(path.join(root, 'binding.js'))
    const deep = path.join(tmp, 'deep', 'a', 'b', 'c', 'd')
    fs.mkdirSync(deep, { recursive: true })
    fs.copyFileSync(path.join(root, 'dist', 'lib', 'native.js'), path.join(deep, 'native.js'))
    const load = (): typeof NativeModule => createRequire(path.join(deep, 'x.js'))('./native.js') as typeof NativeModule
    // Four levels up from d is "deep" itself: not looked at, so the default (two up) is given
    fs.writeFileSync(path.join(tmp, 'deep', 'binding.js'), '')
    expect(load().bindingPath()).toBe(path.join(tmp, 'deep', 'a', 'b', 'binding.js'))
    fs.writeFileSync(path.join(tmp, 'deep', 'a', 'binding.js'), '')
    expect(load().bindingPath()).toBe(path.join(tmp, 'deep', 'a', 'binding.js'))
    fs.writeFileSync(path.join(deep, 'binding.js'), '')
    expect(load().bindingPath()).toBe(path.join(deep, 'binding.js'))
  })
})
