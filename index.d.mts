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
export declare const defaults: typeof Node.defaults
export type NodeOptions = Node.NodeOptions
export type AddressInfo = Node.AddressInfo
export type ConnectionStats = Node.ConnectionStats
export type RemoteInfo = Node.RemoteInfo
export type SendCallback = Node.SendCallback
export type UtpError = Node.UtpError
