/**
 * Sans-IO transmission phase: a request parser (bytes in → requests out), the request checks
 * the spec asks of a server, and the simple-reply encoder. No sockets.
 *
 * Spec: NetworkBlockDevice/nbd `doc/proto.md`, "Transmission" → "Request message", "Simple
 * reply message", "Size constraints", and "Values" → "Transmission phase" (Command flags,
 * Request types, Error values).
 *
 * Copies: a WRITE payload that arrives inside one received chunk is handed out as a view of
 * that chunk (no copy); one spread over several chunks is copied once into a buffer allocated
 * at its final size when the header is parsed. A header split across chunks is assembled in a
 * fixed 28-byte scratch buffer.
 *
 * Oversized WRITE payloads ("Size constraints": the client MUST NOT exceed the maximum payload;
 * a payload large enough to be a denial of service MAY lead to a hard disconnect, but one up to
 * 2^25 bytes SHOULD NOT): a payload above `maxPayloadBytes` is never buffered. Up to
 * `maxDiscardBytes` (2 × maxPayloadBytes by default, as nbdkit does) it is read and dropped so
 * the stream stays in sync and the request fails with EINVAL; beyond that the parser reports
 * `payload-too-large` and the server replies EINVAL and disconnects.
 */
import type { BlockSizeConstraints } from './handshake.js'
import {
  CMD_CACHE,
  CMD_DISC,
  CMD_FLAG_FAST_ZERO,
  CMD_FLAG_FUA,
  CMD_FLAG_NO_HOLE,
  CMD_FLUSH,
  CMD_READ,
  CMD_TRIM,
  CMD_WRITE,
  CMD_WRITE_ZEROES,
  DEFAULT_MAX_PAYLOAD_BYTES,
  EINVAL,
  ENOSPC,
  EPERM,
  FLAG_READ_ONLY,
  FLAG_SEND_CACHE,
  FLAG_SEND_FAST_ZERO,
  FLAG_SEND_FLUSH,
  FLAG_SEND_FUA,
  FLAG_SEND_TRIM,
  FLAG_SEND_WRITE_ZEROES,
  REQUEST_HEADER_BYTES,
  REQUEST_MAGIC,
  SIMPLE_REPLY_HEADER_BYTES,
  SIMPLE_REPLY_MAGIC,
} from './constants.js'

/*
 * Request (section "Request message"), 28 bytes + payload for NBD_CMD_WRITE:
 *
 *   0       4     6     8               16              24      28
 *   +-------+-----+-----+---------------+---------------+-------+-----------------+
 *   | magic |flags|type | cookie (u64)  | offset (u64)  | length| payload (WRITE) |
 *   +-------+-----+-----+---------------+---------------+-------+-----------------+
 *   magic = 0x25609513
 */

/** One parsed request. The cookie is kept as two 32-bit halves, echoed verbatim in the reply. */
export interface NbdRequest {
  flags: number
  type: number
  cookieHi: number
  cookieLo: number
  /**
   * Byte offset. Exact up to 2^53; above that it is rounded but still above any export size
   * (sizes are safe integers), so range checks stay correct without bigint.
   */
  offset: number
  length: number
  /** The WRITE payload; `undefined` for other commands or when the payload was discarded. */
  data: Buffer | undefined
  /** A WRITE whose payload exceeded the maximum payload and was read and dropped. */
  payloadDiscarded: boolean
  /** `data` came from `allocatePayload` (not a view of a socket chunk) and may be recycled. */
  pooled?: boolean
}

/** A violation after which the stream cannot be parsed any further: hard disconnect. */
export interface TransmissionProtocolError {
  type: 'error'
  reason: 'bad-magic' | 'payload-too-large'
  /** For 'payload-too-large': the request, so the server can reply EINVAL before closing. */
  request?: NbdRequest
}

export interface RequestParserOptions {
  /** Largest WRITE payload buffered (default 32 MiB). */
  maxPayloadBytes?: number
  /** Largest oversized WRITE payload skipped to stay in sync (default 2 × maxPayloadBytes). */
  maxDiscardBytes?: number
  /** Where payload buffers that span chunks come from (default `Buffer.allocUnsafe`). */
  allocatePayload?: (length: number) => Buffer
}

const enum State {
  Header,
  Payload,
  Skip,
  Dead,
}

export class RequestParser {
  readonly maxPayloadBytes: number
  readonly maxDiscardBytes: number
  #chunks: Buffer[] = []
  #pos = 0
  #state = State.Header
  readonly #hdr = Buffer.allocUnsafe(REQUEST_HEADER_BYTES)
  #hdrFill = 0
  #req: NbdRequest | undefined
  #payload: Buffer | undefined
  #fill = 0
  #skipLeft = 0

  constructor(options: RequestParserOptions = {}) {
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES
    this.maxDiscardBytes = options.maxDiscardBytes ?? 2 * this.maxPayloadBytes
    this.#allocatePayload = options.allocatePayload ?? ((n) => Buffer.allocUnsafe(n))
  }

  readonly #allocatePayload: (length: number) => Buffer

  /** Bytes pushed but not yet consumed (excluding a partially filled payload). */
  get bufferedBytes(): number {
    let n = -this.#pos
    for (const c of this.#chunks) n += c.length
    return n
  }

  /** Size of the payload buffer currently being filled (0 when none). */
  get pendingPayloadBytes(): number {
    return this.#payload?.length ?? 0
  }

  /** True when the parser stopped after a protocol error. */
  get dead(): boolean {
    return this.#state === State.Dead
  }

  push(chunk: Buffer): void {
    if (this.#state === State.Dead || chunk.length === 0) return
    this.#chunks.push(chunk)
  }

  /**
   * Where the next socket read may land directly: the unfilled rest of the WRITE payload being
   * assembled, when no buffered bytes come before it. Reading there moves a large payload from
   * the kernel into its final buffer with no copy and no per-chunk allocation.
   */
  payloadTarget(): Buffer | undefined {
    if (this.#state !== State.Payload || this.#chunks.length > 0) return undefined
    const payload = this.#payload!
    return this.#fill < payload.length ? payload.subarray(this.#fill) : undefined
  }

  /** Accounts for `n` bytes that were read straight into the buffer `payloadTarget()` gave. */
  payloadFilled(n: number): void {
    if (this.#state !== State.Payload || this.#chunks.length > 0 || n < 0 || n > this.#payload!.length - this.#fill) {
      throw new Error('payloadFilled() does not match the last payloadTarget()')
    }
    this.#fill += n
  }

  /** The next complete request, a fatal error, or `undefined` when more bytes are needed. */
  next(): NbdRequest | TransmissionProtocolError | undefined {
    for (;;) {
      if (this.#state === State.Payload && this.#fill === this.#payload!.length) return this.#completePayload()
      const chunk = this.#chunks[0]
      if (chunk === undefined || this.#state === State.Dead) return undefined
      const avail = chunk.length - this.#pos
      switch (this.#state) {
        case State.Header: {
          let hdr: Buffer
          let at: number
          if (this.#hdrFill === 0 && avail >= REQUEST_HEADER_BYTES) {
            hdr = chunk
            at = this.#pos
            this.#advance(REQUEST_HEADER_BYTES)
          } else {
            const n = Math.min(avail, REQUEST_HEADER_BYTES - this.#hdrFill)
            chunk.copy(this.#hdr, this.#hdrFill, this.#pos, this.#pos + n)
            this.#hdrFill += n
            this.#advance(n)
            if (this.#hdrFill < REQUEST_HEADER_BYTES) continue
            this.#hdrFill = 0
            hdr = this.#hdr
            at = 0
          }
          const out = this.#header(hdr, at)
          if (out !== undefined) return out
          continue
        }
        case State.Payload: {
          const payload = this.#payload!
          const need = payload.length - this.#fill
          const n = Math.min(avail, need)
          chunk.copy(payload, this.#fill, this.#pos, this.#pos + n)
          this.#fill += n
          this.#advance(n)
          if (this.#fill < payload.length) continue
          return this.#completePayload()
        }
        case State.Skip: {
          const n = Math.min(avail, this.#skipLeft)
          this.#skipLeft -= n
          this.#advance(n)
          if (this.#skipLeft > 0) continue
          const req = this.#req!
          this.#req = undefined
          this.#state = State.Header
          return req
        }
        default:
          return undefined
      }
    }
  }

  #completePayload(): NbdRequest {
    const req = this.#req!
    req.data = this.#payload
    this.#req = undefined
    this.#payload = undefined
    this.#state = State.Header
    return req
  }

  #advance(n: number): void {
    this.#pos += n
    const chunk = this.#chunks[0]
    if (chunk !== undefined && this.#pos >= chunk.length) {
      this.#chunks.shift()
      this.#pos = 0
    }
  }

  #header(b: Buffer, at: number): NbdRequest | TransmissionProtocolError | undefined {
    if (b.readUInt32BE(at) !== REQUEST_MAGIC) {
      this.#kill()
      return { type: 'error', reason: 'bad-magic' }
    }
    const req: NbdRequest = {
      flags: b.readUInt16BE(at + 4),
      type: b.readUInt16BE(at + 6),
      cookieHi: b.readUInt32BE(at + 8),
      cookieLo: b.readUInt32BE(at + 12),
      offset: b.readUInt32BE(at + 16) * 0x100000000 + b.readUInt32BE(at + 20),
      length: b.readUInt32BE(at + 24),
      data: undefined,
      payloadDiscarded: false,
    }
    if (req.type !== CMD_WRITE || req.length === 0) return req
    if (req.length > this.maxPayloadBytes) {
      if (req.length > this.maxDiscardBytes) {
        this.#kill()
        return { type: 'error', reason: 'payload-too-large', request: req }
      }
      req.payloadDiscarded = true
      this.#req = req
      this.#skipLeft = req.length
      this.#state = State.Skip
      return undefined
    }
    const chunk = this.#chunks[0]
    if (chunk !== undefined && chunk.length - this.#pos >= req.length) {
      // Whole payload in this chunk: hand out a view, no copy.
      req.data = chunk.subarray(this.#pos, this.#pos + req.length)
      this.#advance(req.length)
      return req
    }
    this.#req = req
    this.#payload = this.#allocatePayload(req.length)
    req.pooled = true
    this.#fill = 0
    this.#state = State.Payload
    return undefined
  }

  #kill(): void {
    this.#state = State.Dead
    this.#chunks = []
    this.#pos = 0
    this.#req = undefined
    this.#payload = undefined
  }
}

/** What request checks need to know about the export being served. */
export interface ExportLimits {
  sizeBytes: number
  /** The transmission flags sent to the client. */
  transmissionFlags: number
  blockSize: BlockSizeConstraints
}

const WRITE_COMMANDS_MASK = (1 << CMD_WRITE) | (1 << CMD_TRIM) | (1 << CMD_WRITE_ZEROES)

/**
 * Checks a request before it reaches the device; returns 0 or the NBD error to reply with.
 * Follows section "Error values" and the per-command text of "Request types":
 * - unknown command, BLOCK_STATUS (no metadata context can be negotiated) → EINVAL;
 * - WRITE, TRIM or WRITE_ZEROES on a read-only export → EPERM;
 * - a command whose transmission flag was not sent (FLUSH, TRIM, WRITE_ZEROES, CACHE) → EINVAL;
 * - a command flag unknown, not negotiated, or not documented for the command → EINVAL
 *   (FUA is accepted on every command once SEND_FUA is negotiated, as the spec requires);
 * - FLUSH with nonzero offset or length (reserved, MUST be zero) → EINVAL;
 * - READ/WRITE longer than the maximum payload → EINVAL;
 * - offset or length not aligned to the minimum block size → EINVAL;
 * - offset + length beyond the export: ENOSPC for WRITE and WRITE_ZEROES, EINVAL for READ,
 *   TRIM and CACHE. The sum is computed in floating point, so offsets near 2^64 cannot wrap.
 * DISC is not checked (it has no reply).
 */
export function checkRequest(req: NbdRequest, limits: ExportLimits): number {
  const type = req.type
  const tflags = limits.transmissionFlags
  switch (type) {
    case CMD_READ:
    case CMD_WRITE:
    case CMD_FLUSH:
    case CMD_TRIM:
    case CMD_WRITE_ZEROES:
      break
    case CMD_CACHE:
      if ((tflags & FLAG_SEND_CACHE) === 0) return EINVAL
      break
    default:
      return EINVAL
  }
  if ((tflags & FLAG_READ_ONLY) !== 0 && ((1 << type) & WRITE_COMMANDS_MASK) !== 0) return EPERM
  if (type === CMD_FLUSH && (tflags & FLAG_SEND_FLUSH) === 0) return EINVAL
  if (type === CMD_TRIM && (tflags & FLAG_SEND_TRIM) === 0) return EINVAL
  if (type === CMD_WRITE_ZEROES && (tflags & FLAG_SEND_WRITE_ZEROES) === 0) return EINVAL

  let allowed = (tflags & FLAG_SEND_FUA) !== 0 ? CMD_FLAG_FUA : 0
  if (type === CMD_WRITE_ZEROES) {
    allowed |= CMD_FLAG_NO_HOLE
    if ((tflags & FLAG_SEND_FAST_ZERO) !== 0) allowed |= CMD_FLAG_FAST_ZERO
  }
  // DF and REQ_ONE need structured replies, which are never negotiated: always EINVAL here.
  if ((req.flags & ~allowed) !== 0) return EINVAL

  if (type === CMD_FLUSH) return req.offset === 0 && req.length === 0 ? 0 : EINVAL

  const length = req.length
  if ((type === CMD_READ || type === CMD_WRITE) && (length > limits.blockSize.maximumPayloadBytes || req.payloadDiscarded)) {
    return EINVAL
  }
  const min = limits.blockSize.minimumBytes
  if (min > 1 && (req.offset % min !== 0 || length % min !== 0)) return EINVAL
  if (req.offset + length > limits.sizeBytes) return type === CMD_WRITE || type === CMD_WRITE_ZEROES ? ENOSPC : EINVAL
  return 0
}

/** True for commands the server must not reply to. */
export function isDisconnect(req: NbdRequest): boolean {
  return req.type === CMD_DISC
}

/*
 * Simple reply (section "Simple reply message"), 16 bytes + data for a successful READ:
 *
 *   0       4       8               16
 *   +-------+-------+---------------+-----------------------+
 *   | magic | error | cookie (u64)  | data (READ, error = 0)|
 *   +-------+-------+---------------+-----------------------+
 *   magic = 0x67446698
 */

/** Writes a simple reply header into `b` at `at` (16 bytes). */
export function writeSimpleReplyHeader(b: Buffer, at: number, error: number, cookieHi: number, cookieLo: number): void {
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, at)
  b.writeUInt32BE(error, at + 4)
  b.writeUInt32BE(cookieHi, at + 8)
  b.writeUInt32BE(cookieLo, at + 12)
}

/** A 16-byte simple reply without data. */
export function encodeSimpleReply(error: number, cookieHi: number, cookieLo: number): Buffer {
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_HEADER_BYTES)
  writeSimpleReplyHeader(b, 0, error, cookieHi, cookieLo)
  return b
}

/** Encodes a request (the client side); used by tests and tools. */
export function encodeRequest(
  type: number,
  options: { flags?: number; cookie?: bigint; offset?: bigint | number; length?: number; data?: Uint8Array } = {},
): Buffer {
  const data = options.data
  const length = options.length ?? data?.byteLength ?? 0
  const b = Buffer.alloc(REQUEST_HEADER_BYTES + (data?.byteLength ?? 0))
  b.writeUInt32BE(REQUEST_MAGIC, 0)
  b.writeUInt16BE(options.flags ?? 0, 4)
  b.writeUInt16BE(type, 6)
  b.writeBigUInt64BE(options.cookie ?? 0n, 8)
  b.writeBigUInt64BE(BigInt(options.offset ?? 0), 16)
  b.writeUInt32BE(length, 24)
  if (data !== undefined) b.set(data, REQUEST_HEADER_BYTES)
  return b
}
