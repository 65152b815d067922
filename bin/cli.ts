// The utp-punch-rs command: a rendezvous server, and file transfer between two peers through it.
// `bin/utp-punch-rs.js` (the package's bin) loads this file's build and calls run().

import * as fs from 'fs'

import { Node } from '../lib/node'
import { rendezvous, type RendezvousResult } from '../lib/rendezvous/client'
import { RendezvousServer } from '../lib/rendezvous/server'
import { durationOption, parseArgs, portOption, positiveOption, stringOption, UsageError, type Parsed } from './args'
import { mb } from './progress'
import { receiveFile, sendFile, type TransferResult } from './transfer'

const USAGE = `usage: utp-punch-rs <command> [options]

commands:
  rendezvous   run a rendezvous (and relay) server
  send FILE    send a file to the peer that runs \`receive\` with the same code
  receive      receive a file from the peer that runs \`send\` with the same code
  nat-check    report what kind of NAT this host is behind

Run \`utp-punch-rs <command> --help\` for a command's options.
`

const HELP: Record<string, string> = {
  rendezvous: `usage: utp-punch-rs rendezvous [--port 7000] [--host 0.0.0.0] [--relay-rate BYTES_PER_S] [--no-relay]

Pairs peers that register under the same code and relays for those that cannot punch through.
UDP carries the protocol; GET /healthz and GET /stats answer over HTTP (TCP) on the same port.
The first line on stdout is "rendezvous server listening on HOST:PORT" (--port 0 picks a free port).

  --port N             UDP and TCP port (default 7000; 0: any free port)
  --host ADDR          address to bind (default 0.0.0.0; :: for dual-stack)
  --relay-rate BPS     relay bandwidth cap per pair of peers, bytes/s (default 1000000)
  --no-relay           never relay
`,
  send: `usage: utp-punch-rs send FILE --rendezvous HOST:PORT --code CODE [--port N] [--no-relay] [--timeout 60s]

Meets the receiver through the rendezvous server, then sends FILE over a direct (or relayed) uTP path.
Exits 0 only when the receiver got the file intact (sha256 checked on both sides).

  --rendezvous HOST:PORT  the rendezvous server
  --code CODE             the pairing code the receiver uses too
  --port N                local UDP port (default: any free port)
  --no-relay              fail instead of using the server's relay when punching fails
  --force-relay           skip hole punching, use the relay
  --timeout DURATION      give up if no connection within this time (default 60s; 500ms, 30s, 2m)
`,
  receive: `usage: utp-punch-rs receive --rendezvous HOST:PORT --code CODE [--out DIR] [--port N] [--no-relay] [--timeout 60s]

Meets the sender through the rendezvous server and writes the file it sends into DIR under its own
name (made safe; an existing file is never overwritten: name-1.ext is used instead).
Exits 0 only when the file arrived intact (sha256 checked on both sides).

  --rendezvous HOST:PORT  the rendezvous server
  --code CODE             the pairing code the sender uses too
  --out DIR               directory to write into (default: the current directory)
  --port N                local UDP port (default: any free port)
  --no-relay              fail instead of using the server's relay when punching fails
  --force-relay           skip hole punching, use the relay
  --timeout DURATION      give up if no connection within this time (default 60s; 500ms, 30s, 2m)
`,
  'nat-check': `usage: utp-punch-rs nat-check --stun HOST:PORT [--port N] [--json]

Asks a STUN server from one UDP socket and reports this host's public address and NAT behaviour
(RFC 5780 mapping and filtering). Full results need a server offering OTHER-ADDRESS and
CHANGE-REQUEST, such as coturn's turnserver on two addresses; otherwise those parts read "unknown".

  --stun HOST:PORT     the STUN server
  --port N             local UDP port to test from (default: any)
  --json               print one JSON object instead of text
`
}

interface Io {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WriteStream
}

const PEER_SPEC = {
  help: 'boolean',
  rendezvous: 'string',
  code: 'string',
  port: 'string',
  relay: 'boolean',
  'force-relay': 'boolean',
  timeout: 'string',
  out: 'string'
} as const

/** Runs a command; resolves with the process exit code (0 ok, 1 failed, 2 usage) */
export async function main (argv: readonly string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    }
    switch (command) {
      case 'rendezvous':
        return await serve(parseArgs(rest, { help: 'boolean', port: 'string', host: 'string', 'relay-rate': 'string', relay: 'boolean' }), io)
      case 'send':
      case 'receive':
        return await peer(command, parseArgs(rest, { ...PEER_SPEC }), io)
      case 'nat-check': {
        const args = parseArgs(rest, { help: 'boolean', stun: 'string', port: 'string', json: 'boolean' })
        if (args.options.help === true) return help(command, io)
        return await natCheck(args, io)
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`utp-punch-rs: ${e.message}\n${command !== undefined && HELP[command] !== undefined ? `Run \`utp-punch-rs ${command} --help\` for usage.` : USAGE}\n`)
      return 2
    }
    io.stderr.write(`utp-punch-rs: ${oneLine(e)}\n`)
    return 1
  }
}

function help (command: string, io: Io): number {
  io.stdout.write(HELP[command])
  return 0
}

function oneLine (e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e)
  return msg.replace(/\s*\n\s*/g, ' ')
}

async function serve (args: Parsed, io: Io): Promise<number> {
  if (args.options.help === true) return help('rendezvous', io)
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument ${args.positionals[0]}`)
  const server = new RendezvousServer({
    port: portOption(args.options.port, 'port', 7000),
    host: stringOption(args.options.host, 'host') ?? '0.0.0.0',
    relay: args.options.relay !== false,
    relayRate: positiveOption(args.options['relay-rate'], 'relay-rate')
  })
  const { address, port } = await server.listen()
  io.stdout.write(`rendezvous server listening on ${address.includes(':') ? `[${address}]` : address}:${port}\n`)
  server.on('paired', (p: { connect: { address: string, port: number }, accept: { address: string, port: number } }) => {
    io.stdout.write(`paired ${p.connect.address}:${p.connect.port} (connects) with ${p.accept.address}:${p.accept.port}\n`)
  })
  server.on('relay', (r: { ports: number[] }) => io.stdout.write(`relay allocated on ports ${r.ports.join(' and ')}\n`))
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.removeListener('SIGINT', stop)
      process.removeListener('SIGTERM', stop)
      resolve()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  await server.close()
  return 0
}

async function peer (command: 'send' | 'receive', args: Parsed, io: Io): Promise<number> {
  const o = args.options
  if (o.help === true) return help(command, io)
  let file: string | undefined
  if (command === 'send') {
    if (args.positionals.length !== 1) throw new UsageError('send takes exactly one FILE')
    file = args.positionals[0]
    if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) throw new Error(`${file}: no such file`)
  } else if (args.positionals.length > 0) {
    throw new UsageError(`unexpected argument ${args.positionals[0]}`)
  }
  if (command === 'receive' && o.out !== undefined) {
    const out = stringOption(o.out, 'out') as string
    if (!fs.statSync(out, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${out}: not a directory`)
  }
  const server = stringOption(o.rendezvous, 'rendezvous')
  const code = stringOption(o.code, 'code')
  if (server === undefined) throw new UsageError('--rendezvous HOST:PORT is required')
  if (code === undefined) throw new UsageError('--code CODE is required')
  const port = portOption(o.port, 'port', 0)
  const timeoutMs = durationOption(o.timeout, 'timeout', 60_000)

  const tty = io.stderr.isTTY === true
  const node = new Node()
  node.on('error', () => { /* reported through the rendezvous or the socket */ })
  let met: RendezvousResult | undefined
  try {
    await node.bindAsync(port)
    if (tty) io.stderr.write(`waiting for the peer (code ${code}) via ${server}...\n`)
    try {
      met = await rendezvous(node, { server, code, timeoutMs, relay: o.relay !== false, forceRelay: o['force-relay'] === true })
    } catch (e) {
      const code = (e as { code?: unknown }).code
      throw new Error(`rendezvous failed${typeof code === 'string' ? ` (${code})` : ''}: ${oneLine(e)}`)
    }
    const where = `${met.path} path to ${met.remote.address}:${met.remote.port}`
    if (tty) io.stderr.write(`connected: ${where}\n`)
    met.socket.on('error', () => { /* the transfer's reader and writer report it */ })
    const result: TransferResult = command === 'send'
      ? await sendFile(met.socket, file as string)
      : await receiveFile(met.socket, typeof o.out === 'string' ? o.out : '.')
    const rate = mb(result.bytes / Math.max(result.seconds, 0.001))
    const verb = command === 'send' ? `sent ${result.name}` : `received ${result.name} -> ${result.file as string}`
    io.stdout.write(`${verb}: ${result.bytes} bytes in ${result.seconds.toFixed(2)} s (${rate} MB/s) via ${where}, sha256 ${result.sha256}\n`)
    return 0
  } finally {
    // On a birthday path the socket lives on an extra port of its own: let it finish closing too
    const other = met?.node
    await Promise.all([node.closeAsync(), other !== undefined && other !== node ? other.closeAsync() : undefined])
  }
}

/** The bin entry: run with process.argv, exit with the command's status */
export function run (argv: readonly string[] = process.argv.slice(2)): void {
  main(argv).then((code) => {
    process.exitCode = code
    // Whatever still holds the loop (a lingering connection) must not keep the command alive
    setTimeout(() => process.exit(code), 2000).unref()
  }, (e) => {
    process.stderr.write(`utp-punch-rs: ${oneLine(e)}\n`)
    process.exit(1)
  })
}

async function natCheck (args: Parsed, io: Io): Promise<number> {
  const server = stringOption(args.options.stun, 'stun')
  if (server === undefined) throw new UsageError('nat-check needs --stun HOST:PORT')
  const port = portOption(args.options.port, 'port', 0)
  const node = new Node()
  try {
    await node.bindAsync(port)
    const r = await node.natType(server)
    if (args.options.json === true) {
      io.stdout.write(JSON.stringify({ publicAddress: r.publicAddress, mapping: r.mapping, filtering: r.filtering, natted: r.natted }) + '\n')
    } else {
      io.stdout.write(`public address: ${r.publicAddress.address}:${r.publicAddress.port}\nmapping: ${r.mapping}\nfiltering: ${r.filtering}\n${r.summary}\n`)
    }
    return 0
  } finally {
    await node.closeAsync()
  }
}
