// Two small parts of the rendezvous client on their own: the wire on the node's socket (lib/rendezvous/wire.ts:
// what it hands on, what it ignores, send and close) over a scripted node, and the errors' shapes and the NAT
// text of ERR_PUNCH_FAILED (lib/rendezvous/errors.ts).
import { EventEmitter } from 'events'
import { describe, expect, it } from 'vitest'

import type * as ErrorsModule from '../lib/rendezvous/errors'
import type * as WireModule from '../lib/rendezvous/wire'
import { protocol, rawDatagram } from './helpers/rendezvous-peer'
import { requireFromRoot } from './helpers/utp'

const { Wire } = requireFromRoot('./dist/lib/rendezvous/wire.js') as typeof WireModule
const { rendezvousError, natText, gaveUpCode } = requireFromRoot('./dist/lib/rendezvous/errors.js') as typeof ErrorsModule
type Message = import('../lib/rendezvous/protocol').Message

function scriptedNode (): { node: ConstructorParameters<typeof Wire>[0], udp: EventEmitter, sent: unknown[][] } {
  const udp = new EventEmitter()
  const sent: unknown[][] = []
  const node = {
    getUdpSocket: () => udp,
    _sendRaw: (data: Buffer, port: number, host: string, ttl: number | undefined, cb: (err: Error | null) => void) => {
      sent.push([protocol.decode(data), port, host, ttl])
      cb(new Error('lost')) // a failed send is a lost datagram: nothing to report
    }
  }
  return { node: node as unknown as ConstructorParameters<typeof Wire>[0], udp, sent }
}

describe('the rendezvous wire', () => {
  it('hands on the protocol\'s messages with their source, and ignores other traffic and invalid messages', () => {
    const { node, udp } = scriptedNode()
    const got: unknown[][] = []
    const wire = new Wire(node, (m, from) => got.push([m, from]))
    const bye: Message = { t: 'bye', nonce: '0123456789abcdef' }
    const rinfo = { address: '198.51.100.1', port: 3478, family: 'IPv4', size: 0 }
    udp.emit('message', Buffer.from('not ours'), rinfo)
    udp.emit('message', rawDatagram('{"t":"bye"}'), rinfo) // ours, but invalid (no nonce)
    udp.emit('message', rawDatagram('not json'), rinfo)
    expect(got).toEqual([])
    udp.emit('message', protocol.encode(bye), rinfo)
    expect(got).toEqual([[bye, { address: '198.51.100.1', port: 3478 }]])
    wire.close()
  })

  it('sends encoded messages with their TTL until closed; close() stops listening', () => {
    const { node, udp, sent } = scriptedNode()
    const got: unknown[] = []
    const wire = new Wire(node, m => got.push(m))
    const keepalive: Message = { t: 'keepalive', nonce: '0123456789abcdef' }
    wire.send(keepalive, { address: '198.51.100.1', port: 3478 })
    wire.send(keepalive, { address: '203.0.113.5', port: 40000 }, 2)
    expect(sent).toEqual([[keepalive, 3478, '198.51.100.1', undefined], [keepalive, 40000, '203.0.113.5', 2]])
    wire.close()
    wire.send(keepalive, { address: '198.51.100.1', port: 3478 })
    expect(sent).toHaveLength(2)
    expect(udp.listenerCount('message')).toBe(0)
  })
})

describe('rendezvous errors', () => {
  it('carry their code and extra fields; only ABORT_ERR is named AbortError', () => {
    const aborted = rendezvousError('ABORT_ERR', 'The operation was aborted')
    expect([aborted.name, aborted.code, aborted.message]).toEqual(['AbortError', 'ABORT_ERR', 'The operation was aborted'])
    const failed = rendezvousError('ERR_PUNCH_FAILED', 'no path', { candidates: ['192.0.2.1:4000 (lan)'] })
    expect([failed.name, failed.code, failed.candidates]).toEqual(['Error', 'ERR_PUNCH_FAILED', ['192.0.2.1:4000 (lan)']])
  })

  it('gaveUpCode: the code a failing side\'s bye reports is its error\'s own, or ERR_UNKNOWN when the wire would refuse it', () => {
    const withCode = (code: unknown): Error => Object.assign(new Error('x'), { code })
    expect([gaveUpCode(rendezvousError('ABORT_ERR', 'aborted')), gaveUpCode(withCode('ECONNREFUSED')), gaveUpCode(withCode('X'.repeat(40)))])
      .toEqual(['ABORT_ERR', 'ECONNREFUSED', 'X'.repeat(40)])
    for (const code of [undefined, 7, '', 'X'.repeat(41), 'err_lower', 'ERR WITH SPACE']) expect(gaveUpCode(withCode(code)), String(code)).toBe('ERR_UNKNOWN')
    expect(gaveUpCode(new Error('no code'))).toBe('ERR_UNKNOWN')
  })

  it('natText: the NAT type, the mapping the server measured, both or neither', () => {
    expect([natText(undefined, undefined), natText('cone', undefined), natText(undefined, 'independent'), natText(undefined, 'dependent'), natText('cone', 'dependent')])
      .toEqual([undefined, 'cone', 'endpoint-independent mapping', 'endpoint-dependent (symmetric) mapping', 'cone, endpoint-dependent (symmetric) mapping'])
  })
})
