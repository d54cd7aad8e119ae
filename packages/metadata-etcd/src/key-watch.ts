import type { Logger } from '@torus/core'
import type { Namespace, Watcher } from 'etcd3'

export interface KeyWatchOptions {
  ns: Namespace
  /** Keys (relative to the namespace) whose changes trigger a read. */
  keys: string[]
  /** Read this often even without events; 0 disables. */
  resyncMs: number
  logger: Logger
  /**
   * Reads the watched state and delivers it; resolves with the etcd revision of the read, from
   * which the watch then continues. Must be idempotent: it runs after every event, every
   * reconnect and every resync.
   */
  read(): Promise<string>
  /** Called for each interruption the watch recovers from. */
  onError(err: unknown): void
}

const MIN_RETRY_MS = 250
const MAX_RETRY_MS = 10_000

/**
 * A watch that does not die: etcd events only *trigger* a read of the current state, so a
 * missed or coalesced event costs nothing. When etcd cancels the watch (for instance because
 * the revision it should resume from has been compacted away) or a read fails, the watch
 * reads again with back-off and starts new watchers from the revision of that read. etcd3's
 * own watch manager handles plain reconnects; a reconnect also triggers a read.
 */
export class KeyWatch {
  readonly #opts: KeyWatchOptions
  #watchers: Watcher[] = []
  #closed = false
  #reading: Promise<void> | undefined
  #again = false
  #retryMs = MIN_RETRY_MS
  #retryTimer: NodeJS.Timeout | undefined
  #resyncTimer: NodeJS.Timeout | undefined

  constructor(options: KeyWatchOptions) {
    this.#opts = options
  }

  /** Reads once (so the caller has the current state when this resolves), then watches. */
  async start(): Promise<void> {
    const revision = await this.#opts.read()
    this.#watchFrom(revision)
    this.#armResync()
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retryTimer)
    clearTimeout(this.#resyncTimer)
    const watchers = this.#watchers
    this.#watchers = []
    await Promise.all(watchers.map((w) => w.cancel().catch(() => {})))
  }

  #watchFrom(revision: string): void {
    if (this.#closed) return
    const start = String(BigInt(revision) + 1n)
    for (const key of this.#opts.keys) {
      const watcher = this.#opts.ns.watch().key(key).startRevision(start).watcher()
      watcher.on('data', () => this.#refresh())
      watcher.on('connected', () => this.#refresh())
      watcher.on('disconnected', (err: unknown) => this.#opts.logger.debug('watch disconnected; etcd3 reconnects', { key, err }))
      watcher.on('error', (err: unknown) => this.#restart(err))
      this.#watchers.push(watcher)
    }
  }

  /** Runs `read` now, or once more after the running one; errors restart the watch. */
  #refresh(): void {
    if (this.#closed) return
    if (this.#reading !== undefined) {
      this.#again = true
      return
    }
    this.#reading = (async () => {
      do {
        this.#again = false
        try {
          await this.#opts.read()
          this.#retryMs = MIN_RETRY_MS
        } catch (err) {
          if (!this.#closed) this.#opts.onError(err)
          this.#scheduleRetry(() => this.#refresh())
          return
        }
      } while (this.#again && !this.#closed)
    })().finally(() => {
      this.#reading = undefined
    })
  }

  /** etcd cancelled a watcher: drop them all, read again, and watch from the new revision. */
  #restart(err: unknown): void {
    if (this.#closed) return
    this.#opts.onError(err)
    const old = this.#watchers
    this.#watchers = []
    for (const w of old) {
      w.removeAllListeners()
      // Keep a no-op error listener: a late 'error' on an unlistened emitter would throw.
      w.on('error', () => {})
      void w.cancel().catch(() => {})
    }
    this.#scheduleRetry(async () => {
      try {
        const revision = await this.#opts.read()
        this.#retryMs = MIN_RETRY_MS
        this.#watchFrom(revision)
      } catch (readErr) {
        this.#restart(readErr)
      }
    })
  }

  #scheduleRetry(fn: () => void | Promise<void>): void {
    if (this.#closed) return
    clearTimeout(this.#retryTimer)
    const delay = this.#retryMs
    this.#retryMs = Math.min(MAX_RETRY_MS, this.#retryMs * 2)
    this.#retryTimer = setTimeout(() => void fn(), delay)
    this.#retryTimer.unref()
  }

  #armResync(): void {
    if (this.#closed || this.#opts.resyncMs <= 0) return
    this.#resyncTimer = setTimeout(() => {
      this.#refresh()
      this.#armResync()
    }, this.#opts.resyncMs)
    this.#resyncTimer.unref()
  }
}
