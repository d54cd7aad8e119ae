/**
 * The one table that turns a device failure into an NBD error value.
 *
 * Spec: NetworkBlockDevice/nbd `doc/proto.md`, "Values" → "Error values" (the allowed values;
 * "SHOULD NOT return ENOMEM"; ENOTSUP only for WRITE_ZEROES with FAST_ZERO) and "Terminating
 * the transmission phase" (ESHUTDOWN while shutting down).
 */
import { isTorusErrorCode, type TorusErrorCode } from '@torus/core'
import { EINVAL, EIO, ENOSPC, ENOTSUP, EPERM, ESHUTDOWN, type NbdErrno } from './protocol/constants.js'

/** Torus error code ⇒ NBD error; any code not listed, and any non-Torus error, is EIO. */
export const NBD_ERRNO_BY_CODE: Readonly<Partial<Record<TorusErrorCode, NbdErrno>>> = {
  TORUS_OUT_OF_SPACE: ENOSPC,
  TORUS_NOT_SUPPORTED: EINVAL,
  TORUS_ABORTED: ESHUTDOWN,
  TORUS_READ_ONLY: EPERM,
  TORUS_INVALID_ARGUMENT: EINVAL,
}

/**
 * Maps an error thrown by a `BlockDevice` to the value for the reply's error field.
 * `fastZero` marks a WRITE_ZEROES sent with NBD_CMD_FLAG_FAST_ZERO, where the spec wants
 * ENOTSUP for "cannot zero faster than writing" (the device says TORUS_NOT_SUPPORTED).
 * A plain RangeError (a range the device refused) is EINVAL.
 */
export function nbdErrnoFor(err: unknown, fastZero = false): NbdErrno {
  // Compare codes, not classes: a device built against another copy of @torus/core still maps.
  const code: unknown = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  if (isTorusErrorCode(code)) {
    if (fastZero && code === 'TORUS_NOT_SUPPORTED') return ENOTSUP
    return NBD_ERRNO_BY_CODE[code] ?? EIO
  }
  if (err instanceof RangeError) return EINVAL
  return EIO
}
