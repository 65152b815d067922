// The client for echo-server.js: sends each MESSAGE, ends its side, prints what came back.
//
//   node examples/echo-client.js PORT [HOST] [MESSAGE...]     HOST defaults to 127.0.0.1
'use strict'
const { Node } = require('utp-punch-rs')

const [portArg, host = '127.0.0.1', ...words] = process.argv.slice(2)
if (portArg === undefined) {
  console.error('usage: node examples/echo-client.js PORT [HOST] [MESSAGE...]')
  process.exit(2)
}
const messages = words.length > 0 ? words : ['hello', 'over', 'uTP']

async function main () {
  const client = new Node()
  await client.bindAsync(0, host.includes(':') ? '::' : '0.0.0.0')
  const socket = await client.connectAsync(Number(portArg), host)
  console.log(`connected to ${socket.remoteAddress}:${socket.remotePort} from port ${client.address().port}`)

  const chunks = []
  socket.on('data', (chunk) => chunks.push(chunk))
  const ended = new Promise((resolve, reject) => {
    socket.once('end', resolve)
    socket.once('error', reject)
  })
  for (const m of messages) socket.write(m + '\n')
  const stats = socket.stats()
  socket.end()
  await ended

  for (const line of Buffer.concat(chunks).toString().split('\n').filter(Boolean)) console.log(`echo: ${line}`)
  if (stats !== null) console.log(`rtt ${(stats.rtt / 1000).toFixed(1)} ms, ${stats.packetsSent} packets sent`)
  await client.closeAsync()
}

main().catch((err) => {
  console.error(`echo client: ${err.code ?? ''} ${err.message}`)
  process.exit(1)
})
