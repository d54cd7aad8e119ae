/**
 * @packageDocumentation
 * Peer RPC for Torus: request/reply over authenticated, long-lived connections, with
 * MessagePack frames (msgpackr). `WsTransport` runs over WebSocket (ws) between daemons;
 * `LoopbackTransport` connects transports in one process through a `LoopbackHub`, with the
 * same protocol code, for tests and simulations. Both implement the `Transport` contract from
 * `@torus/core` and pass `@torus/conformance/transport`.
 *
 * The sans-IO pieces (frame codec, hello state machines) are exported for tools and for
 * tests that play a peer by hand.
 */
export type {
  ConnectOptions,
  ConnectionState,
  ConnectionStateListener,
  PeerConnection,
  RequestContext,
  RequestHandler,
  RequestOptions,
  Transport,
  TransportOptions,
  TransportPeer,
  TransportValue,
} from '@torus/core'
export { WsTransport, WS_SUBPROTOCOL, type WsTransportOptions } from './ws-transport.js'
export { LoopbackHub, LoopbackTransport, type LoopbackTransportOptions } from './loopback-transport.js'
export { DEFAULTS as TRANSPORT_DEFAULTS, SECRET_BYTES_MIN } from './options.js'
export { PENDING_HELLOS_MAX } from './abstract-transport.js'
export { CloseCode, HELLO_FRAME_BYTES_MAX } from './session.js'
export {
  decodeFrame,
  encodeChallenge,
  encodeError,
  encodeHello,
  encodeHelloOk,
  encodeProof,
  encodeReply,
  encodeRequest,
  FrameType,
  HEADER_BYTES,
  isTransportValue,
  isValidMethod,
  METHOD_BYTES_MAX,
  POOLED_BYTES_MIN,
  PROTOCOL_VERSION,
  type ChallengeBody,
  type ErrorBody,
  type Frame,
  type HelloBody,
} from './frame-codec.js'
export { FrameBufferPool, FRAME_POOL_GRANULE } from './frame-pool.js'
export { ClientHandshake, ServerHandshake, computeProof, type HandshakeIdentity, type HandshakeResult, type HandshakeStep } from './handshake.js'
