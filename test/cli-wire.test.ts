// The CLI transfer format's framing on its own (bin/wire.ts), over in-memory streams and a scripted socket: lines
// and byte runs read in order across chunk boundaries, each way the connection can end while waiting, the
// read backlog's bound, writes that wait for drain, records, the peer's refusal and cancel messages.
import { EventEmitter } from 'events'
import { Duplex, PassThrough } from 'stream'
import { afterEach, describe, expect, it, vi } from 'vitest'

import type * as ArgsModule from '../bin/args'
import type * as WireModule from '../bin/wire'
import { requireFromRoot } from './helpers/utp'

const wire = requireFromRoot('./dist/bin/wire.js') as typeof WireModule
const { Reader, write, writeLine, dataRecord, refusal, refuse, peerCancelled, cancelLine, isCode, sendCancel, MAX_LINE } = wire
const { CliError } = requireFromRoot('./dist/bin/args.js') as typeof ArgsModule

afterEach(() => { vi.useRealTimers() })

/** [code, message] of what `p` rejects with, or 'no error' */
const failure = async (p: Promise<unknown>): Promise<unknown> => await p.then(() => 'no error', (e: Error & { code?: string }) => [e.code, e.message])
const tick = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

describe('Reader', () => {
  it('reads lines and byte runs in order, whatever the chunks', async () => {
    const s = new PassThrough()
    let chunks = 0
    const r = new Reader(s, () => { chunks++ })
    s.write('{"a":1}\n{"b"')
    s.write(':2}\n')
    s.write(Buffer.from([0x44, 1, 2, 3]))
    expect(await r.line('hello')).toEqual({ a: 1 })
    expect(await r.line('hello')).toEqual({ b: 2 })
    expect(await r.peek('record')).toBe(0x44)
    expect(await r.peek('record')).toBe(0x44)
    expect([...await r.take(3, 'record')]).toEqual([0x44, 1, 2])
    // What has arrived is handed over at once, the rest as it comes; each hand-over awaited
    const got: number[][] = []
    const handing = r.bytes(4, async (chunk) => { got.push([...chunk]); await tick() }, 'data')
    await tick()
    expect(got).toEqual([[3]])
    s.write(Buffer.from([4, 5, 6]))
    s.write('{"c":3}\nrest')
    await handing
    expect(got).toEqual([[3], [4, 5, 6]])
    expect(await r.line('trailer')).toEqual({ c: 3 })
    expect(chunks).toBe(5)
    await r.bytes(0, () => { throw new Error('no bytes to hand over') }, 'nothing')
    // Bytes still to come are waited for
    const later = r.take(6, 'data')
    await tick()
    s.write('ab')
    await tick()
    expect((await later).toString()).toBe('restab')
  })

  it('a line at most max bytes long, whole or in pieces; one that is not JSON is refused', async () => {
    const s = new PassThrough()
    const r = new Reader(s)
    const line = (n: number): string => JSON.stringify('x'.repeat(n - 2))
    s.write(`${line(MAX_LINE)}\n`)
    expect(await r.line('hello')).toBe('x'.repeat(MAX_LINE - 2))
    s.write(`${line(MAX_LINE + 1)}\n`)
    expect(await failure(r.line('hello'))).toEqual(['ERR_TRANSFER_PROTOCOL', 'the peer\'s hello is too long'])
    const s2 = new PassThrough()
    const r2 = new Reader(s2)
    s2.write(line(10).slice(0, 9))
    const pending = r2.line('answer', 10)
    await tick()
    s2.write(line(10).slice(9))
    await tick()
    s2.write('\n')
    expect(await pending).toBe('xxxxxxxx')
    const s3 = new PassThrough()
    const r3 = new Reader(s3)
    const tooLong = failure(r3.line('answer', 10))
    s3.write(line(10))
    await tick()
    s3.write('y')
    expect(await tooLong).toEqual(['ERR_TRANSFER_PROTOCOL', 'the peer\'s answer is too long'])
    const s4 = new PassThrough()
    s4.write('{not json}\n')
    expect(await failure(new Reader(s4).line('offer'))).toEqual(['ERR_TRANSFER_PROTOCOL', 'the peer sent an invalid offer'])
    // An empty line is a line (not JSON), whatever follows it
    const s5 = new PassThrough()
    s5.write(`\n${'x'.repeat(MAX_LINE + 10)}`)
    expect(await failure(new Reader(s5).line('offer'))).toEqual(['ERR_TRANSFER_PROTOCOL', 'the peer sent an invalid offer'])
  })

  it('says what it was waiting for when the connection ends, closes or fails', async () => {
    const ended = new PassThrough()
    const r = new Reader(ended)
    const pending = failure(r.line('hello'))
    ended.end()
    expect(await pending).toEqual(['ERR_TRANSFER_CLOSED', 'the connection closed while waiting for hello'])
    expect(await failure(r.peek('record'))).toEqual(['ERR_TRANSFER_CLOSED', 'the connection closed while waiting for record'])
    const closed = new PassThrough()
    const r2 = new Reader(closed)
    closed.write('abc')
    const partial = failure(r2.take(10, 'data'))
    await tick()
    closed.destroy()
    expect(await partial).toEqual(['ERR_TRANSFER_CLOSED', 'the connection closed while waiting for data (3 of 10 bytes arrived)'])
    // The peer ending its side while ours stays open for writing (no 'close' yet) ends the wait too
    const toUs = new PassThrough()
    const halfOpen = Duplex.from({ readable: toUs, writable: new PassThrough() })
    const r4 = new Reader(halfOpen)
    let closeSeen = false
    halfOpen.once('close', () => { closeSeen = true })
    const waiting = failure(r4.line('verdict'))
    toUs.end()
    expect(await waiting).toEqual(['ERR_TRANSFER_CLOSED', 'the connection closed while waiting for verdict'])
    expect(closeSeen).toBe(false)
    const failed = new PassThrough()
    const r3 = new Reader(failed)
    const broken = failure(r3.line('answer'))
    failed.destroy(Object.assign(new Error('reset by peer'), { code: 'ECONNRESET' }))
    expect(await broken).toEqual(['ECONNRESET', 'reset by peer'])
    // The error stays the answer, even after the close that follows it
    expect(await failure(r3.peek('x'))).toEqual(['ECONNRESET', 'reset by peer'])
  })

  it('holds the socket while more than 1 MiB waits to be read, and lets it go when asked for more', async () => {
    const s = new PassThrough({ highWaterMark: 4 << 20 })
    const r = new Reader(s)
    s.write(Buffer.alloc(1 << 20))
    await tick()
    expect(s.isPaused()).toBe(false)
    s.write(Buffer.alloc(1))
    await tick()
    expect(s.isPaused()).toBe(true)
    await r.take((1 << 20) + 1, 'data')
    const more = r.take(1, 'data')
    await tick()
    expect(s.isPaused()).toBe(false)
    s.write(Buffer.from([7]))
    expect([...await more]).toEqual([7])
  })
})

/** A socket whose write() answers as scripted: true (room left) or false (wait for drain) */
class ScriptedSocket extends EventEmitter {
  destroyed = false
  writableEnded = false
  written: Buffer[] = []
  room = true
  ended: Buffer | undefined
  endCallback: (() => void) | undefined
  write (chunk: Buffer): boolean {
    this.written.push(chunk)
    return this.room
  }

  end (chunk?: Buffer, cb?: () => void): this {
    this.writableEnded = true
    this.ended = chunk
    this.endCallback = cb
    return this
  }
}
const asDuplex = (s: ScriptedSocket): Duplex => s as unknown as Duplex

describe('writing', () => {
  it('write resolves at once while there is room, waits for drain when there is not, and cleans up after itself', async () => {
    const s = new ScriptedSocket()
    await write(asDuplex(s), Buffer.from('a'))
    s.room = false
    let done = false
    const waiting = write(asDuplex(s), Buffer.from('b')).then(() => { done = true })
    await tick()
    expect([done, s.listenerCount('drain'), s.listenerCount('error'), s.listenerCount('close')]).toEqual([false, 1, 1, 1])
    s.emit('drain')
    await waiting
    expect([done, s.listenerCount('drain'), s.listenerCount('error'), s.listenerCount('close')]).toEqual([true, 0, 0, 0])
    const failing = failure(write(asDuplex(s), Buffer.from('c')))
    s.emit('error', Object.assign(new Error('broken pipe'), { code: 'EPIPE' }))
    expect(await failing).toEqual(['EPIPE', 'broken pipe'])
    const closing = failure(write(asDuplex(s), Buffer.from('d')))
    s.emit('close')
    expect(await closing).toEqual(['ERR_TRANSFER_CLOSED', 'the connection closed while sending'])
    expect([s.listenerCount('drain'), s.listenerCount('error'), s.listenerCount('close')]).toEqual([0, 0, 0])
    s.destroyed = true
    expect(await failure(write(asDuplex(s), Buffer.from('e')))).toEqual(['ERR_TRANSFER_CLOSED', 'the connection closed'])
    expect(s.written.map(String)).toEqual(['a', 'b', 'c', 'd'])
  })

  it('writeLine, dataRecord, cancelLine: the bytes on the wire', async () => {
    const s = new ScriptedSocket()
    await writeLine(asDuplex(s), { ok: true, n: 1 })
    expect(s.written.map(String)).toEqual(['{"ok":true,"n":1}\n'])
    expect([...dataRecord(Buffer.from([9, 8, 7]))]).toEqual([0x44, 0, 0, 0, 3, 9, 8, 7])
    expect(dataRecord(Buffer.alloc(0x010203)).subarray(0, 5)).toEqual(Buffer.from([0x44, 0, 1, 2, 3]))
    expect(cancelLine(1234).toString()).toBe('{"cancel":true,"at":1234}\n')
  })

  it('sendCancel ends our side with the message and waits until it left, at most 2 s', async () => {
    vi.useFakeTimers()
    const s = new ScriptedSocket()
    let done = false
    const sending = sendCancel(asDuplex(s), cancelLine(5)).then(() => { done = true })
    expect(s.ended?.toString()).toBe('{"cancel":true,"at":5}\n')
    s.endCallback?.()
    await sending
    const stuck = new ScriptedSocket()
    const waiting = sendCancel(asDuplex(stuck), cancelLine(6)).then(() => { done = true })
    done = false
    await vi.advanceTimersByTimeAsync(1999)
    expect(done).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    await waiting
    expect(done).toBe(true)
    expect(vi.getTimerCount()).toBe(0)
    // Flushed in time: its timer is cleared
    const quick = new ScriptedSocket()
    const q = sendCancel(asDuplex(quick), cancelLine(7))
    quick.endCallback?.()
    await q
    expect(vi.getTimerCount()).toBe(0)
    // Nothing to do on a socket already destroyed or ended
    for (const key of ['destroyed', 'writableEnded'] as const) {
      const gone = new ScriptedSocket()
      gone[key] = true
      await sendCancel(asDuplex(gone), cancelLine(8))
      expect([key, gone.ended, vi.getTimerCount()]).toEqual([key, undefined, 0])
    }
  })
})

describe('the peer\'s answers', () => {
  it('refusal: the peer\'s reason made printable, its code only when it looks like one', () => {
    const r = (answer: { code?: unknown, message?: unknown }): unknown => {
      const e = refusal(answer, 'the receiver refused a.bin')
      return [e.code, e.message, e instanceof CliError]
    }
    expect(r({ code: 'ERR_TOO_LARGE', message: 'too big' })).toEqual(['ERR_REFUSED', 'the receiver refused a.bin: too big (ERR_TOO_LARGE)', true])
    expect(r({ code: 'ENOSPC' })).toEqual(['ERR_REFUSED', 'the receiver refused a.bin (ENOSPC)', true])
    expect(r({ code: `E${'A'.repeat(40)}` })).toEqual(['ERR_REFUSED', `the receiver refused a.bin (E${'A'.repeat(40)})`, true])
    // Only a string: an array whose text looks like a code is not one
    for (const code of [`E${'A'.repeat(41)}`, 'E', 'err_x', 'XERR', 'E-X', 'ERR_X\n', ' ERR_X', 5, ['ENOSPC']]) {
      expect([code, r({ code, message: 'no' })]).toEqual([code, ['ERR_REFUSED', 'the receiver refused a.bin: no', true]])
    }
    expect(r({ message: 'bad\u001b[2Jname' })).toEqual(['ERR_REFUSED', 'the receiver refused a.bin: bad_[2Jname', true])
    expect(r({ message: 42 })).toEqual(['ERR_REFUSED', 'the receiver refused a.bin', true])
  })

  it('refuse tells the sender only what names nothing on this machine, and ends our side even when the write fails', async () => {
    const told = async (e: unknown, destroyed = false): Promise<unknown> => {
      const s = new ScriptedSocket()
      s.destroyed = destroyed
      await refuse(asDuplex(s), e)
      return [s.written.map(String), s.writableEnded]
    }
    expect(await told(new CliError('ERR_NO_SPACE', 'only 3 bytes free in /home/me', undefined, 'not enough free space')))
      .toEqual([['{"ok":false,"code":"ERR_NO_SPACE","message":"not enough free space"}\n'], true])
    expect(await told(new CliError('ERR_DECLINED', 'declined a.bin'))).toEqual([['{"ok":false,"code":"ERR_DECLINED","message":"declined a.bin"}\n'], true])
    expect(await told(Object.assign(new Error('EACCES: permission denied, open \'/home/me/x\''), { code: 'EACCES' })))
      .toEqual([['{"ok":false,"code":"ERR_FAILED","message":"the receiver could not create the file"}\n'], true])
    expect(await told(new CliError('ERR_DECLINED', 'declined'), true)).toEqual([[], true])
  })

  it('peerCancelled: a cancel line as this side\'s error, saying where: before the data, of a known size, of a stream', () => {
    const c = (msg: unknown, progress: { at: number, size: number | null } | null = null): unknown => {
      const e = peerCancelled(msg, 'sender', progress)
      return e === null ? null : [e.code, e.message]
    }
    expect(c({ cancel: true })).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender before the transfer started'])
    expect(c({ cancel: true, at: 9 }, { at: 1.5e6, size: 3e6 })).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender at 1.50 of 3.00 MB'])
    expect(c({ cancel: true }, { at: 2.5e6, size: null })).toEqual(['ERR_PEER_CANCELLED', 'cancelled by the sender at 2.50 MB'])
    expect(peerCancelled({ cancel: true }, 'receiver', { at: 0, size: 0 })?.message).toBe('cancelled by the receiver at 0.00 of 0.00 MB')
    for (const msg of [null, undefined, {}, { cancel: 'true' }, { cancel: 1 }, 'cancel']) expect(c(msg)).toBeNull()
  })

  it('isCode', () => {
    expect([isCode(new CliError('ERR_X', 'x'), 'ERR_X'), isCode({ code: 'ERR_X' }, 'ERR_Y'), isCode(null, 'ERR_X'), isCode(undefined, 'ERR_X'), isCode('ERR_X', 'ERR_X')])
      .toEqual([true, false, false, false, false])
  })
})
