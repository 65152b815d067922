// Rendezvous: meet a peer through a server, punch through NATs, fall back to a relay. The pieces a user needs.

export { rendezvous, type RendezvousOptions, type RendezvousPath, type RendezvousResult, type RendezvousStatus, type RendezvousTimings } from './client'
export { rendezvousCodes, type RendezvousError } from './errors'
export { CODE_WORDS, generateCode, parseCode, type ParsedCode } from './code'
export { RendezvousServer, type PairedInfo, type RendezvousServerOptions, type RendezvousStats } from '../server/server'
