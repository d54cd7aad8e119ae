/**
 * Numbers of the NBD protocol: magics, handshake and transmission flags, option and reply
 * types, info types, commands, command flags and error values.
 *
 * Spec: NetworkBlockDevice/nbd `doc/proto.md`, sections "Newstyle negotiation", "Fixed newstyle
 * negotiation", "Request message", "Simple reply message" and "Values" (Handshake phase:
 * Flag fields, Option types, Option reply types; Transmission phase: Command flags, Request
 * types, Error values). Names follow the spec with the `NBD_` prefix dropped.
 */

/** 64-bit magics are split into two 32-bit halves, so no bigint is needed on the hot path. */
export const NBDMAGIC_HI = 0x4e42444d // "NBDM"
export const NBDMAGIC_LO = 0x41474943 // "AGIC"
export const IHAVEOPT_HI = 0x49484156 // "IHAV"
export const IHAVEOPT_LO = 0x454f5054 // "EOPT"
/** `0x3e889045565a9`: magic of every fixed-newstyle option reply. */
export const OPTION_REPLY_MAGIC_HI = 0x0003e889
export const OPTION_REPLY_MAGIC_LO = 0x045565a9

export const REQUEST_MAGIC = 0x25609513
export const SIMPLE_REPLY_MAGIC = 0x67446698
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef
export const EXTENDED_REQUEST_MAGIC = 0x21e41c71

/** Handshake flags (server, 16 bits). */
export const FLAG_FIXED_NEWSTYLE = 1 << 0
export const FLAG_NO_ZEROES = 1 << 1

/** Client flags (32 bits). */
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0
export const FLAG_C_NO_ZEROES = 1 << 1

/** Transmission flags (16 bits). */
export const FLAG_HAS_FLAGS = 1 << 0
export const FLAG_READ_ONLY = 1 << 1
export const FLAG_SEND_FLUSH = 1 << 2
export const FLAG_SEND_FUA = 1 << 3
export const FLAG_ROTATIONAL = 1 << 4
export const FLAG_SEND_TRIM = 1 << 5
export const FLAG_SEND_WRITE_ZEROES = 1 << 6
export const FLAG_SEND_DF = 1 << 7
export const FLAG_CAN_MULTI_CONN = 1 << 8
export const FLAG_SEND_RESIZE = 1 << 9
export const FLAG_SEND_CACHE = 1 << 10
export const FLAG_SEND_FAST_ZERO = 1 << 11

/** Option types. */
export const OPT_EXPORT_NAME = 1
export const OPT_ABORT = 2
export const OPT_LIST = 3
export const OPT_PEEK_EXPORT = 4
export const OPT_STARTTLS = 5
export const OPT_INFO = 6
export const OPT_GO = 7
export const OPT_STRUCTURED_REPLY = 8
export const OPT_LIST_META_CONTEXT = 9
export const OPT_SET_META_CONTEXT = 10
export const OPT_EXTENDED_HEADERS = 11

/** Option reply types; errors have bit 31 set. */
export const REP_ACK = 1
export const REP_SERVER = 2
export const REP_INFO = 3
export const REP_META_CONTEXT = 4
const REP_ERR = 0x80000000
export const REP_ERR_UNSUP = REP_ERR + 1
export const REP_ERR_POLICY = REP_ERR + 2
export const REP_ERR_INVALID = REP_ERR + 3
export const REP_ERR_PLATFORM = REP_ERR + 4
export const REP_ERR_TLS_REQD = REP_ERR + 5
export const REP_ERR_UNKNOWN = REP_ERR + 6
export const REP_ERR_SHUTDOWN = REP_ERR + 7
export const REP_ERR_BLOCK_SIZE_REQD = REP_ERR + 8
export const REP_ERR_TOO_BIG = REP_ERR + 9

/** Information types inside `NBD_REP_INFO`. */
export const INFO_EXPORT = 0
export const INFO_NAME = 1
export const INFO_DESCRIPTION = 2
export const INFO_BLOCK_SIZE = 3

/** Command (request) types. */
export const CMD_READ = 0
export const CMD_WRITE = 1
export const CMD_DISC = 2
export const CMD_FLUSH = 3
export const CMD_TRIM = 4
export const CMD_CACHE = 5
export const CMD_WRITE_ZEROES = 6
export const CMD_BLOCK_STATUS = 7
export const CMD_RESIZE = 8

/** Command flags (16 bits). */
export const CMD_FLAG_FUA = 1 << 0
export const CMD_FLAG_NO_HOLE = 1 << 1
export const CMD_FLAG_DF = 1 << 2
export const CMD_FLAG_REQ_ONE = 1 << 3
export const CMD_FLAG_FAST_ZERO = 1 << 4
export const CMD_FLAG_PAYLOAD_LEN = 1 << 5

/** Error values of the simple reply (section "Error values"). */
export const EPERM = 1
export const EIO = 5
export const ENOMEM = 12
export const EINVAL = 22
export const ENOSPC = 28
export const EOVERFLOW = 75
export const ENOTSUP = 95
export const ESHUTDOWN = 108

export type NbdErrno =
  | typeof EPERM
  | typeof EIO
  | typeof ENOMEM
  | typeof EINVAL
  | typeof ENOSPC
  | typeof EOVERFLOW
  | typeof ENOTSUP
  | typeof ESHUTDOWN

/** Bytes of the fixed-size messages. */
export const GREETING_BYTES = 18 // NBDMAGIC + IHAVEOPT + 16-bit handshake flags
export const CLIENT_FLAGS_BYTES = 4
export const OPTION_HEADER_BYTES = 16 // IHAVEOPT + option + length
export const OPTION_REPLY_HEADER_BYTES = 20 // magic(8) + option + type + length
export const EXPORT_NAME_REPLY_BYTES = 10 // size(8) + transmission flags(2), then 124 zeroes unless NO_ZEROES
export const EXPORT_NAME_REPLY_ZEROES = 124
export const REQUEST_HEADER_BYTES = 28
export const SIMPLE_REPLY_HEADER_BYTES = 16

/** "MUST be no longer than 4096 bytes" (section "Conventions": strings). */
export const MAX_STRING_BYTES = 4096

/** Defaults of section "Size constraints". */
export const DEFAULT_MIN_BLOCK_BYTES = 1
export const DEFAULT_PREFERRED_BLOCK_BYTES = 4096
export const DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024


export const OPTION_NAMES: Readonly<Record<number, string>> = {
  [OPT_EXPORT_NAME]: 'EXPORT_NAME',
  [OPT_ABORT]: 'ABORT',
  [OPT_LIST]: 'LIST',
  [OPT_PEEK_EXPORT]: 'PEEK_EXPORT',
  [OPT_STARTTLS]: 'STARTTLS',
  [OPT_INFO]: 'INFO',
  [OPT_GO]: 'GO',
  [OPT_STRUCTURED_REPLY]: 'STRUCTURED_REPLY',
  [OPT_LIST_META_CONTEXT]: 'LIST_META_CONTEXT',
  [OPT_SET_META_CONTEXT]: 'SET_META_CONTEXT',
  [OPT_EXTENDED_HEADERS]: 'EXTENDED_HEADERS',
}
