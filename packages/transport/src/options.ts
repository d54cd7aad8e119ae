import { silentLogger, systemClock, systemRandom, type Clock, type Logger, type Random, type TransportOptions } from '@torus/core'
import { isValidId } from './frame-codec.js'

export const DEFAULTS = {
  maxFrameBytes: 16 * 1024 * 1024,
  maxConcurrentHandlers: 64,
  maxBufferedBytes: 8 * 1024 * 1024,
  maxQueuedBytes: 32 * 1024 * 1024,
  requestTimeoutMs: 30_000,
  helloTimeoutMs: 5_000,
  reconnectMinDelayMs: 100,
  reconnectMaxDelayMs: 10_000,
} as const

/** Shortest cluster secret accepted, in bytes. */
export const SECRET_BYTES_MIN = 16
/** Largest `maxFrameBytes`: 256 MiB. */
export const FRAME_BYTES_LIMIT = 256 * 1024 * 1024

export interface ResolvedOptions {
  clusterId: string
  peerId: string
  secret: Uint8Array
  maxFrameBytes: number
  maxConcurrentHandlers: number
  maxBufferedBytes: number
  maxQueuedBytes: number
  requestTimeoutMs: number
  helloTimeoutMs: number
  reconnectMinDelayMs: number
  reconnectMaxDelayMs: number
  logger: Logger
  clock: Clock
  random: Random
}

/** Validates options (TypeError/RangeError: these are programmer or config mistakes) and fills defaults. */
export function resolveOptions(options: TransportOptions, component: string): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('transport options are required')
  const { clusterId, peerId, secret } = options
  if (!isValidId(clusterId)) throw new RangeError(`clusterId must be 1-128 printable ASCII characters, got ${JSON.stringify(clusterId)}`)
  if (!isValidId(peerId)) throw new RangeError(`peerId must be 1-128 printable ASCII characters, got ${JSON.stringify(peerId)}`)
  let key: Uint8Array
  if (typeof secret === 'string') key = Buffer.from(secret, 'utf8')
  else if (secret instanceof Uint8Array) key = Uint8Array.prototype.slice.call(secret)
  else throw new TypeError('secret must be a string or a Uint8Array')
  if (key.byteLength < SECRET_BYTES_MIN) throw new RangeError(`secret must be at least ${SECRET_BYTES_MIN} bytes`)

  const resolved: ResolvedOptions = {
    clusterId,
    peerId,
    secret: key,
    maxFrameBytes: int(options.maxFrameBytes, DEFAULTS.maxFrameBytes, 'maxFrameBytes', 1024, FRAME_BYTES_LIMIT),
    maxConcurrentHandlers: int(options.maxConcurrentHandlers, DEFAULTS.maxConcurrentHandlers, 'maxConcurrentHandlers', 1),
    maxBufferedBytes: int(options.maxBufferedBytes, DEFAULTS.maxBufferedBytes, 'maxBufferedBytes', 1),
    maxQueuedBytes: int(options.maxQueuedBytes, DEFAULTS.maxQueuedBytes, 'maxQueuedBytes', 0),
    requestTimeoutMs: int(options.requestTimeoutMs, DEFAULTS.requestTimeoutMs, 'requestTimeoutMs', 1),
    helloTimeoutMs: int(options.helloTimeoutMs, DEFAULTS.helloTimeoutMs, 'helloTimeoutMs', 1),
    reconnectMinDelayMs: int(options.reconnectMinDelayMs, DEFAULTS.reconnectMinDelayMs, 'reconnectMinDelayMs', 1),
    reconnectMaxDelayMs: int(options.reconnectMaxDelayMs, DEFAULTS.reconnectMaxDelayMs, 'reconnectMaxDelayMs', 1),
    logger: (options.logger ?? silentLogger).child({ component, local: peerId }),
    clock: options.clock ?? systemClock,
    random: options.random ?? systemRandom,
  }
  if (resolved.reconnectMaxDelayMs < resolved.reconnectMinDelayMs) throw new RangeError('reconnectMaxDelayMs must be >= reconnectMinDelayMs')
  return resolved
}

function int(value: number | undefined, fallback: number, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

/** Validates a per-call timeout: a positive safe integer or undefined. */
export function timeoutOption(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new RangeError(`timeoutMs must be a positive number, got ${String(value)}`)
  return value
}
