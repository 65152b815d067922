// The utp-punch-rs command: a rendezvous server, file transfer between two peers through it, and a NAT check.
// `bin/utp-punch-rs.js` (the package's bin) loads this file's build and calls run().
//
// Output contract (docs/api.md, "Command line"): results on stdout, progress and chatter on stderr; with
// --json, one JSON object per line on stdout and nothing on stderr. Exit status 0 ok, 1 failure, 2 usage.

import * as fs from 'fs'
import * as path from 'path'

import { Node } from '../lib/api' // with node.natType() and node.rendezvous() attached
import type { RendezvousResult } from '../lib/rendezvous/client'
import type { SecureSocket } from '../lib/secure'
import { choiceOption, CliError, durationOption, parseArgs, portOption, stringOption, UsageError, type Parsed } from './args'
import { autoMode, mb, Progress, round, type ProgressMode } from './progress'
import { neutralise } from './filename'
import { countText, walk, type Manifest } from './manifest'
import { receiveFiles } from './receive'
import { sendFiles, sendText, MAX_TEXT, type Offer, type TransferResult } from './transfer'
import { generateCode, parseCode, unknownCodeWords } from '../lib/rendezvous/code'
import { sizeOption } from './incoming'
import { askYesNo, canAsk } from './prompt'
import { RENDEZVOUS_HELP, rendezvousCommand } from './rendezvous-command'
import { chooseMeeting, type DhtChoice, type ServerChoice } from './config'
import { checkOutDir } from './out-dir'
import { StatusLines } from './status'
import { inUserTerms } from './failures'
import { hostPort } from '../lib/debug'

const EXIT_STATUS = `exit status:
  0  success
  1  failure (the reason is on stderr; with --json, a line {"ok":false,"code":...,"message":...})
  2  usage error (unknown command or option, a missing or malformed value)
  130  send or receive cancelled by SIGINT (Ctrl-C) or SIGTERM (the other side is told, and exits 1)
`

const USAGE = `usage: utp-punch-rs <command> [options]

commands:
  rendezvous   run a rendezvous (and relay) server
  send PATH... send files and directories (or stdin, or a text) to the peer that runs \`receive\` with the same code
  receive      receive them from the peer that runs \`send\` with the same code
  nat-check    report what kind of NAT this host is behind
  help [COMMAND]  this text, or a command's options (same as \`utp-punch-rs COMMAND --help\`)

Run \`utp-punch-rs <command> --help\` for a command's options. With --json, every command prints one
JSON object per line on stdout. NODE_DEBUG=utp-punch-rs prints the library's debug log on stderr.
\`utp-punch-rs --version\` prints the version.

${EXIT_STATUS}`

const TRANSFER_OUTPUT = `The server: --rendezvous, else the environment variable UTP_PUNCH_RENDEZVOUS, else the config file
$UTP_PUNCH_CONFIG, else $XDG_CONFIG_HOME/utp-punch-rs/config.json (~/.config/utp-punch-rs/config.json), which
holds {"rendezvous": "HOST:PORT"}. A server that does not answer at all fails after 5 s (ERR_SERVER_UNREACHABLE).
With no server named anywhere, or with --dht, both sides meet on the BitTorrent Mainline DHT instead: no
server of ours, seconds slower, and no relay (ERR_PUNCH_FAILED when both NATs map per destination); a DHT
that no node answers on fails with ERR_DHT_UNREACHABLE, a code used before with ERR_CODE_BURNED.

Status: a line on stderr for each change of state, terminal or not: "contacting the rendezvous server H:P
(from SOURCE)" or "joining the BitTorrent DHT through ...", "registered, waiting for the peer" or "published
on the DHT, waiting for the peer", "peer found, checking that it holds the same code",
"code confirmed, trying paths: ...", "no direct path (...), going through the server's relay", "connected
via PATH path to H:P, encrypted", "waiting for the receiver to accept", "sending|receiving NAME (SIZE)", "done"
(with --json: {"event":"status","state",...,"message"} lines on stdout; --quiet: none).

Output: a summary line on stdout ("sent NAME: BYTES bytes in S s (R MB/s) via PATH path to HOST:PORT,
encrypted|not encrypted, sha256 HEX"). On a terminal, stderr shows what is happening and a progress bar with
the rate and ETA; when stderr is a pipe or a file, a plain progress line every 5 s instead (none for a
transfer that ends sooner). With --json, stdout carries JSON lines instead: {"event":"waiting"}, {"event":"connected","path","encrypted",...},
{"event":"progress","bytes","total","megabytesPerSecond","etaSeconds",...} every second, and finally
{"ok":true,"event":"sent"|"received","bytes","seconds","megabytesPerSecond","path","remote","sha256",...}
or {"ok":false,"code","message","stage"}.`

const HELP: Record<string, string> = {
  rendezvous: RENDEZVOUS_HELP + EXIT_STATUS,
  send: `usage: utp-punch-rs send PATH... [--rendezvous HOST:PORT | --dht] [--code CODE] [--port N] [--no-relay] [--timeout 60s] [--congestion ledbat|cubic] [--json]
       utp-punch-rs send - [--name NAME] ...      (stdin)
       utp-punch-rs send --text MESSAGE ...

Meets the receiver through the rendezvous server or the DHT, then sends the files and directories over a direct (or
relayed) uTP path, streamed one after the other. Directories are walked without following links: symbolic
links, special files and names receivers refuse (.git) inside them are skipped with a warning; empty
directories are kept. A transfer that failed continues where it stopped when both sides run again.
Without --code it makes a single-use code such as 4127-otter-pretzel-canoe and prints it on stderr with
the command the receiver runs ("utp-punch-rs receive --code CODE", with --rendezvous HOST:PORT when
meeting through a server; with --json, a
line {"event":"code","code","command"}). Exits 0 only when the receiver accepted everything and got it intact
(sha256 of each file checked on both sides); a refusal by the receiver is a failure (ERR_REFUSED).

  --rendezvous HOST:PORT  the rendezvous server (default: $UTP_PUNCH_RENDEZVOUS, else "rendezvous" in the
                          config file; with none of them, the DHT; see below)
  --dht                   meet on the BitTorrent Mainline DHT even if a server is configured
  --dht-bootstrap H:P,... the DHT nodes to join through (default: $UTP_PUNCH_DHT_BOOTSTRAP, else
                          "dhtBootstrap" in the config file, else the public bootstrap nodes)
  --code CODE             use this code instead of a new one (the receiver uses it too)
  --name NAME             the name stdin (send -) is offered under (default: stdin)
  --text MESSAGE          send a text message (at most 64 KiB) instead of files: printed by the receiver
  --port N                local UDP port (default: any free port)
  --no-relay              fail instead of using the server's relay when punching fails
  --force-relay           skip hole punching, use the relay
  --timeout DURATION      give up if no connection within this time (default 60s; 500ms, 30s, 2m)
  --idle-timeout DURATION give up when the transfer makes no progress for this long (default 30s; not
                          while the receiver's user decides or a pipe on this side is slow)
  --congestion MODE       ledbat (default): a background transfer that yields to other traffic;
                          cubic: a foreground one that competes for its share as TCP does
  --no-progress           no progress output
  --quiet                 no status lines and no progress (errors and the result still print)
  --json                  JSON lines on stdout (see below)

${TRANSFER_OUTPUT}

${EXIT_STATUS}`,
  receive: `usage: utp-punch-rs receive [--rendezvous HOST:PORT | --dht] --code CODE [--yes] [--out DIR] [--max-size SIZE] [--port N] [--no-relay] [--timeout 60s] [--congestion ledbat|cubic] [--json]

Meets the sender through the rendezvous server or the DHT, shows what it offers (names, number of files, size) and
asks before writing it into DIR. Refused without asking, as a whole: a path with a component that is
empty, starts or ends with a dot (.bashrc), contains "..", or is a Windows device name (CON, nul.txt);
more than the free space or --max-size. Invisible and control characters in names (bidi overrides such
as U+202E, zero-width and C0/C1 controls) become '_'. Nothing is ever overwritten: a file is written to
NAME.part and then linked as NAME, or "NAME (1).EXT" if that exists by then; a directory is written to
NAME.part/ and renamed to NAME (or "NAME (1)"). A text message is printed on stdout, not written. Exits 0
only when everything arrived intact (sha256 of each file checked on both sides).

Resume: when a transfer fails (the sender gone or silent, a cancel, either side killed), NAME.part is
kept: "kept the partial NAME.part (X of Y MB): run the same receive again to resume". The next receive
of the same offer into DIR continues each file from what is there once the sender confirmed those bytes
are its own (sha256); a file that differs starts over. A NAME.part that is a link, another user's, or
larger than offered is never touched: the offer is refused (ERR_PART_EXISTS). Data proven bad (sha256
mismatch, protocol error) and streams are removed instead.

  --rendezvous HOST:PORT  the rendezvous server (default: $UTP_PUNCH_RENDEZVOUS, else "rendezvous" in the
                          config file; with none of them, the DHT; see below)
  --dht                   meet on the BitTorrent Mainline DHT even if a server is configured
  --dht-bootstrap H:P,... the DHT nodes to join through (default: $UTP_PUNCH_DHT_BOOTSTRAP, else
                          "dhtBootstrap" in the config file, else the public bootstrap nodes)
  --code CODE             the code the sender printed
  --yes, -y               accept without asking (required where nobody can answer: stdin or stderr is
                          not a terminal, or --json; otherwise receive exits 2 before connecting)
  --out DIR               directory to write into (default: the current directory); --out - writes a
                          single file or stream to stdout (the summary then goes to stderr)
  --max-size SIZE         refuse larger files: bytes, or 500M, 10G (powers of 1000), 2GiB (of 1024)
  --port N                local UDP port (default: any free port)
  --no-relay              fail instead of using the server's relay when punching fails
  --force-relay           skip hole punching, use the relay
  --timeout DURATION      give up if no connection within this time (default 60s; 500ms, 30s, 2m)
  --idle-timeout DURATION give up when the transfer makes no progress for this long (default 30s; not
                          while the receiver's user decides or a pipe on this side is slow)
  --congestion MODE       ledbat (default): a background transfer that yields to other traffic;
                          cubic: a foreground one that competes for its share as TCP does
  --no-progress           no progress output
  --quiet                 no status lines and no progress (errors and the result still print)
  --json                  JSON lines on stdout (see below)

${TRANSFER_OUTPUT.replace('"sent NAME: BYTES', '"received NAME -> FILE: BYTES')}

${EXIT_STATUS}`,
  'nat-check': `usage: utp-punch-rs nat-check --stun HOST:PORT [--port N] [--json]

Asks a STUN server from one UDP socket and reports this host's public address and NAT behaviour
(RFC 5780 mapping and filtering). Full results need a server offering OTHER-ADDRESS and
CHANGE-REQUEST, such as coturn's turnserver on two addresses; otherwise those parts read "unknown".

  --stun HOST:PORT     the STUN server
  --port N             local UDP port to test from (default: any)
  --json               one JSON object instead of text: {"ok":true,"publicAddress","mapping","filtering",
                       "natted","summary"} (or {"ok":false,"code","message"})

${EXIT_STATUS}`
}

interface Io {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WriteStream
  /** Where `receive` reads the answer to its question (default: process.stdin) */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean }
}

const PEER_SPEC = {
  help: 'boolean',
  rendezvous: 'string',
  dht: 'boolean',
  'dht-bootstrap': 'string',
  code: 'string',
  port: 'string',
  relay: 'boolean',
  'force-relay': 'boolean',
  timeout: 'string',
  'idle-timeout': 'string',
  congestion: 'string',
  out: 'string',
  yes: 'boolean',
  'max-size': 'string',
  name: 'string',
  text: 'string',
  progress: 'boolean',
  quiet: 'boolean',
  json: 'boolean'
} as const

/** Runs a command; resolves with the process exit code (0 ok, 1 failed, 2 usage) */
export async function main (argv: readonly string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  // What must finish after the outcome is printed, told the exit status (closing the nodes can wait for a silent
  // peer, up to the node's close timeout: a failure is said at once, not that much later)
  const closing: Array<(status: number) => Promise<void>> = []
  let status = 1
  try {
    status = await outcome(argv, io, closing)
    return status
  } finally {
    for (const close of closing) await close(status)
  }
}

/** main() up to the printed outcome: runs the command, reports its failure; the exit status */
async function outcome (argv: readonly string[], io: Io, closing: Array<(status: number) => Promise<void>>): Promise<number> {
  const [command, ...rest] = argv
  const json = wantsJson(rest)
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      const topic = command === 'help' ? rest[0] : undefined
      if (topic !== undefined && HELP[topic] === undefined) throw new UsageError(`no help for ${JSON.stringify(topic)}: not a command`)
      io.stdout.write(topic === undefined ? USAGE : HELP[topic])
      return command === undefined ? 2 : 0
    }
    if (command === '--version' || command === '-v') {
      io.stdout.write(`${version()}\n`)
      return 0
    }
    switch (command) {
      case 'rendezvous':
        return await rendezvousCommand(rest, io, () => help(command, io))
      case 'send':
      case 'receive':
        return await peer(command, parseArgs(rest, { ...PEER_SPEC }), io, closing)
      case 'nat-check': {
        const args = parseArgs(rest, { help: 'boolean', stun: 'string', port: 'string', json: 'boolean' })
        if (args.options.help === true) return help(command, io)
        return await natCheck(args, io)
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (e) {
    const usage = e instanceof UsageError
    if (json) {
      const out: Record<string, unknown> = { ok: false, code: codeOf(e), message: oneLine(e) }
      if (e instanceof CliError && e.stage !== undefined) out.stage = e.stage
      io.stdout.write(JSON.stringify(out) + '\n')
    } else if (usage) {
      io.stderr.write(`utp-punch-rs: ${e.message}\n${command !== undefined && HELP[command] !== undefined ? `Run \`utp-punch-rs ${command} --help\` for usage.` : USAGE}\n`)
    } else {
      const stage = e instanceof CliError && e.stage === 'rendezvous' ? `rendezvous failed (${e.code}): ` : ''
      io.stderr.write(`utp-punch-rs: ${stage}${oneLine(e)}\n`)
    }
    return usage ? 2 : codeOf(e) === 'ERR_CANCELLED' ? 130 : 1
  }
}

/** --json among the options (before a `--`) */
function wantsJson (args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false
    if (a === '--json') return true
  }
  return false
}

function help (command: string, io: Io): number {
  io.stdout.write(HELP[command])
  return 0
}

function oneLine (e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e)
  return msg.replace(/\s*\n\s*/g, ' ')
}

/** The error's `code` (library errors, system errors, CliError) or ERR_FAILED */
function codeOf (e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'ERR_FAILED'
}

function version (): string {
  for (const dir of [path.join(__dirname, '..', '..'), path.join(__dirname, '..')]) {
    try {
      return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version
    } catch {}
  }
  return 'unknown'
}

function jsonLine (io: Io, obj: object): void {
  io.stdout.write(JSON.stringify(obj) + '\n')
}

/** send or receive; what `closing` holds runs once the outcome is printed */
async function peer (command: 'send' | 'receive', args: Parsed, io: Io, closing: Array<(status: number) => Promise<void>>): Promise<number> {
  const o = args.options
  if (o.help === true) return help(command, io)
  const json = o.json === true
  const stdin = io.stdin ?? process.stdin
  let manifest: Manifest | undefined
  const text = stringOption(o.text, 'text')
  if (command === 'send') {
    for (const only of ['yes', 'max-size', 'out'] as const) if (o[only] !== undefined) throw new UsageError(`--${only} is an option of receive, not send`)
    const paths = args.positionals
    if (text !== undefined) {
      if (paths.length > 0) throw new UsageError('send --text takes no PATH: the text is the message')
      if (Buffer.byteLength(text) > MAX_TEXT) throw new UsageError(`--text is longer than ${MAX_TEXT} bytes: send it as a file`)
    } else {
      if (paths.length === 0) throw new UsageError('send needs a PATH (files, directories, or - for stdin) or --text MESSAGE')
      if (paths.includes('-') && paths.length > 1) throw new UsageError('send - (stdin) sends stdin alone, not with other paths')
      if (o.name !== undefined && !paths.includes('-')) throw new UsageError('--name names what send - reads from stdin')
      // Skipped links and names are reported before the code is spent
      manifest = await walk(paths, (line) => { if (!json) io.stderr.write(`utp-punch-rs: warning: ${line}\n`) }, stringOption(o.name, 'name'))
    }
  } else {
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument ${args.positionals[0]}`)
    for (const only of ['text', 'name'] as const) if (o[only] !== undefined) throw new UsageError(`--${only} is an option of send, not receive`)
  }
  const outDir = command === 'receive' ? stringOption(o.out, 'out') ?? '.' : '.'
  const toStdout = command === 'receive' && outDir === '-'
  if (toStdout && json) throw new UsageError('--out - writes the data to stdout, where --json would write too: use one of them')
  if (command === 'receive' && !toStdout) checkOutDir(outDir)
  // With --out -, stdout carries only the data: the summary goes to stderr
  const report = toStdout ? io.stderr : io.stdout
  const maxSize = sizeOption(o['max-size'], 'max-size')
  const meeting = chooseMeeting({
    rendezvous: stringOption(o.rendezvous, 'rendezvous'),
    dht: o.dht === true,
    dhtBootstrap: stringOption(o['dht-bootstrap'], 'dht-bootstrap')
  })
  const server = 'server' in meeting ? meeting.server : undefined
  const given = stringOption(o.code, 'code')
  if (given === undefined && command === 'receive') throw new UsageError('--code CODE is required (the code `send` printed)')
  const port = portOption(o.port, 'port', 0)
  const timeoutMs = durationOption(o.timeout, 'timeout', 60_000)
  const idleMs = durationOption(o['idle-timeout'], 'idle-timeout', 30_000)
  const congestion = choiceOption(o.congestion, 'congestion', ['ledbat', 'cubic'] as const)
  // receive asks before writing; where nobody can answer, the user must have said yes in advance
  const ask = command === 'receive' && o.yes !== true
  if (ask && (json || !canAsk({ stdin, stderr: io.stderr }))) {
    throw new UsageError('receive asks before it writes a file, and nobody can answer here (stdin or stderr is not a terminal, or --json): ' +
      'pass --yes (-y) to accept without asking (names, sizes and existing files are still checked)')
  }

  const code = pairingCode(given, meeting, json, io)
  const quiet = o.quiet === true
  // A line for each change of state, on a terminal or not (JSON lines with --json); --quiet silences them
  const status = new StatusLines({ mode: quiet ? 'off' : json ? 'json' : 'text', stderr: io.stderr, stdout: io.stdout })
  const mode: ProgressMode = o.progress === false || quiet ? 'off' : json ? 'json' : autoMode(io.stderr)
  const makeProgress = (label: string, name: string, total: number | null, initial: number): Progress => {
    status.transferring(label, name, total)
    return new Progress(label, name, total, { mode, out: json ? io.stdout : io.stderr, initial })
  }
  const node = new Node(congestion === undefined ? {} : { congestion })
  node.on('error', () => { /* reported through the rendezvous or the socket */ })
  let met: RendezvousResult<Node, SecureSocket> | undefined
  // SIGINT/SIGTERM cancel: the transfer tells the peer and ends with ERR_CANCELLED (exit 130); a second one
  // does not wait for that. Once the outcome is printed, one exits at once with its status
  const cancel = new AbortController()
  let exitWith: number | undefined
  const onSignal = (): void => {
    if (exitWith !== undefined) process.exit(exitWith)
    else if (cancel.signal.aborted) process.exit(130)
    else cancel.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  closing.push(async (status) => {
    exitWith = status
    try {
      // On a birthday path the socket lives on an extra port of its own: let it finish closing too
      const other = met?.node
      await Promise.all([node.closeAsync(), other !== undefined && other !== node ? other.closeAsync() : undefined])
    } finally {
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
    }
  })
  const local = await node.bindAsync(port)
  if ('server' in meeting) status.contacting(meeting.server, meeting.source)
  else status.joiningDht(meeting.dht.bootstrap, meeting.source)
  if (json) jsonLine(io, { event: 'waiting', ...(server === undefined ? { dht: meeting.source } : { server }), port: local.port })
  try {
    // node.rendezvous (not the internal function): NODE_DEBUG=utp-punch-rs logs it as for any library user
    met = await untilCancelled(node.rendezvous({
      ...(server === undefined ? { dht: (meeting as DhtChoice).dht } : { server }),
      code,
      side: command,
      timeoutMs,
      relay: o.relay !== false,
      forceRelay: o['force-relay'] === true,
      // (a rendezvous given up on may still report: nothing after the outcome)
      onStatus: (s) => { if (!cancel.signal.aborted && exitWith === undefined) status.rendezvous(s) }
    }), cancel.signal)
  } catch (e) {
    if (codeOf(e) === 'ERR_CANCELLED') throw e
    if (codeOf(e) === 'ERR_SAME_ROLE') {
      // The server refused us, not the code: the peer already there keeps waiting for its real counterpart
      throw new CliError('ERR_SAME_ROLE', command === 'send'
        ? 'another sender is already waiting with this code: the other side must run receive (that sender keeps waiting)'
        : 'another receiver is already waiting with this code: the other side must run send (that receiver keeps waiting)', 'rendezvous')
    }
    throw inUserTerms(e, { stage: 'rendezvous', server: server ?? 'the DHT' })
  }
  const encrypted = met.encrypted
  const channel = encrypted ? 'encrypted' : 'not encrypted'
  const from = hostPort(met.remote.address, met.remote.port)
  const where = `${met.path} path to ${from}, ${channel}`
  status.connected(met.path, from, encrypted)
  if (json) jsonLine(io, { event: 'connected', path: met.path, remote: met.remote, encrypted, role: met.role, timings: met.timings, mapping: met.mapping ?? null })
  const socket = met.socket
  socket.on('error', () => { /* the transfer's reader and writer report it */ })
  // A birthday path's socket lives on a node of its own, made with the defaults
  if (congestion !== undefined) met.utpSocket.setCongestion(congestion)
  const accept = async (offer: Offer): Promise<boolean> => !ask ||
    await askYesNo({ stdin, stderr: io.stderr }, `receive ${offer.summary} from ${from} (${channel}) into ${toStdout ? 'stdout' : outDir}?`)
  const note = (line: string): void => { if (!json) io.stderr.write(`utp-punch-rs: ${line}\n`) }
  let result: TransferResult
  try {
    if (command === 'send') status.offering()
    result = command === 'send'
      ? manifest === undefined
        ? await sendText(socket, text as string, { signal: cancel.signal, idleMs })
        : await sendFiles(socket, manifest, { makeProgress, signal: cancel.signal, idleMs, note, stdin: io.stdin })
      : await receiveFiles(socket, outDir, { accept, maxSize, makeProgress, signal: cancel.signal, idleMs, note, stdout: toStdout ? io.stdout : undefined })
  } catch (e) {
    throw inUserTerms(e, { stage: 'transfer', peer: command === 'send' ? 'receiver' : 'sender' })
  }
  status.done()
  const rate = result.bytes / Math.max(result.seconds, 0.001)
  if (json) {
    const s = met.utpSocket.stats()
    jsonLine(io, {
      ok: true,
      event: command === 'send' ? 'sent' : 'received',
      name: result.name,
      ...(result.saved === undefined || result.saved.length !== 1 ? {} : { file: result.saved[0] }),
      ...(result.saved === undefined ? {} : { saved: result.saved }),
      ...(result.text === undefined ? {} : { text: result.text }),
      files: result.files,
      directories: result.directories,
      bytes: result.bytes,
      resumedFrom: result.resumedFrom,
      seconds: round(result.seconds, 3),
      megabytesPerSecond: round(rate / 1e6, 3),
      path: met.path,
      remote: met.remote,
      encrypted,
      role: met.role,
      sha256: result.sha256,
      stats: s === null
        ? null
        : { rttMs: round(s.rttMs, 3), mtu: s.mtu, packetsSent: s.packetsSent, packetsReceived: s.packetsReceived, retransmits: s.retransmits, timeouts: s.timeouts, congestion: s.congestion }
    })
  } else {
    const dest = result.text !== undefined ? io.stdout : report
    dest.write(summaryLine(command, result, rate, where, dest))

  }
  return 0
}

/**
 * The human result: "sent NAME: ...", "received NAME (3 files in 2 directories) -> PATH: ...", or for a text
 * message the text itself (control characters made harmless when stdout is a terminal)
 */
function summaryLine (command: 'send' | 'receive', r: TransferResult, rate: number, where: string, out: NodeJS.WritableStream & { isTTY?: boolean }): string {
  if (r.text !== undefined) {
    if (command === 'send') return `sent a text message (${r.bytes} bytes) via ${where}\n`
    const shown = out.isTTY === true ? r.text.split('\n').map(neutralise).join('\n') : r.text
    return shown.endsWith('\n') ? shown : `${shown}\n`
  }
  const what = r.files === 1 && r.directories === 0 ? r.name : `${r.name} (${countText(r.files, r.directories)})`
  const verb = command === 'send' ? `sent ${what}` : `received ${what} -> ${(r.saved ?? []).join(', ')}`
  const resumed = r.resumedFrom > 0 ? `, resumed after ${r.resumedFrom} bytes` : ''
  return `${verb}: ${r.bytes} bytes in ${r.seconds.toFixed(2)} s (${mb(rate)} MB/s)${resumed} via ${where}, sha256 ${r.sha256}\n`
}

/** `p`, or ERR_CANCELLED as soon as `signal` aborts (before the peer is met there is nobody to tell) */
async function untilCancelled<T> (p: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort = (): void => {}
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(new CliError('ERR_CANCELLED', 'cancelled while waiting for the peer'))
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([p, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/**
 * The code to pair with: `given` (a generated code typed loosely becomes its canonical form; words not in the list
 * get a warning, since a wrong code burns the pairing), or a new one, printed with the command the receiver runs
 * (on stderr even when it is not a terminal, as nobody can receive without it; a JSON line with --json)
 */
function pairingCode (given: string | undefined, meeting: ServerChoice | DhtChoice, json: boolean, io: Io): string {
  if (given !== undefined) {
    const typos = unknownCodeWords(given)
    if (typos.length > 0 && !json) io.stderr.write(`utp-punch-rs: warning: ${typos.map(w => JSON.stringify(w)).join(', ')} not in the code word list: check the code for a typo\n`)
    return parseCode(given).code
  }
  const code = generateCode()
  // The receiver needs what we meet through, unless it is what it finds by itself (the public DHT)
  const via = 'server' in meeting
    ? ` --rendezvous ${meeting.server}`
    : meeting.dht.bootstrap === undefined ? '' : ` --dht-bootstrap ${meeting.dht.bootstrap.join(',')}`
  const command = `utp-punch-rs receive${via} --code ${code}`
  if (json) jsonLine(io, { event: 'code', code, command })
  else io.stderr.write(`code: ${code}\non the receiving side, run:\n  ${command}\n`)
  return code
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
      jsonLine(io, { ok: true, publicAddress: r.publicAddress, mapping: r.mapping, filtering: r.filtering, natted: r.natted, summary: r.summary })
    } else {
      io.stdout.write(`public address: ${hostPort(r.publicAddress.address, r.publicAddress.port)}\nmapping: ${r.mapping}\nfiltering: ${r.filtering}\n${r.summary}\n`)
    }
    return 0
  } finally {
    await node.closeAsync()
  }
}
