import { isTorusError, silentLogger, type Logger, type MetadataStore, type RingDescriptor, type VolumeId } from '@torus/core'
import type { VolumeHandle, VolumeManager } from '@torus/volume'

export interface IdleRepairOptions {
  metadata: Pick<MetadataStore, 'listVolumes' | 'listStaleReplicas' | 'getVolumeLock' | 'listPeers'>
  /** This daemon's volumes: a volume is opened through them, like an NBD client's, to repair it. */
  volumes: Pick<VolumeManager, 'acquire' | 'held'>
  /** Stale marks the gateway still holds for a volume it has open (`DistributedBlockStore.staleMarkCount`). */
  staleMarks: (volumeId: VolumeId) => number
  /**
   * A counter that grows while repair works (bytes copied plus records cleared, from the
   * RepairLoop's stats): a peer rejoining a whole volume copies for a long time before its one
   * mark goes. Default: the marks alone.
   */
  progress?: () => number
  /** Whether this node reaches every one of `peers` now (`DistributedBlockStore.reachesAll`). Default: yes. */
  reachable?: (peers: readonly string[]) => Promise<boolean>
  /** The ring this daemon places blocks by now. */
  ring: () => RingDescriptor
  peerId: string
  /** Between looks for volumes to repair. Default 30 s (torusd passes its --idle-repair-interval). */
  intervalMs?: number
  /** Longest a volume is held for repair in one go, however it progresses. Default 30 min. */
  maxHoldMs?: number
  /** A hold ends when repair made no progress for this long (a peer went away). Default 30 s. */
  stallMs?: number
  /** A volume a hold left with stale records is tried again after this long. Default 10 min. */
  retryAfterMs?: number
  logger?: Logger
}

/**
 * Repairs volumes nobody has open. Repair runs in whichever process holds a volume's lock, so
 * a volume left with stale copies (a node was down while it was written) would stay degraded
 * until a client opened it again, and a second failure could then find no current copy. This
 * opens such a volume through the daemon's VolumeManager — exactly as an NBD client would, so
 * the repair loop runs on it — until its stale marks are gone (or repair made no progress for
 * `stallMs`, or `maxHoldMs` passed), then lets it go.
 *
 * Only one daemon does it (the ring member with the lowest id), and only while every ring
 * member is alive and reachable, checked before each volume: opening a volume while a member is
 * down records that member stale for the whole volume, which would make things worse. While it holds a volume, an open through
 * another node is refused as for any lock holder (`volume pad is locked by torusd/…`); an
 * open through this node shares the volume.
 */
export class IdleRepair {
  readonly #opts: IdleRepairOptions
  readonly #log: Logger
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = false
  /** Wakes a hold in progress when stopping. */
  #wake: (() => void) | undefined
  /** Volumes a hold could not finish, and when to try them again (not every interval). */
  readonly #retryAt = new Map<VolumeId, number>()

  constructor(options: IdleRepairOptions) {
    this.#opts = options
    this.#log = (options.logger ?? silentLogger).child({ component: 'idle-repair' })
  }

  start(): void {
    this.#schedule()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#wake?.()
    await this.#running?.catch(() => {})
  }

  /** One look for volumes to repair, holding each until repaired (tests). */
  async runOnce(): Promise<void> {
    // One look at a time: a second call runs after the first.
    const run: Promise<void> = (this.#running ?? Promise.resolve())
      .catch(() => {})
      .then(() => this.#run())
      .finally(() => {
        if (this.#running === run) this.#running = undefined
      })
    this.#running = run
    await run
  }

  #schedule(): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      void this.runOnce()
        .catch((err: unknown) => {
          // etcd out of reach is reported by the daemon's heartbeats already.
          const quiet = isTorusError(err, 'TORUS_UNAVAILABLE') || isTorusError(err, 'TORUS_TIMEOUT')
          this.#log[quiet ? 'debug' : 'warn']('idle-volume repair failed; trying again later', { code: isTorusError(err) ? err.code : undefined, err })
        })
        .finally(() => this.#schedule())
    }, this.#opts.intervalMs ?? 30_000)
    this.#timer.unref()
  }

  /**
   * The ring's members when this node is the one to repair and may open a volume now: the
   * member with the lowest id, every member alive in etcd and reachable from here. Checked
   * before each volume: a member that went down meanwhile would be recorded stale for the
   * whole of the next volume opened.
   */
  async #mayOpen(): Promise<string[] | undefined> {
    const { metadata, peerId } = this.#opts
    const members = this.#opts.ring().members.map((m) => m.peer as string)
    if (!members.includes(peerId) || [...members].sort()[0] !== peerId) return undefined
    const alive = new Set((await metadata.listPeers()).filter((p) => p.alive).map((p) => p.id as string))
    if (members.some((m) => !alive.has(m))) return undefined
    // The etcd lease outlives a crashed daemon by up to its TTL: ask the transport too.
    if (this.#opts.reachable !== undefined && !(await this.#opts.reachable(members))) return undefined
    return members
  }

  async #run(): Promise<void> {
    const { metadata, volumes } = this.#opts
    if ((await this.#mayOpen()) === undefined) return
    for (const volume of await metadata.listVolumes()) {
      if (this.#stopped) return
      if (volumes.held().some((v) => v.id === volume.id) || (this.#retryAt.get(volume.id) ?? 0) > Date.now()) continue
      const stale = await metadata.listStaleReplicas(volume.id)
      if (stale.length === 0 || (await metadata.getVolumeLock(volume.name)) !== undefined) continue
      const members = await this.#mayOpen()
      if (members === undefined) return
      // A record on a peer the ring no longer places blocks on waits for rebalance: nothing to do.
      if (!stale.some((r) => members.includes(r.peer))) continue
      let handle: VolumeHandle | undefined
      try {
        handle = await volumes.acquire(volume.name)
      } catch (err) {
        // Someone opened it meanwhile: its holder repairs it.
        this.#log.debug('idle-volume repair: could not open the volume', { volume: volume.name, code: isTorusError(err) ? err.code : undefined })
        continue
      }
      if (handle === undefined) continue
      try {
        await this.#hold(volume.name, volume.id, stale.length)
      } finally {
        await handle.release()
      }
      const left = (await metadata.listStaleReplicas(volume.id)).length
      // What one hold could not repair (a copy no owner agrees on, a record on a peer the ring
      // no longer places blocks on) waits a while: each hold keeps other nodes' clients out.
      if (left > 0) this.#retryAt.set(volume.id, Date.now() + (this.#opts.retryAfterMs ?? 10 * 60_000))
      else this.#retryAt.delete(volume.id)
      this.#log.info('idle-volume repair: let the volume go', { volume: volume.name, staleRecordsBefore: stale.length, staleRecordsLeft: left })
    }
  }

  /** Waits while the repair loop works on the volume: until no marks are left, it stalls, or time is up. */
  async #hold(name: string, id: VolumeId, records: number): Promise<void> {
    const { staleMarks } = this.#opts
    const progress = this.#opts.progress ?? (() => 0)
    const maxHoldMs = this.#opts.maxHoldMs ?? 30 * 60_000
    const stallMs = this.#opts.stallMs ?? 30_000
    this.#log.info('idle-volume repair: holding a volume nobody has open to repair its stale copies', { volume: name, staleRecords: records })
    const start = Date.now()
    let best = staleMarks(id)
    let done = progress()
    let progressAt = start
    while (!this.#stopped && staleMarks(id) > 0) {
      const now = Date.now()
      if (now - start > maxHoldMs || now - progressAt > stallMs) break
      await new Promise<void>((resolve) => {
        this.#wake = resolve
        setTimeout(resolve, 500).unref()
      })
      this.#wake = undefined
      const marks = staleMarks(id)
      const work = progress()
      if (marks < best || work > done) {
        best = Math.min(best, marks)
        done = work
        progressAt = Date.now()
      }
    }
  }
}
