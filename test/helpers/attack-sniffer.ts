// A passive eavesdropper on loopback for the attack tests (root only: an AF_PACKET socket in
// attack-sniffer.py). It reports every rendezvous datagram as it passes, and at stop() how many payloads
// carried each needle and how many datagrams went to each IP.

import { spawn, type ChildProcessWithoutNullStreams } from 'child_process'
import * as path from 'path'
import * as readline from 'readline'

export interface SniffedDatagram {
  src: string
  sport: number
  dst: string
  dport: number
  /** The rendezvous message's JSON body, parsed */
  body: Record<string, unknown>
}

export interface SniffSummary {
  packets: number
  bytes: number
  /** Per needle, the datagrams whose payload contains it */
  hits: number[]
  /** Datagrams per destination IPv4 address */
  perDst: Record<string, number>
  /** Frames the kernel dropped because the recorder fell behind: a recorder that missed frames proves nothing */
  dropped: number
}

export class Sniffer {
  readonly seen: SniffedDatagram[] = []
  private readonly child: ChildProcessWithoutNullStreams
  private readonly watchers: Array<(d: SniffedDatagram) => void> = []
  private summary: Promise<SniffSummary>
  readonly ready: Promise<void>

  constructor (needles: Buffer[] = []) {
    this.child = spawn('python3', [path.join(__dirname, 'attack-sniffer.py'), ...needles.map(n => n.toString('hex'))])
    let onReady!: () => void
    this.ready = new Promise(resolve => { onReady = resolve })
    this.summary = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`attack-sniffer.py exited with ${String(code)}`)))
      readline.createInterface({ input: this.child.stdout }).on('line', (line) => {
        const o = JSON.parse(line) as { ready?: boolean, summary?: SniffSummary } & Omit<SniffedDatagram, 'body'> & { body?: string }
        if (o.ready === true) onReady()
        else if (o.summary !== undefined) resolve(o.summary)
        else {
          let body: Record<string, unknown>
          try {
            body = JSON.parse(o.body ?? '') as Record<string, unknown>
          } catch {
            return
          }
          const d = { src: o.src, sport: o.sport, dst: o.dst, dport: o.dport, body }
          this.seen.push(d)
          for (const w of this.watchers) w(d)
        }
      })
    })
    this.summary.catch(() => {})
  }

  /** The first rendezvous datagram (already seen or still to come) that `match` accepts */
  async waitFor (match: (d: SniffedDatagram) => boolean): Promise<SniffedDatagram> {
    const old = this.seen.find(match)
    if (old !== undefined) return old
    return await new Promise((resolve) => {
      const w = (d: SniffedDatagram): void => {
        if (!match(d)) return
        this.watchers.splice(this.watchers.indexOf(w), 1)
        resolve(d)
      }
      this.watchers.push(w)
    })
  }

  async stop (): Promise<SniffSummary> {
    this.child.stdin.end()
    const s = await this.summary
    this.child.kill()
    return s
  }
}
