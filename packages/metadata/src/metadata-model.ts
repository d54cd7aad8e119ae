import { MAX_VOLUME_ID, TorusError, volumeId } from '@torus/core'
import type { ClusterConfig, CreateVolumeRequest, LeaseId, PeerInfo, PeerStatus, Random, RingDescriptor, StaleReplica, StaleReplicaClear, VolumeId, VolumeInfo, VolumeLock } from '@torus/core'
import { compareStaleReplicas, staleReplicaPath } from './records.js'

/** A peer's last report and the lease that keeps it alive. */
export interface PeerRecord {
  readonly info: PeerInfo
  readonly leaseId: LeaseId
}

/** A lease as the model keeps it. `expiresAtMs` is process-local and never persisted. */
export interface LeaseState {
  readonly id: LeaseId
  readonly ttlMs: number
  expiresAtMs: number
}

/**
 * The metadata state machine shared by the memory and embedded stores: plain synchronous
 * operations over maps, taking the current time as an argument. Stores run every mutation on a
 * {@link MetadataModel.clone | clone} and swap it in only once it is committed, so a failed
 * operation (or a failed disk write) never leaves half an update behind.
 *
 * `revision` is a store-wide counter bumped by every change that would be persisted; a lock's
 * generation is the revision that created it, so generations only ever grow.
 */
export class MetadataModel {
  cluster: ClusterConfig | undefined = undefined
  readonly volumes = new Map<string, VolumeInfo>()
  readonly leases = new Map<LeaseId, LeaseState>()
  readonly locks = new Map<string, VolumeLock>()
  readonly peers = new Map<string, PeerRecord>()
  /** Stale-replica records (frozen, each with `recordedAt`), keyed by {@link staleReplicaPath}. */
  readonly stale = new Map<string, StaleReplica>()
  /** Absent until the first setRing; getRing() then derives version 0 from the cluster config. */
  ring: RingDescriptor | undefined = undefined
  revision = 0
  nextVolumeId = 1
  leaseSeq = 0
  /** Set when this copy holds a change that must be persisted before it is committed. */
  dirty = false

  clone(): MetadataModel {
    const copy = new MetadataModel()
    copy.cluster = this.cluster
    // Volume and lock records are frozen, so sharing them between copies is safe.
    for (const [k, v] of this.volumes) copy.volumes.set(k, v)
    for (const [k, v] of this.locks) copy.locks.set(k, v)
    for (const [k, v] of this.leases) copy.leases.set(k, { ...v })
    for (const [k, v] of this.peers) copy.peers.set(k, v)
    for (const [k, v] of this.stale) copy.stale.set(k, v)
    copy.ring = this.ring
    copy.revision = this.revision
    copy.nextVolumeId = this.nextVolumeId
    copy.leaseSeq = this.leaseSeq
    return copy
  }

  isLeaseLive(id: LeaseId, nowMs: number): boolean {
    const lease = this.leases.get(id)
    return lease !== undefined && nowMs < lease.expiresAtMs
  }

  /** Drops expired leases and the locks bound to them. Returns true when anything was dropped. */
  sweep(nowMs: number): boolean {
    let changed = false
    for (const lease of this.leases.values()) {
      if (nowMs >= lease.expiresAtMs) {
        this.#dropLease(lease.id)
        changed = true
      }
    }
    if (changed) this.#bump()
    return changed
  }

  /** Every lease's deadline, for scheduling expiry timers. */
  leaseDeadlines(): Map<LeaseId, number> {
    return new Map([...this.leases.values()].map((l) => [l.id, l.expiresAtMs]))
  }

  // ── reads ────────────────────────────────────────────────────────────────────────────

  getVolume(name: string): VolumeInfo | undefined {
    return this.volumes.get(name)
  }

  listVolumes(): VolumeInfo[] {
    // Code-unit order equals byte order for the ASCII names validateVolumeName allows, which is
    // also the order etcd returns keys in.
    return [...this.volumes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  getVolumeLock(name: string, nowMs: number): VolumeLock | undefined {
    const lock = this.locks.get(name)
    return lock !== undefined && this.isLeaseLive(lock.leaseId, nowMs) ? lock : undefined
  }

  listPeers(nowMs: number): PeerStatus[] {
    return [...this.peers.values()]
      .map((r) => Object.freeze({ ...r.info, alive: this.isLeaseLive(r.leaseId, nowMs) }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  getRing(): RingDescriptor | undefined {
    if (this.ring !== undefined) return this.ring
    if (this.cluster === undefined) return undefined
    return Object.freeze({ version: 0, type: this.cluster.ringType, replication: this.cluster.replication, members: Object.freeze([]) })
  }

  listStaleReplicas(id: VolumeId): StaleReplica[] {
    return [...this.stale.values()].filter((r) => r.volumeId === id).sort(compareStaleReplicas)
  }

  // ── mutations: each validates fully before it changes anything ───────────────────────

  /** Adds records (already checked), keeping the higher generation per key. */
  addStaleReplicas(records: readonly StaleReplica[], nowMs: number): void {
    const ids = new Set([...this.volumes.values()].map((v) => v.id))
    const missing = records.find((r) => !ids.has(r.volumeId))
    if (missing !== undefined) {
      throw new TorusError('TORUS_NOT_FOUND', `no volume has id ${missing.volumeId}`, { details: { volumeId: missing.volumeId } })
    }
    const recordedAt = new Date(nowMs).toISOString()
    let changed = false
    for (const r of records) {
      const path = staleReplicaPath(r)
      const current = this.stale.get(path)
      if (current !== undefined && current.generation >= r.generation) continue
      this.stale.set(path, Object.freeze({ ...r, recordedAt: r.recordedAt ?? recordedAt }))
      changed = true
    }
    if (changed) this.#bump()
  }

  clearStaleReplicas(keys: readonly StaleReplicaClear[], nowMs: number, lockGeneration?: number): void {
    if (lockGeneration !== undefined && keys.length > 0) {
      const volume = [...this.volumes.values()].find((v) => v.id === keys[0]!.volumeId)
      const lock = volume === undefined ? undefined : this.getVolumeLock(volume.name, nowMs)
      if (lock?.generation !== lockGeneration) {
        throw new TorusError('TORUS_LEASE_EXPIRED', `the lock of volume ${keys[0]!.volumeId} is not held with generation ${lockGeneration}`, {
          details: { volumeId: keys[0]!.volumeId, generation: lockGeneration },
        })
      }
    }
    let changed = false
    for (const key of keys) {
      const path = staleReplicaPath(key)
      const stored = this.stale.get(path)
      if (stored === undefined || (key.upToGeneration !== undefined && stored.generation > key.upToGeneration)) continue
      changed = this.stale.delete(path) || changed
    }
    if (changed) this.#bump()
  }

  putPeer(info: PeerInfo, leaseId: LeaseId, nowMs: number): void {
    if (!this.isLeaseLive(leaseId, nowMs)) throw leaseExpiredError(leaseId)
    this.peers.set(info.id, Object.freeze({ info: Object.freeze({ ...info }), leaseId }))
    this.#bump()
  }

  forgetPeer(id: string, nowMs: number): void {
    const record = this.peers.get(id)
    if (record === undefined) throw new TorusError('TORUS_NOT_FOUND', `peer ${id} is not known`, { details: { peer: id } })
    if (this.isLeaseLive(record.leaseId, nowMs)) {
      throw new TorusError('TORUS_LOCKED', `peer ${id} is alive; stop it before forgetting it`, { details: { peer: id } })
    }
    this.peers.delete(id)
    this.#bump()
  }

  /** `next` is already validated and normalised. */
  setRing(next: RingDescriptor): void {
    const current = this.getRing()
    if (current === undefined) throw new TorusError('TORUS_NOT_INITIALIZED', 'cluster metadata is not initialised (run torusctl init)')
    if (next.version !== current.version + 1) throw ringConflict(current.version, next.version)
    this.ring = next
    this.#bump()
  }

  initCluster(config: ClusterConfig): void {
    if (this.cluster !== undefined) {
      throw new TorusError('TORUS_ALREADY_EXISTS', 'cluster is already initialised')
    }
    this.cluster = Object.freeze({ ...config })
    this.#bump()
  }

  createVolume(request: CreateVolumeRequest, nowMs: number): VolumeInfo {
    const cluster = this.cluster
    if (cluster === undefined) {
      throw new TorusError('TORUS_NOT_INITIALIZED', 'cluster metadata is not initialised (run torusctl init)')
    }
    if (this.volumes.has(request.name)) {
      throw new TorusError('TORUS_ALREADY_EXISTS', `volume ${request.name} already exists`, {
        details: { volume: request.name },
      })
    }
    if (this.nextVolumeId > MAX_VOLUME_ID) {
      throw new TorusError('TORUS_OUT_OF_SPACE', 'volume ids are exhausted')
    }
    const info: VolumeInfo = Object.freeze({
      name: request.name,
      id: volumeId(this.nextVolumeId),
      type: 'block',
      sizeBytes: request.sizeBytes,
      blockSizeBytes: request.blockSizeBytes ?? cluster.blockSizeBytes,
      replication: request.replication ?? cluster.replication,
      createdAt: new Date(nowMs).toISOString(),
    })
    this.nextVolumeId += 1
    this.volumes.set(info.name, info)
    this.#bump()
    return info
  }

  deleteVolume(name: string, nowMs: number): VolumeInfo {
    this.sweep(nowMs)
    const info = this.volumes.get(name)
    if (info === undefined) {
      throw new TorusError('TORUS_NOT_FOUND', `volume ${name} does not exist`, { details: { volume: name } })
    }
    const lock = this.getVolumeLock(name, nowMs)
    if (lock !== undefined) throw lockedError(lock)
    this.volumes.delete(name)
    for (const [path, r] of this.stale) if (r.volumeId === info.id) this.stale.delete(path)
    this.#bump()
    return info
  }

  grantLease(ttlMs: number, nowMs: number, random: Random): LeaseId {
    this.leaseSeq += 1
    // The sequence makes ids unique within this state; the random suffix keeps a wiped and
    // re-created store from handing out an id an old client still holds.
    const suffix = random.int(0x1_0000_0000).toString(16).padStart(8, '0')
    const id = `${this.leaseSeq.toString(16)}-${suffix}`
    this.leases.set(id, { id, ttlMs, expiresAtMs: nowMs + ttlMs })
    this.#bump()
    return id
  }

  /** Extends a live lease. Changes only the process-local deadline, so it is not `dirty`. */
  keepAlive(id: LeaseId, nowMs: number): void {
    const lease = this.leases.get(id)
    if (lease === undefined || nowMs >= lease.expiresAtMs) throw leaseExpiredError(id)
    lease.expiresAtMs = nowMs + lease.ttlMs
  }

  revokeLease(id: LeaseId): void {
    if (!this.leases.has(id)) return
    this.#dropLease(id)
    this.#bump()
  }

  lockVolume(name: string, holder: string, leaseId: LeaseId, nowMs: number): VolumeLock {
    this.sweep(nowMs)
    if (!this.volumes.has(name)) {
      throw new TorusError('TORUS_NOT_FOUND', `volume ${name} does not exist`, { details: { volume: name } })
    }
    if (!this.isLeaseLive(leaseId, nowMs)) throw leaseExpiredError(leaseId)
    const current = this.getVolumeLock(name, nowMs)
    if (current !== undefined) throw lockedError(current)
    this.#bump()
    const lock: VolumeLock = Object.freeze({ volume: name, holder, leaseId, generation: this.revision })
    this.locks.set(name, lock)
    return lock
  }

  /** Releases `lock` only if it is still the current lock (same generation and lease). */
  unlockVolume(lock: VolumeLock): void {
    const current = this.locks.get(lock.volume)
    if (current === undefined || current.generation !== lock.generation || current.leaseId !== lock.leaseId) return
    this.locks.delete(lock.volume)
    this.#bump()
  }

  #dropLease(id: LeaseId): void {
    this.leases.delete(id)
    for (const [name, lock] of this.locks) {
      if (lock.leaseId === id) this.locks.delete(name)
    }
  }

  #bump(): void {
    this.revision += 1
    this.dirty = true
  }
}

export function lockedError(lock: VolumeLock): TorusError {
  return new TorusError('TORUS_LOCKED', `volume ${lock.volume} is locked by ${lock.holder}`, {
    details: { volume: lock.volume, holder: lock.holder, generation: lock.generation },
  })
}

export function leaseExpiredError(id: LeaseId): TorusError {
  return new TorusError('TORUS_LEASE_EXPIRED', `lease ${id} has expired or was revoked`, { details: { leaseId: id } })
}

export function ringConflict(currentVersion: number, proposed: number): TorusError {
  return new TorusError('TORUS_CONFLICT', `ring changed meanwhile: it is at version ${currentVersion}, so version ${proposed} cannot follow it; read it again and retry`, {
    details: { currentVersion, proposedVersion: proposed },
  })
}
