import { setMaxListeners } from 'node:events'
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
  /** Bytes copied to stale replicas since start (counted as each copy lands). */
  bytes: number
  /** Stale marks the held volumes have now (repair's work left; live). */
  readonly remaining: number
  /** Bytes copied per second over the last few seconds (0 when idle). */
  readonly bytesPerSec: number
  passes: number
}

/** How far back the copy rate looks. */
const RATE_WINDOW_MS = 5_000
/** Longest pause between passes while marks are left and nothing progresses (a peer still down). */
const MAX_BACKOFF_MS = 5_000

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
  /** Recent copies, for the rate: [time, bytes]. */
  readonly #recent: [number, number][] = []
  readonly stats: RepairStats

  constructor(options: RepairLoopOptions) {
    this.#opts = options
    this.#log = (options.logger ?? silentLogger).child({ component: 'repair' })
    // Every request of a pass listens on this one signal.
    setMaxListeners(0, this.#abort.signal)
    const loop = this
    this.stats = {
      repairedBlocks: 0,
      rejoinedPeers: 0,
      bytes: 0,
      passes: 0,
      get remaining(): number {
        let n = 0
        for (const v of loop.#opts.volumes()) n += loop.#opts.store.staleMarkCount(v.id)
        return n
      },
      get bytesPerSec(): number {
        return loop.#rate()
      },
    }
  }

  #rate(): number {
    const now = Date.now()
    while (this.#recent.length > 0 && this.#recent[0]![0] < now - RATE_WINDOW_MS) this.#recent.shift()
    const bytes = this.#recent.reduce((sum, [, b]) => sum + b, 0)
    return Math.round(bytes / (RATE_WINDOW_MS / 1000))
  }

  #progress = (bytes: number): void => {
    this.stats.bytes += bytes
    if (bytes > 0) this.#recent.push([Date.now(), bytes])
    if (this.#recent.length > 100_000) this.#recent.splice(0, this.#recent.length - 100_000)
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
   * doubling up to 5 s as long as passes make no progress (a peer still down), so a
   * mark that becomes repairable (a peer back, a tenure's first write recording its marks) is
   * picked up quickly without spinning on one that is not.
   */
  #schedule(): void {
    if (this.#stopped) return
    clearTimeout(this.#timer)
    const interval = this.#opts.intervalMs ?? 10_000
    const delay = this.#again ? 0 : this.#lastRemaining === 0 ? interval : Math.min(interval, this.#backoffMs)
    this.#timer = setTimeout(() => void this.#pass(), delay)
    this.#timer.unref()
    this.#again = false
  }

  #backoffMs = 1000
  #lastRemaining = 0
  /** Per volume, the `remaining` of the last pass logged. */
  readonly #logged = new Map<VolumeId, number>()

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
    let remaining = 0
    let progress = false
    for (const volume of this.#opts.volumes()) {
      if (this.#stopped) return
      if (!store.hasStaleReplicas(volume.id)) continue
      try {
        const report = await store.repairVolume(volume.id, {
          metadata,
          signal: this.#abort.signal,
          onProgress: this.#progress,
          ...(this.#opts.bytesPerSecond === undefined ? {} : { bytesPerSecond: this.#opts.bytesPerSecond }),
        })
        this.stats.repairedBlocks += report.repaired
        this.stats.rejoinedPeers += report.rejoined
        remaining += report.remaining
        progress ||= report.repaired > 0 || report.rejoined > 0
        // A pass that changed nothing is not news: a peer that stays down would log it every few seconds.
        if (report.repaired > 0 || report.rejoined > 0 || report.remaining !== (this.#logged.get(volume.id) ?? 0)) {
          this.#log.info('repair pass', { volume: volume.name, repairedBlocks: report.repaired, rejoinedPeers: report.rejoined, bytes: report.bytes, remaining: report.remaining })
        }
        if (report.remaining === 0) this.#logged.delete(volume.id)
        else this.#logged.set(volume.id, report.remaining)
      } catch (err) {
        if (isTorusError(err, 'TORUS_ABORTED') && this.#stopped) return
        // The volume was closed (or taken over) during the pass: its repair ends with its tenure,
        // which is news only at debug level; the next holder repairs it.
        if (isTorusError(err, 'TORUS_LEASE_EXPIRED') && ![...this.#opts.volumes()].some((v) => v.id === volume.id)) {
          this.#log.debug('repair pass ended with the tenure', { volume: volume.name })
          continue
        }
        remaining += 1
        this.#log.warn('repair pass failed; trying again later', { volume: volume.name, code: isTorusError(err) ? err.code : undefined, err })
      }
    }
    this.#backoffMs = progress || remaining === 0 ? 1000 : Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS)
    this.#lastRemaining = remaining
    this.stats.passes++
  }
}
