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
 *    stale for the whole volume, durably in metadata and then in memory, before serving: such a
 *    member may still hold (or, if it is a stale gateway itself, accept) the old holder's
 *    writes, so it serves and gets nothing of this volume until repair (`repairVolume`) brings
 *    it back.
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
  // short wait: a volume-wide stale mark costs a copy of everything it holds of the volume.
  for (let attempt = 1; missed.length > 0 && attempt <= retries; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, retryDelayMs))
    ;({ missed } = await store.tryAnnounce(volumeId, generation))
  }
  if (missed.length > 0) {
    // Durable before serving, even a tenure that only reads: a member that missed this
    // generation may hold writes of the old holder that reached no other replica (a holder cut
    // off with its own replica keeps writing there), and a later holder, which knows only the
    // metadata, must not read them. Repair brings the member back once it is reachable.
    await metadata.addStaleReplicas(missed.map((peer) => ({ volumeId, peer, index: 'all' as const, generation })))
    store.markVolumeStale(volumeId, missed)
    logger.warn('peers missed the new generation: recorded stale for the whole volume; they serve nothing of it until repair brings them back', { volumeId, generation, peers: missed })
  }
  return { missed }
}
