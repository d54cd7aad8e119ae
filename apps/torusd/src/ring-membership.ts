import { isTorusError, TorusError, type Logger, type MetadataStore } from '@torus/core'

export type JoinResult = 'joined' | 'already-member' | 'refused'

const MAX_ATTEMPTS = 30

/**
 * Adds `peer` to the ring with `weight` (its capacity), by compare-and-swap on the ring version.
 * Several peers starting together race for the same version; the losers read the ring again
 * and retry after a short random pause. A `single` ring that already has a member is left
 * alone (an operator changes the ring type first).
 */
export async function joinRing(metadata: MetadataStore, peer: string, weight: number, logger: Logger): Promise<JoinResult> {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const ring = await metadata.getRing()
    if (ring === undefined) throw new TorusError('TORUS_NOT_INITIALIZED', 'cluster metadata is not initialised (run torusctl init)')
    if (ring.members.some((m) => m.peer === peer)) return 'already-member'
    if (ring.members.length > 0 && attempt === 1) {
      // Rebalance is not built: joining would move existing blocks' homes to this empty peer.
      const volumes = await metadata.listVolumes()
      if (volumes.length > 0) {
        logger.error('not joining the ring: the cluster already has volumes, and moving their blocks to a new peer (rebalance) is not built yet; their data would read as missing. Add peers before creating volumes', {
          ringVersion: ring.version,
          volumes: volumes.length,
        })
        return 'refused'
      }
    }
    if (ring.type === 'single' && ring.members.length > 0) {
      logger.warn('not joining: the ring is of type single and already has its one member; run torusctl ring set-type ketama, then torusctl peer add', {
        ringVersion: ring.version,
      })
      return 'refused'
    }
    try {
      await metadata.setRing({ ...ring, version: ring.version + 1, members: [...ring.members, { peer, weight }] })
      logger.info('joined the ring', { ringVersion: ring.version + 1, weight })
      return 'joined'
    } catch (err) {
      if (!isTorusError(err, 'TORUS_CONFLICT')) throw err
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.floor(Math.random() * 80 * attempt)))
    }
  }
  throw new TorusError('TORUS_CONFLICT', `could not join the ring after ${MAX_ATTEMPTS} attempts: it keeps changing`)
}
