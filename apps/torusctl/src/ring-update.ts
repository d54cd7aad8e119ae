import { isTorusError, TorusError } from '@torus/core'
import type { RingDescriptor, RingMember, RingType } from '@torus/core'
import type { ClusterBackend } from './backend.js'

/** Another admin (or torusd) changing the ring at the same moment makes us re-read; this many tries, then give up. */
export const MAX_RING_ATTEMPTS = 10

/** What a command wants the ring to become; absent fields stay as they are. */
export interface RingPlan {
  type?: RingType
  replication?: number
  members?: readonly RingMember[]
  /** Lines for the operator, e.g. "peer X is already a member". */
  notes: string[]
}

export interface RingUpdate {
  /** False when the plan changed nothing (no write happened). */
  changed: boolean
  previousVersion: number
  /** The ring after the update (the ring as read, when nothing changed). */
  ring: RingDescriptor
  notes: string[]
  /** Reads it took; more than 1 means someone else changed the ring meanwhile. */
  attempts: number
}

/**
 * Read-modify-write of the ring with compare-and-swap on its version: reads the ring, asks
 * `plan` for the change, writes version + 1, and on TORUS_CONFLICT starts over from a fresh
 * read (so `plan` always decides on the ring it replaces). `plan` may throw to refuse.
 */
export async function updateRing(
  backend: ClusterBackend,
  plan: (ring: RingDescriptor) => RingPlan,
  { force = false, maxAttempts = MAX_RING_ATTEMPTS }: { force?: boolean; maxAttempts?: number } = {},
): Promise<RingUpdate> {
  for (let attempt = 1; ; attempt++) {
    const ring = await backend.getRing()
    const p = plan(ring)
    const next: RingDescriptor = {
      version: ring.version + 1,
      type: p.type ?? ring.type,
      replication: p.replication ?? ring.replication,
      members: p.members ?? ring.members,
    }
    if (sameRing(ring, next)) return { changed: false, previousVersion: ring.version, ring, notes: p.notes, attempts: attempt }
    // An empty ring placed nothing, so no volume can have data to lose yet.
    if (!force && attempt === 1 && ring.members.length > 0) await refuseWhileVolumesExist(backend)
    try {
      // A torusd re-checks for volumes itself (other clients use its API too): tell it we asked.
      const stored = await backend.setRing(next, { force })
      return { changed: true, previousVersion: ring.version, ring: stored, notes: p.notes, attempts: attempt }
    } catch (err) {
      if (!isTorusError(err, 'TORUS_CONFLICT')) throw err
      if (attempt >= maxAttempts) {
        throw new TorusError('TORUS_CONFLICT', `the ring kept changing while we updated it; gave up after ${attempt} attempts (try again)`, { cause: err })
      }
    }
  }
}

function sameRing(a: RingDescriptor, b: RingDescriptor): boolean {
  if (a.type !== b.type || a.replication !== b.replication || a.members.length !== b.members.length) return false
  const weights = new Map(a.members.map((m) => [m.peer, m.weight]))
  return b.members.every((m) => weights.get(m.peer) === m.weight)
}

/**
 * Rebalance is not built: a ring change moves the home of existing blocks to peers that do not
 * hold them, and reads there would find nothing. So the ring changes only while no volume exists,
 * unless the operator says the data does not matter (--force).
 */
async function refuseWhileVolumesExist(backend: ClusterBackend): Promise<void> {
  const volumes = await backend.listVolumes()
  if (volumes.length === 0) return
  const names = volumes.slice(0, 5).map((v) => v.name).join(', ') + (volumes.length > 5 ? ', …' : '')
  throw new TorusError(
    'TORUS_NOT_SUPPORTED',
    `the cluster has ${volumes.length} volume(s) (${names}), and moving their blocks to new owners (rebalance) is not built yet: after this change their data would read as missing. Change the ring before creating volumes, or pass --force if their contents do not matter`,
    { details: { volumes: volumes.length } },
  )
}
