// Where `send` and `receive` meet the peer: the rendezvous server from the flag, else the environment, else a
// config file, so a user who set one up types only `utp-punch-rs send FILE`; with no server named anywhere (or
// with --dht), the BitTorrent Mainline DHT, joined through --dht-bootstrap, $UTP_PUNCH_DHT_BOOTSTRAP, the config
// file's "dhtBootstrap", else the public bootstrap nodes.
//
// The config file is JSON, `{"rendezvous": "host:port", "dhtBootstrap": ["host:port", ...]}`, at $UTP_PUNCH_CONFIG, else
// $XDG_CONFIG_HOME/utp-punch-rs/config.json, else ~/.config/utp-punch-rs/config.json. A missing file is no
// error (nothing configured); a file that exists but cannot be read or parsed is one, naming the file, since
// silently ignoring a broken configuration sends people hunting in the wrong place.

import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'

import { UsageError } from './args'

export const ENV_SERVER = 'UTP_PUNCH_RENDEZVOUS'
export const ENV_CONFIG = 'UTP_PUNCH_CONFIG'
export const ENV_DHT_BOOTSTRAP = 'UTP_PUNCH_DHT_BOOTSTRAP'

/** The rendezvous server to use and where that came from, for the status line */
export interface ServerChoice {
  /** 'host:port' as given, validated */
  server: string
  /** '--rendezvous', '$UTP_PUNCH_RENDEZVOUS' or the config file's path */
  source: string
}

/** Meeting on the DHT: the nodes to join through (undefined: the public ones) and where they came from */
export interface DhtChoice {
  dht: { bootstrap: string[] | undefined }
  source: string
}

/** What the settings in a config file may hold */
interface Config {
  rendezvous?: string
  dhtBootstrap?: string[]
}

/** The config file's path for this environment (it may not exist) */
export function configPath (env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env[ENV_CONFIG]
  if (explicit !== undefined && explicit !== '') return explicit
  const xdg = env.XDG_CONFIG_HOME
  // XDG Base Directory: a relative XDG_CONFIG_HOME is invalid and must be ignored
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.config')
  return path.join(base, 'utp-punch-rs', 'config.json')
}

/**
 * How to meet: the server from `flags.rendezvous`, else $UTP_PUNCH_RENDEZVOUS, else the config file's; else (or
 * with `flags.dht`) the DHT. A UsageError (exit 2) for --dht with --rendezvous, a server or bootstrap node that
 * is not HOST:PORT, or a broken config file
 */
export function chooseMeeting (flags: { rendezvous?: string, dht?: boolean, dhtBootstrap?: string }, env: NodeJS.ProcessEnv = process.env): ServerChoice | DhtChoice {
  if (flags.dht === true && flags.rendezvous !== undefined) throw new UsageError('--dht and --rendezvous name two ways to meet: give one')
  if (flags.rendezvous !== undefined) return { server: checkServer(flags.rendezvous, '--rendezvous'), source: '--rendezvous' }
  const file = configPath(env)
  const config = readConfig(file, env[ENV_CONFIG] !== undefined && env[ENV_CONFIG] !== '')
  if (flags.dht !== true) {
    const fromEnv = env[ENV_SERVER]
    if (fromEnv !== undefined && fromEnv !== '') return { server: checkServer(fromEnv, `$${ENV_SERVER}`), source: `$${ENV_SERVER}` }
    if (config?.rendezvous !== undefined) return { server: checkServer(config.rendezvous, `"rendezvous" in ${file}`), source: file }
  }
  if (flags.dhtBootstrap !== undefined) return { dht: { bootstrap: checkNodes(flags.dhtBootstrap.split(','), '--dht-bootstrap') }, source: '--dht-bootstrap' }
  const fromEnv = env[ENV_DHT_BOOTSTRAP]
  if (fromEnv !== undefined && fromEnv !== '') return { dht: { bootstrap: checkNodes(fromEnv.split(','), `$${ENV_DHT_BOOTSTRAP}`) }, source: `$${ENV_DHT_BOOTSTRAP}` }
  if (config?.dhtBootstrap !== undefined) return { dht: { bootstrap: checkNodes(config.dhtBootstrap, `"dhtBootstrap" in ${file}`) }, source: file }
  return { dht: { bootstrap: undefined }, source: 'the public bootstrap nodes' }
}

function checkNodes (nodes: string[], where: string): string[] {
  const list = nodes.map(n => n.trim()).filter(n => n !== '')
  if (list.length === 0) throw new UsageError(`${where} names no DHT node: give HOST:PORT[,HOST:PORT...]`)
  return list.map(n => checkServer(n, where))
}

/**
 * The config file's settings; undefined when it does not exist (an error when `required`: the user pointed
 * $UTP_PUNCH_CONFIG at it). Unknown keys are allowed, for settings of later versions
 */
function readConfig (file: string, required: boolean): Config | undefined {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (e) {
    const code = (e as { code?: string }).code
    if (code === 'ENOENT' && !required) return undefined
    const why = code === 'ENOENT' ? `it does not exist ($${ENV_CONFIG} names it)` : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message
    throw new UsageError(`cannot read the config file ${file}: ${why}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (e) {
    throw new UsageError(`the config file ${file} is not valid JSON (${(e as Error).message}); it should look like {"rendezvous": "HOST:PORT"}`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`the config file ${file} must hold a JSON object such as {"rendezvous": "HOST:PORT"}`)
  }
  const rendezvous = (parsed as Record<string, unknown>).rendezvous
  if (rendezvous !== undefined && typeof rendezvous !== 'string') {
    throw new UsageError(`the config file ${file}: "rendezvous" must be a string "HOST:PORT", got ${JSON.stringify(rendezvous)}`)
  }
  const dhtBootstrap = (parsed as Record<string, unknown>).dhtBootstrap
  if (dhtBootstrap !== undefined && !(Array.isArray(dhtBootstrap) && dhtBootstrap.every(n => typeof n === 'string'))) {
    throw new UsageError(`the config file ${file}: "dhtBootstrap" must be an array of "HOST:PORT" strings, got ${JSON.stringify(dhtBootstrap)}`)
  }
  return { rendezvous, dhtBootstrap: dhtBootstrap as string[] | undefined }
}

/**
 * `value` if it is HOST:PORT or [IPv6]:PORT with a port 1..65535, else a UsageError naming `what` gave it.
 * Checked before anything binds, so a typo is a usage error and not a network failure
 */
export function checkServer (value: string, what: string): string {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:[\]\s]+):(\d+)$/.exec(value)
  if (m === null) {
    // "::1:7000" is an IPv6 address without brackets, not a missing host
    const hint = !value.includes(':')
      ? ' (the port is missing)'
      : value.split(':').length > 2 && !value.startsWith('[') ? ' (write an IPv6 address in brackets: [::1]:7000)' : value.startsWith(':') ? ' (the host is missing)' : ''
    throw new UsageError(`${what} must be HOST:PORT, got ${JSON.stringify(value)}${hint}`)
  }
  const port = Number(m[2])
  if (port < 1 || port > 65535) throw new UsageError(`${what} must be HOST:PORT with a port 1..65535, got ${JSON.stringify(value)}`)
  return value
}
