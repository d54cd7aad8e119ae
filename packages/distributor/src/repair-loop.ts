import { isTorusError, silentLogger, type Logger, type MetadataStore, type VolumeId } from '@torus/core'
import type { DistributedBlockStore } from './distributed-block-store.js'

export interface RepairLoopOptions {
  store: DistributedBlockStore
  metadata: Pick<MetadataStore, 'clearStaleReplicas' | 'listStaleReplicas' | 'addStaleReplicas'>
  /** The volumes this gateway holds the lock of now (only a holder may repair). */
  volumes: () => Iterable<{ id: VolumeId; name: string }>
  /** Pause between passes (default 10 s); a pass also starts on `kick()`. */
  intervalMs?: number
  /** Upper bound on the bytes copied per second, over all volumes (default: none). */
  bytesPerSecond?: number
  logger?: Logger
}

export interface RepairStats {
  /** Stale-replica records cleared since start. */
  repairedBlocks: number
  /** Whole-volume stale members made replicas again since start. */
  rejoinedPeers: number
  bytes: number
  /** Stale marks still held for the held volumes after the last pass. */
  remaining: number
  /** Bytes copied per second over the last pass (0 when idle). */
  bytesPerSec: number
  passes: number
}

/**
 * Repairs, in the background, the stale replicas of the volumes this gateway holds
 * (`DistributedBlockStore.repairVolume`, one volume at a time): a pass every `intervalMs`, or at
 * once after `kick()`. A volume with no stale mark costs nothing. Failures are logged and tried
 * again at the next pass; a volume taken over by another holder (TORUS_LEASE_EXPIRED) is left to
 * the lock's own loss handling.
 */
export class RepairLoop {
  readonly #opts: RepairLoopOptions
  readonly #log: Logger
  readonly #abort = new AbortController()
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #again = false
  #stopped = false
  readonly stats: RepairStats = { repairedBlocks: 0, rejoinedPeers: 0, bytes: 0, remaining: 0, bytesPerSec: 0, passes: 0 }

  constructor(options: RepairLoopOptions) {
    this.#opts = options
    this.#log = (options.logger ?? silentLogger).child({ component: 'repair' })
  }

  start(): void {
    this.#schedule()
  }

  /** Runs a pass soon (e.g. when a volume was opened with stale replicas). */
  kick(): void {
    if (this.#stopped) return
    if (this.#running !== undefined) {
      this.#again = true
      return
    }
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => void this.#pass(), 0)
    this.#timer.unref()
  }

  /** Runs one pass now and resolves when it is done (tests, status). */
  async runOnce(): Promise<void> {
    await this.#running
    await this.#pass()
  }

  /** Stops the loop; a pass in progress is aborted between blocks. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#abort.abort()
    await this.#running?.catch(() => {})
  }

  /**
   * Next pass: after `intervalMs` when nothing is left; while marks are left, after 1 s, then
   * doubling up to `intervalMs` as long as passes make no progress (a peer still down), so a
   * mark that becomes repairable (a peer back, a tenure's first write recording its marks) is
   * picked up quickly without spinning on one that is not.
   */
  #schedule(): void {
    if (this.#stopped) return
    clearTimeout(this.#timer)
    const interval = this.#opts.intervalMs ?? 10_000
    const delay = this.#again ? 0 : this.stats.remaining === 0 ? interval : Math.min(interval, this.#backoffMs)
    this.#timer = setTimeout(() => void this.#pass(), delay)
    this.#timer.unref()
    this.#again = false
  }

  #backoffMs = 1000

  #pass(): Promise<void> {
    if (this.#running !== undefined) return this.#running
    this.#running = this.#run().finally(() => {
      this.#running = undefined
      this.#schedule()
    })
    return this.#running
  }

  async #run(): Promise<void> {
    const { store, metadata } = this.#opts
    const started = Date.now()
    let bytes = 0
    let remaining = 0
    let progress = false
    for (const volume of this.#opts.volumes()) {
      if (this.#stopped) return
      if (!store.hasStaleReplicas(volume.id)) continue
      try {
        const report = await store.repairVolume(volume.id, {
          metadata,
          signal: this.#abort.signal,
          ...(this.#opts.bytesPerSecond === undefined ? {} : { bytesPerSecond: this.#opts.bytesPerSecond }),
        })
        this.stats.repairedBlocks += report.repaired
        this.stats.rejoinedPeers += report.rejoined
        this.stats.bytes += report.bytes
        bytes += report.bytes
        remaining += report.remaining
        progress ||= report.repaired > 0 || report.rejoined > 0
        if (report.repaired > 0 || report.rejoined > 0 || report.remaining > 0) {
          this.#log.info('repair pass', { volume: volume.name, repairedBlocks: report.repaired, rejoinedPeers: report.rejoined, bytes: report.bytes, remaining: report.remaining })
        }
      } catch (err) {
        if (isTorusError(err, 'TORUS_ABORTED') && this.#stopped) return
        remaining += 1
        this.#log.warn('repair pass failed; trying again later', { volume: volume.name, code: isTorusError(err) ? err.code : undefined, err })
      }
    }
    this.#backoffMs = progress || remaining === 0 ? 1000 : Math.min(this.#backoffMs * 2, 60_000)
    const seconds = (Date.now() - started) / 1000
    this.stats.bytesPerSec = bytes > 0 && seconds > 0 ? Math.round(bytes / seconds) : 0
    this.stats.remaining = remaining
    this.stats.passes++
  }
}
