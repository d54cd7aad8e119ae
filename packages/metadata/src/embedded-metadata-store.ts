import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { TorusError } from '@torus/core'
import type { AbortOptions, Clock, Logger, MetadataSupports, Random } from '@torus/core'
import { MemoryMetadataStore } from './memory-metadata-store.js'
import { decodeMetadataFile, encodeMetadataFile } from './metadata-file.js'
import { MetadataModel } from './metadata-model.js'

export interface EmbeddedMetadataStoreOptions {
  /** Data directory; created if missing. The state lives in `<dir>/metadata.json`. */
  dir: string
  clock?: Clock
  random?: Random
  logger?: Logger
}

export const METADATA_FILE_NAME = 'metadata.json'
const TEMP_FILE_NAME = `${METADATA_FILE_NAME}.tmp`

/**
 * The single-node metadata store: the memory store's model, written to `<dir>/metadata.json`
 * before each mutation resolves. A write goes to a temp file, is fsynced, renamed over the old
 * file, and the directory is fsynced, so a crash leaves either the old or the new state.
 *
 * Leases are deliberately conservative across restarts: their deadlines are not stored, and a
 * lease found in the file is treated as granted at open time, so it expires one TTL after open
 * unless kept alive. A holder from the previous process thus loses its lock at most one TTL
 * later, and never earlier than its own keep-alive schedule would have allowed. keepAlive
 * changes only that in-memory deadline and does not write the file.
 *
 * One process per directory: nothing stops a second process from opening the same dir.
 */
export class EmbeddedMetadataStore extends MemoryMetadataStore {
  override readonly supports: MetadataSupports = Object.freeze({ persistent: true, leases: true, watch: true })
  readonly dir: string
  readonly file: string

  constructor(options: EmbeddedMetadataStoreOptions) {
    const { dir, logger, ...rest } = options
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty path')
    super({ ...rest, ...(logger === undefined ? {} : { logger: logger.child({ component: 'metadata:embedded' }) }) })
    this.dir = dir
    this.file = join(dir, METADATA_FILE_NAME)
  }

  protected override async _open(_options: AbortOptions): Promise<void> {
    await mkdir(this.dir, { recursive: true }).catch((err: unknown) => {
      throw ioError(`cannot create metadata directory ${this.dir}`, err)
    })
    // A temp file is only ever left behind by a crash mid-write; the real file is still intact.
    await rm(join(this.dir, TEMP_FILE_NAME), { force: true }).catch((err: unknown) => {
      throw ioError(`cannot remove stale temp file in ${this.dir}`, err)
    })
    let text: string | undefined
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot read metadata file ${this.file}`, err)
    }
    this.model = text === undefined ? new MetadataModel() : decodeMetadataFile(text, this.file, this.clock.now())
    this._startTimers()
    this.logger.info('metadata store opened', {
      file: this.file,
      revision: this.model.revision,
      volumes: this.model.volumes.size,
      leases: this.model.leases.size,
    })
  }

  protected override async _commit(next: MetadataModel): Promise<void> {
    const text = encodeMetadataFile(next)
    const temp = join(this.dir, TEMP_FILE_NAME)
    try {
      const handle = await open(temp, 'w', 0o600)
      try {
        await handle.writeFile(text, 'utf8')
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(temp, this.file)
      const dirHandle = await open(this.dir, 'r')
      try {
        await dirHandle.sync()
      } finally {
        await dirHandle.close()
      }
    } catch (err) {
      await rm(temp, { force: true }).catch(() => {})
      this.logger.error('metadata write failed', { file: this.file, err })
      throw ioError(`cannot write metadata file ${this.file}`, err)
    }
    this.logger.debug('metadata written', { revision: next.revision })
  }
}

function ioError(message: string, cause: unknown): TorusError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') return new TorusError('TORUS_OUT_OF_SPACE', message, { cause })
  // A failed write leaves the previous state in place, so retrying is safe.
  return new TorusError('TORUS_UNAVAILABLE', message, { cause, details: { errno: code } })
}
