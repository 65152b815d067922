// The error objects themselves (lib/errors.ts): the fields and messages a program reads off an error, compared
// where possible with the errors Node's own net and dgram raise for the same event.
import * as dgram from 'dgram'
import * as net from 'net'
import { describe, expect, it } from 'vitest'

import { requireFromRoot } from './helpers/utp'

const errors = requireFromRoot('./dist/lib/errors.js') as typeof import('../lib/errors')
const native = requireFromRoot('./dist/lib/native.js') as typeof import('../lib/native')
const { asError, bufferSizeError, closeReasonError, createError, errnoError, notBound, notRunning, systemError } = errors
const { CloseReason } = native

/** The fields of an error a program reads */
function fields (e: NodeJS.ErrnoException & { info?: unknown } | null | undefined): Record<string, unknown> | null {
  if (e == null) return null
  return { type: e.constructor.name, message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, address: (e as { address?: string }).address, port: (e as { port?: number }).port }
}

/** The error net emits when a TCP connect to 127.0.0.1:port is refused */
async function netRefusal (port: number): Promise<NodeJS.ErrnoException> {
  return await new Promise(resolve => net.connect(port, '127.0.0.1').on('error', resolve))
}

async function closedPort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

describe('system errors', () => {
  it('a refused connection reads exactly like net\'s', async () => {
    const port = await closedPort()
    const theirs = await netRefusal(port)
    expect(fields(closeReasonError(CloseReason.REFUSED, '127.0.0.1', port))).toEqual(fields(theirs))
  })

  it('a reset and a timeout are read errors with errno, address and port', () => {
    expect(fields(closeReasonError(CloseReason.RESET, '192.0.2.1', 7))).toEqual({
      type: 'Error', message: 'read ECONNRESET 192.0.2.1:7', code: 'ECONNRESET', errno: -104, syscall: 'read', address: '192.0.2.1', port: 7
    })
    expect(fields(closeReasonError(CloseReason.TIMED_OUT, '192.0.2.1', 7))).toEqual({
      type: 'Error', message: 'read ETIMEDOUT 192.0.2.1:7', code: 'ETIMEDOUT', errno: -110, syscall: 'read', address: '192.0.2.1', port: 7
    })
  })

  it('a connection that finished or was aborted closes without an error', () => {
    expect(closeReasonError(CloseReason.FINISHED, '192.0.2.1', 7)).toBeNull()
    expect(closeReasonError(CloseReason.ABORTED, '192.0.2.1', 7)).toBeNull()
  })

  it('address and port appear only when known', () => {
    expect(fields(systemError('ECONNRESET', 'read'))).toEqual({
      type: 'Error', message: 'read ECONNRESET', code: 'ECONNRESET', errno: -104, syscall: 'read', address: undefined, port: undefined
    })
    const noPort = systemError('ECONNRESET', 'read', '::1')
    expect(noPort.message).toBe('read ECONNRESET ::1')
    expect(noPort.address).toBe('::1')
    expect('port' in noPort).toBe(false)
    expect('address' in systemError('ECONNRESET', 'read')).toBe(false)
  })

  it('a code libuv does not know has no errno', () => {
    const e = systemError('EWHATEVER', 'send')
    expect(e.message).toBe('send EWHATEVER')
    expect(e.errno).toBeUndefined()
  })

  it('errnoError names an errno of either sign, and EIO for one that has no name', () => {
    expect(fields(errnoError(111, 'recvmsg'))).toMatchObject({ message: 'recvmsg ECONNREFUSED', code: 'ECONNREFUSED', errno: -111, syscall: 'recvmsg' })
    expect(errnoError(-101, 'sendmsg').code).toBe('ENETUNREACH')
    expect(fields(errnoError(99999, 'sendmsg'))).toMatchObject({ message: 'sendmsg EIO', code: 'EIO', errno: -5 })
    // Node throws for 0, which is no error at all
    expect(fields(errnoError(0, 'sendmsg'))).toMatchObject({ message: 'sendmsg EIO', code: 'EIO', errno: -5 })
  })

  it('notBound is dgram\'s error for an unbound socket', () => {
    const socket = dgram.createSocket('udp4')
    let theirs: NodeJS.ErrnoException | undefined
    try {
      socket.address()
    } catch (e) {
      theirs = e as NodeJS.ErrnoException
    }
    socket.close()
    expect(fields(notBound('getsockname'))).toEqual(fields(theirs))
  })
})

describe('buffer size errors', () => {
  it('carry the OS error in info, errno and syscall, with its description in the message', () => {
    const e = bufferSizeError(22, 'setsockopt') as NodeJS.ErrnoException & { info?: unknown }
    expect(fields(e)).toMatchObject({
      message: 'Could not get or set buffer size: setsockopt returned EINVAL (invalid argument)', code: 'ERR_SOCKET_BUFFER_SIZE', errno: -22, syscall: 'setsockopt'
    })
    expect(e.info).toEqual({ errno: -22, code: 'EINVAL', message: 'invalid argument', syscall: 'setsockopt' })
  })

  it('a name instead of a number (no descriptor to ask) is used as given', () => {
    const e = bufferSizeError('EBADF', 'uv_recv_buffer_size') as NodeJS.ErrnoException & { info?: unknown }
    expect(e.message).toBe('Could not get or set buffer size: uv_recv_buffer_size returned EBADF (bad file descriptor)')
    expect(e.info).toEqual({ errno: -9, code: 'EBADF', message: 'bad file descriptor', syscall: 'uv_recv_buffer_size' })
    const unknown = bufferSizeError('ENOTHING', 'x') as NodeJS.ErrnoException & { info?: unknown }
    expect(unknown.message).toBe('Could not get or set buffer size: x returned ENOTHING (ENOTHING)')
    expect(unknown.info).toEqual({ errno: undefined, code: 'ENOTHING', message: 'ENOTHING', syscall: 'x' })
  })
})

describe('other errors', () => {
  it('createError sets code on the class asked for', () => {
    const e = createError('ERR_X', 'm', RangeError)
    expect(e).toBeInstanceOf(RangeError)
    expect([e.code, e.message]).toEqual(['ERR_X', 'm'])
    expect(createError('ERR_Y', 'n').constructor).toBe(Error)
  })

  it('asError keeps Errors and wraps anything else', () => {
    const err = new TypeError('t')
    expect(asError(err)).toBe(err)
    expect(fields(asError('boom'))).toMatchObject({ type: 'Error', message: 'boom', code: 'ERR_UTP_NATIVE' })
    expect(asError(5).message).toBe('5')
  })

  it('notRunning is dgram\'s error for a closed socket', () => {
    const socket = dgram.createSocket('udp4')
    socket.close()
    let theirs: NodeJS.ErrnoException | undefined
    try {
      socket.send('x', 9, '127.0.0.1')
    } catch (e) {
      theirs = e as NodeJS.ErrnoException
    }
    expect(fields(notRunning())).toEqual(fields(theirs))
  })
})
