/**
 * @packageDocumentation
 * Metadata stores for Torus: {@link AbstractMetadataStore} (validation and lifecycle for any
 * backend), {@link MemoryMetadataStore} (in memory, on an injectable clock, for tests and
 * composites) and {@link EmbeddedMetadataStore} (the same model persisted atomically to
 * `<dir>/metadata.json`, for a single node running without etcd). All implement the
 * `MetadataStore` contract from `@torus/core`, re-exported here. Also the record checks every
 * backend applies to what it reads back, and {@link makeSecretCheck}/{@link verifySecretCheck}
 * for `ClusterConfig.secretCheck`.
 */
export type {
  ClusterConfig,
  CreateVolumeRequest,
  LeaseId,
  MetadataStore,
  MetadataSupports,
  RingType,
  VolumeInfo,
  VolumeLock,
  PeerInfo,
  PeerStatus,
  RingDescriptor,
  StaleReplica,
  StaleReplicaKey,
  StaleReplicaClear,
  MetadataWatch,
  WatchRingOptions,
} from '@torus/core'
export { AbstractMetadataStore } from './abstract-metadata-store.js'
export { MemoryMetadataStore, type MemoryMetadataStoreOptions } from './memory-metadata-store.js'
export { EmbeddedMetadataStore, METADATA_FILE_NAME, type EmbeddedMetadataStoreOptions } from './embedded-metadata-store.js'
export { MetadataModel, ringConflict, type LeaseState, type PeerRecord } from './metadata-model.js'
export { normalizePeerInfo, validatePeerId } from './peer-info.js'
export {
  compareStaleReplicas,
  normalizeClusterConfig,
  normalizeStaleReplica,
  normalizeStaleReplicaKey,
  normalizeStaleReplicaClear,
  normalizeVolumeInfo,
  staleReplicaPath,
  validateVolumeId,
} from './records.js'
export { makeSecretCheck, verifySecretCheck, SECRET_CHECK_RE } from './secret-check.js'
export { METADATA_FORMAT, METADATA_FORMAT_VERSION, type MetadataFileV1 } from './metadata-file.js'
