import type { PeerId, VolumeId } from '../ids.js'
import type { AbortOptions, LifecycleStatus } from './common.js'
import type { RingDescriptor } from './ring.js'

export type RingType = 'ketama' | 'mod' | 'single'

/** Written once by `torusctl init` (or by a single embedded node on first start). */
export interface ClusterConfig {
  /**
   * The cluster's UUID, assigned by `initCluster` when not given. Data dirs remember it so a
   * daemon pointed at another cluster refuses to start. Absent in clusters created before it.
   */
  readonly id?: string
  readonly blockSizeBytes: number
  /** Default replication for new volumes. */
  readonly replication: number
  readonly ringType: RingType
  /** ISO 8601. */
  readonly createdAt: string
  /**
   * A verifier of the cluster's transport secret, `"<salt>:<mac>"`: 32 lowercase hex digits of
   * salt, then the 64 hex digits of HMAC-SHA256(key = secret, data = `torus-secret-check:<salt>`).
   * Lets a daemon refuse a wrong secret before it talks to peers; reveals nothing usable as the
   * secret. Absent when the cluster was created without one. `@torus/metadata` has
   * `makeSecretCheck` and `verifySecretCheck`.
   */
  readonly secretCheck?: string
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

/**
 * What a peer reports about itself in each heartbeat. Field names end in their unit.
 */
export interface PeerInfo {
  /** The peer's UUID (persisted in its data dir). */
  readonly id: string
  /** Where other peers and torusctl reach it, e.g. `ws://10.0.0.5:40000`. */
  readonly address: string
  /** NBD listen address (`host:port`), when it serves NBD. */
  readonly nbdAddress?: string
  readonly capacityBytes: number
  readonly usedBytes: number
  /** Background data movement, bytes per second (0 when idle). */
  readonly rebalanceBytesPerSec: number
  readonly repairBytesPerSec: number
  /** The ring version this peer currently places blocks by. */
  readonly ringVersion: number
  /** Software version, e.g. `0.1.0`. */
  readonly version: string
  /** ISO 8601 time of this heartbeat, by the peer's clock. */
  readonly updatedAt: string
}

/** A peer as `listPeers` shows it: its last report, and whether its lease is still live. */
export interface PeerStatus extends PeerInfo {
  /** False once the lease behind its heartbeats expired; the record stays until forgotten. */
  readonly alive: boolean
}

/** Names one stale-replica record: which peer holds a stale copy of which block of which volume. */
export interface StaleReplicaKey {
  readonly volumeId: VolumeId
  /** The peer whose copy is stale. */
  readonly peer: PeerId
  /**
   * The stale block's index, or `'all'`: every block of the volume on that peer is stale (a new
   * lock holder could not announce its generation to the peer, so the peer may still accept or
   * serve the old holder's writes).
   */
  readonly index: number | 'all'
}

/**
 * A durable note that a replica missed writes: until it is repaired and the record cleared, the
 * peer must not serve that block (or, for `'all'`, any block of the volume). A gateway records
 * one before it lets a write complete degraded.
 */
export interface StaleReplica extends StaleReplicaKey {
  /** The volume lock generation of the writes the replica missed. */
  readonly generation: number
  /** ISO 8601 time it was recorded; the store fills it in when omitted. */
  readonly recordedAt?: string
}

/**
 * A record to clear. With `upToGeneration`, only a stored record whose generation is at most
 * that is removed: a repair made by the holder of generation g must not clear a record a later
 * holder wrote after it.
 */
export interface StaleReplicaClear extends StaleReplicaKey {
  readonly upToGeneration?: number
}

export interface ClearStaleReplicasOptions extends AbortOptions {
  /**
   * Clear only while the volume's lock is held with this generation, atomically with the
   * check: a repair by a holder that has lost the lock must not clear records its successor
   * loaded and relies on. Every record must then be of one volume; if the lock is not held so,
   * nothing is cleared and the call rejects with TORUS_LEASE_EXPIRED.
   */
  lockGeneration?: number
}

/** A live subscription; `close()` stops deliveries and is safe to call twice. */
export interface MetadataWatch {
  close(): Promise<void>
}

export interface WatchRingOptions extends AbortOptions {
  /**
   * Reports trouble the watch recovers from by itself (backend unreachable, history compacted).
   * The watch never ends on its own; it resynchronises and carries on.
   */
  onError?: (error: Error) => void
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
 * `supports.persistent`) durable before it resolves. `deleteVolume` also drops the volume's
 * stale-replica records.
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

  /**
   * Every volume id below this has been allocated at some time; ids are never reused. An id
   * below it that `listVolumes` does not show belongs to a deleted volume. 1 on a fresh store.
   */
  nextVolumeId(options?: AbortOptions): Promise<number>

  /**
   * Records a heartbeat: stores `info` as the peer's last report (kept after the lease ends,
   * so a dead peer shows as down rather than vanishing) and marks it alive for as long as
   * `leaseId` lives. TORUS_LEASE_EXPIRED when the lease is gone (nothing is written then).
   */
  putPeer(info: PeerInfo, leaseId: LeaseId, options?: AbortOptions): Promise<void>
  /** Every peer that ever reported, sorted by id. */
  listPeers(options?: AbortOptions): Promise<PeerStatus[]>
  /** Drops a peer's record. TORUS_NOT_FOUND when unknown; TORUS_LOCKED while it is alive. */
  forgetPeer(id: string, options?: AbortOptions): Promise<void>

  /**
   * The ring. Before the first `setRing` it is version 0 with the cluster's ring type and
   * replication and no members; `undefined` only when the cluster is not initialised.
   */
  getRing(options?: AbortOptions): Promise<RingDescriptor | undefined>
  /**
   * Compare-and-swap: stores `next` if `next.version` is exactly the current version + 1,
   * else TORUS_CONFLICT (details.currentVersion), changing nothing. TORUS_NOT_INITIALIZED
   * before `initCluster`; TORUS_INVALID_ARGUMENT for a malformed descriptor.
   */
  setRing(next: RingDescriptor, options?: AbortOptions): Promise<void>
  /**
   * Calls `onRing` with the current ring soon after the call, then with every later ring.
   * Versions arrive in increasing order, never twice; intermediate versions may be skipped
   * (after a reconnect), but the latest one always arrives. The one exception is a stored ring
   * that goes back (a backend restored from a backup, or edited by hand): it is delivered too,
   * since the store holds the truth. Nothing is delivered before the
   * cluster is initialised.
   */
  watchRing(onRing: (ring: RingDescriptor) => void, options?: WatchRingOptions): Promise<MetadataWatch>

  /**
   * Records replicas that missed writes. Durable when it resolves: only then may the write that
   * missed them complete degraded. Idempotent: a record with the same (volumeId, peer, index)
   * keeps the higher generation (on a tie, the record already stored, with its `recordedAt`).
   * TORUS_NOT_FOUND when no volume has the id (nothing is written then); TORUS_INVALID_ARGUMENT
   * for a malformed record. A backend may split a large batch into several atomic steps (etcd:
   * at most 100 records per transaction); if the call rejects, a retry is safe.
   */
  addStaleReplicas(records: readonly StaleReplica[], options?: AbortOptions): Promise<void>
  /**
   * Every stale-replica record of the volume, sorted by peer, then by index with `'all'` first.
   * Every record has `recordedAt`. Empty for an unknown volume.
   */
  listStaleReplicas(volumeId: VolumeId, options?: AbortOptions): Promise<StaleReplica[]>
  /**
   * Removes the named records (after a repair). Records that do not exist are ignored, and so
   * are records stored with a generation above a key's `upToGeneration`. Clearing a record lets
   * its replica serve the block again, so clear only what was repaired.
   */
  clearStaleReplicas(records: readonly StaleReplicaClear[], options?: ClearStaleReplicasOptions): Promise<void>
}
