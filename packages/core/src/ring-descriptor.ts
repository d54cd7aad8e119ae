import { TorusError } from './errors.js'
import { peerId, type PeerId } from './ids.js'
import type { RingDescriptor, RingType } from './contracts/index.js'

/** Every ring type, for validation and command-line choices. */
export const RING_TYPES = ['ketama', 'mod', 'single'] as const satisfies readonly RingType[]
const RING_TYPE_SET: ReadonlySet<string> = new Set<string>(RING_TYPES)

export interface NormalizeRingOptions {
  /**
   * Accept a ring with no members. Metadata stores do (a new cluster's ring is empty until the
   * first `peer add`); placement does not.
   */
  allowEmpty?: boolean
}

function invalid(message: string, details?: Record<string, unknown>): TorusError {
  return new TorusError('TORUS_INVALID_ARGUMENT', `invalid ring descriptor: ${message}`, details === undefined ? {} : { details })
}

/**
 * Checks a ring descriptor (it may come from metadata or the command line, so everything is
 * checked at run time) and returns a frozen copy with members sorted by peer id, which makes
 * placement independent of member order. Throws TORUS_INVALID_ARGUMENT.
 */
export function normalizeRingDescriptor(input: RingDescriptor, options: NormalizeRingOptions = {}): RingDescriptor {
  if (typeof input !== 'object' || input === null) throw invalid('not an object')
  const { version, type, replication, members } = input as unknown as Record<string, unknown>
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
    throw invalid(`version must be a non-negative integer, got ${String(version)}`)
  }
  if (typeof type !== 'string' || !RING_TYPE_SET.has(type)) throw invalid(`unknown type ${JSON.stringify(type)}: use single, mod or ketama`)
  if (typeof replication !== 'number' || !Number.isSafeInteger(replication) || replication < 1 || replication > 16) {
    throw invalid(`replication must be an integer from 1 to 16, got ${String(replication)}`)
  }
  if (!Array.isArray(members)) throw invalid('members must be an array')
  if (type === 'single' && members.length > 1) throw invalid(`a single ring has at most one member, got ${members.length}`)
  if (type !== 'single' && members.length === 0 && options.allowEmpty !== true) throw invalid(`a ${type} ring needs at least one member`)

  const seen = new Set<string>()
  const list: Array<{ peer: PeerId; weight: number }> = []
  for (const [i, m] of (members as unknown[]).entries()) {
    if (typeof m !== 'object' || m === null) throw invalid(`members[${i}] is not an object`)
    const { peer, weight } = m as Record<string, unknown>
    let id: PeerId
    try {
      id = peerId(String(peer))
    } catch {
      throw invalid(`members[${i}].peer is not a peer UUID: ${JSON.stringify(peer)}`)
    }
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
      throw invalid(`members[${i}].weight must be a finite number > 0, got ${String(weight)}`, { peer: id })
    }
    if (seen.has(id)) throw invalid(`duplicate peer ${id}`, { peer: id })
    seen.add(id)
    list.push({ peer: id, weight })
  }
  list.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
  return Object.freeze({
    version,
    type: type as RingType,
    replication,
    members: Object.freeze(list.map((m) => Object.freeze({ peer: m.peer, weight: m.weight }))),
  })
}
