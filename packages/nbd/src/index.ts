/**
 * @packageDocumentation
 * An NBD server (fixed newstyle handshake, simple replies) that serves any `BlockDevice` from
 * `@torus/core`, as nbdkit serves a plugin: {@link NbdServer} listens on TCP, and
 * {@link serveConnection} attaches the protocol to any duplex stream. The protocol itself lives
 * in sans-IO codecs ({@link ServerHandshake}, {@link RequestParser}, the `encode*` functions)
 * that never touch a socket. Device errors become NBD error values through one table
 * ({@link NBD_ERRNO_BY_CODE}). Spec: `doc/proto.md` of NetworkBlockDevice/nbd.
 */
export { NbdServer, type NbdServerOptions, type NbdListenOptions } from './nbd-server.js'
export { serveConnection, type NbdConnection, type NbdExportHandle, type NbdServeOptions } from './nbd-connection.js'
export { NBD_ERRNO_BY_CODE, nbdErrnoFor } from './errno.js'
export { createNbdStats, snapshotNbdStats, type NbdStats, type NbdRequestCounts } from './stats.js'
export * as nbdConstants from './protocol/constants.js'
export type { NbdErrno } from './protocol/constants.js'
export {
  DEFAULT_BLOCK_SIZE,
  DEFAULT_MAX_OPTION_BYTES,
  ServerHandshake,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoReplies,
  encodeListReplies,
  encodeOptionError,
  encodeOptionReply,
  transmissionFlagsFor,
  validateBlockSizeConstraints,
  type BlockSizeConstraints,
  type ExportDetails,
  type ExportListing,
  type HandshakeCloseReason,
  type HandshakeEvent,
  type ServerHandshakeOptions,
} from './protocol/handshake.js'
export {
  RequestParser,
  checkRequest,
  encodeRequest,
  encodeSimpleReply,
  writeSimpleReplyHeader,
  type ExportLimits,
  type NbdRequest,
  type RequestParserOptions,
  type TransmissionProtocolError,
} from './protocol/transmission.js'
