// A stranger who can forge source addresses: UDP datagrams from any IPv4 address, sent through a raw
// socket by test/helpers/forge.py (root only; the tests run as root in CI and create nothing outside
// loopback or their own namespaces).

import { spawn, type ChildProcessWithoutNullStreams } from 'child_process'
import * as path from 'path'
import * as readline from 'readline'

export interface Forged {
  src: string
  sport: number
  dst: string
  dport: number
  payload: Buffer
  /** Copies to send (default 1) */
  count?: number
}

/** One forging process; send() resolves once the datagrams left */
export class Forger {
  private readonly child: ChildProcessWithoutNullStreams
  private readonly waiting: Array<(line: string) => void> = []

  constructor (netns?: string) {
    const script = path.join(__dirname, 'forge.py')
    this.child = netns === undefined
      ? spawn('python3', [script])
      : spawn('ip', ['netns', 'exec', netns, 'python3', script])
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => this.waiting.shift()?.(line))
  }

  async send (d: Forged): Promise<void> {
    const line = JSON.stringify({ src: d.src, sport: d.sport, dst: d.dst, dport: d.dport, payload: d.payload.toString('hex'), count: d.count ?? 1 })
    const answered = new Promise<string>((resolve, reject) => {
      this.waiting.push(resolve)
      this.child.once('exit', (code) => reject(new Error(`forge.py exited with ${String(code)}`)))
    })
    this.child.stdin.write(line + '\n')
    const answer = await answered
    if (!answer.startsWith('ok ')) throw new Error(`forge.py: ${answer}`)
  }

  close (): void {
    this.child.stdin.end()
    this.child.kill()
  }
}
