/**
 * @packageDocumentation
 * {@link EtcdMetadataStore}: the Torus `MetadataStore` contract over etcd v3, for multi-node
 * clusters. Every mutation is one etcd transaction, leases are etcd leases, and a volume lock's
 * fencing generation is its key's create revision. This is the only package that imports
 * `etcd3`; {@link mapEtcdError} turns the client's errors into TorusError codes.
 */
export type {
  ClusterConfig,
  CreateVolumeRequest,
  LeaseId,
  MetadataStore,
  MetadataSupports,
  StaleReplica,
  StaleReplicaKey,
  StaleReplicaClear,
  VolumeInfo,
  VolumeLock,
} from '@torus/core'
export { EtcdMetadataStore, DEFAULT_PREFIX, ETCD_KEYS, type EtcdMetadataStoreOptions } from './etcd-metadata-store.js'
export { STALE_RECORDS_PER_TXN } from './etcd-stale-replicas.js'
export { mapEtcdError } from './map-etcd-error.js'
