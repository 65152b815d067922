// The rendezvous server's HTTP side (TCP, same port number as its UDP side): GET /healthz, GET /stats (JSON)
// and GET /metrics (Prometheus text).
// A monitoring endpoint: it binds to loopback unless told otherwise (the stats say how busy the server is
// and are nobody else's business), and every connection gets a few seconds, idle or not.

import * as http from 'http'

import { METRICS_CONTENT_TYPE, prometheusText } from './metrics'
import type { RendezvousStats } from './server'

export function createHttpServer (stats: () => RendezvousStats, timeoutMs: number): http.Server {
  // Node checks header and request timeouts every connectionsCheckingInterval (30 s by default), which
  // let an idle connection live ~38 s; check often enough that timeoutMs holds
  const server = http.createServer({ connectionsCheckingInterval: Math.max(100, Math.min(1000, timeoutMs / 4)) }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n')
      return
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' }).end('ok')
    } else if (path === '/stats') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(stats()) + '\n')
    } else if (path === '/metrics') {
      res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Cache-Control': 'no-store' }).end(prometheusText(stats()))
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n')
    }
  })
  server.headersTimeout = timeoutMs
  server.requestTimeout = timeoutMs
  server.keepAliveTimeout = Math.min(2000, timeoutMs)
  // A connection that sends nothing at all (not even a header byte) is closed by the socket timeout
  server.setTimeout(timeoutMs, (socket) => socket.destroy())
  return server
}
