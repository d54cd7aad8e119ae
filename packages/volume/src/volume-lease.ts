import {
  isTorusError,
  silentLogger,
  TorusError,
  type Clock,
  type Logger,
  type MetadataStore,
  type Timer,
  type VolumeLock,
} from '@torus/core'

export interface VolumeLeaseOptions {
  metadata: MetadataStore
  lock: VolumeLock
  leaseTtlMs: number
  clock: Clock
  logger?: Logger
  /** Called once, when the lease is found gone or lapses without a successful keep-alive. */
  onLost?: (error: TorusError) => void
  /**
   * How long past its lapse the lease still counts as held while the metadata store cannot be
   * reached at all (keep-alives fail with TORUS_UNAVAILABLE or TORUS_TIMEOUT). Default 0: lapse
   * means lost. See the class comment for when a grace is safe.
   */
  unreachableGraceMs?: number
}

/**
 * Keeps a volume's write lock alive: a keep-alive every `ttl / 3`; transient failures are retried
 * until the lease would have expired. The lease is *lost* when the store says it is gone
 * (TORUS_LEASE_EXPIRED) or when `ttl` passes without a successful keep-alive; from then on
 * {@link VolumeLease.assertHeld} throws, so the holder stops writing on its own (self-fencing).
 *
 * `unreachableGraceMs` relaxes the lapse rule for one case: when every recent keep-alive failed
 * because the store could not be reached. A store that nobody can reach cannot give the lock to
 * anyone else either, and etcd renews every lease when it comes back, so stopping I/O there
 * would turn a metadata outage into a data outage. The risk is a partition that hides the store
 * from this holder only; the grace bounds that window, and replicas fence stale generations.
 */
export class VolumeLease {
  readonly lock: VolumeLock
  readonly leaseTtlMs: number

  readonly #metadata: MetadataStore
  readonly #clock: Clock
  readonly #log: Logger
  readonly #onLost: ((error: TorusError) => void) | undefined
  /** No write may be issued at or after this instant unless a keep-alive extends it. */
  #expiresAtMs: number
  #lost: TorusError | undefined
  /** The last keep-alive failed because the store was unreachable (not because the lease is gone). */
  #unreachable = false
  readonly #graceMs: number
  #graceLogged = false
  /** A keep-alive failed and none has succeeded since (to log an outage once, not per retry). */
  #failing = false
  #released = false
  #tick: Timer | undefined
  #expiry: Timer | undefined

  /** `grantedAtMs` is when the lease was granted (or last kept alive), before the lock was taken. */
  constructor(options: VolumeLeaseOptions, grantedAtMs: number) {
    this.lock = options.lock
    this.leaseTtlMs = options.leaseTtlMs
    this.#metadata = options.metadata
    this.#clock = options.clock
    this.#log = (options.logger ?? silentLogger).child({ component: 'volume:lease', volume: options.lock.volume })
    this.#onLost = options.onLost
    this.#graceMs = options.unreachableGraceMs ?? 0
    if (!Number.isSafeInteger(this.#graceMs) || this.#graceMs < 0) throw new RangeError(`invalid unreachableGraceMs: ${this.#graceMs}`)
    this.#expiresAtMs = grantedAtMs + options.leaseTtlMs
    this.#armExpiry()
    this.#schedule(this.#interval())
  }

  /** The error mutations fail with once the lease is lost, else `undefined`. */
  get lost(): TorusError | undefined {
    if (this.#lost === undefined && !this.#released && this.#clock.now() >= this.#deadlineMs()) this.#markLost('lease lapsed without a keep-alive')
    return this.#lost
  }

  /** When the lease counts as lost if nothing changes: its expiry, plus the grace while unreachable. */
  #deadlineMs(): number {
    return this.#expiresAtMs + (this.#unreachable ? this.#graceMs : 0)
  }

  /** Throws TORUS_LEASE_EXPIRED once the lease is lost. */
  assertHeld(): void {
    const lost = this.lost
    if (lost !== undefined) throw lost
  }

  /** Stops keep-alives, unlocks the volume and revokes the lease. Safe to call twice. */
  async release(): Promise<void> {
    if (this.#released) return
    this.#released = true
    this.#stopTimers()
    // Both are no-ops when the lease is already gone; a failure here only delays the lock's
    // release until the lease expires, so log it rather than fail close().
    try {
      await this.#metadata.unlockVolume(this.lock)
    } catch (err) {
      this.#log.warn('unlock failed', { err })
    }
    try {
      await this.#metadata.revokeLease(this.lock.leaseId)
    } catch (err) {
      this.#log.warn('lease revoke failed', { err })
    }
    this.#log.info('volume lock released', { generation: this.lock.generation })
  }

  #interval(): number {
    return Math.max(1, Math.floor(this.leaseTtlMs / 3))
  }

  #schedule(delayMs: number): void {
    this.#tick = this.#clock.setTimeout(() => {
      this.#tick = undefined
      void this.#keepAlive()
    }, delayMs)
  }

  #armExpiry(): void {
    if (this.#expiry !== undefined) this.#clock.clearTimeout(this.#expiry)
    this.#expiry = this.#clock.setTimeout(() => {
      this.#expiry = undefined
      if (this.#clock.now() >= this.#deadlineMs()) this.#markLost('lease lapsed without a keep-alive')
      else this.#armExpiry()
    }, Math.max(0, this.#deadlineMs() - this.#clock.now()))
  }

  async #keepAlive(): Promise<void> {
    if (this.#released || this.#lost !== undefined) return
    const sentAtMs = this.#clock.now()
    try {
      await this.#metadata.keepAlive(this.lock.leaseId)
    } catch (err) {
      if (this.#released || this.#lost !== undefined) return
      if (isTorusError(err, 'TORUS_LEASE_EXPIRED')) {
        this.#markLost('lease expired', err)
        return
      }
      this.#unreachable = isTorusError(err, 'TORUS_UNAVAILABLE') || isTorusError(err, 'TORUS_TIMEOUT')
      this.#armExpiry()
      const nowMs = this.#clock.now()
      const remainingMs = this.#deadlineMs() - nowMs
      if (remainingMs <= 0) {
        this.#markLost('lease lapsed while keep-alives failed', err)
        return
      }
      if (nowMs >= this.#expiresAtMs && !this.#graceLogged) {
        this.#graceLogged = true
        this.#log.warn('lease lapsed while the metadata store is unreachable; still serving within the grace', { graceLeftMs: remainingMs })
      } else if (!this.#failing) {
        this.#log.warn('lease keep-alive failed, retrying', { err, remainingMs })
      } else {
        this.#log.debug('lease keep-alive failed again', { code: isTorusError(err) ? err.code : undefined, remainingMs })
      }
      this.#failing = true
      this.#schedule(Math.max(1, Math.min(Math.floor(this.leaseTtlMs / 10), remainingMs)))
      return
    }
    if (this.#failing) this.#log.info('lease keep-alive succeeded again', { generation: this.lock.generation })
    this.#failing = false
    this.#unreachable = false
    this.#graceLogged = false
    if (this.#released || this.#lost !== undefined) return
    // Counted from when the request left, not when it returned: the store may have renewed
    // the lease at any point in between.
    this.#expiresAtMs = sentAtMs + this.leaseTtlMs
    this.#armExpiry()
    this.#schedule(this.#interval())
  }

  #markLost(reason: string, cause?: unknown): void {
    if (this.#lost !== undefined) return
    this.#lost = new TorusError('TORUS_LEASE_EXPIRED', `lost the write lock on volume ${this.lock.volume}: ${reason}`, {
      ...(cause === undefined ? {} : { cause }),
      details: { volume: this.lock.volume, generation: this.lock.generation },
    })
    this.#stopTimers()
    this.#log.error('volume lock lost', { generation: this.lock.generation, reason })
    try {
      this.#onLost?.(this.#lost)
    } catch (err) {
      this.#log.warn('onLost callback threw', { err })
    }
  }

  #stopTimers(): void {
    if (this.#tick !== undefined) this.#clock.clearTimeout(this.#tick)
    if (this.#expiry !== undefined) this.#clock.clearTimeout(this.#expiry)
    this.#tick = undefined
    this.#expiry = undefined
  }
}
