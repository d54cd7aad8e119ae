import { TorusError } from '@torus/core'
import {
  ClientClosedError,
  EtcdLeaseInvalidError,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  isRecoverableError,
} from 'etcd3'

/**
 * Translates an error thrown by the etcd3 client (or grpc below it) into a TorusError. This is
 * the only place that knows etcd3's error classes; every call into the client goes through it
 * once. TorusErrors pass through unchanged, so a caller may wrap a block that also throws its own.
 * The original error is kept as `cause`.
 */
export function mapEtcdError(err: unknown, context: { leaseId?: string } = {}): TorusError {
  if (err instanceof TorusError) return err
  const cause = err
  // grpc appends an empty "Resolution note:"; cockatiel's breaker speaks of circuits. Neither helps an operator.
  const message =
    err instanceof Error && 'isBrokenCircuitError' in err
      ? 'recent calls failed, pausing a few seconds before trying again'
      : (err instanceof Error ? err.message : String(err)).replace(/\s*Resolution note:\s*$/, '')
  if (err instanceof EtcdLeaseInvalidError || message.includes('requested lease not found')) {
    const what = context.leaseId === undefined ? 'lease' : `lease ${context.leaseId}`
    const details = context.leaseId === undefined ? undefined : { leaseId: context.leaseId }
    return new TorusError('TORUS_LEASE_EXPIRED', `${what} has expired or was revoked`, details === undefined ? { cause } : { cause, details })
  }
  if (err instanceof ClientClosedError) {
    return new TorusError('TORUS_NOT_OPEN', 'etcd client is closed', { cause })
  }
  if (err instanceof GRPCDeadlineExceededError) {
    return new TorusError('TORUS_TIMEOUT', `etcd did not answer in time: ${message}`, { cause })
  }
  // Unavailable, cancelled and every other error the client itself would retry (including the
  // circuit breaker's "breaker is open" once a host kept failing) mean etcd cannot be reached.
  if (
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCCancelledError ||
    (err instanceof Error && (isRecoverableError(err) || 'isBrokenCircuitError' in err || /ECONNREFUSED|No connection established/i.test(message)))
  ) {
    return new TorusError('TORUS_UNAVAILABLE', `etcd is unavailable: ${message}`, { cause })
  }
  return new TorusError('TORUS_INTERNAL', `unexpected etcd error: ${message}`, { cause })
}
