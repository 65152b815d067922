// The package entry: `require('utp-punch-rs')` is the Node class itself (as with utp-punch), and the class
// carries every named export (Node, Socket, UdpSocketFacade, errors, defaults) plus the public types.
// ESM and TypeScript importers get the same names; see index.mjs for the ESM wrapper. lib/api.ts attaches
// the layers above the transport (STUN, rendezvous) to the Node class.

import { Node } from './lib/api'

export = Node
