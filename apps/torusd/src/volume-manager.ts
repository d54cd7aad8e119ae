import type { BlockStore, Logger, MetadataStore, VolumeInfo } from '@torus/core'
import { TorusError } from '@torus/core'
import { openVolume, type Volume } from '@torus/volume'

interface Entry {
  opening: Promise<Volume>
  refs: number
  /** Set once the volume is open. */
  volume?: Volume
}

export interface VolumeManagerOptions {
  metadata: MetadataStore
  store: BlockStore
  /** Lock holder name shown to other openers, e.g. `torusd/<peer uuid>@host`. */
  holder: string
  leaseTtlMs: number
  logger: Logger
}

/**
 * Opens each volume once for all the NBD connections that use it (they share one write lock
 * and one flush domain, which is what makes CAN_MULTI_CONN honest), and closes it — flush,
 * unlock — when the last connection goes away.
 */
export class VolumeManager {
  readonly #opts: VolumeManagerOptions
  readonly #entries = new Map<string, Entry>()
  /** Volumes being closed; a new open waits, so it never races the old lock's release. */
  readonly #closing = new Map<string, Promise<void>>()

  constructor(options: VolumeManagerOptions) {
    this.#opts = options
  }

  /** Opens (or shares) the volume; `undefined` when no such volume exists. */
  async acquire(name: string): Promise<Volume | undefined> {
    let entry = this.#entries.get(name)
    while (entry === undefined && this.#closing.has(name)) {
      await this.#closing.get(name)
      entry = this.#entries.get(name)
    }
    if (entry === undefined) {
      const info = await this.#opts.metadata.getVolume(name)
      if (info === undefined) return undefined
      entry = this.#entries.get(name) // another caller may have raced us past the await
      if (entry === undefined) {
        const e: Entry = { refs: 0, opening: this.#open(info) }
        entry = e
        this.#entries.set(name, e)
        e.opening.then(
          (v) => (e.volume = v),
          () => this.#entries.get(name) === e && this.#entries.delete(name),
        )
      }
    }
    entry.refs++
    try {
      return await entry.opening
    } catch (err) {
      entry.refs--
      throw err
    }
  }

  /** Drops one reference; the last one closes the volume. */
  async release(name: string): Promise<void> {
    const entry = this.#entries.get(name)
    if (entry === undefined) return
    entry.refs--
    if (entry.refs > 0) return
    this.#entries.delete(name)
    const closing = this.#close(name, entry).finally(() => this.#closing.delete(name))
    this.#closing.set(name, closing)
    await closing
  }

  async #close(name: string, entry: Entry): Promise<void> {
    const volume = await entry.opening.catch(() => undefined)
    if (volume === undefined) return
    try {
      await volume.close()
      this.#opts.logger.info('volume closed', { volume: name })
    } catch (err) {
      this.#opts.logger.error('volume close failed', { volume: name, err })
    }
  }

  /** Number of open handles per volume, for status and metrics. */
  openVolumes(): Map<string, number> {
    return new Map([...this.#entries].map(([name, e]) => [name, e.refs]))
  }

  /** Deletes a volume and frees its blocks; refuses while NBD clients use it. */
  async delete(name: string): Promise<VolumeInfo> {
    await this.#closing.get(name)
    const entry = this.#entries.get(name)
    if (entry !== undefined && entry.refs > 0) {
      throw new TorusError('TORUS_LOCKED', `volume ${name} is in use by ${entry.refs} NBD connection(s); disconnect them first`, {
        details: { volume: name, connections: entry.refs },
      })
    }
    const info = await this.#opts.metadata.deleteVolume(name)
    await this.#opts.store.deleteVolume(info.id)
    await this.#opts.store.flush()
    this.#opts.logger.info('volume deleted', { volume: name, id: info.id })
    return info
  }

  async flushAll(): Promise<void> {
    await this.#opts.store.flush()
  }

  /** Flushes and closes every open volume (shutdown). */
  async closeAll(): Promise<void> {
    const entries = [...this.#entries]
    this.#entries.clear()
    await Promise.all(this.#closing.values())
    await Promise.all(
      entries.map(async ([name, e]) => {
        const v = await e.opening.catch(() => undefined)
        await v?.close().catch((err: unknown) => this.#opts.logger.error('volume close failed', { volume: name, err }))
      }),
    )
  }

  async #open(info: VolumeInfo): Promise<Volume> {
    const { metadata, store, holder, leaseTtlMs, logger } = this.#opts
    const volume = await openVolume({
      metadata,
      store,
      name: info.name,
      holder,
      leaseTtlMs,
      logger: logger.child({ volume: info.name }),
      // The volume refuses writes from here on (clients get EIO); say so loudly.
      onLost: (err) => logger.error('volume lock lost, refusing writes', { volume: info.name, code: err.code, err }),
    })
    logger.info('volume opened', { volume: info.name, id: info.id, generation: volume.generation })
    return volume
  }
}
