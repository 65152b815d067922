// ESM entry: the CommonJS build's export object is the Node class; re-export it as default and by name
import Node from './dist/index.js'

export default Node
export const {
  Socket, UdpSocketFacade, RendezvousServer, errors, defaults, stun, rendezvousCodes,
  generateCode, parseCode, CODE_WORDS, Pake, deriveKey, secureCodes, secureSocket, SecureSocket,
  DhtNode, DEFAULT_DHT_BOOTSTRAP, dhtPublicKey
} = Node
export { Node }
