// A two-person chat between machines behind NATs: both meet through a rendezvous server under a shared
// code, node.rendezvous() punches a direct path (or falls back to the server's relay), and lines typed on
// one side appear on the other.
//
//   npx utp-punch-rs rendezvous --port 7000                          on a public host
//   node examples/chat-across-nats.js --server HOST:7000 --code purple-otter --name alice
//   node examples/chat-across-nats.js --server HOST:7000 --code purple-otter --name bob
//
//   node examples/chat-across-nats.js        no --server: a loopback demo with a local RendezvousServer and
//                                            two peers in this process
//
// Options: --host ADDR binds the local socket (default: all addresses), --no-relay fails instead of relaying.
// End the chat with Ctrl-D (end of input): the peer sees you leave and both exit.
'use strict'
const readline = require('readline')
const { Node, RendezvousServer } = require('utp-punch-rs')

const args = process.argv.slice(2)
function option (name) {
  const i = args.indexOf(name)
  return i === -1 ? undefined : args[i + 1]
}

/** Meet the peer registered under `code` and return the connected socket */
async function meet ({ server, code, host, relay = true }) {
  const node = new Node()
  await node.bindAsync(0, host)
  const { socket, path, remote, role } = await node.rendezvous({ server, code, relay })
  return { node, socket, path, remote, role }
}

/** Lines of the peer, each `name<TAB>text` */
function onLines (socket, fn) {
  readline.createInterface({ input: socket, crlfDelay: Infinity }).on('line', (line) => {
    const tab = line.indexOf('\t')
    fn(tab === -1 ? 'peer' : line.slice(0, tab), tab === -1 ? line : line.slice(tab + 1))
  })
}

async function interactive (server, code, name) {
  console.log(`meeting the peer with code "${code}" through ${server} ...`)
  const { node, socket, path, remote } = await meet({ server, code, host: option('--host'), relay: !args.includes('--no-relay') })
  console.log(`connected to ${remote.address}:${remote.port} (path: ${path}); type lines to chat, Ctrl-D to leave`)
  onLines(socket, (who, text) => console.log(`<${who}> ${text}`))
  socket.on('end', () => console.log('the peer left'))
  socket.on('error', (err) => console.log(`connection lost: ${err.code}`))
  const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  input.on('line', (line) => socket.write(`${name}\t${line}\n`))
  input.on('close', () => socket.end())
  socket.on('close', () => {
    input.close()
    node.close()
  })
}

async function demo () {
  const server = new RendezvousServer({ port: 0, host: '127.0.0.1' })
  const { port } = await server.listen()
  console.log(`local rendezvous server on 127.0.0.1:${port} (give --server HOST:PORT to use a real one)`)
  const code = `demo-${process.pid}`
  const opts = { server: `127.0.0.1:${port}`, code, host: '127.0.0.1' }
  const [alice, bob] = await Promise.all([meet(opts), meet(opts)])
  console.log(`alice and bob met under "${code}": path ${alice.path}, alice is the ${alice.role} side`)

  const heard = (who, socket, count) => new Promise((resolve) => {
    let n = 0
    onLines(socket, (from, text) => {
      console.log(`${who} got <${from}> ${text}`)
      if (++n === count) resolve()
    })
  })
  const bobHeard = heard('bob', bob.socket, 2)
  const aliceHeard = heard('alice', alice.socket, 1)
  alice.socket.write('alice\thi bob, this took the path rendezvous found\n')
  alice.socket.write('alice\tthe server only introduced us\n')
  await bobHeard
  bob.socket.write('bob\thello alice\n')
  await aliceHeard

  alice.socket.end()
  await Promise.all([alice.node.closeAsync(), bob.node.closeAsync()])
  await server.close()
  console.log('chat over, everything closed')
}

const server = option('--server')
const main = server === undefined
  ? demo()
  : interactive(server, option('--code') ?? 'utp-punch-rs-chat', option('--name') ?? require('os').userInfo().username)
main.catch((err) => {
  console.error(`chat: ${err.code ?? ''} ${err.message}`)
  process.exit(1)
})
