// A tiny argv parser for the CLI (no dependencies): `--name value`, `--name=value`, boolean `--flag` and
// `--no-flag`, `-h` (--help) and `-y` (--yes, where the command has it); everything else is positional. Unknown options are errors, not silently ignored.

export type Spec = Record<string, 'string' | 'boolean'>

export interface Parsed {
  positionals: string[]
  options: Record<string, string | boolean>
}

/** A command line the command cannot run: exit status 2 */
export class UsageError extends Error {
  readonly code = 'ERR_USAGE'
}

/** A failure with a `code` for --json output (and the text message): exit status 1 */
export class CliError extends Error {
  /**
   * `stage`: where a send or receive failed (meeting the peer, or moving the file). `peerMessage`: what a refused
   * peer is told instead of `message`, when that names things about this machine (paths, free space)
   */
  constructor (readonly code: string, message: string, readonly stage?: 'rendezvous' | 'transfer', readonly peerMessage?: string) {
    super(message)
  }
}

export function parseArgs (argv: readonly string[], spec: Spec): Parsed {
  const positionals: string[] = []
  const options: Record<string, string | boolean> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (arg === '-h') {
      options.help = true
      continue
    }
    if (arg === '-y' && spec.yes === 'boolean') {
      options.yes = true
      continue
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`)
      positionals.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    let name = eq < 0 ? arg.slice(2) : arg.slice(2, eq)
    let inline: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1)
    let negated = false
    if (spec[name] === undefined && name.startsWith('no-') && spec[name.slice(3)] === 'boolean') {
      name = name.slice(3)
      negated = true
    }
    const type = spec[name]
    if (type === undefined) throw new UsageError(`unknown option --${name}`)
    if (type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`option --${name} takes no value`)
      options[name] = !negated
      continue
    }
    if (inline === undefined) {
      inline = argv[++i]
      if (inline === undefined) throw new UsageError(`option --${name} needs a value`)
    }
    options[name] = inline
  }
  return { positionals, options }
}

/** A TCP/UDP port (0 allowed: any free port) */
export function portOption (value: string | boolean | undefined, name: string, dflt: number): number {
  if (value === undefined) return dflt
  const n = Number(value)
  if (typeof value !== 'string' || !/^\d+$/.test(value) || n > 65535) throw new UsageError(`--${name} must be a port number 0..65535, got ${String(value)}`)
  return n
}

/** A duration: "30" or "30s" (seconds), "500ms", "2m"; returns milliseconds */
export function durationOption (value: string | boolean | undefined, name: string, dfltMs: number): number {
  if (value === undefined) return dfltMs
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value) : null
  if (m === null) throw new UsageError(`--${name} must be a duration such as 30, 30s, 500ms or 2m, got ${String(value)}`)
  const n = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000)
  if (n < 1) throw new UsageError(`--${name} must be at least 1 ms`)
  return Math.round(n)
}

export function positiveOption (value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (typeof value !== 'string' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got ${String(value)}`)
  return n
}

/** One of `choices` */
export function choiceOption<T extends string> (value: string | boolean | undefined, name: string, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw new UsageError(`--${name} must be ${choices.join(' or ')}, got ${String(value)}`)
  }
  return value as T
}

export function stringOption (value: string | boolean | undefined, name: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} needs a value`)
  return value
}
