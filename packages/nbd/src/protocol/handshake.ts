/**
 * Sans-IO server side of the fixed newstyle handshake: bytes in, parsed options out, reply
 * bytes out. No sockets, no timers, no export lookups: the glue (`nbd-connection.ts`) asks the
 * application about exports and feeds the answers to the encoders below.
 *
 * Spec: NetworkBlockDevice/nbd `doc/proto.md`, "Newstyle negotiation", "Fixed newstyle
 * negotiation", "Termination of the session during option haggling", "Size constraints" and
 * "Values" → "Handshake phase" (Handshake flags, Client flags, Transmission flags, Option types,
 * Option reply types).
 *
 * Choices, each allowed by the spec:
 * - NOTLS mode: `NBD_OPT_STARTTLS` gets `NBD_REP_ERR_UNSUP`.
 * - Simple replies only: `NBD_OPT_STRUCTURED_REPLY` gets `NBD_REP_ERR_UNSUP` ("clients SHOULD be
 *   prepared to also handle NBD_REP_ERR_UNSUP"), and so do the metadata-context options, which
 *   require structured replies.
 * - An option whose data length exceeds `maxOptionBytes` (64 KiB by default, far above the
 *   largest valid option we accept) is treated as a denial of service: the server replies
 *   `NBD_REP_ERR_TOO_BIG` without reading the data, then initiates a hard disconnect ("if a
 *   server believes a client's behaviour constitutes a denial of service, it MAY initiate a hard
 *   disconnect"). For `NBD_OPT_EXPORT_NAME`, which cannot be answered with an error, it just
 *   disconnects.
 * - Client flags other than FIXED_NEWSTYLE and NO_ZEROES: "the server MUST drop the TCP
 *   connection". A client without FIXED_NEWSTYLE is still served ("Servers MAY choose to honour
 *   fixed newstyle from clients that didn't set this bit").
 */
import type { BlockDeviceSupports } from '@torus/core'
import {
  CLIENT_FLAGS_BYTES,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_MIN_BLOCK_BYTES,
  DEFAULT_PREFERRED_BLOCK_BYTES,
  EXPORT_NAME_REPLY_BYTES,
  EXPORT_NAME_REPLY_ZEROES,
  FLAG_CAN_MULTI_CONN,
  FLAG_C_FIXED_NEWSTYLE,
  FLAG_C_NO_ZEROES,
  FLAG_FIXED_NEWSTYLE,
  FLAG_HAS_FLAGS,
  FLAG_NO_ZEROES,
  FLAG_READ_ONLY,
  FLAG_SEND_FAST_ZERO,
  FLAG_SEND_FLUSH,
  FLAG_SEND_FUA,
  FLAG_SEND_TRIM,
  FLAG_SEND_WRITE_ZEROES,
  GREETING_BYTES,
  IHAVEOPT_HI,
  IHAVEOPT_LO,
  INFO_BLOCK_SIZE,
  INFO_DESCRIPTION,
  INFO_EXPORT,
  INFO_NAME,
  MAX_STRING_BYTES,
  NBDMAGIC_HI,
  NBDMAGIC_LO,
  OPTION_HEADER_BYTES,
  OPTION_REPLY_HEADER_BYTES,
  OPTION_REPLY_MAGIC_HI,
  OPTION_REPLY_MAGIC_LO,
  OPT_ABORT,
  OPT_EXPORT_NAME,
  OPT_GO,
  OPT_INFO,
  OPT_LIST,
  OPT_STRUCTURED_REPLY,
  REP_ACK,
  REP_ERR_INVALID,
  REP_ERR_TOO_BIG,
  REP_ERR_UNSUP,
  REP_INFO,
  REP_SERVER,
} from './constants.js'

/** Default limit on one option's data; see the header comment. */
export const DEFAULT_MAX_OPTION_BYTES = 64 * 1024

/** Size constraints advertised with `NBD_INFO_BLOCK_SIZE` (section "Size constraints"). */
export interface BlockSizeConstraints {
  /** Power of two, 1..65536. Requests must be aligned to it. */
  readonly minimumBytes: number
  /** Power of two, at least max(minimumBytes, 512). */
  readonly preferredBytes: number
  /** Largest READ/WRITE payload; at least preferredBytes. */
  readonly maximumPayloadBytes: number
}

export const DEFAULT_BLOCK_SIZE: BlockSizeConstraints = {
  minimumBytes: DEFAULT_MIN_BLOCK_BYTES,
  preferredBytes: DEFAULT_PREFERRED_BLOCK_BYTES,
  maximumPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
}

/** Throws RangeError unless `c` obeys the rules of section "Size constraints". */
export function validateBlockSizeConstraints(c: BlockSizeConstraints): BlockSizeConstraints {
  const pow2 = (n: number): boolean => Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0
  if (!pow2(c.minimumBytes) || c.minimumBytes > 65536) {
    throw new RangeError(`minimum block size must be a power of two up to 65536, got ${c.minimumBytes}`)
  }
  if (!pow2(c.preferredBytes) || c.preferredBytes < Math.max(c.minimumBytes, 512)) {
    throw new RangeError(`preferred block size must be a power of two >= max(minimum, 512), got ${c.preferredBytes}`)
  }
  if (
    !Number.isSafeInteger(c.maximumPayloadBytes) ||
    c.maximumPayloadBytes < c.preferredBytes ||
    c.maximumPayloadBytes > 0xffffffff ||
    c.maximumPayloadBytes % c.minimumBytes !== 0
  ) {
    throw new RangeError(`maximum payload must be a multiple of the minimum block size in [preferred, 2^32), got ${c.maximumPayloadBytes}`)
  }
  return c
}

/**
 * Transmission flags for a device (section "Transmission flags"). Write-side capabilities are
 * not advertised for a read-only device; CAN_MULTI_CONN only when `supports.multiConn`.
 */
export function transmissionFlagsFor(supports: BlockDeviceSupports): number {
  let flags = FLAG_HAS_FLAGS
  if (supports.flush) flags |= FLAG_SEND_FLUSH
  if (supports.multiConn) flags |= FLAG_CAN_MULTI_CONN
  if (supports.readOnly) return flags | FLAG_READ_ONLY
  if (supports.fua) flags |= FLAG_SEND_FUA
  if (supports.trim) flags |= FLAG_SEND_TRIM
  if (supports.writeZeroes) {
    flags |= FLAG_SEND_WRITE_ZEROES
    // "MUST set this transmission flag to 0 if NBD_FLAG_SEND_WRITE_ZEROES is not set"
    if (supports.fastZero) flags |= FLAG_SEND_FAST_ZERO
  }
  return flags
}

/*
 * Server greeting (section "Newstyle negotiation"), 18 bytes:
 *
 *   0               8               16      18
 *   +---------------+---------------+-------+
 *   | "NBDMAGIC"    | "IHAVEOPT"    | hflags|   hflags = FIXED_NEWSTYLE | NO_ZEROES
 *   +---------------+---------------+-------+
 *
 * Client flags: 32 bits (FIXED_NEWSTYLE = bit 0, NO_ZEROES = bit 1).
 *
 * Option request (section "Newstyle negotiation"), 16 bytes + data:
 *
 *   0               8       12      16
 *   +---------------+-------+-------+-------------------+
 *   | "IHAVEOPT"    | option| length| data (length)     |
 *   +---------------+-------+-------+-------------------+
 *
 * Option reply (section "Fixed newstyle negotiation"), 20 bytes + data:
 *
 *   0               8       12      16      20
 *   +---------------+-------+-------+-------+-------------------+
 *   | 0x3e889045565a9| option| type  | length| data (length)     |
 *   +---------------+-------+-------+-------+-------------------+
 */

/** The 18-byte greeting with handshake flags FIXED_NEWSTYLE | NO_ZEROES. */
export function encodeGreeting(): Buffer {
  const b = Buffer.allocUnsafe(GREETING_BYTES)
  b.writeUInt32BE(NBDMAGIC_HI, 0)
  b.writeUInt32BE(NBDMAGIC_LO, 4)
  b.writeUInt32BE(IHAVEOPT_HI, 8)
  b.writeUInt32BE(IHAVEOPT_LO, 12)
  b.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16)
  return b
}

/** One option reply; `data` may be empty. */
export function encodeOptionReply(option: number, type: number, data?: Uint8Array): Buffer {
  const len = data?.byteLength ?? 0
  const b = Buffer.allocUnsafe(OPTION_REPLY_HEADER_BYTES + len)
  b.writeUInt32BE(OPTION_REPLY_MAGIC_HI, 0)
  b.writeUInt32BE(OPTION_REPLY_MAGIC_LO, 4)
  b.writeUInt32BE(option >>> 0, 8)
  b.writeUInt32BE(type >>> 0, 12)
  b.writeUInt32BE(len, 16)
  if (data !== undefined && len > 0) b.set(data, OPTION_REPLY_HEADER_BYTES)
  return b
}

/** An error reply carrying a human-readable message ("All error replies MAY have some data"). */
export function encodeOptionError(option: number, type: number, message?: string): Buffer {
  return encodeOptionReply(option, type, message === undefined ? undefined : utf8Truncated(message))
}

/** Description of one export for `NBD_OPT_LIST`. */
export interface ExportListing {
  name: string
  description?: string
}

/*
 * NBD_REP_SERVER data (section "Option reply types"):
 *
 *   0       4                 4+n
 *   +-------+-----------------+--------------------+
 *   | n     | name (n bytes)  | description (rest) |
 *   +-------+-----------------+--------------------+
 */

/** Replies to `NBD_OPT_LIST`: one `NBD_REP_SERVER` per export, then `NBD_REP_ACK`. */
export function encodeListReplies(exports: readonly ExportListing[]): Buffer {
  const parts: Buffer[] = []
  for (const e of exports) {
    const name = Buffer.from(e.name, 'utf8')
    const desc = e.description === undefined ? Buffer.alloc(0) : utf8Truncated(e.description)
    const data = Buffer.allocUnsafe(4 + name.length + desc.length)
    data.writeUInt32BE(name.length, 0)
    name.copy(data, 4)
    desc.copy(data, 4 + name.length)
    parts.push(encodeOptionReply(OPT_LIST, REP_SERVER, data))
  }
  parts.push(encodeOptionReply(OPT_LIST, REP_ACK))
  return Buffer.concat(parts)
}

/** What the server tells a client about the export it chose. */
export interface ExportDetails {
  /** Canonical name (sent as `NBD_INFO_NAME` when requested). */
  name: string
  description?: string
  sizeBytes: number
  transmissionFlags: number
  blockSize: BlockSizeConstraints
}

/*
 * NBD_REP_INFO data (section "Option reply types"), by information type:
 *
 *   NBD_INFO_EXPORT (length 12)      NBD_INFO_BLOCK_SIZE (length 14)
 *   0     2               10    12   0     2       6       10      14
 *   +-----+---------------+-----+    +-----+-------+-------+-------+
 *   | 0   | size (u64)    |tflag|    | 3   | min   | pref  | max   |
 *   +-----+---------------+-----+    +-----+-------+-------+-------+
 *
 *   NBD_INFO_NAME / NBD_INFO_DESCRIPTION (length 2 + n)
 *   0     2
 *   +-----+----------------+
 *   | 1|2 | string (n)     |
 *   +-----+----------------+
 */

/**
 * Successful replies to `NBD_OPT_INFO`/`NBD_OPT_GO`: `NBD_INFO_EXPORT`, then `NBD_INFO_BLOCK_SIZE`
 * (always: the server MAY send information that was not requested), `NBD_INFO_NAME` and
 * `NBD_INFO_DESCRIPTION` when requested (and a description exists), then `NBD_REP_ACK`.
 */
export function encodeInfoReplies(option: number, details: ExportDetails, requests: readonly number[]): Buffer {
  const parts: Buffer[] = []
  const exp = Buffer.allocUnsafe(12)
  exp.writeUInt16BE(INFO_EXPORT, 0)
  writeUInt64(exp, details.sizeBytes, 2)
  exp.writeUInt16BE(details.transmissionFlags, 10)
  parts.push(encodeOptionReply(option, REP_INFO, exp))

  const bs = Buffer.allocUnsafe(14)
  bs.writeUInt16BE(INFO_BLOCK_SIZE, 0)
  bs.writeUInt32BE(details.blockSize.minimumBytes, 2)
  bs.writeUInt32BE(details.blockSize.preferredBytes, 6)
  bs.writeUInt32BE(details.blockSize.maximumPayloadBytes, 10)
  parts.push(encodeOptionReply(option, REP_INFO, bs))

  if (requests.includes(INFO_NAME)) parts.push(encodeOptionReply(option, REP_INFO, infoString(INFO_NAME, details.name)))
  if (requests.includes(INFO_DESCRIPTION) && details.description !== undefined) {
    parts.push(encodeOptionReply(option, REP_INFO, infoString(INFO_DESCRIPTION, details.description)))
  }
  parts.push(encodeOptionReply(option, REP_ACK))
  return Buffer.concat(parts)
}

/*
 * Reply to NBD_OPT_EXPORT_NAME (section "Newstyle negotiation"), no option-reply header:
 *
 *   0               8       10                      134
 *   +---------------+-------+------------------------+
 *   | size (u64)    | tflags| 124 zeroes (unless     |
 *   |               |       | client set NO_ZEROES)  |
 *   +---------------+-------+------------------------+
 */

export function encodeExportNameReply(sizeBytes: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(EXPORT_NAME_REPLY_BYTES + (noZeroes ? 0 : EXPORT_NAME_REPLY_ZEROES))
  writeUInt64(b, sizeBytes, 0)
  b.writeUInt16BE(transmissionFlags, 8)
  return b
}

/** What the glue must do next; produced by {@link ServerHandshake.next}. */
export type HandshakeEvent =
  /** The client's 32-bit flags were accepted. */
  | { type: 'client-flags'; flags: number; fixedNewstyle: boolean; noZeroes: boolean }
  /** NBD_OPT_EXPORT_NAME: reply with {@link encodeExportNameReply}, or hard-disconnect if unknown. */
  | { type: 'export-name'; name: string }
  /** NBD_OPT_LIST with no data: reply with {@link encodeListReplies}. */
  | { type: 'list' }
  /** NBD_OPT_INFO / NBD_OPT_GO: reply with {@link encodeInfoReplies} or NBD_REP_ERR_UNKNOWN. */
  | { type: 'info'; option: typeof OPT_INFO | typeof OPT_GO; name: string; requests: number[] }
  /** The state machine answered the option itself; write `bytes` and keep haggling. */
  | { type: 'reply'; option: number; replyType: number; bytes: Buffer }
  /**
   * End the session: write `bytes` if present, then close. `reason` is a constant for logs:
   * 'abort' (soft disconnect), 'bad-magic', 'bad-client-flags', 'bad-export-name' (EXPORT_NAME
   * with an invalid string), 'option-too-big'.
   */
  | { type: 'close'; reason: HandshakeCloseReason; option?: number; bytes?: Buffer }

export type HandshakeCloseReason = 'abort' | 'bad-magic' | 'bad-client-flags' | 'bad-export-name' | 'option-too-big'

export interface ServerHandshakeOptions {
  /** Largest option data accepted; longer options get NBD_REP_ERR_TOO_BIG and a disconnect. */
  maxOptionBytes?: number
}

type Phase = 'client-flags' | 'options' | 'done' | 'closed'

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Parses what the client sends during the handshake. Call {@link push} with received bytes,
 * then {@link next} until it returns `undefined` (more bytes needed). When the glue enters the
 * transmission phase it calls {@link finish} to take the bytes that followed the final option.
 */
export class ServerHandshake {
  readonly maxOptionBytes: number
  #buf: Buffer = Buffer.alloc(0)
  #pos = 0
  #pending: Buffer[] = []
  #pendingBytes = 0
  #phase: Phase = 'client-flags'
  #noZeroes = false

  constructor(options: ServerHandshakeOptions = {}) {
    this.maxOptionBytes = options.maxOptionBytes ?? DEFAULT_MAX_OPTION_BYTES
  }

  /** Whether the client negotiated NBD_FLAG_C_NO_ZEROES. */
  get noZeroes(): boolean {
    return this.#noZeroes
  }

  get phase(): Phase {
    return this.#phase
  }

  /** Bytes received but not parsed yet. */
  get bufferedBytes(): number {
    return this.#buf.length - this.#pos + this.#pendingBytes
  }

  push(chunk: Uint8Array): void {
    if (this.#phase === 'done' || this.#phase === 'closed' || chunk.byteLength === 0) return
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (this.#pos >= this.#buf.length) {
      this.#buf = c
      this.#pos = 0
    } else {
      // Joined lazily in #ensure, so bytes dribbled in one at a time are not re-copied each time.
      this.#pending.push(c)
      this.#pendingBytes += c.length
    }
  }

  /** Makes `n` contiguous bytes available at #pos if they have arrived. */
  #ensure(n: number): boolean {
    if (this.#buf.length - this.#pos >= n) return true
    if (this.#buf.length - this.#pos + this.#pendingBytes < n) return false
    this.#buf = Buffer.concat([this.#buf.subarray(this.#pos), ...this.#pending])
    this.#pos = 0
    this.#pending = []
    this.#pendingBytes = 0
    return true
  }

  /** Ends the handshake and returns any bytes received after the final option. */
  finish(): Buffer {
    this.#phase = 'done'
    const rest = this.#pendingBytes === 0 ? this.#buf.subarray(this.#pos) : Buffer.concat([this.#buf.subarray(this.#pos), ...this.#pending])
    this.#buf = Buffer.alloc(0)
    this.#pos = 0
    this.#pending = []
    this.#pendingBytes = 0
    return rest
  }

  next(): HandshakeEvent | undefined {
    switch (this.#phase) {
      case 'client-flags':
        return this.#clientFlags()
      case 'options':
        return this.#option()
      default:
        return undefined
    }
  }

  #close(reason: HandshakeCloseReason, option?: number, bytes?: Buffer): HandshakeEvent {
    this.#phase = 'closed'
    const ev: HandshakeEvent = { type: 'close', reason }
    if (option !== undefined) ev.option = option
    if (bytes !== undefined) ev.bytes = bytes
    return ev
  }

  #clientFlags(): HandshakeEvent | undefined {
    if (!this.#ensure(CLIENT_FLAGS_BYTES)) return undefined
    const flags = this.#buf.readUInt32BE(this.#pos)
    this.#pos += CLIENT_FLAGS_BYTES
    // "the server MUST drop the TCP connection if the client sets an unknown flag"
    if ((flags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) !== 0) return this.#close('bad-client-flags')
    this.#noZeroes = (flags & FLAG_C_NO_ZEROES) !== 0
    this.#phase = 'options'
    return { type: 'client-flags', flags, fixedNewstyle: (flags & FLAG_C_FIXED_NEWSTYLE) !== 0, noZeroes: this.#noZeroes }
  }

  #option(): HandshakeEvent | undefined {
    if (!this.#ensure(OPTION_HEADER_BYTES)) return undefined
    let b = this.#buf
    let p = this.#pos
    if (b.readUInt32BE(p) !== IHAVEOPT_HI || b.readUInt32BE(p + 4) !== IHAVEOPT_LO) return this.#close('bad-magic')
    const option = b.readUInt32BE(p + 8)
    const length = b.readUInt32BE(p + 12)
    if (length > this.maxOptionBytes) {
      // Do not wait for (or buffer) the data; see the header comment.
      if (option === OPT_EXPORT_NAME) return this.#close('option-too-big', option)
      return this.#close('option-too-big', option, encodeOptionError(option, REP_ERR_TOO_BIG, 'option data too long'))
    }
    if (!this.#ensure(OPTION_HEADER_BYTES + length)) return undefined
    b = this.#buf
    p = this.#pos
    const data = b.subarray(p + OPTION_HEADER_BYTES, p + OPTION_HEADER_BYTES + length)
    this.#pos = p + OPTION_HEADER_BYTES + length
    return this.#dispatch(option, data)
  }

  #dispatch(option: number, data: Buffer): HandshakeEvent {
    switch (option) {
      case OPT_EXPORT_NAME: {
        const name = decodeString(data)
        // EXPORT_NAME cannot carry an error: an unusable name ends the session.
        if (name === undefined) return this.#close('bad-export-name', option)
        return { type: 'export-name', name }
      }
      case OPT_ABORT:
        // "The server MUST reply with NBD_REP_ACK"; data, if any, is ignored.
        return this.#close('abort', option, encodeOptionReply(option, REP_ACK))
      case OPT_LIST:
        if (data.length !== 0) return invalid(option, 'NBD_OPT_LIST takes no data')
        return { type: 'list' }
      case OPT_INFO:
      case OPT_GO:
        return parseInfoRequest(option, data)
      case OPT_STRUCTURED_REPLY:
        return reply(option, REP_ERR_UNSUP, 'structured replies are not supported; simple replies only')
      default:
        return reply(option, REP_ERR_UNSUP, 'option not supported')
    }
  }
}

/*
 * NBD_OPT_INFO / NBD_OPT_GO data (section "Option types"):
 *
 *   0       4                 4+n     6+n
 *   +-------+-----------------+-------+---------------------+
 *   | n     | name (n bytes)  | count | count x u16 info    |
 *   +-------+-----------------+-------+---------------------+
 *
 * n MUST be no larger than the option data length - 6; anything inconsistent is
 * NBD_REP_ERR_INVALID.
 */
function parseInfoRequest(option: typeof OPT_INFO | typeof OPT_GO, data: Buffer): HandshakeEvent {
  if (data.length < 6) return invalid(option, 'option data too short')
  const nameLen = data.readUInt32BE(0)
  if (nameLen > data.length - 6) return invalid(option, 'export name length exceeds option length')
  const count = data.readUInt16BE(4 + nameLen)
  if (data.length !== 6 + nameLen + 2 * count) return invalid(option, 'information request count does not match option length')
  const name = decodeString(data.subarray(4, 4 + nameLen))
  if (name === undefined) return invalid(option, 'export name is not a valid string')
  const requests: number[] = []
  for (let i = 0; i < count; i++) requests.push(data.readUInt16BE(6 + nameLen + 2 * i))
  return { type: 'info', option, name, requests }
}

function reply(option: number, replyType: number, message?: string): HandshakeEvent {
  return { type: 'reply', option, replyType, bytes: encodeOptionError(option, replyType, message) }
}

function invalid(option: number, message: string): HandshakeEvent {
  return reply(option, REP_ERR_INVALID, message)
}

/** A spec string: UTF-8, no NUL, at most 4096 bytes (section "Conventions"). */
function decodeString(bytes: Uint8Array): string | undefined {
  if (bytes.byteLength > MAX_STRING_BYTES || bytes.includes(0)) return undefined
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

function infoString(type: number, s: string): Buffer {
  const str = utf8Truncated(s)
  const b = Buffer.allocUnsafe(2 + str.length)
  b.writeUInt16BE(type, 0)
  str.copy(b, 2)
  return b
}

/** UTF-8 bytes of `s`, cut to the 4096-byte string limit. */
function utf8Truncated(s: string): Buffer {
  const b = Buffer.from(s, 'utf8')
  return b.length <= MAX_STRING_BYTES ? b : b.subarray(0, MAX_STRING_BYTES)
}

/** Writes a non-negative safe integer as a big-endian u64 without bigint. */
export function writeUInt64(b: Buffer, value: number, offset: number): void {
  b.writeUInt32BE(Math.floor(value / 0x100000000), offset)
  b.writeUInt32BE(value >>> 0, offset + 4)
}
