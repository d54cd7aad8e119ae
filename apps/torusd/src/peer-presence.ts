import { isTorusError, type LeaseId, type Logger, type MetadataStore, type MetadataWatch, type PeerInfo, type RingDescriptor } from '@torus/core'

export interface PeerPresenceOptions {
  metadata: MetadataStore
  /** What to report; called for every heartbeat (capacity and usage change over time). */
  report: () => Omit<PeerInfo, 'updatedAt' | 'ringVersion'>
  /** Lease TTL behind the liveness record; a heartbeat goes out every third of it. */
  ttlMs: number
  logger: Logger
  /** Called with each new ring this peer learns of. */
  onRing?: (ring: RingDescriptor) => void
}

/**
 * This peer's presence in the cluster: a heartbeat record (address, capacity, usage, rates, ring
 * version) bound to a lease, renewed every `ttl / 3`, plus a watch on the ring.
 *
 * Metadata outages are ridden out, never fatal: a failed heartbeat is retried on the next tick,
 * and a lease that is gone when the store answers again (it expired during a long outage) is
 * replaced by a fresh one. The ring watch resynchronises by itself.
 */
export class PeerPresence {
  readonly #opts: PeerPresenceOptions
  #leaseId: LeaseId | undefined
  #timer: NodeJS.Timeout | undefined
  #watch: MetadataWatch | undefined
  #ring: RingDescriptor | undefined
  #stopped = false
  #failing = false
  #beat: Promise<void> | undefined
  /** Time of the last heartbeat the store accepted (ms since epoch), for status. */
  lastHeartbeatMs: number | undefined

  constructor(options: PeerPresenceOptions) {
    this.#opts = options
  }

  get ring(): RingDescriptor | undefined {
    return this.#ring
  }

  /** Registers (first heartbeat must succeed, so a start-up problem is reported) and starts watching. */
  async start(): Promise<void> {
    await this.#heartbeat(true)
    this.#watch = await this.#opts.metadata.watchRing(
      (ring) => {
        const previous = this.#ring
        this.#ring = ring
        if (previous !== undefined) this.#opts.logger.info('ring changed', { from: previous.version, to: ring.version, type: ring.type, members: ring.members.length })
        this.#opts.onRing?.(ring)
        // Report the new version at once, so list-peers sees the cluster converge quickly.
        if (previous !== undefined) void this.#tick()
      },
      { onError: (err) => this.#opts.logger.warn('ring watch interrupted; resynchronising', { err }) },
    )
    this.#schedule()
  }

  /** Heartbeat now (e.g. after joining the ring); errors are logged, not thrown. */
  async beatNow(): Promise<void> {
    await this.#tick()
  }

  /** Stops heartbeats and revokes the lease, so the peer shows as down at once. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#beat?.catch(() => {})
    await this.#watch?.close().catch(() => {})
    if (this.#leaseId !== undefined) {
      await this.#opts.metadata.revokeLease(this.#leaseId).catch((err: unknown) => this.#opts.logger.warn('could not revoke the peer lease', { err }))
    }
  }

  #schedule(): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => void this.#tick().finally(() => this.#schedule()), Math.max(100, Math.floor(this.#opts.ttlMs / 3)))
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return
    if (this.#beat !== undefined) return this.#beat
    this.#beat = this.#heartbeat(false)
      .catch((err: unknown) => {
        if (!this.#failing) this.#opts.logger.warn('heartbeat failed; retrying', { err })
        this.#failing = true
      })
      .finally(() => {
        this.#beat = undefined
      })
    return this.#beat
  }

  async #heartbeat(first: boolean): Promise<void> {
    const { metadata, ttlMs } = this.#opts
    if (this.#leaseId === undefined) this.#leaseId = await metadata.grantLease(ttlMs)
    else {
      try {
        await metadata.keepAlive(this.#leaseId)
      } catch (err) {
        if (!isTorusError(err, 'TORUS_LEASE_EXPIRED')) throw err
        this.#opts.logger.warn('peer lease expired (metadata unreachable for too long?); registering again')
        this.#leaseId = await metadata.grantLease(ttlMs)
      }
    }
    const info: PeerInfo = { ...this.#opts.report(), ringVersion: this.#ring?.version ?? 0, updatedAt: new Date().toISOString() }
    try {
      await metadata.putPeer(info, this.#leaseId)
    } catch (err) {
      if (!isTorusError(err, 'TORUS_LEASE_EXPIRED')) throw err
      this.#leaseId = await metadata.grantLease(ttlMs)
      await metadata.putPeer(info, this.#leaseId)
    }
    this.lastHeartbeatMs = Date.now()
    if (first) this.#opts.logger.info('peer registered', { peer: info.id, address: info.address, capacity: info.capacityBytes })
    else if (this.#failing) this.#opts.logger.info('heartbeats resumed')
    this.#failing = false
  }
}
