// An echo server over uTP: whatever a client sends comes back on the same connection.
//
//   node examples/echo-server.js [PORT] [HOST]     PORT 0 (the default) picks a free port; HOST 127.0.0.1
//   node examples/echo-client.js PORT [HOST] [MESSAGE...]
//
// Ctrl-C closes the server gracefully: open connections get their echoes and a FIN first.
'use strict'
const { Node } = require('utp-punch-rs')

const port = Number(process.argv[2] ?? 0)
const host = process.argv[3] ?? '127.0.0.1'

const server = new Node((socket) => {
  const peer = `${socket.remoteAddress}:${socket.remotePort}`
  let bytes = 0
  console.log(`${peer} connected`)
  socket.on('data', (chunk) => { bytes += chunk.length })
  // Echo: the server's writable side ends when the client's side does (the pipe calls end())
  socket.pipe(socket)
  socket.on('close', () => console.log(`${peer} closed after echoing ${bytes} bytes`))
  socket.on('error', (err) => console.log(`${peer} failed: ${err.code} ${err.message}`))
})

server.on('error', (err) => {
  console.error(`echo server: ${err.code}: ${err.message}`)
  process.exit(1)
})

server.bind(port, host, () => {
  server.listen(() => {
    const a = server.address()
    console.log(`echo server listening on ${a.address}:${a.port}`)
  })
})

function stop () {
  server.close(() => console.log('echo server closed'))
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
