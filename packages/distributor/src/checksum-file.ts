import fs from 'node:fs'
import { unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { BlockRef, TorusError, type VolumeId } from '@torus/core'
import { fsIo } from '@torus/blockstore'

/**
 * Per-volume checksum files of a `Replica` with a `stateDir`: `<stateDir>/<volumeId>.crc`, sparse,
 * one fixed-size slot per block, block `i` at byte `i × (1 + sectorsPerBlock) × 4`.
 *
 * ```
 * slot of block i (all words u32 little-endian)
 * +------------------+-----------------+-----------------+-----+---------------------+
 * | presence         | CRC-32C sector 0| CRC-32C sector 1| ... | CRC-32C sector n-1  |
 * | 0x31435243 "CRC1"|                 |                 |     |                     |
 * +------------------+-----------------+-----------------+-----+---------------------+
 * ```
 *
 * A slot whose presence word is anything else (a hole reads as 0) holds no checksums. The
 * word is separate from the sums because any u32, zero included, is a possible CRC. A slot is
 * written whole (one pwrite) when its block is allocated or replaced; a partial write pwrites
 * only the sums of the sectors it touches. Slots are never cleared: the block store decides
 * whether a block exists, and a slot for an absent block is ignored and rewritten whole on the
 * block's next allocation. So deleting a block costs no checksum I/O, and an unflushed delete
 * lost in a crash finds its block and slot both still there.
 *
 * Files are made durable by {@link ChecksumFiles.flush} only (fdatasync of the files written
 * since the last flush, and of the directory when files were created or removed).
 */
export const CRC_PRESENT = 0x31435243

interface CrcFile {
  readonly fd: number
  /** Operations using `fd`; `drop` waits for zero before closing it. */
  inflight: number
  drained: (() => void) | undefined
  /** A slot write completed since the last flush took its snapshot. */
  dirty: boolean
  /** The latest fdatasync started on this file; later flushes wait for it. Never rejects. */
  synced: Promise<unknown>
}

export interface ChecksumFilesOptions {
  dir: string
  sectorsPerBlock: number
  fdatasync?: ((fd: number) => Promise<void>) | undefined
}

export class ChecksumFiles {
  readonly #dir: string
  readonly #sectors: number
  readonly #fdatasync: (fd: number) => Promise<void>
  readonly #files = new Map<VolumeId, CrcFile>()
  readonly #opening = new Map<VolumeId, Promise<CrcFile | undefined>>()
  /** A volume whose file is being removed; everyone else touching it waits. Never rejects. */
  readonly #gates = new Map<VolumeId, Promise<void>>()
  /** Files were created or removed since the last flush. */
  #dirDirty = false
  /** Set by a failed fdatasync: the kernel may have dropped those pages, so nothing more is claimed durable. */
  #failed: TorusError | undefined
  #closed = false

  constructor(options: ChecksumFilesOptions) {
    this.#dir = options.dir
    this.#sectors = options.sectorsPerBlock
    this.#fdatasync = options.fdatasync ?? ((fd) => new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err === null ? resolve() : reject(fsError(err))))))
  }

  /** The block's sums, or `undefined` when its slot holds none (or the volume has no file). */
  async load(ref: BlockRef): Promise<Uint32Array | undefined> {
    const file = await this.#acquire(ref.volumeId, false)
    if (file === undefined) return undefined
    const bytes = new Uint8Array((1 + this.#sectors) * 4)
    try {
      await preadFull(file.fd, bytes, this.#slot(ref))
    } finally {
      this.#release(file)
    }
    const view = new DataView(bytes.buffer)
    if (view.getUint32(0, true) !== CRC_PRESENT) return undefined
    const sums = new Uint32Array(this.#sectors)
    for (let s = 0; s < this.#sectors; s++) sums[s] = view.getUint32(4 + s * 4, true)
    return sums
  }

  /** Writes the whole slot: the presence word and every sector's sum. One pwrite. */
  storeAll(ref: BlockRef, sums: Uint32Array): Promise<void> {
    const bytes = new Uint8Array((1 + this.#sectors) * 4)
    const view = new DataView(bytes.buffer)
    view.setUint32(0, CRC_PRESENT, true)
    for (let s = 0; s < this.#sectors; s++) view.setUint32(4 + s * 4, sums[s]!, true)
    return this.#write(ref, bytes, this.#slot(ref))
  }

  /** Writes the sums of sectors `first..last` of a slot that is already present. One pwrite. */
  storeRange(ref: BlockRef, sums: Uint32Array, first: number, last: number): Promise<void> {
    if (last < first) return Promise.resolve()
    const bytes = new Uint8Array((last - first + 1) * 4)
    const view = new DataView(bytes.buffer)
    for (let s = first; s <= last; s++) view.setUint32((s - first) * 4, sums[s]!, true)
    return this.#write(ref, bytes, this.#slot(ref) + 4 + first * 4)
  }

  /** Removes the volume's checksum file (durable at the next flush). */
  async drop(volumeId: VolumeId): Promise<void> {
    for (let gate = this.#gates.get(volumeId); gate !== undefined; gate = this.#gates.get(volumeId)) await gate
    let open!: () => void
    this.#gates.set(volumeId, new Promise<void>((resolve) => (open = resolve)))
    try {
      await this.#opening.get(volumeId)?.catch(() => undefined)
      const file = this.#files.get(volumeId)
      this.#files.delete(volumeId)
      if (file !== undefined) await this.#closeFile(file)
      await unlink(this.#path(volumeId)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw fsError(err)
      })
      this.#dirDirty = true
    } finally {
      this.#gates.delete(volumeId)
      open()
    }
  }

  /**
   * Makes every slot write completed before this call durable. Concurrent flushes each wait for
   * the syncs already running, so none resolves before the writes it covers are on disk.
   */
  async flush(): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    const waits: Promise<unknown>[] = []
    for (const file of this.#files.values()) {
      if (file.dirty) {
        file.dirty = false
        file.inflight++
        const sync = file.synced.then(() => this.#fdatasync(file.fd)).finally(() => this.#release(file))
        file.synced = sync.catch(() => undefined)
        waits.push(sync)
      } else {
        waits.push(file.synced)
      }
    }
    if (this.#dirDirty) {
      this.#dirDirty = false
      waits.push(fsyncDir(this.#dir).catch((err: unknown) => {
        this.#dirDirty = true
        throw err
      }))
    }
    try {
      await Promise.all(waits)
    } catch (err) {
      this.#failed ??= new TorusError('TORUS_CORRUPT', `checksum flush failed in ${this.#dir}; writes and flushes are refused until the replica is reopened`, { cause: err })
      throw this.#failed
    }
  }

  /** Flushes (unless a flush failed) and closes every file. Safe twice. */
  async close(): Promise<void> {
    this.#closed = true
    try {
      if (this.#failed === undefined) await this.flush()
    } finally {
      const files = [...this.#files.values()]
      this.#files.clear()
      await Promise.allSettled(files.map((f) => this.#closeFile(f)))
    }
  }

  #slot(ref: BlockRef): number {
    return (ref.index as number) * (1 + this.#sectors) * 4
  }

  #path(volumeId: VolumeId): string {
    return join(this.#dir, `${volumeId}.crc`)
  }

  async #write(ref: BlockRef, bytes: Uint8Array, position: number): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    const file = (await this.#acquire(ref.volumeId, true))!
    try {
      await pwriteAll(file.fd, bytes, position)
      // Marked on completion, so a flush that snapshots the flag before this write lands leaves it for the next.
      file.dirty = true
    } finally {
      this.#release(file)
    }
  }

  /** The volume's open file, counted in `inflight` until {@link #release}; `undefined` when absent and not `create`. */
  async #acquire(volumeId: VolumeId, create: boolean): Promise<CrcFile | undefined> {
    for (;;) {
      if (this.#closed) throw new TorusError('TORUS_NOT_OPEN', 'checksum files are closed')
      const gate = this.#gates.get(volumeId)
      if (gate !== undefined) {
        await gate
        continue
      }
      const file = this.#files.get(volumeId)
      if (file !== undefined) {
        file.inflight++
        return file
      }
      let opening = this.#opening.get(volumeId)
      if (opening === undefined) {
        opening = this.#open(volumeId, create).finally(() => this.#opening.delete(volumeId))
        this.#opening.set(volumeId, opening)
      }
      if ((await opening) === undefined && !create) return undefined
    }
  }

  async #open(volumeId: VolumeId, create: boolean): Promise<CrcFile | undefined> {
    let fd: number
    try {
      fd = await openFd(this.#path(volumeId), fs.constants.O_RDWR)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err as NodeJS.ErrnoException)
      if (!create) return undefined
      fd = await openFd(this.#path(volumeId), fs.constants.O_RDWR | fs.constants.O_CREAT)
      this.#dirDirty = true
    }
    if (this.#closed) {
      fs.close(fd, () => {})
      throw new TorusError('TORUS_NOT_OPEN', 'checksum files are closed')
    }
    const file: CrcFile = { fd, inflight: 0, drained: undefined, dirty: false, synced: Promise.resolve() }
    this.#files.set(volumeId, file)
    return file
  }

  #release(file: CrcFile): void {
    if (--file.inflight === 0 && file.drained !== undefined) {
      const drained = file.drained
      file.drained = undefined
      drained()
    }
  }

  async #closeFile(file: CrcFile): Promise<void> {
    if (file.inflight > 0) await new Promise<void>((resolve) => (file.drained = resolve))
    await new Promise<void>((resolve, reject) => fs.close(file.fd, (err) => (err === null ? resolve() : reject(fsError(err)))))
  }
}

/** Node's system errors as Torus codes (the file block store's mapping). */
export const fsError = fsIo.mapFsError
const { openFd, fsyncDir, pwriteAll, preadFull } = fsIo
