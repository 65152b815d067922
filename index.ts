// The package entry: `require('utp-punch-rs')` is the Node class itself (as with utp-punch), and the class
// carries every named export (Node, Socket, UdpSocketFacade, errors, defaults) plus the public types.
// ESM and TypeScript importers get the same names; see index.mjs for the ESM wrapper.

import { Node } from './lib/node'

export = Node
