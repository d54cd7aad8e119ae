import { isTorusError, silentLogger, type Logger, type MetadataStore, type RingDescriptor, type VolumeId } from '@torus/core'
import type { VolumeHandle, VolumeManager } from '@torus/volume'

export interface IdleRepairOptions {
  metadata: Pick<MetadataStore, 'listVolumes' | 'listStaleReplicas' | 'getVolumeLock' | 'listPeers'>
  /** This daemon's volumes: a volume is opened through them, like an NBD client's, to repair it. */
  volumes: Pick<VolumeManager, 'acquire' | 'held'>
  /** Stale marks the gateway still holds for a volume it has open (`DistributedBlockStore.staleMarkCount`). */
  staleMarks: (volumeId: VolumeId) => number
  /** The ring this daemon places blocks by now. */
  ring: () => RingDescriptor
  peerId: string
  /** Between looks for volumes to repair. Default 30 s (torusd passes its --idle-repair-interval). */
  intervalMs?: number
  /** Longest a volume is held for repair in one go. Default 5 min. */
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
 * the repair loop runs on it — until its stale marks are gone, then lets it go.
 *
 * Only one daemon does it (the ring member with the lowest id), and only while every ring
 * member is alive: opening a volume while a member is down records that member stale for the
 * whole volume, which would make things worse. While it holds a volume, an open through
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
  readonly #retryAt = new Map<string, number>()

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
    await this.#running?.catch(() => {})
    this.#running = this.#run()
    try {
      await this.#running
    } finally {
      this.#running = undefined
    }
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

  async #run(): Promise<void> {
    const { metadata, volumes, peerId } = this.#opts
    const members = this.#opts.ring().members.map((m) => m.peer as string)
    if (!members.includes(peerId)) return
    const alive = new Set((await metadata.listPeers()).filter((p) => p.alive).map((p) => p.id as string))
    if (members.some((m) => !alive.has(m))) return
    if ([...members].sort()[0] !== peerId) return
    const held = new Set(volumes.held().map((v) => v.name))
    for (const volume of await metadata.listVolumes()) {
      if (this.#stopped) return
      if (held.has(volume.name) || (this.#retryAt.get(volume.name) ?? 0) > Date.now()) continue
      const stale = await metadata.listStaleReplicas(volume.id)
      if (stale.length === 0 || (await metadata.getVolumeLock(volume.name)) !== undefined) continue
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
      if (left > 0) this.#retryAt.set(volume.name, Date.now() + (this.#opts.retryAfterMs ?? 10 * 60_000))
      else this.#retryAt.delete(volume.name)
      this.#log.info('idle-volume repair: let the volume go', { volume: volume.name, staleRecordsBefore: stale.length, staleRecordsLeft: left })
    }
  }

  /** Waits while the repair loop works on the volume: until no marks are left, it stalls, or time is up. */
  async #hold(name: string, id: VolumeId, records: number): Promise<void> {
    const { staleMarks } = this.#opts
    const maxHoldMs = this.#opts.maxHoldMs ?? 5 * 60_000
    const stallMs = this.#opts.stallMs ?? 30_000
    this.#log.info('idle-volume repair: holding a volume nobody has open to repair its stale copies', { volume: name, staleRecords: records })
    const start = Date.now()
    let best = staleMarks(id)
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
      if (marks < best) {
        best = marks
        progressAt = Date.now()
      }
    }
  }
}
