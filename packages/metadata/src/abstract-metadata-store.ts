import {
  normalizeRingDescriptor,
  RING_TYPES,
  TorusError,
  UUID_RE,
  throwIfAborted,
  validateBlockSize,
  validateReplication,
  validateVolumeName,
  validateVolumeSize,
} from '@torus/core'
import type {
  AbortOptions,
  ClusterConfig,
  CreateVolumeRequest,
  LeaseId,
  LifecycleStatus,
  MetadataStore,
  MetadataSupports,
  MetadataWatch,
  PeerInfo,
  PeerStatus,
  RingDescriptor,
  StaleReplica,
  StaleReplicaClear,
  ClearStaleReplicasOptions,
  VolumeId,
  VolumeInfo,
  VolumeLock,
  WatchRingOptions,
} from '@torus/core'
import { randomUUID } from 'node:crypto'
import { normalizePeerInfo, validatePeerId } from './peer-info.js'
import { normalizeStaleReplica, normalizeStaleReplicaClear, staleReplicaPath, validateVolumeId } from './records.js'
import { SECRET_CHECK_RE } from './secret-check.js'


/**
 * Base class for metadata stores. Each public method validates its arguments, checks that the
 * store is open and that `options.signal` has not fired, then calls the protected `_method`
 * that a backend overrides. Arguments reach `_methods` already normalised.
 *
 * Bad user input (volume names, sizes, block size, replication, cluster config) rejects with
 * TORUS_INVALID_ARGUMENT; programmer mistakes (a non-positive TTL, an empty holder) reject with
 * a plain `RangeError` or `TypeError`.
 */
export abstract class AbstractMetadataStore implements MetadataStore {
  abstract readonly supports: MetadataSupports
  #status: LifecycleStatus = 'closed'
  #transition: Promise<void> | undefined

  get status(): LifecycleStatus {
    return this.#status
  }

  async open(options: AbortOptions = {}): Promise<void> {
    while (this.#transition !== undefined) await this.#transition.catch(() => {})
    if (this.#status === 'open') return
    throwIfAborted(options.signal)
    this.#status = 'opening'
    const run = (async () => {
      try {
        await this._open(options)
        this.#status = 'open'
      } catch (err) {
        this.#status = 'closed'
        throw err
      }
    })()
    this.#transition = run
    try {
      await run
    } finally {
      this.#transition = undefined
    }
  }

  async close(): Promise<void> {
    while (this.#transition !== undefined) await this.#transition.catch(() => {})
    if (this.#status === 'closed') return
    this.#status = 'closing'
    const run = (async () => {
      try {
        await this._close()
      } finally {
        this.#status = 'closed'
      }
    })()
    this.#transition = run
    try {
      await run
    } finally {
      this.#transition = undefined
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  async getClusterConfig(options: AbortOptions = {}): Promise<ClusterConfig | undefined> {
    this.#check(options)
    return this._getClusterConfig(options)
  }

  async initCluster(config: ClusterConfig, options: AbortOptions = {}): Promise<void> {
    if (typeof config !== 'object' || config === null) throw new TypeError('config must be an object')
    if (!RING_TYPES.includes(config.ringType)) {
      throw new TorusError('TORUS_INVALID_ARGUMENT', `invalid ring type ${JSON.stringify(config.ringType)}: use ketama, mod or single`)
    }
    if (typeof config.createdAt !== 'string' || Number.isNaN(Date.parse(config.createdAt))) {
      throw new TorusError('TORUS_INVALID_ARGUMENT', `invalid createdAt ${JSON.stringify(config.createdAt)}: use an ISO 8601 time`)
    }
    if (config.id !== undefined && (typeof config.id !== 'string' || !UUID_RE.test(config.id))) {
      throw new TorusError('TORUS_INVALID_ARGUMENT', `invalid cluster id ${JSON.stringify(config.id)}: use a lowercase UUID`)
    }
    if (config.secretCheck !== undefined && (typeof config.secretCheck !== 'string' || !SECRET_CHECK_RE.test(config.secretCheck))) {
      throw new TorusError('TORUS_INVALID_ARGUMENT', 'invalid secretCheck: use makeSecretCheck() (32 lowercase hex digits, a colon, 64 lowercase hex digits)')
    }
    const normalised: ClusterConfig = {
      id: config.id ?? randomUUID(),
      blockSizeBytes: validateBlockSize(config.blockSizeBytes),
      replication: validateReplication(config.replication),
      ringType: config.ringType,
      createdAt: config.createdAt,
      ...(config.secretCheck === undefined ? {} : { secretCheck: config.secretCheck }),
    }
    this.#check(options)
    return this._initCluster(normalised, options)
  }

  async createVolume(request: CreateVolumeRequest, options: AbortOptions = {}): Promise<VolumeInfo> {
    if (typeof request !== 'object' || request === null) throw new TypeError('request must be an object')
    const normalised: CreateVolumeRequest = {
      name: validateVolumeName(request.name),
      sizeBytes: validateVolumeSize(request.sizeBytes),
    }
    if (request.blockSizeBytes !== undefined) normalised.blockSizeBytes = validateBlockSize(request.blockSizeBytes)
    if (request.replication !== undefined) normalised.replication = validateReplication(request.replication)
    this.#check(options)
    return this._createVolume(normalised, options)
  }

  async getVolume(name: string, options: AbortOptions = {}): Promise<VolumeInfo | undefined> {
    validateVolumeName(name)
    this.#check(options)
    return this._getVolume(name, options)
  }

  async listVolumes(options: AbortOptions = {}): Promise<VolumeInfo[]> {
    this.#check(options)
    return this._listVolumes(options)
  }

  async deleteVolume(name: string, options: AbortOptions = {}): Promise<VolumeInfo> {
    validateVolumeName(name)
    this.#check(options)
    return this._deleteVolume(name, options)
  }

  async grantLease(ttlMs: number, options: AbortOptions = {}): Promise<LeaseId> {
    if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs < 1) {
      throw new RangeError(`invalid lease ttlMs: ${String(ttlMs)}`)
    }
    this.#check(options)
    return this._grantLease(ttlMs, options)
  }

  async keepAlive(leaseId: LeaseId, options: AbortOptions = {}): Promise<void> {
    checkLeaseId(leaseId)
    this.#check(options)
    return this._keepAlive(leaseId, options)
  }

  async revokeLease(leaseId: LeaseId, options: AbortOptions = {}): Promise<void> {
    checkLeaseId(leaseId)
    this.#check(options)
    return this._revokeLease(leaseId, options)
  }

  async lockVolume(name: string, holder: string, leaseId: LeaseId, options: AbortOptions = {}): Promise<VolumeLock> {
    validateVolumeName(name)
    if (typeof holder !== 'string' || holder.length === 0) throw new TypeError('holder must be a non-empty string')
    checkLeaseId(leaseId)
    this.#check(options)
    return this._lockVolume(name, holder, leaseId, options)
  }

  async getVolumeLock(name: string, options: AbortOptions = {}): Promise<VolumeLock | undefined> {
    validateVolumeName(name)
    this.#check(options)
    return this._getVolumeLock(name, options)
  }

  async unlockVolume(lock: VolumeLock, options: AbortOptions = {}): Promise<void> {
    if (typeof lock !== 'object' || lock === null || typeof lock.volume !== 'string' || typeof lock.generation !== 'number') {
      throw new TypeError('lock must be a VolumeLock returned by lockVolume()')
    }
    checkLeaseId(lock.leaseId)
    this.#check(options)
    return this._unlockVolume(lock, options)
  }

  async nextVolumeId(options: AbortOptions = {}): Promise<number> {
    this.#check(options)
    return this._nextVolumeId(options)
  }

  async putPeer(info: PeerInfo, leaseId: LeaseId, options: AbortOptions = {}): Promise<void> {
    const normalised = normalizePeerInfo(info)
    checkLeaseId(leaseId)
    this.#check(options)
    return this._putPeer(normalised, leaseId, options)
  }

  async listPeers(options: AbortOptions = {}): Promise<PeerStatus[]> {
    this.#check(options)
    return this._listPeers(options)
  }

  async forgetPeer(id: string, options: AbortOptions = {}): Promise<void> {
    validatePeerId(id)
    this.#check(options)
    return this._forgetPeer(id, options)
  }

  async getRing(options: AbortOptions = {}): Promise<RingDescriptor | undefined> {
    this.#check(options)
    return this._getRing(options)
  }

  async setRing(next: RingDescriptor, options: AbortOptions = {}): Promise<void> {
    const normalised = normalizeRingDescriptor(next, { allowEmpty: true })
    if (normalised.version < 1) throw new TorusError('TORUS_INVALID_ARGUMENT', 'invalid ring descriptor: a stored ring starts at version 1')
    this.#check(options)
    return this._setRing(normalised, options)
  }

  async watchRing(onRing: (ring: RingDescriptor) => void, options: WatchRingOptions = {}): Promise<MetadataWatch> {
    if (typeof onRing !== 'function') throw new TypeError('onRing must be a function')
    this.#check(options)
    return this._watchRing(onRing, options)
  }

  async addStaleReplicas(records: readonly StaleReplica[], options: AbortOptions = {}): Promise<void> {
    if (!Array.isArray(records)) throw new TypeError('records must be an array')
    const normalised = records.map(normalizeStaleReplica)
    this.#check(options)
    if (normalised.length === 0) return
    return this._addStaleReplicas(normalised, options)
  }

  async listStaleReplicas(volumeId: VolumeId, options: AbortOptions = {}): Promise<StaleReplica[]> {
    const id = validateVolumeId(volumeId)
    this.#check(options)
    return this._listStaleReplicas(id, options)
  }

  async clearStaleReplicas(records: readonly StaleReplicaClear[], options: ClearStaleReplicasOptions = {}): Promise<void> {
    if (!Array.isArray(records)) throw new TypeError('records must be an array')
    const { lockGeneration } = options
    if (lockGeneration !== undefined) {
      if (!Number.isSafeInteger(lockGeneration) || lockGeneration < 1) throw new RangeError(`invalid lockGeneration: ${String(lockGeneration)}`)
      if (new Set(records.map((r) => (r as { volumeId?: unknown }).volumeId)).size > 1) throw new TypeError('with lockGeneration, every record must be of one volume')
    }
    // One clear per key, the strictest: the lowest upToGeneration, and none only when no key has one.
    const merged = new Map<string, StaleReplicaClear>()
    for (const r of records.map(normalizeStaleReplicaClear)) {
      const path = staleReplicaPath(r)
      const seen = merged.get(path)
      if (seen === undefined || (r.upToGeneration !== undefined && (seen.upToGeneration === undefined || r.upToGeneration < seen.upToGeneration))) merged.set(path, r)
    }
    this.#check(options)
    if (merged.size === 0) return
    return this._clearStaleReplicas([...merged.values()], options)
  }

  #check(options: AbortOptions): void {
    if (this.#status !== 'open') {
      throw new TorusError('TORUS_NOT_OPEN', `metadata store is ${this.#status}`)
    }
    throwIfAborted(options.signal)
  }

  protected async _open(_options: AbortOptions): Promise<void> {}
  protected async _close(): Promise<void> {}

  protected abstract _getClusterConfig(options: AbortOptions): Promise<ClusterConfig | undefined>
  protected abstract _initCluster(config: ClusterConfig, options: AbortOptions): Promise<void>
  protected abstract _createVolume(request: CreateVolumeRequest, options: AbortOptions): Promise<VolumeInfo>
  protected abstract _getVolume(name: string, options: AbortOptions): Promise<VolumeInfo | undefined>
  protected abstract _listVolumes(options: AbortOptions): Promise<VolumeInfo[]>
  protected abstract _deleteVolume(name: string, options: AbortOptions): Promise<VolumeInfo>
  protected abstract _grantLease(ttlMs: number, options: AbortOptions): Promise<LeaseId>
  protected abstract _keepAlive(leaseId: LeaseId, options: AbortOptions): Promise<void>
  protected abstract _revokeLease(leaseId: LeaseId, options: AbortOptions): Promise<void>
  protected abstract _lockVolume(name: string, holder: string, leaseId: LeaseId, options: AbortOptions): Promise<VolumeLock>
  protected abstract _getVolumeLock(name: string, options: AbortOptions): Promise<VolumeLock | undefined>
  protected abstract _unlockVolume(lock: VolumeLock, options: AbortOptions): Promise<void>
  protected abstract _nextVolumeId(options: AbortOptions): Promise<number>
  protected abstract _putPeer(info: PeerInfo, leaseId: LeaseId, options: AbortOptions): Promise<void>
  protected abstract _listPeers(options: AbortOptions): Promise<PeerStatus[]>
  protected abstract _forgetPeer(id: string, options: AbortOptions): Promise<void>
  protected abstract _getRing(options: AbortOptions): Promise<RingDescriptor | undefined>
  protected abstract _setRing(next: RingDescriptor, options: AbortOptions): Promise<void>
  protected abstract _watchRing(onRing: (ring: RingDescriptor) => void, options: WatchRingOptions): Promise<MetadataWatch>
  /** `records` is non-empty, each record checked; duplicates are the backend's to merge. */
  protected abstract _addStaleReplicas(records: StaleReplica[], options: AbortOptions): Promise<void>
  protected abstract _listStaleReplicas(volumeId: VolumeId, options: AbortOptions): Promise<StaleReplica[]>
  /** `records` is non-empty, each key checked. */
  protected abstract _clearStaleReplicas(records: StaleReplicaClear[], options: ClearStaleReplicasOptions): Promise<void>
}

function checkLeaseId(leaseId: unknown): void {
  if (typeof leaseId !== 'string' || leaseId.length === 0) throw new TypeError('leaseId must be a non-empty string')
}
