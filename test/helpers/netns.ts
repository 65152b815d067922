// Network namespaces for tests that need a real kernel path off loopback (root only). Each test file picks
// namespace names of its own, so files running side by side never share one.
import { execFileSync } from 'child_process'

/** Run a command, throwing with its output when it fails */
export function sh (...args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: 'pipe' })
}

/** Run a command inside namespace `ns` */
export function nsSh (ns: string, ...args: string[]): void {
  sh('ip', 'netns', 'exec', ns, ...args)
}

/** Delete the namespaces that exist (their links go with them) */
export function removeNamespaces (...names: string[]): void {
  for (const ns of names) {
    try {
      sh('ip', 'netns', 'del', ns)
    } catch {
      // not there
    }
  }
}
