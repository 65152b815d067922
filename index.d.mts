// Types for the ESM entry (index.mjs): the same names as the CommonJS entry
import Node from './dist/index.js'

export default Node
export { Node }
export import Socket = Node.Socket
export import UdpSocketFacade = Node.UdpSocketFacade
export import errors = Node.errors
export import stun = Node.stun
export import RendezvousServer = Node.RendezvousServer
export type RendezvousOptions = Node.RendezvousOptions
export type RendezvousResult = Node.RendezvousResult
export type RendezvousServerOptions = Node.RendezvousServerOptions
export type RendezvousPath = Node.RendezvousPath
export type RendezvousTimings = Node.RendezvousTimings
export type RendezvousError = Node.RendezvousError
export type RendezvousStats = Node.RendezvousStats
export type PairedInfo = Node.PairedInfo
export declare const rendezvousCodes: typeof Node.rendezvousCodes
export declare const generateCode: typeof Node.generateCode
export declare const parseCode: typeof Node.parseCode
export declare const CODE_WORDS: typeof Node.CODE_WORDS
export type ParsedCode = Node.ParsedCode
export import Pake = Node.Pake
export declare const deriveKey: typeof Node.deriveKey
export declare const secureCodes: typeof Node.secureCodes
export declare const secureSocket: typeof Node.secureSocket
export import SecureSocket = Node.SecureSocket
export type SecureOptions = Node.SecureOptions
export type SecureRole = Node.SecureRole
export declare const defaults: typeof Node.defaults
export type NodeOptions = Node.NodeOptions
export type AddressInfo = Node.AddressInfo
export type ConnectionStats = Node.ConnectionStats
export type SocketStats = Node.SocketStats
export type NodeStats = Node.NodeStats
export type NodeEvents = Node.NodeEvents
export type SocketEvents = Node.SocketEvents
export type MigrateInfo = Node.MigrateInfo
export type RemoteInfo = Node.RemoteInfo
export type SendCallback = Node.SendCallback
export type UtpError = Node.UtpError
