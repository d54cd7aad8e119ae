/**
 * One error class, many stable codes. Codes are part of the public API
 * (see docs/errors.md); messages are not.
 */
export const TORUS_ERROR_CODES = [
  'TORUS_NOT_OPEN',
  'TORUS_NOT_FOUND',
  'TORUS_ALREADY_EXISTS',
  'TORUS_CONFLICT',
  'TORUS_LOCKED',
  'TORUS_LEASE_EXPIRED',
  'TORUS_UNAVAILABLE',
  'TORUS_TIMEOUT',
  'TORUS_ABORTED',
  'TORUS_CORRUPT',
  'TORUS_OUT_OF_SPACE',
  'TORUS_NOT_SUPPORTED',
  'TORUS_PROTOCOL',
  'TORUS_NOT_INITIALIZED',
  'TORUS_INVALID_ARGUMENT',
  'TORUS_READ_ONLY',
  'TORUS_INTERNAL',
] as const

export type TorusErrorCode = (typeof TORUS_ERROR_CODES)[number]

const RETRYABLE: ReadonlySet<TorusErrorCode> = new Set(['TORUS_UNAVAILABLE', 'TORUS_TIMEOUT'])

export interface TorusErrorOptions {
  cause?: unknown
  retryable?: boolean
  /** Extra structured context, e.g. `{ volume: 'pad' }`. */
  details?: Record<string, unknown>
}

export class TorusError extends Error {
  override readonly name = 'TorusError'
  readonly code: TorusErrorCode
  readonly retryable: boolean
  readonly details: Record<string, unknown> | undefined

  constructor(code: TorusErrorCode, message: string, options: TorusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.retryable = options.retryable ?? RETRYABLE.has(code)
    this.details = options.details
  }

  toJSON(): { code: TorusErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details }
  }
}

export function isTorusError(err: unknown, code?: TorusErrorCode): err is TorusError {
  return err instanceof TorusError && (code === undefined || err.code === code)
}

export function isTorusErrorCode(value: unknown): value is TorusErrorCode {
  return typeof value === 'string' && (TORUS_ERROR_CODES as readonly string[]).includes(value)
}

/** Throws TORUS_ABORTED when `signal` has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) {
    throw new TorusError('TORUS_ABORTED', 'operation aborted', { cause: signal.reason })
  }
}
