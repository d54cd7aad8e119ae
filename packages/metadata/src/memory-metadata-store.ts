import { silentLogger, systemClock, systemRandom, throwIfAborted } from '@torus/core'
import type {
  AbortOptions,
  Clock,
  ClusterConfig,
  CreateVolumeRequest,
  LeaseId,
  Logger,
  MetadataSupports,
  MetadataWatch,
  PeerInfo,
  PeerStatus,
  Random,
  RingDescriptor,
  StaleReplica,
  StaleReplicaClear,
  ClearStaleReplicasOptions,
  Timer,
  VolumeId,
  VolumeInfo,
  VolumeLock,
  WatchRingOptions,
} from '@torus/core'
import { AbstractMetadataStore } from './abstract-metadata-store.js'
import { MetadataModel } from './metadata-model.js'

const MAX_TIMER_MS = 2 ** 31 - 1

export interface MemoryMetadataStoreOptions {
  /** Drives lease expiry. Default: the system clock. */
  clock?: Clock
  /** Picks lease id suffixes. Default: Math.random. */
  random?: Random
  logger?: Logger
}

/**
 * A metadata store held in memory: nothing survives the process. Leases expire on the injected
 * clock; every read checks deadlines against `clock.now()`, and a timer per lease drops expired
 * leases (and their locks) even when nobody is looking, so `ManualClock.advance()` makes expiry
 * observable at once.
 *
 * Mutations run one at a time on a copy of the model that replaces the current one only after
 * {@link MemoryMetadataStore._commit} resolves; subclasses override that hook to persist.
 */
export class MemoryMetadataStore extends AbstractMetadataStore {
  readonly supports: MetadataSupports = Object.freeze({ persistent: false, leases: true, watch: true })
  protected readonly clock: Clock
  protected readonly random: Random
  protected readonly logger: Logger
  protected model = new MetadataModel()
  #tail: Promise<unknown> = Promise.resolve()
  #timers = new Map<LeaseId, { timer: Timer; atMs: number }>()
  /** Ring watchers and the last version each has been given (-1: none yet). */
  #ringWatchers = new Set<{ onRing: (ring: RingDescriptor) => void; lastVersion: number }>()

  constructor(options: MemoryMetadataStoreOptions = {}) {
    super()
    this.clock = options.clock ?? systemClock
    this.random = options.random ?? systemRandom
    this.logger = options.logger ?? silentLogger
  }

  /**
   * Makes `next` durable before it becomes the current state. Called inside the mutation queue,
   * only when `next` holds a persistent change. The memory store keeps nothing, so it returns.
   */
  protected async _commit(_next: MetadataModel): Promise<void> {}

  /**
   * Runs `op` on a copy of the model, commits the copy if it changed, then makes it current.
   * Mutations are serialised, so two calls can never interleave and lose an update.
   */
  protected _mutate<R>(op: (model: MetadataModel, nowMs: number) => R, options: AbortOptions = {}): Promise<R> {
    const run = this.#tail.then(async () => {
      throwIfAborted(options.signal)
      const next = this.model.clone()
      const nowMs = this.clock.now()
      // Expired leases go first, so their removal is committed with whatever change comes next.
      next.sweep(nowMs)
      const result = op(next, nowMs)
      if (next.dirty) {
        next.dirty = false
        await this._commit(next)
      }
      this.model = next
      this.#syncTimers()
      this.#notifyRing()
      return result
    })
    this.#tail = run.catch(() => {})
    return run
  }

  /** Waits for every queued mutation to settle. */
  protected async _drain(): Promise<void> {
    for (let tail = this.#tail; ; tail = this.#tail) {
      await tail
      if (tail === this.#tail) return
    }
  }

  /** Starts one expiry timer per lease; call after replacing `model` wholesale. */
  protected _startTimers(): void {
    this.#syncTimers()
  }

  protected override async _open(_options: AbortOptions): Promise<void> {
    this._startTimers()
  }

  protected override async _close(): Promise<void> {
    await this._drain()
    for (const { timer } of this.#timers.values()) this.clock.clearTimeout(timer)
    this.#timers.clear()
    this.#ringWatchers.clear()
  }

  /** Delivers the current ring to every watcher that has not seen its version, off this stack. */
  #notifyRing(): void {
    const ring = this.model.getRing()
    if (ring === undefined) return
    for (const watcher of this.#ringWatchers) {
      if (ring.version <= watcher.lastVersion) continue
      watcher.lastVersion = ring.version
      queueMicrotask(() => {
        if (!this.#ringWatchers.has(watcher)) return
        try {
          watcher.onRing(ring)
        } catch (err) {
          this.logger.warn('ring watcher threw', { err })
        }
      })
    }
  }

  #syncTimers(): void {
    const deadlines = this.model.leaseDeadlines()
    for (const [id, entry] of this.#timers) {
      if (deadlines.get(id) !== entry.atMs) {
        this.clock.clearTimeout(entry.timer)
        this.#timers.delete(id)
      }
    }
    for (const [id, atMs] of deadlines) {
      if (this.#timers.has(id)) continue
      // Node fires a timer longer than 2^31-1 ms at once; an early timer finds nothing to sweep
      // and is simply re-armed for the time left.
      const delayMs = Math.min(MAX_TIMER_MS, Math.max(0, atMs - this.clock.now()))
      const timer = this.clock.setTimeout(() => this.#expire(id), delayMs)
      this.#timers.set(id, { timer, atMs })
    }
  }

  #expire(id: LeaseId): void {
    this.#timers.delete(id)
    if (this.status !== 'open') return
    this._mutate((model, nowMs) => model.sweep(nowMs)).then(
      (dropped) => {
        if (dropped) this.logger.debug('lease expired', { leaseId: id })
      },
      (err: unknown) => this.logger.warn('lease expiry not persisted', { leaseId: id, err }),
    )
  }

  protected async _getClusterConfig(): Promise<ClusterConfig | undefined> {
    return this.model.cluster
  }

  protected async _initCluster(config: ClusterConfig, options: AbortOptions): Promise<void> {
    await this._mutate((m) => m.initCluster(config), options)
  }

  protected async _createVolume(request: CreateVolumeRequest, options: AbortOptions): Promise<VolumeInfo> {
    return this._mutate((m, now) => m.createVolume(request, now), options)
  }

  protected async _getVolume(name: string): Promise<VolumeInfo | undefined> {
    return this.model.getVolume(name)
  }

  protected async _listVolumes(): Promise<VolumeInfo[]> {
    return this.model.listVolumes()
  }

  protected async _deleteVolume(name: string, options: AbortOptions): Promise<VolumeInfo> {
    return this._mutate((m, now) => m.deleteVolume(name, now), options)
  }

  protected async _grantLease(ttlMs: number, options: AbortOptions): Promise<LeaseId> {
    return this._mutate((m, now) => m.grantLease(ttlMs, now, this.random), options)
  }

  protected async _keepAlive(leaseId: LeaseId, options: AbortOptions): Promise<void> {
    await this._mutate((m, now) => m.keepAlive(leaseId, now), options)
  }

  protected async _revokeLease(leaseId: LeaseId, options: AbortOptions): Promise<void> {
    await this._mutate((m) => m.revokeLease(leaseId), options)
  }

  protected async _lockVolume(name: string, holder: string, leaseId: LeaseId, options: AbortOptions): Promise<VolumeLock> {
    return this._mutate((m, now) => m.lockVolume(name, holder, leaseId, now), options)
  }

  protected async _getVolumeLock(name: string): Promise<VolumeLock | undefined> {
    return this.model.getVolumeLock(name, this.clock.now())
  }

  protected async _unlockVolume(lock: VolumeLock, options: AbortOptions): Promise<void> {
    await this._mutate((m) => m.unlockVolume(lock), options)
  }

  protected async _nextVolumeId(): Promise<number> {
    return this.model.nextVolumeId
  }

  protected async _putPeer(info: PeerInfo, leaseId: LeaseId, options: AbortOptions): Promise<void> {
    await this._mutate((m, now) => m.putPeer(info, leaseId, now), options)
  }

  protected async _listPeers(): Promise<PeerStatus[]> {
    return this.model.listPeers(this.clock.now())
  }

  protected async _forgetPeer(id: string, options: AbortOptions): Promise<void> {
    await this._mutate((m, now) => m.forgetPeer(id, now), options)
  }

  protected async _getRing(): Promise<RingDescriptor | undefined> {
    return this.model.getRing()
  }

  protected async _setRing(next: RingDescriptor, options: AbortOptions): Promise<void> {
    await this._mutate((m) => m.setRing(next), options)
  }

  protected async _addStaleReplicas(records: StaleReplica[], options: AbortOptions): Promise<void> {
    await this._mutate((m, now) => m.addStaleReplicas(records, now), options)
  }

  protected async _listStaleReplicas(volumeId: VolumeId): Promise<StaleReplica[]> {
    return this.model.listStaleReplicas(volumeId)
  }

  protected async _clearStaleReplicas(records: StaleReplicaClear[], options: ClearStaleReplicasOptions): Promise<void> {
    await this._mutate((m, now) => m.clearStaleReplicas(records, now, options.lockGeneration), options)
  }

  protected async _watchRing(onRing: (ring: RingDescriptor) => void): Promise<MetadataWatch> {
    const watcher = { onRing, lastVersion: -1 }
    this.#ringWatchers.add(watcher)
    this.#notifyRing()
    return {
      close: async () => {
        this.#ringWatchers.delete(watcher)
      },
    }
  }
}
