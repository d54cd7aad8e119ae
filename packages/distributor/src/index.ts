/**
 * @packageDocumentation
 * The replicated data path: {@link DistributedBlockStore}, one peer's gateway that fans block
 * writes out to the replicas the ring names and reads from the first healthy one, and
 * {@link Replica} / {@link serveReplica}, the replica side with generation fencing and per-sector
 * CRC-32C checksums.
 */
export { DistributedBlockStore, type DistributedBlockStoreOptions, type DegradedHook, type RepairOptions, type RepairReport } from './distributed-block-store.js'
export { Replica, serveReplica, REPLICA_METHODS, LIST_LIMIT_MAX, SECTOR_BYTES, type ReplicaOptions } from './replica.js'
export { crc32c, crc32cNative } from './crc32c.js'
export { ClusterView, type ClusterViewOptions } from './cluster-view.js'
export { fenceVolume, recordStaleInMetadata } from './volume-fencing.js'
export { RepairLoop, type RepairLoopOptions, type RepairStats } from './repair-loop.js'
