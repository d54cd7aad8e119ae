/**
 * Sans-IO frame codec for the peer transport: frames in, typed messages out, and back. No
 * sockets, no timers. The wire spec is this comment plus the README's "Frame layout".
 *
 * A frame is one binary WebSocket message (or one loopback message). Every frame starts with
 * a fixed 6-byte header; a REQUEST adds its method; the rest is exactly one MessagePack value:
 *
 *   offset  0         1         2                          6
 *           +---------+---------+--------------------------+----------------------------+
 *   all     | version | type    | request id (u32, BE)     | body (1 MessagePack value) |
 *           +---------+---------+--------------------------+----------------------------+
 *
 *   offset  0         1         2                          6         7                7+m
 *           +---------+---------+--------------------------+---------+----------------+------+
 *   REQUEST | version | type=5  | request id (u32, BE)     | m (u8)  | method (ASCII) | body |
 *           +---------+---------+--------------------------+---------+----------------+------+
 *
 *   version  1 (PROTOCOL_VERSION); any other value is refused.
 *   type     1 HELLO      client → server  id 0  { cluster, peer, nonce: bin 32, maxFrameBytes }
 *            2 CHALLENGE  server → client  id 0  { cluster, peer, nonce: bin 32, maxFrameBytes }
 *            3 PROOF      client → server  id 0  { proof: bin 32 }   (client's HMAC, see handshake.ts)
 *            4 HELLO_OK   server → client  id 0  { proof: bin 32 }   (server's HMAC)
 *            5 REQUEST    either way       id ≥ 1, method, body: any TransportValue
 *            6 REPLY      either way       id of the request, body: any TransportValue
 *            7 ERROR      either way       id of the request, or 0 for "closing because":
 *                                          { code: string, message: string, details?: map }
 *   id       chosen by the requester, unique among its requests in flight on the connection.
 *   m        1-64; method characters are A-Z a-z 0-9 . _ : / -
 *
 * MessagePack is msgpackr with records off (maps stay maps) and `int64AsType: 'auto'`. Byte
 * strings travel as `bin` and decode as Buffer views into the frame: no copy. Encoding copies
 * each body once (into msgpackr's output buffer, which the header is written in front of via
 * RESERVE_START_SPACE, so header and body are one allocation-free contiguous frame). Given a
 * FrameBufferPool, a body with 64 KiB or more of byte strings is packed into a reused buffer
 * instead of fresh memory (frame-pool.ts says why and who releases it).
 *
 * Decoding validates everything: header, type, id rules, method, that the body is exactly one
 * MessagePack value, that it holds only TransportValue types (extensions such as Date, Set or
 * typed arrays are refused; a msgpackr record decodes to a plain map and cannot affect later
 * frames, since record definitions are reset per message) and that hello fields have the right
 * types and sizes. Any violation throws TORUS_PROTOCOL; a peer frame is external input and must
 * never crash the process.
 */
import { Packr, RESERVE_START_SPACE, Unpackr } from 'msgpackr'
import { TorusError, isTorusErrorCode, type TorusErrorCode, type TransportValue } from '@torus/core'
import type { FrameBufferPool } from './frame-pool.js'

export const PROTOCOL_VERSION = 1

export const FrameType = {
  HELLO: 1,
  CHALLENGE: 2,
  PROOF: 3,
  HELLO_OK: 4,
  REQUEST: 5,
  REPLY: 6,
  ERROR: 7,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

export const HEADER_BYTES = 6
export const METHOD_BYTES_MAX = 64
export const NONCE_BYTES = 32
export const PROOF_BYTES = 32
/** Nesting depth a body may have (arrays and maps). */
export const BODY_DEPTH_MAX = 32
/** Longest peer id or cluster id. */
export const ID_CHARS_MAX = 128
/** Largest id. Ids wrap back to 1. */
export const REQUEST_ID_MAX = 0xffff_ffff

const METHOD_RE = /^[A-Za-z0-9._:/-]{1,64}$/
// Printable ASCII without space: ids show up in logs and error messages.
const ID_RE = /^[\x21-\x7e]{1,128}$/

export interface HelloBody {
  cluster: string
  peer: string
  nonce: Uint8Array
  maxFrameBytes: number
}

/** The server's half of the hello: same fields as the client's. */
export type ChallengeBody = HelloBody

export interface ErrorBody {
  code: TorusErrorCode
  message: string
  details?: Record<string, TransportValue>
}

export type Frame =
  | { type: typeof FrameType.HELLO; id: 0; hello: HelloBody }
  | { type: typeof FrameType.CHALLENGE; id: 0; challenge: ChallengeBody }
  | { type: typeof FrameType.PROOF; id: 0; proof: Uint8Array }
  | { type: typeof FrameType.HELLO_OK; id: 0; proof: Uint8Array }
  | { type: typeof FrameType.REQUEST; id: number; method: string; body: TransportValue }
  | { type: typeof FrameType.REPLY; id: number; body: TransportValue }
  | { type: typeof FrameType.ERROR; id: number; error: ErrorBody }

// One encoder and one decoder for the process: pack/unpack are synchronous, and msgpackr never
// writes over a buffer it returned (each pack continues after the previous one, or starts a
// new buffer), so frames handed to a socket stay intact while they wait there.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true })
// 'auto' (number when safe, else bigint) is in msgpackr 1.11+ but missing from its typings.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' as 'bigint' })

export function isValidMethod(method: unknown): method is string {
  return typeof method === 'string' && METHOD_RE.test(method)
}

export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && ID_RE.test(id)
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * REQUEST frame. `method` must satisfy {@link isValidMethod}; `body` is checked here (TypeError).
 * With `pool`, a body carrying {@link POOLED_BYTES_MIN} or more bytes is packed into a buffer from
 * it; whoever sends the frame releases it (see frame-pool.ts).
 */
export function encodeRequest(id: number, method: string, body: TransportValue, pool?: FrameBufferPool): Uint8Array {
  const m = method.length
  const frame = packBody(body, HEADER_BYTES + 1 + m, pool)
  writeHeader(frame, FrameType.REQUEST, id)
  frame[HEADER_BYTES] = m
  for (let i = 0; i < m; i++) frame[HEADER_BYTES + 1 + i] = method.charCodeAt(i)
  return frame
}

/** REPLY frame; `pool` as for {@link encodeRequest}. */
export function encodeReply(id: number, body: TransportValue, pool?: FrameBufferPool): Uint8Array {
  const frame = packBody(body, HEADER_BYTES, pool)
  writeHeader(frame, FrameType.REPLY, id)
  return frame
}

/** ERROR frame for request `id` (0: the connection is closing for this reason). */
export function encodeError(id: number, error: ErrorBody): Uint8Array {
  let body: TransportValue = { code: error.code, message: error.message }
  if (error.details !== undefined && isTransportValue(error.details, 0)) body = { ...body, details: error.details }
  const frame = packBody(body, HEADER_BYTES)
  writeHeader(frame, FrameType.ERROR, id)
  return frame
}

export function encodeHello(hello: HelloBody): Uint8Array {
  const frame = packBody({ cluster: hello.cluster, peer: hello.peer, nonce: hello.nonce, maxFrameBytes: hello.maxFrameBytes }, HEADER_BYTES)
  writeHeader(frame, FrameType.HELLO, 0)
  return frame
}

export function encodeChallenge(challenge: ChallengeBody): Uint8Array {
  const { cluster, peer, nonce, maxFrameBytes } = challenge
  const frame = packBody({ cluster, peer, nonce, maxFrameBytes }, HEADER_BYTES)
  writeHeader(frame, FrameType.CHALLENGE, 0)
  return frame
}

export function encodeProof(proof: Uint8Array): Uint8Array {
  const frame = packBody({ proof }, HEADER_BYTES)
  writeHeader(frame, FrameType.PROOF, 0)
  return frame
}

export function encodeHelloOk(proof: Uint8Array): Uint8Array {
  const frame = packBody({ proof }, HEADER_BYTES)
  writeHeader(frame, FrameType.HELLO_OK, 0)
  return frame
}

/** Bodies whose top-level byte strings add up to this much are packed into a pooled buffer. */
export const POOLED_BYTES_MIN = 64 * 1024
// Room for the header, method and a body's other fields beside its byte strings. A body that
// needs more still encodes: msgpackr moves to a buffer of its own and the pooled one goes back.
const POOLED_SLACK_BYTES = 16 * 1024
// After a pooled pack msgpackr's output buffer must be one we never lend: its position and buffer
// are module-wide state shared by every Packr, and the next plain pack would otherwise continue
// inside the pooled buffer, which is reused as soon as its frame is written.
const FRESH_TARGET_BYTES = 8 * 1024

function packBody(body: TransportValue, headerBytes: number, pool?: FrameBufferPool): Uint8Array {
  if (!isTransportValue(body, 0)) throw new TypeError('body is not a TransportValue (plain data, Uint8Array for bytes, at most 32 levels deep)')
  const bytes = pool === undefined ? 0 : topLevelBytes(body)
  if (bytes < POOLED_BYTES_MIN) {
    try {
      return packr.pack(body, RESERVE_START_SPACE | headerBytes)
    } catch (err) {
      throw new TypeError(`body cannot be encoded: ${(err as Error).message}`)
    }
  }
  const buf = pool!.acquire(bytes + headerBytes + POOLED_SLACK_BYTES)
  let frame: Uint8Array
  try {
    packr.useBuffer(buf)
    frame = packr.pack(body, RESERVE_START_SPACE | headerBytes)
  } catch (err) {
    pool!.release(buf)
    throw new TypeError(`body cannot be encoded: ${(err as Error).message}`)
  } finally {
    packr.useBuffer(Buffer.allocUnsafeSlow(FRESH_TARGET_BYTES))
  }
  // Outgrew it (msgpackr copied to a buffer of its own): the pooled one goes straight back.
  if (!pool!.lend(buf, frame)) pool!.release(buf)
  return frame
}

/** Sum of the byte strings directly in `body` (a map's values, or `body` itself). */
function topLevelBytes(body: TransportValue): number {
  if (body instanceof Uint8Array) return body.byteLength
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 0
  let n = 0
  for (const key in body) {
    const v = (body as Record<string, unknown>)[key]
    if (v instanceof Uint8Array) n += v.byteLength
  }
  return n
}

function writeHeader(frame: Uint8Array, type: FrameType, id: number): void {
  frame[0] = PROTOCOL_VERSION
  frame[1] = type
  frame[2] = id >>> 24
  frame[3] = (id >>> 16) & 0xff
  frame[4] = (id >>> 8) & 0xff
  frame[5] = id & 0xff
}

/**
 * True when `value` is plain data the codec carries (see TransportValue). Rejects Date, Map,
 * Set, class instances, typed arrays other than Uint8Array, functions, symbols, and nesting
 * deeper than {@link BODY_DEPTH_MAX} (which also stops cycles).
 */
export function isTransportValue(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return true
    case 'object': {
      if (value === null || value instanceof Uint8Array) return value === null || isPlainBytes(value)
      if (depth >= BODY_DEPTH_MAX) return false
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!isTransportValue(value[i], depth + 1)) return false
        return true
      }
      const proto: unknown = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) return false
      for (const key in value) if (!isTransportValue((value as Record<string, unknown>)[key], depth + 1)) return false
      return true
    }
    default:
      return false
  }
}

function isPlainBytes(value: Uint8Array): boolean {
  // Uint8Array or Buffer; a Uint8ClampedArray is not an instance, a subclass we do not know is.
  const ctor = value.constructor
  return ctor === Uint8Array || ctor === Buffer
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Frame-level violation: the peer is broken or hostile; the connection must close. */
function protocolError(message: string, details?: Record<string, unknown>): TorusError {
  return new TorusError('TORUS_PROTOCOL', message, details === undefined ? {} : { details })
}

/**
 * Decodes one frame. `maxFrameBytes` is the caller's limit (the socket layer normally enforces
 * it first). Throws TORUS_PROTOCOL for anything malformed.
 */
export function decodeFrame(frame: Uint8Array, maxFrameBytes: number): Frame {
  const length = frame.byteLength
  if (length > maxFrameBytes) throw protocolError('frame too large', { frameBytes: length, maxFrameBytes })
  if (length < HEADER_BYTES + 1) throw protocolError('frame too short', { frameBytes: length })
  if (frame[0] !== PROTOCOL_VERSION) throw protocolError('unsupported protocol version', { version: frame[0] })
  const type = frame[1]!
  const id = ((frame[2]! << 24) | (frame[3]! << 16) | (frame[4]! << 8) | frame[5]!) >>> 0

  switch (type) {
    case FrameType.REQUEST: {
      if (id === 0) throw protocolError('request id 0')
      const m = frame[HEADER_BYTES]!
      if (m === 0 || m > METHOD_BYTES_MAX) throw protocolError('bad method length', { methodBytes: m })
      const bodyAt = HEADER_BYTES + 1 + m
      if (length < bodyAt + 1) throw protocolError('frame too short', { frameBytes: length })
      let method = ''
      for (let i = HEADER_BYTES + 1; i < bodyAt; i++) {
        const c = frame[i]!
        if (!isMethodChar(c)) throw protocolError('bad method character', { offset: i })
        method += String.fromCharCode(c)
      }
      return { type, id, method, body: decodeBody(frame, bodyAt) }
    }
    case FrameType.REPLY:
      if (id === 0) throw protocolError('reply id 0')
      return { type, id, body: decodeBody(frame, HEADER_BYTES) }
    case FrameType.ERROR:
      return { type, id, error: decodeErrorBody(decodeBody(frame, HEADER_BYTES)) }
    case FrameType.HELLO:
      requireZeroId(id)
      return { type, id: 0, hello: decodeHelloBody(decodeRecord(frame)) }
    case FrameType.CHALLENGE:
      requireZeroId(id)
      return { type, id: 0, challenge: decodeHelloBody(decodeRecord(frame)) }
    case FrameType.PROOF:
      requireZeroId(id)
      return { type, id: 0, proof: bytesField(decodeRecord(frame), 'proof', PROOF_BYTES) }
    case FrameType.HELLO_OK:
      requireZeroId(id)
      return { type, id: 0, proof: bytesField(decodeRecord(frame), 'proof', PROOF_BYTES) }
    default:
      throw protocolError('unknown frame type', { type })
  }
}

function isMethodChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x3a) || // 0-9 and ':'
    c === 0x2e || c === 0x5f || c === 0x2f || c === 0x2d // . _ / -
  )
}

function requireZeroId(id: number): void {
  if (id !== 0) throw protocolError('hello frames carry id 0', { id })
}

function decodeBody(frame: Uint8Array, offset: number): TransportValue {
  let value: unknown
  try {
    // A view, not a copy: bin values come back as views into `frame`.
    value = unpackr.unpack(frame.subarray(offset))
  } catch (err) {
    throw new TorusError('TORUS_PROTOCOL', 'malformed body', { cause: err })
  }
  if (!isTransportValue(value, 0)) throw protocolError('body holds a value that is not plain data')
  return value as TransportValue
}

function decodeRecord(frame: Uint8Array): Record<string, unknown> {
  const b = decodeBody(frame, HEADER_BYTES)
  if (b === null || typeof b !== 'object' || Array.isArray(b) || b instanceof Uint8Array) throw protocolError('hello body must be a map')
  return b as Record<string, unknown>
}

function decodeHelloBody(b: Record<string, unknown>): HelloBody {
  return { cluster: idField(b, 'cluster'), peer: idField(b, 'peer'), nonce: bytesField(b, 'nonce', NONCE_BYTES), maxFrameBytes: sizeField(b, 'maxFrameBytes') }
}

function idField(b: Record<string, unknown>, name: string): string {
  const v = b[name]
  if (!isValidId(v)) throw protocolError(`hello field ${name} must be 1-${ID_CHARS_MAX} printable characters`)
  return v
}

function bytesField(b: Record<string, unknown>, name: string, bytes: number): Uint8Array {
  const v = b[name]
  if (!(v instanceof Uint8Array) || v.byteLength !== bytes) throw protocolError(`hello field ${name} must be ${bytes} bytes`)
  return v
}

function sizeField(b: Record<string, unknown>, name: string): number {
  const v = b[name]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1024) throw protocolError(`hello field ${name} must be an integer >= 1024`)
  return v
}

function decodeErrorBody(b: TransportValue): ErrorBody {
  if (b === null || typeof b !== 'object' || Array.isArray(b) || b instanceof Uint8Array) throw protocolError('error body must be a map')
  const { code, message, details } = b as Record<string, TransportValue>
  if (typeof code !== 'string' || code.length > 64) throw protocolError('error code must be a string')
  if (typeof message !== 'string') throw protocolError('error message must be a string')
  if (details !== undefined && (details === null || typeof details !== 'object' || Array.isArray(details) || details instanceof Uint8Array)) {
    throw protocolError('error details must be a map')
  }
  const out: ErrorBody = isTorusErrorCode(code)
    ? { code, message }
    : // A newer peer may know codes we do not: keep its code where a caller can see it.
      { code: 'TORUS_INTERNAL', message, details: { remoteCode: code } }
  if (details !== undefined) out.details = { ...(details as Record<string, TransportValue>), ...out.details }
  return out
}
