import { TorusError, throwIfAborted, validateBlockSize, validateReplication, validateVolumeName, validateVolumeSize } from '@torus/core'
import type {
  AbortOptions,
  ClusterConfig,
  CreateVolumeRequest,
  LeaseId,
  LifecycleStatus,
  MetadataStore,
  MetadataSupports,
  RingType,
  VolumeInfo,
  VolumeLock,
} from '@torus/core'

const RING_TYPES: ReadonlySet<RingType> = new Set(['ketama', 'mod', 'single'])

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
    if (!RING_TYPES.has(config.ringType)) {
      throw new TorusError('TORUS_INVALID_ARGUMENT', `invalid ring type ${JSON.stringify(config.ringType)}: use ketama, mod or single`)
    }
    if (typeof config.createdAt !== 'string' || Number.isNaN(Date.parse(config.createdAt))) {
      throw new TorusError('TORUS_INVALID_ARGUMENT', `invalid createdAt ${JSON.stringify(config.createdAt)}: use an ISO 8601 time`)
    }
    const normalised: ClusterConfig = {
      blockSizeBytes: validateBlockSize(config.blockSizeBytes),
      replication: validateReplication(config.replication),
      ringType: config.ringType,
      createdAt: config.createdAt,
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
}

function checkLeaseId(leaseId: unknown): void {
  if (typeof leaseId !== 'string' || leaseId.length === 0) throw new TypeError('leaseId must be a non-empty string')
}
