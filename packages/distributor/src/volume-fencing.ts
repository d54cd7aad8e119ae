import { BlockRef, silentLogger, type Logger, type MetadataStore, type VolumeId } from '@torus/core'
import type { DegradedHook, DistributedBlockStore } from './distributed-block-store.js'

type StaleRecords = Pick<MetadataStore, 'addStaleReplicas' | 'listStaleReplicas'>

/**
 * The `onDegraded` hook that makes a degraded write safe: it records, durably in metadata, that
 * the replicas that missed it are stale for that block, before the write is acknowledged.
 */
export function recordStaleInMetadata(metadata: StaleRecords): DegradedHook {
  return (ref, stale, { generation }) =>
    metadata.addStaleReplicas(stale.map((peer) => ({ volumeId: ref.volumeId, peer, index: ref.index, generation })))
}

/**
 * What a new lock holder does before serving I/O for a volume (DESIGN.md, data path point 5):
 *
 * 1. loads the volume's stale-replica records from metadata, so no stale copy is read;
 * 2. announces its generation to every ring member, so older holders are fenced there;
 * 3. marks every member it could not reach (after `retries` more tries, `retryDelayMs` apart)
 *    stale for the whole volume: such a member may still hold (or, if it is a stale gateway
 *    itself, accept) the old holder's writes, so it serves and gets nothing of this volume. The
 *    mark is made durable in metadata before the first write of this tenure (see
 *    `deferVolumeStale`): from then on this tenure's writes are ones it misses.
 *
 * Rejects with TORUS_LEASE_EXPIRED if a member has seen a newer generation (someone else took
 * the volume over), TORUS_UNAVAILABLE if no member confirmed or the owed records of an earlier
 * tenure could not be written. Returns the members that missed the announcement.
 */
export async function fenceVolume(
  store: DistributedBlockStore,
  metadata: StaleRecords,
  volumeId: VolumeId,
  generation: number,
  logger: Logger = silentLogger,
  { retries = 0, retryDelayMs = 1000 }: { retries?: number; retryDelayMs?: number } = {},
): Promise<{ missed: string[] }> {
  // Marks this gateway could not record during an earlier tenure: record them before forgetting.
  const owed = store.owedStale(volumeId)
  if (owed.length > 0) await metadata.addStaleReplicas(owed.map(({ peer, index }) => ({ volumeId, peer, index, generation })))
  store.resetStale(volumeId)
  for (const record of await metadata.listStaleReplicas(volumeId)) {
    if (record.index === 'all') store.markVolumeStale(volumeId, [record.peer])
    else store.markStale(new BlockRef(volumeId, record.index), [record.peer])
  }
  let { missed } = await store.tryAnnounce(volumeId, generation)
  // A peer that is restarting, or whose address the gateway has not learnt yet, is worth a
  // short wait: a volume-wide stale mark is never cleared until repair exists.
  for (let attempt = 1; missed.length > 0 && attempt <= retries; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, retryDelayMs))
    ;({ missed } = await store.tryAnnounce(volumeId, generation))
  }
  if (missed.length > 0) {
    // Durable before the first write, not before serving: a tenure that only reads (qemu-img
    // info, a read-only mount, nbdinfo) gave them nothing to miss, and must not shut them out
    // of the volume for good (nothing clears a volume-wide mark until repair exists).
    store.deferVolumeStale(volumeId, missed, async () => {
      await metadata.addStaleReplicas(missed.map((peer) => ({ volumeId, peer, index: 'all' as const, generation })))
      logger.warn('peers that missed the new generation are recorded stale for the whole volume; they serve nothing of it until repaired', { volumeId, generation, peers: missed })
    })
    logger.warn('peers missed the new generation; this holder reads nothing from them, and records them stale at its first write', { volumeId, generation, peers: missed })
  }
  return { missed }
}
