import { TorusError, UUID_RE } from '@torus/core'
import type { PeerInfo } from '@torus/core'


function invalid(message: string): TorusError {
  return new TorusError('TORUS_INVALID_ARGUMENT', `invalid peer info: ${message}`)
}

export function validatePeerId(id: unknown): string {
  if (typeof id !== 'string' || !UUID_RE.test(id)) {
    throw new TorusError('TORUS_INVALID_ARGUMENT', `invalid peer id ${JSON.stringify(id)}: expected a lowercase UUID`)
  }
  return id
}

/**
 * Checks a heartbeat record field by field and returns a frozen copy holding only the known
 * fields. Used on the way in (putPeer) and on the way out of a backend, where a record that
 * fails is reported as TORUS_CORRUPT by the caller.
 */
export function normalizePeerInfo(raw: unknown): PeerInfo {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('not an object')
  const r = raw as Record<string, unknown>
  const id = validatePeerId(r['id'])
  const text = (key: string, max = 256): string => {
    const v = r[key]
    if (typeof v !== 'string' || v.length === 0 || v.length > max) throw invalid(`${key} must be a string of 1 to ${max} characters`)
    return v
  }
  const count = (key: string): number => {
    const v = r[key]
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || !Number.isSafeInteger(Math.floor(v))) throw invalid(`${key} must be a number >= 0`)
    return v
  }
  const updatedAt = text('updatedAt', 64)
  if (Number.isNaN(Date.parse(updatedAt))) throw invalid('updatedAt must be an ISO 8601 time')
  const ringVersion = count('ringVersion')
  if (!Number.isSafeInteger(ringVersion)) throw invalid('ringVersion must be an integer')
  const info: PeerInfo = {
    id,
    address: text('address'),
    ...(r['nbdAddress'] === undefined ? {} : { nbdAddress: text('nbdAddress') }),
    capacityBytes: count('capacityBytes'),
    usedBytes: count('usedBytes'),
    rebalanceBytesPerSec: count('rebalanceBytesPerSec'),
    repairBytesPerSec: count('repairBytesPerSec'),
    ringVersion,
    version: text('version', 64),
    updatedAt,
  }
  return Object.freeze(info)
}
