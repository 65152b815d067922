// The rendezvous server's HTTP side (TCP, same port number as its UDP side): GET /healthz and GET /stats.

import * as http from 'http'

export function createHttpServer (stats: () => object): http.Server {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n')
      return
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' }).end('ok')
    } else if (path === '/stats') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(stats()) + '\n')
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n')
    }
  })
  // A monitoring endpoint: short timeouts, nobody holds a connection open for long
  server.headersTimeout = 5000
  server.requestTimeout = 10_000
  server.keepAliveTimeout = 2000
  return server
}
