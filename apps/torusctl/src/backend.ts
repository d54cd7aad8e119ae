import type { ClusterConfig, PeerStatus, RingDescriptor, RingType, StaleReplica, VolumeInfo, VolumeLock } from '@torus/core'
import type { DaemonStatus } from './client.js'

/** What `volume status` shows of a cluster volume. */
export interface VolumeHealth {
  info: VolumeInfo
  /** The write lock, when some gateway serves the volume. */
  lock: VolumeLock | undefined
  stale: StaleReplica[]
}

/** What `init` asks for; a missing field takes the backend's default. */
export interface InitRequest {
  blockSizeBytes?: number
  replication?: number
  ringType?: RingType
  /** Verifier of the cluster's transport secret (`makeSecretCheck`); etcd clusters only. */
  secretCheck?: string
}

/**
 * Everything torusctl's commands need from a cluster, whatever carries it: a `MetadataStore`
 * (etcd endpoints; a memory store in tests) or a torusd's HTTP control API (`torus://`).
 * Failures are TorusErrors with their stable codes.
 */
export interface ClusterBackend {
  /** Where this backend points, as the user wrote it (for messages). */
  readonly endpoint: string
  /** The etcd key prefix, for backends that have one (messages name it). */
  readonly prefix?: string | undefined
  /** `undefined` when the cluster has not been initialised. */
  getCluster(): Promise<ClusterConfig | undefined>
  /** Writes the cluster config once; TORUS_ALREADY_EXISTS when there is one (nothing changes). */
  initCluster(request: InitRequest): Promise<ClusterConfig>
  listVolumes(): Promise<VolumeInfo[]>
  createVolume(name: string, sizeBytes: number): Promise<VolumeInfo>
  /** TORUS_NOT_FOUND when absent; TORUS_LOCKED while the volume is in use. */
  deleteVolume(name: string): Promise<VolumeInfo>
  /** Every peer that ever reported (alive or not), sorted by id. */
  listPeers(): Promise<PeerStatus[]>
  /** Drops a down peer's record. TORUS_NOT_FOUND when unknown; TORUS_LOCKED while it is alive. */
  forgetPeer(id: string): Promise<void>
  /** The ring; version 0 with no members before the first change. TORUS_NOT_INITIALIZED before `init`. */
  getRing(): Promise<RingDescriptor>
  /**
   * Compare-and-swap on `next.version` (must be the current version + 1, else TORUS_CONFLICT
   * with `details.currentVersion` where the backend knows it). Resolves to the stored ring.
   */
  setRing(next: RingDescriptor, options?: { force?: boolean }): Promise<RingDescriptor>
  /**
   * A volume's lock and stale-replica records; only a cluster's metadata has them (absent for a
   * single torusd, which keeps one copy). TORUS_NOT_FOUND for an unknown volume.
   */
  volumeHealth?(name: string): Promise<VolumeHealth>
  /** The daemon's own status; only a single torusd has one (absent for etcd clusters). */
  daemonStatus?(): Promise<DaemonStatus>
  /** Releases connections so the process can exit. Safe to call twice. */
  close(): Promise<void>
}
