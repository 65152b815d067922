// Raw UDP datagrams and uTP connections on one port.
//
//   node examples/raw-datagrams.js
//
// node.getUdpSocket() is a dgram-like view of the node's own UDP socket: send() goes out from the port uTP
// uses (so through the same NAT mapping), and every datagram that is not uTP arrives as 'message'. This is
// what hole punching, STUN and any small protocol of your own build on. Keep your datagrams from looking like
// uTP: a first byte of 0x01, 0x11, 0x21, 0x31 or 0x41 in a datagram of 20 bytes or more is taken as uTP
// (docs/protocol.md). Plain text, JSON or a magic prefix of your own are all fine.
'use strict'
const { Node } = require('utp-punch-rs')

async function main () {
  // A: accepts uTP connections and answers raw "ping" datagrams, all on one port
  const a = new Node((socket) => {
    socket.setEncoding('utf8')
    socket.on('data', (text) => socket.end(text.toUpperCase()))
  })
  const { port: aPort } = await a.bindAsync(0, '127.0.0.1')
  await a.listenAsync()
  const udpA = a.getUdpSocket()
  udpA.on('message', (msg, rinfo) => {
    console.log(`A: datagram "${msg}" from ${rinfo.address}:${rinfo.port} (${rinfo.size} bytes)`)
    udpA.send(`pong #${msg.toString().split('#')[1]}`, rinfo.port, rinfo.address)
  })

  // B: sends datagrams to A's port, then opens a uTP connection to the very same port
  const b = new Node()
  const { port: bPort } = await b.bindAsync(0, '127.0.0.1')
  const udpB = b.getUdpSocket()
  console.log(`A on port ${aPort}, B on port ${bPort}; B's datagram socket is on port ${udpB.address().port} too`)

  for (let i = 1; i <= 3; i++) {
    const reply = new Promise((resolve) => udpB.once('message', (msg, rinfo) => resolve({ msg, rinfo })))
    const bytes = await new Promise((resolve, reject) => {
      udpB.send(`ping #${i}`, aPort, '127.0.0.1', (err, n) => err ? reject(err) : resolve(n))
    })
    const { msg, rinfo } = await reply
    console.log(`B: sent ${bytes} bytes, got "${msg}" back from port ${rinfo.port}`)
  }

  const socket = await b.connectAsync(aPort, '127.0.0.1')
  socket.setEncoding('utf8')
  let answer = ''
  socket.on('data', (text) => { answer += text })
  socket.end('a uTP stream shares the port')
  await new Promise((resolve) => socket.once('end', resolve))
  console.log(`B: uTP reply "${answer}"`)

  await Promise.all([a.closeAsync(), b.closeAsync()])
  console.log('both nodes closed')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
