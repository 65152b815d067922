// A short loopback demo: one Node serves, another connects, they exchange a greeting and 16 MiB.
// Run with `npm run demo` after `npm install` (which builds the native addon from source if needed).
'use strict'
const Node = require('..')

const SIZE = Number(process.env.DEMO_MIB || 16) << 20

const server = new Node((socket) => {
  let bytes = 0
  socket.on('data', (chunk) => { bytes += chunk.length })
  socket.on('end', () => {
    console.log(`server: received ${bytes} bytes from ${socket.remoteAddress}:${socket.remotePort}`)
    socket.end('thanks, all arrived')
  })
})

server.bind(0, '127.0.0.1', () => {
  server.listen(() => {
    const { port } = server.address()
    console.log(`server: listening on 127.0.0.1:${port} (uTP over UDP)`)
    const client = new Node()
    client.bind(0, '127.0.0.1')
    const started = process.hrtime.bigint()
    client.connect(port, '127.0.0.1', (socket) => {
      console.log(`client: connected from port ${client.address().port}`)
      socket.on('data', (reply) => console.log(`client: server says "${reply}"`))
      socket.on('end', () => {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9
        console.log(`client: ${SIZE / 1048576} MiB delivered in ${seconds.toFixed(2)} s (${(SIZE / 1048576 / seconds).toFixed(0)} MiB/s)`)
        client.close(() => server.close(() => console.log('done: both nodes closed')))
      })
      socket.end(Buffer.alloc(SIZE, 'u'))
    })
  })
})
