import type { BlockDeviceSupports, BlockStore, Logger, MetadataStore, VolumeInfo } from '@torus/core'
import { TorusError, VOLUME_NAME_RE } from '@torus/core'
import { openVolume } from './open-volume.js'
import { volumeSupports, type Volume } from './volume.js'

interface Entry {
  name: string
  opening: Promise<Volume>
  refs: number
  /** Set once open. */
  generation?: number
  id?: VolumeInfo['id']
}

/** A connection's hold on an open volume; `release()` once, when the connection is gone. */
export interface VolumeHandle {
  volume: Volume
  release(): Promise<void>
}

export interface VolumeManagerOptions {
  metadata: MetadataStore
  store: BlockStore
  /** Lock holder name shown to other openers, e.g. `torusd/<peer uuid>`. */
  holder: string
  leaseTtlMs: number
  /** How long a lapsed lease still counts while the metadata store is unreachable (see VolumeLease). */
  unreachableGraceMs?: number
  logger: Logger
  /**
   * Runs after the lock is taken and before the volume serves anything (e.g. fencing the
   * replicas with the new generation); if it rejects, the volume is closed and the open fails.
   */
  prepare?: (volume: Volume) => Promise<void>
  /** Drops a deleted volume's blocks. Default: `store.deleteVolume(id)` then `store.flush()`. */
  dropBlocks?: (id: VolumeInfo['id']) => Promise<void>
  /** Called once a volume is open and prepared (e.g. to start its repair). */
  onOpened?: (info: VolumeInfo) => void
  /**
   * Runs before a volume this manager still holds is flushed and unlocked (e.g. recording what
   * only this holder knows); an error is logged and the close goes on.
   */
  beforeClose?: (volume: Volume) => Promise<void>
  /** Called once a volume is closed here, its lock released or lost (e.g. to end its repair). */
  onClosed?: (info: VolumeInfo) => void
  /** Journal of deletions in progress (see PendingDeletes); optional in tests. */
  pendingDeletes?: { add(id: number): Promise<void>; remove(id: number): Promise<void> }
}

/**
 * Opens each volume once for all the NBD connections that use it (they share one write lock
 * and one flush domain, which is what makes CAN_MULTI_CONN honest), and closes it — flush,
 * unlock — when the last connection goes away. A volume whose lock was lost is retired at once:
 * its connections keep the dead handle (writes fail with EIO) and the next connection opens it
 * afresh under a new lock.
 */
export class VolumeManager {
  readonly #opts: VolumeManagerOptions
  /** The current entry per name; retired (lost) entries live on only in their handles. */
  readonly #entries = new Map<string, Entry>()
  /** Volumes being closed; a new open waits, so it never races the old lock's release. */
  readonly #closing = new Map<string, Promise<void>>()

  constructor(options: VolumeManagerOptions) {
    this.#opts = options
  }

  /**
   * What a client would get from `acquire` — size and capabilities — without opening the volume
   * or taking its lock (NBD_OPT_INFO, `nbdinfo --list`); `undefined` when no such volume exists.
   */
  async describe(name: string): Promise<{ sizeBytes: number; supports: BlockDeviceSupports } | undefined> {
    if (!VOLUME_NAME_RE.test(name)) return undefined
    const info = await this.#opts.metadata.getVolume(name)
    return info === undefined ? undefined : { sizeBytes: info.sizeBytes, supports: volumeSupports(false) }
  }

  /** Opens (or shares) the volume; `undefined` when no such volume exists (or `name` cannot be one). */
  async acquire(name: string): Promise<VolumeHandle | undefined> {
    if (!VOLUME_NAME_RE.test(name)) return undefined
    let entry: Entry | undefined
    for (;;) {
      entry = this.#entries.get(name)
      while (entry === undefined && this.#closing.has(name)) {
        await this.#closing.get(name)
        entry = this.#entries.get(name)
      }
      if (entry !== undefined) break
      const info = await this.#opts.metadata.getVolume(name)
      if (info === undefined) return undefined
      // Past that await another caller may have opened the volume — or opened and started
      // closing it; look again rather than race the old lock's release.
      entry = this.#entries.get(name)
      if (entry !== undefined) break
      if (this.#closing.has(name)) continue
      const fresh: Entry = { name, refs: 0, opening: Promise.resolve(undefined as never) }
      fresh.opening = this.#open(info, fresh)
      fresh.opening.catch(() => this.#retire(fresh))
      this.#entries.set(name, (entry = fresh))
      break
    }
    entry.refs++
    let volume: Volume
    try {
      volume = await entry.opening
    } catch (err) {
      entry.refs--
      throw err
    }
    const held = entry
    let released = false
    return {
      volume,
      release: () => {
        if (released) return Promise.resolve()
        released = true
        return this.#release(held)
      },
    }
  }

  /** Number of open handles per volume, for status and metrics. */
  openVolumes(): Map<string, number> {
    return new Map([...this.#entries].map(([name, e]) => [name, e.refs]))
  }

  /** The lock generation (fencing token) of every volume open for writing. */
  generations(): Map<string, number> {
    const out = new Map<string, number>()
    for (const [name, e] of this.#entries) if (e.generation !== undefined) out.set(name, e.generation)
    return out
  }

  /** The volumes open here now (their lock held), with ids: what a background repair may work on. */
  held(): { name: string; id: VolumeInfo['id']; generation: number | undefined }[] {
    const out: { name: string; id: VolumeInfo['id']; generation: number | undefined }[] = []
    for (const [name, e] of this.#entries) if (e.id !== undefined) out.push({ name, id: e.id, generation: e.generation })
    return out
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
    // Journal, then metadata, then blocks: if we die part-way, the journal's owner finishes the
    // delete at its next start (torusd does); the reverse order would leave a volume whose data
    // had vanished.
    const known = await this.#opts.metadata.getVolume(name)
    if (known === undefined) throw new TorusError('TORUS_NOT_FOUND', `volume ${name} not found`)
    await this.#opts.pendingDeletes?.add(known.id)
    const info = await this.#opts.metadata.deleteVolume(name)
    if (this.#opts.dropBlocks !== undefined) await this.#opts.dropBlocks(info.id)
    else {
      await this.#opts.store.deleteVolume(info.id)
      await this.#opts.store.flush()
    }
    await this.#opts.pendingDeletes?.remove(info.id)
    this.#opts.logger.info('volume deleted', { volume: name, id: info.id })
    return info
  }

  /** Flushes and closes every open volume (shutdown). */
  async closeAll(): Promise<void> {
    const entries = [...this.#entries.values()]
    this.#entries.clear()
    await Promise.all(this.#closing.values())
    await Promise.all(entries.map((e) => this.#close(e, true)))
  }

  async #release(entry: Entry): Promise<void> {
    entry.refs--
    if (entry.refs > 0) return
    if (this.#entries.get(entry.name) !== entry) {
      // Retired after losing its lock: close what is left (nothing to unlock).
      await this.#close(entry, false)
      return
    }
    this.#entries.delete(entry.name)
    const closing = this.#close(entry, true).finally(() => this.#closing.delete(entry.name))
    this.#closing.set(entry.name, closing)
    await closing
  }

  #retire(entry: Entry): void {
    if (this.#entries.get(entry.name) === entry) this.#entries.delete(entry.name)
  }

  async #close(entry: Entry, held: boolean): Promise<void> {
    const volume = await entry.opening.catch(() => undefined)
    if (volume === undefined) return
    if (held && this.#opts.beforeClose !== undefined) {
      await this.#opts.beforeClose(volume).catch((err: unknown) => this.#opts.logger.warn('volume close: a step before unlocking failed', { volume: entry.name, err }))
    }
    try {
      await volume.close()
      this.#opts.logger.info('volume closed', { volume: entry.name })
    } catch (err) {
      this.#opts.logger.error('volume close failed', { volume: entry.name, err })
    }
    this.#opts.onClosed?.(volume.info)
  }

  async #open(info: VolumeInfo, entry: Entry): Promise<Volume> {
    const { metadata, store, holder, leaseTtlMs, logger } = this.#opts
    const volume = await openVolume({
      metadata,
      store,
      name: info.name,
      holder,
      leaseTtlMs,
      ...(this.#opts.unreachableGraceMs === undefined ? {} : { unreachableGraceMs: this.#opts.unreachableGraceMs }),
      logger: logger.child({ volume: info.name }),
      onLost: (err) => {
        logger.error('volume lock lost; its connections get EIO on writes, new connections reopen it', { volume: info.name, code: err.code, err })
        this.#retire(entry)
      },
    })
    if (this.#opts.prepare !== undefined) {
      try {
        await this.#opts.prepare(volume)
      } catch (err) {
        logger.error('volume could not be prepared for serving; releasing its lock', { volume: info.name, err })
        await volume.close().catch(() => {})
        throw err
      }
    }
    if (volume.generation !== undefined) entry.generation = volume.generation
    entry.id = info.id
    this.#opts.onOpened?.(info)
    logger.info('volume opened', { volume: info.name, id: info.id, generation: volume.generation })
    return volume
  }
}
