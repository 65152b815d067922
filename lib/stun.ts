// STUN (RFC 8489) over a Node's UDP socket: learn the node's public address, and classify the NAT in front
// of it (RFC 5780). The codec is pure; the client and discovery use only public Node methods.

export {
  decodeStunMessage,
  encodeAddressAttribute,
  encodeBindingRequest,
  encodeErrorCode,
  encodeStunMessage,
  isStunMessage,
  MAGIC_COOKIE,
  newTransactionId,
  StunAttr,
  StunDecodeError,
  StunType,
  type StunAddress,
  type StunAttribute,
  type StunMessage
} from './stun/codec'
export { formatServer, parseServer, stunBinding, type StunBindingOptions, type StunBindingResult, type StunError, type StunNode } from './stun/client'
export { mappingFromServers, natBehavior, type MappingFromServersResult, type NatBehavior, type NatBehaviorResult, type NatDiscoveryOptions } from './stun/discovery'
