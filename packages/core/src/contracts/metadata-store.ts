import type { VolumeId } from '../ids.js'
import type { AbortOptions, LifecycleStatus } from './common.js'

export type RingType = 'ketama' | 'mod' | 'single'

/** Written once by `torusctl init` (or by a single embedded node on first start). */
export interface ClusterConfig {
  readonly blockSizeBytes: number
  /** Default replication for new volumes. */
  readonly replication: number
  readonly ringType: RingType
  /** ISO 8601. */
  readonly createdAt: string
}

export interface VolumeInfo {
  readonly name: string
  readonly id: VolumeId
  readonly type: 'block'
  readonly sizeBytes: number
  readonly blockSizeBytes: number
  readonly replication: number
  /** ISO 8601. */
  readonly createdAt: string
}

export interface CreateVolumeRequest {
  name: string
  sizeBytes: number
  /** Defaults to the cluster's block size. */
  blockSizeBytes?: number
  /** Defaults to the cluster's replication. */
  replication?: number
}

/** Opaque lease handle. Keys bound to a lease vanish when it expires or is revoked. */
export type LeaseId = string

export interface VolumeLock {
  readonly volume: string
  /** Who holds it, e.g. `torusd@host:4321`. Shown in TORUS_LOCKED messages. */
  readonly holder: string
  readonly leaseId: LeaseId
  /** Fencing token: strictly greater for every later acquisition of this volume's lock. */
  readonly generation: number
}

export interface MetadataSupports {
  /** State survives close() and a process crash. */
  readonly persistent: boolean
  readonly leases: boolean
  readonly watch: boolean
}

/**
 * The cluster's metadata: config, volumes, leases and volume locks. Implemented by the
 * embedded store (in process, persisted in the data dir) and by etcd.
 *
 * Every mutation is atomic: it is wholly applied or not at all, and (when
 * `supports.persistent`) durable before it resolves.
 *
 * Errors: TORUS_NOT_OPEN, TORUS_NOT_INITIALIZED (no cluster config yet), TORUS_ALREADY_EXISTS,
 * TORUS_NOT_FOUND, TORUS_LOCKED, TORUS_LEASE_EXPIRED, TORUS_INVALID_ARGUMENT (a bad name or
 * size from user input), TORUS_UNAVAILABLE (backend unreachable).
 */
export interface MetadataStore {
  readonly supports: MetadataSupports
  readonly status: LifecycleStatus
  open(options?: AbortOptions): Promise<void>
  /** Safe to call twice. Leases granted by this instance are not revoked by close. */
  close(): Promise<void>

  getClusterConfig(options?: AbortOptions): Promise<ClusterConfig | undefined>
  /** TORUS_ALREADY_EXISTS when a config is present (it is left unchanged). */
  initCluster(config: ClusterConfig, options?: AbortOptions): Promise<void>

  /** Allocates a fresh, never reused volume id. */
  createVolume(request: CreateVolumeRequest, options?: AbortOptions): Promise<VolumeInfo>
  getVolume(name: string, options?: AbortOptions): Promise<VolumeInfo | undefined>
  /** Sorted by name. */
  listVolumes(options?: AbortOptions): Promise<VolumeInfo[]>
  /** TORUS_NOT_FOUND when absent; TORUS_LOCKED while someone holds its lock. */
  deleteVolume(name: string, options?: AbortOptions): Promise<VolumeInfo>

  /** Grants a lease that expires `ttlMs` after the last keep-alive. */
  grantLease(ttlMs: number, options?: AbortOptions): Promise<LeaseId>
  /** Extends the lease by its TTL; TORUS_LEASE_EXPIRED when it is already gone. */
  keepAlive(leaseId: LeaseId, options?: AbortOptions): Promise<void>
  /** Ends the lease and removes every key bound to it. No-op when already gone. */
  revokeLease(leaseId: LeaseId, options?: AbortOptions): Promise<void>

  /** Takes the volume's write lock, bound to `leaseId`. TORUS_LOCKED names the current holder. */
  lockVolume(name: string, holder: string, leaseId: LeaseId, options?: AbortOptions): Promise<VolumeLock>
  getVolumeLock(name: string, options?: AbortOptions): Promise<VolumeLock | undefined>
  /** Releases the lock if `lock` still holds it (same generation); otherwise does nothing. */
  unlockVolume(lock: VolumeLock, options?: AbortOptions): Promise<void>
}
