// The package's shape as users load it: require() returns the Node class carrying named exports; ESM too
import { execFileSync, spawn } from 'child_process'
import { describe, expect, it } from 'vitest'

import { requireFromRoot, root, sleep, utp } from './helpers/utp'

function runNode (args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }).trim()
}

describe('package shape', () => {
  it('require of the build returns the Node class with .Node, .Socket and errors', () => {
    const pkg = requireFromRoot('./dist/index.js') as typeof utp
    expect(typeof pkg).toBe('function')
    expect(pkg.Node).toBe(pkg)
    expect(typeof pkg.Socket).toBe('function')
    expect(typeof pkg.UdpSocketFacade).toBe('function')
    expect(pkg.errors.codes.ETIMEDOUT).toBe('ETIMEDOUT')
    expect(pkg.defaults).toMatchObject({ bufferSize: 1024, mtu: 1000, timeout: 5000, resend: 100, keepAlive: 1000 })
    const n = new pkg()
    expect(n).toBeInstanceOf(pkg.Node)
    expect(typeof n.bind).toBe('function')
  })

  it("require('utp-punch-rs') by package name (self-reference through \"exports\")", () => {
    const out = runNode(['-e', `
      const Node = require('utp-punch-rs')
      const { Node: N, Socket } = require('utp-punch-rs')
      console.log(typeof Node, N === Node, typeof Socket)
    `])
    expect(out).toBe('function true function')
  })

  it('ESM: default and named imports', () => {
    const out = runNode(['--input-type=module', '-e', `
      import Node, { Node as N, Socket, errors } from 'utp-punch-rs'
      console.log(typeof Node, N === Node, typeof Socket, errors.codes.ECONNRESET)
    `])
    expect(out).toBe('function true function ECONNRESET')
  })

  it('a process with a closed node exits; an unref()ed bound node does not hold it either', () => {
    const out = runNode(['-e', `
      const Node = require('utp-punch-rs')
      const a = new Node(); a.bind(0, '127.0.0.1'); a.listen(() => a.close(() => console.log('closed')))
      const b = new Node(); b.bind(0, '127.0.0.1'); b.unref()
    `])
    expect(out).toBe('closed')
  })

  it('a bound node keeps the process alive, like a dgram socket', async () => {
    const child = spawn(process.execPath, ['-e', "new (require('utp-punch-rs'))().bind(0, '127.0.0.1')"], { cwd: root, stdio: 'ignore' })
    const exited = new Promise<boolean>(resolve => child.once('exit', () => resolve(true)))
    expect(await Promise.race([exited, sleep(1000).then(() => false)])).toBe(false)
    child.kill()
    await exited
  })
})
