import { normalizeRingDescriptor, TorusError, type PeerId, type RingDescriptor } from '@torus/core'

/** A descriptor after validation: members sorted by peer id, frozen. */
export interface NormalizedRing {
  readonly descriptor: RingDescriptor
  readonly peers: readonly PeerId[]
  readonly weights: readonly number[]
}

/**
 * Checks a descriptor with core's `normalizeRingDescriptor` (placement needs at least one
 * member for `mod` and `ketama`) and splits out the sorted peers and weights.
 */
export function normalizeDescriptor(input: RingDescriptor): NormalizedRing {
  const descriptor = normalizeRingDescriptor(input)
  return {
    descriptor,
    peers: Object.freeze(descriptor.members.map((m) => m.peer as PeerId)),
    weights: Object.freeze(descriptor.members.map((m) => m.weight)),
  }
}

/** `count ?? replication`, checked. */
export function resolveCount(count: number | undefined, replication: number): number {
  if (count === undefined) return replication
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new TorusError('TORUS_INVALID_ARGUMENT', `count must be a non-negative integer, got ${String(count)}`)
  }
  return count
}
