// The rendezvous server's statistics in the Prometheus text exposition format (version 0.0.4), for GET /metrics.
// Counters end in _total and only grow while the process lives; gauges say how things are now. The server
// cannot tell which path (direct or relayed) a pairing ends up using, so pairings and relay allocations are
// separate counters rather than one counter with a path label.

import type { RendezvousStats } from './server'

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

interface Metric { name: string, type: 'counter' | 'gauge', help: string, value: (s: RendezvousStats) => number }

const PREFIX = 'utp_punch_rendezvous_'

const METRICS: readonly Metric[] = [
  { name: 'registrations_total', type: 'counter', help: 'Registrations accepted since start', value: s => s.registrations },
  { name: 'pairings_total', type: 'counter', help: 'Pairings made since start', value: s => s.pairings },
  { name: 'relays_total', type: 'counter', help: 'Relay allocations made since start', value: s => s.relays },
  { name: 'relayed_bytes_total', type: 'counter', help: 'Bytes forwarded by relays since start', value: s => s.relayedBytes },
  { name: 'rate_limited_datagrams_total', type: 'counter', help: 'Verified datagrams dropped by the per-source rate limit', value: s => s.rateLimited },
  { name: 'unverified_dropped_datagrams_total', type: 'counter', help: 'Unverified datagrams dropped by their global budget', value: s => s.unverifiedDropped },
  { name: 'quota_refusals_total', type: 'counter', help: 'Requests refused by a registration or relay quota', value: s => s.quotaRefused },
  { name: 'retries_total', type: 'counter', help: 'Retry replies (cookies) sent to unverified sources', value: s => s.retries },
  { name: 'errors_total', type: 'counter', help: 'Error replies sent plus datagrams dropped', value: s => s.errors },
  { name: 'pake_failures_total', type: 'counter', help: 'pake-failed reports received (their keys are burned)', value: s => s.pakeFailures },
  { name: 'expired_registrations_total', type: 'counter', help: 'Registrations dropped for lack of keepalives', value: s => s.expired },
  { name: 'moves_total', type: 'counter', help: 'Paired peers told that the other moved (NAT rebinding)', value: s => s.moves },
  { name: 'gave_up_total', type: 'counter', help: 'Paired peers that gave up before connecting (their peer told)', value: s => s.gaveUp },
  { name: 'registrations', type: 'gauge', help: 'Registrations alive now', value: s => s.activeRegistrations },
  { name: 'pairings', type: 'gauge', help: 'Pairings alive now', value: s => s.activePairings },
  { name: 'relays', type: 'gauge', help: 'Relay allocations open now', value: s => s.activeRelays },
  { name: 'burned_keys', type: 'gauge', help: 'Keys refused now because they were used', value: s => s.burnedKeys },
  { name: 'uptime_seconds', type: 'gauge', help: 'Seconds since the server started', value: s => s.uptimeSeconds }
]

/** The stats as Prometheus text: HELP and TYPE before each metric's samples, one sample per line */
export function prometheusText (stats: RendezvousStats): string {
  const lines: string[] = []
  for (const m of METRICS) {
    lines.push(`# HELP ${PREFIX}${m.name} ${m.help}`, `# TYPE ${PREFIX}${m.name} ${m.type}`, `${PREFIX}${m.name} ${m.value(stats)}`)
  }
  const refusals = `${PREFIX}refusals_total`
  lines.push(`# HELP ${refusals} Error replies sent, by error code`, `# TYPE ${refusals} counter`)
  for (const [code, n] of Object.entries(stats.refusals).sort()) {
    // Codes are ours (ERR_ and capitals), but a label value must never break the format
    lines.push(`${refusals}{code="${code.replace(/[\\"\n]/g, '_')}"} ${n}`)
  }
  return lines.join('\n') + '\n'
}
