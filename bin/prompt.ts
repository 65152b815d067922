// The question `receive` asks before it writes a file: "receive NAME (SIZE) from HOST:PORT? [y/N]". Only a person at
// a terminal can answer; anywhere else the user says yes in advance with --yes (bin/cli.ts refuses to start
// without it), so a script never hangs on a question nobody sees and never receives a file nobody agreed to.

import * as readline from 'readline'

export interface Terminal {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream & { isTTY?: boolean }
}

/** Someone can answer a question: stdin and stderr are both terminals */
export function canAsk (t: Terminal): boolean {
  return t.stdin.isTTY === true && t.stderr.isTTY === true
}

/** Asks `question` on stderr and reads one line from stdin: true for "y" or "yes" (any case); false otherwise or at EOF */
export async function askYesNo (t: Terminal, question: string): Promise<boolean> {
  const rl = readline.createInterface({ input: t.stdin, output: t.stderr, terminal: false })
  try {
    // Listen before asking: an answer already typed (or piped in by a test) arrives as soon as it is read
    const answer = new Promise<string | null>((resolve) => {
      rl.once('line', (line) => resolve(line))
      rl.once('close', () => resolve(null))
    })
    t.stderr.write(`${question} [y/N] `)
    const line = await answer
    return line !== null && /^\s*(y|yes)\s*$/i.test(line)
  } finally {
    rl.close()
  }
}
