import fs from 'node:fs'
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  BlockRef,
  MAX_VOLUME_ID,
  TorusError,
  silentLogger,
  type BlockStoreSupports,
  type BlockStoreUsage,
  type Logger,
  type VolumeId,
} from '@torus/core'
import { AbstractBlockStore } from './abstract-block-store.js'
import { closeFd, fdatasync, fsyncDir, mapFsError, openFd, preadFull, pwriteAll } from './fs-io.js'
import { INDEX_HEADER_BYTES, decodeIndexFile, encodeIndexHeader } from './index-file.js'
import { punchHole } from './punch-hole.js'

export interface FileBlockStoreOptions {
  /** Root directory; created if missing. One subdirectory per volume lives under it. */
  dir: string
  blockSizeBytes: number
  /** Allocation limit across all volumes (allocated blocks × block size). */
  capacityBytes: number
  logger?: Logger
  /**
   * How a data or index file is made durable. Default: fdatasync(2) on a dedicated thread.
   * Tests pass a recording or failing wrapper to check what a flush syncs, and in what order.
   */
  fdatasync?: (fd: number) => Promise<void>
  /**
   * How the disk space of deleted blocks is given back: punches a hole in a data file (see
   * punch-hole.ts, the default), or `false` to keep it allocated until the block is rewritten.
   * Tests pass a recording or failing wrapper.
   */
  punchHole?: ((path: string, offsetBytes: number, lengthBytes: number) => Promise<void>) | false
}

/** Index bytes are written back to disk in pages of this size. */
const INDEX_PAGE_BYTES = 4096
/** The in-memory index is one byte per block, so a volume's block index is bounded. */
const MAX_BLOCKS_PER_VOLUME = 2 ** 31
const VOLUME_DIR_RE = /^[1-9][0-9]*$/
const TRASH_DIR_RE = /^\.[1-9][0-9]*\.deleted$/
const RDWR_CREATE = fs.constants.O_RDWR | fs.constants.O_CREAT
/**
 * Deleted blocks whose disk space is still held (awaiting the flush that makes their deletion
 * durable) before the store flushes on its own: bounds how far a client that trims and writes
 * elsewhere without ever flushing can push the data files past the capacity.
 */
const RELEASED_FLUSH_TRIGGER_BLOCKS = 64

interface Volume {
  readonly id: VolumeId
  readonly dir: string
  readonly dataFd: number
  readonly indexFd: number
  /** One byte per block (1 = allocated); may be longer than the highest block written. */
  index: Uint8Array
  blocks: number
  /** A data write completed since the last flush took its snapshot. */
  dataDirty: boolean
  /** Index pages changed since the last flush took its snapshot. */
  readonly dirtyPages: Set<number>
  /** Blocks being allocated or punched; everyone else touching them waits. These promises never reject. */
  readonly pending: Map<number, Promise<void>>
  /** Blocks deleted since the last flush took its snapshot; their bytes are still on disk. */
  released: Set<number>
  /** I/O and flushes using this volume's fds; deleteVolume waits for zero before closing them. */
  inflight: number
  drained: (() => void) | undefined
}

/**
 * Blocks in files: one directory per volume under `dir`, holding a sparse `data` file (block `i`
 * at byte `i × blockSizeBytes`) and an `index` file (see index-file.ts) mirrored in memory.
 *
 * An allocated block costs one pread or pwrite per operation. The first write to an absent block
 * writes the whole block (zeros around the new bytes) in one pwrite, because the region may still
 * hold a deleted block's bytes: Node has no fallocate or hole punching, so `delete()` releases
 * capacity logically and the physical region is reused by the next allocation. While a block is
 * being allocated, other reads and writes of it wait, so none is overwritten by the zero fill and
 * none sees stale bytes.
 *
 * Index changes stay in memory until `flush()`, which first fdatasyncs every data file written
 * since the last flush and only then writes and fdatasyncs the changed index pages, so the index
 * never claims a block whose bytes are not durable.
 *
 * A deleted block's disk space is given back after the flush that makes the deletion durable:
 * a background step punches holes over the blocks that are still absent (adjacent ones in one
 * call), holding off their reallocation meanwhile. Punching only once the index durably says
 * "absent" means a crash can never leave the index claiming a block whose bytes were punched
 * away. Many deletes without a flush make the store flush on its own, so trimming and writing
 * elsewhere cannot grow the files without bound. If holes cannot be punched (no fallocate(1),
 * or a file system without support), deleted space stays allocated until rewritten, and the
 * store says so once in its log.
 */
export class FileBlockStore extends AbstractBlockStore {
  readonly supports: BlockStoreSupports = Object.freeze({ persistent: true, trim: true, iterate: true })
  readonly #dir: string
  readonly #capacityBytes: number
  readonly #log: Logger
  readonly #volumes = new Map<VolumeId, Volume>()
  /** A volume being created or deleted; operations on it wait. These promises never reject. */
  readonly #gates = new Map<VolumeId, Promise<void>>()
  /** Allocated blocks plus allocations in progress, across volumes. */
  #usedBlocks = 0
  #flushing: Promise<void> | undefined
  #flushQueued: Promise<void> | undefined
  /** Set by a failed flush: every later write, delete and flush rejects with it. */
  #failed: TorusError | undefined
  readonly #punchHole: ((path: string, offsetBytes: number, lengthBytes: number) => Promise<void>) | undefined
  #punchFailed = false
  /** Hole punching in the background, one batch after another; never rejects. */
  #reclaiming: Promise<void> = Promise.resolve()
  /** Deleted blocks across volumes whose space is not yet given back (see released). */
  #releasedBlocks = 0

  constructor(options: FileBlockStoreOptions) {
    super(options)
    if (typeof options.dir !== 'string' || options.dir === '') throw new TypeError('dir must be a non-empty path')
    if (!Number.isSafeInteger(options.capacityBytes) || options.capacityBytes < 0) {
      throw new RangeError(`invalid capacityBytes: ${String(options.capacityBytes)}`)
    }
    this.#dir = options.dir
    this.#capacityBytes = options.capacityBytes
    this.#log = (options.logger ?? silentLogger).child({ component: 'blockstore:file' })
    this.#fdatasync = options.fdatasync ?? fdatasync
    this.#punchHole = options.punchHole === false ? undefined : (options.punchHole ?? punchHole)
  }

  readonly #fdatasync: (fd: number) => Promise<void>

  protected override async _open(): Promise<void> {
    const entries = await mkdir(this.#dir, { recursive: true })
      .then(() => readdir(this.#dir, { withFileTypes: true }))
      .catch((err: unknown) => {
        throw mapFsError(err as NodeJS.ErrnoException)
      })
    try {
      for (const entry of entries) {
        if (entry.isDirectory() && VOLUME_DIR_RE.test(entry.name) && Number(entry.name) <= MAX_VOLUME_ID) await this.#loadVolume(Number(entry.name) as VolumeId)
        else if (entry.isDirectory() && TRASH_DIR_RE.test(entry.name)) await rm(join(this.#dir, entry.name), { recursive: true, force: true })
        else this.#log.warn('ignoring unknown entry', { dir: this.#dir, entry: entry.name })
      }
    } catch (err) {
      await this.#closeVolumes()
      throw err
    }
    const usage = this._usage()
    if (usage.usedBytes > usage.capacityBytes) this.#log.warn('usage exceeds capacity', { ...usage })
    this.#log.info('opened', { dir: this.#dir, volumes: this.#volumes.size, ...usage })
  }

  protected override async _close(): Promise<void> {
    try {
      // After a failed flush nothing more may be claimed durable: close without flushing.
      if (this.#failed === undefined) await this.#flushCoalesced()
    } finally {
      await this.#reclaiming
      await this.#closeVolumes()
      this.#log.info('closed', { dir: this.#dir })
    }
  }

  protected async _get(ref: BlockRef): Promise<Uint8Array | undefined> {
    let vol = this.#volumes.get(ref.volumeId)
    if (vol === undefined || vol.index[ref.index] !== 1) {
      await this.#settle(ref)
      vol = this.#volumes.get(ref.volumeId)
      if (vol === undefined || vol.index[ref.index] !== 1) return undefined
    }
    const block = new Uint8Array(this.blockSizeBytes)
    await this.#pread(vol, block, ref.index * this.blockSizeBytes)
    return block
  }

  protected _put(ref: BlockRef, block: Uint8Array): Promise<void> {
    return this._write(ref, 0, block)
  }

  protected _read(ref: BlockRef, offsetBytes: number, target: Uint8Array): Promise<boolean> {
    const vol = this.#volumes.get(ref.volumeId)
    if (vol !== undefined && vol.index[ref.index] === 1) {
      return this.#pread(vol, target, ref.index * this.blockSizeBytes + offsetBytes)
    }
    return this.#readSlow(ref, offsetBytes, target)
  }

  protected _write(ref: BlockRef, offsetBytes: number, data: Uint8Array): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed)
    const vol = this.#volumes.get(ref.volumeId)
    if (vol !== undefined && vol.index[ref.index] === 1) {
      return this.#pwrite(vol, data, ref.index * this.blockSizeBytes + offsetBytes)
    }
    return this.#writeSlow(ref, offsetBytes, data)
  }

  protected async _has(ref: BlockRef): Promise<boolean> {
    return this.#volumes.get(ref.volumeId)?.index[ref.index] === 1
  }

  protected async _delete(ref: BlockRef): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    await this.#settle(ref)
    const vol = this.#volumes.get(ref.volumeId)
    if (vol === undefined || vol.index[ref.index] !== 1) return
    this.#setEntry(vol, ref.index, 0)
    vol.blocks--
    this.#usedBlocks--
    if (this.#punchHole !== undefined && !this.#punchFailed && !vol.released.has(ref.index)) {
      vol.released.add(ref.index)
      if (++this.#releasedBlocks >= RELEASED_FLUSH_TRIGGER_BLOCKS) {
        this.#releasedBlocks = 0
        // A failure here also fails the next flush a client asks for (the store is failed).
        this.#flushCoalesced().catch((err: unknown) => this.#log.warn('flush for deleted blocks failed', { err }))
      }
    }
  }

  protected async _deleteVolume(volumeId: VolumeId): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    for (let gate = this.#gates.get(volumeId); gate !== undefined; gate = this.#gates.get(volumeId)) await gate
    const vol = this.#volumes.get(volumeId)
    if (vol === undefined) return
    let open!: () => void
    this.#gates.set(volumeId, new Promise<void>((resolve) => (open = resolve)))
    this.#volumes.delete(volumeId)
    try {
      if (vol.inflight > 0) await new Promise<void>((resolve) => (vol.drained = resolve))
      this.#usedBlocks -= vol.blocks
      await Promise.all([closeFd(vol.dataFd), closeFd(vol.indexFd)])
      // Rename first so a crash mid-removal leaves a trash dir (removed on open), never a
      // half-deleted volume that still looks valid.
      const trash = join(this.#dir, `.${volumeId}.deleted`)
      await rm(trash, { recursive: true, force: true })
      await rename(vol.dir, trash)
      await fsyncDir(this.#dir)
      await rm(trash, { recursive: true, force: true })
    } finally {
      this.#gates.delete(volumeId)
      open()
    }
  }

  protected override _flush(): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed)
    return this.#flushCoalesced()
  }

  protected _usage(): BlockStoreUsage {
    return { usedBytes: this.#usedBlocks * this.blockSizeBytes, capacityBytes: this.#capacityBytes, blocks: this.#usedBlocks }
  }

  protected override async *_refs(volumeId: VolumeId | undefined): AsyncIterable<BlockRef> {
    const ids = volumeId === undefined ? [...this.#volumes.keys()] : [volumeId]
    for (const id of ids) {
      for (let i = this.#volumes.get(id)?.index.indexOf(1) ?? -1; i !== -1; ) {
        yield new BlockRef(id, i)
        i = this.#volumes.get(id)?.index.indexOf(1, i + 1) ?? -1
      }
    }
  }

  async #readSlow(ref: BlockRef, offsetBytes: number, target: Uint8Array): Promise<boolean> {
    await this.#settle(ref)
    const vol = this.#volumes.get(ref.volumeId)
    if (vol === undefined || vol.index[ref.index] !== 1) {
      target.fill(0)
      return false
    }
    return this.#pread(vol, target, ref.index * this.blockSizeBytes + offsetBytes)
  }

  async #writeSlow(ref: BlockRef, offsetBytes: number, data: Uint8Array): Promise<void> {
    const B = this.blockSizeBytes
    const index = ref.index as number
    if (index >= MAX_BLOCKS_PER_VOLUME) throw new RangeError(`block index ${index} is past this store's limit of ${MAX_BLOCKS_PER_VOLUME}`)
    for (;;) {
      await this.#settle(ref)
      // Other calls run between that await and here: look everything up again.
      const vol = this.#volumes.get(ref.volumeId)
      if (vol === undefined) {
        if (!this.#gates.has(ref.volumeId)) await this.#createVolume(ref.volumeId)
        continue
      }
      if (vol.index[index] === 1) return this.#pwrite(vol, data, index * B + offsetBytes)
      if (vol.pending.has(index)) continue

      if ((this.#usedBlocks + 1) * B > this.#capacityBytes) {
        const usedBytes = this.#usedBlocks * B
        throw new TorusError(
          'TORUS_OUT_OF_SPACE',
          `no room for another ${B}-byte block: ${usedBytes} of ${this.#capacityBytes} bytes used`,
          { details: { usedBytes, capacityBytes: this.#capacityBytes, dir: this.#dir } },
        )
      }
      this.#usedBlocks++
      vol.blocks++
      // The allocating write below covers the whole block: no hole to punch there any more.
      vol.released.delete(index)
      // Held until the accounting below is done, so a deleteVolume draining this volume
      // subtracts its blocks only after a failed allocation has given its reservation back.
      vol.inflight++
      let settle!: () => void
      vol.pending.set(index, new Promise<void>((resolve) => (settle = resolve)))
      try {
        let block = data
        if (data.byteLength !== B) {
          block = new Uint8Array(B)
          block.set(data, offsetBytes)
        }
        await this.#pwrite(vol, block, index * B)
        this.#setEntry(vol, index, 1)
      } catch (err) {
        this.#usedBlocks--
        vol.blocks--
        throw err
      } finally {
        vol.pending.delete(index)
        settle()
        this.#release(vol)
      }
      return
    }
  }

  /**
   * Waits until no create or delete of the volume and no allocation of the block is in progress.
   * Callers look the volume up again afterwards, in the same synchronous step that uses its fds
   * (a volume taken from the map and counted in `inflight` in one step cannot be closed under it).
   */
  async #settle(ref: BlockRef): Promise<void> {
    for (;;) {
      const wait = this.#gates.get(ref.volumeId) ?? this.#volumes.get(ref.volumeId)?.pending.get(ref.index)
      if (wait === undefined) return
      await wait
    }
  }

  #pwrite(vol: Volume, bytes: Uint8Array, position: number): Promise<void> {
    vol.inflight++
    return pwriteAll(vol.dataFd, bytes, position).then(
      () => {
        // Marked on completion, not on start: a flush that snapshots the flag before this write
        // lands must leave it set for the next flush.
        vol.dataDirty = true
        this.#release(vol)
      },
      (err: unknown) => {
        this.#release(vol)
        throw err
      },
    )
  }

  #pread(vol: Volume, target: Uint8Array, position: number): Promise<boolean> {
    vol.inflight++
    return preadFull(vol.dataFd, target, position).then(
      () => {
        this.#release(vol)
        return true
      },
      (err: unknown) => {
        this.#release(vol)
        throw err
      },
    )
  }

  #release(vol: Volume): void {
    if (--vol.inflight === 0 && vol.drained !== undefined) {
      const drained = vol.drained
      vol.drained = undefined
      drained()
    }
  }

  #setEntry(vol: Volume, index: number, value: 0 | 1): void {
    if (index >= vol.index.byteLength) {
      if (value === 0) return
      const grown = new Uint8Array(Math.min(MAX_BLOCKS_PER_VOLUME, Math.max(index + 1, vol.index.byteLength * 2, INDEX_PAGE_BYTES)))
      grown.set(vol.index)
      vol.index = grown
    }
    vol.index[index] = value
    vol.dirtyPages.add(Math.floor(index / INDEX_PAGE_BYTES))
  }

  /**
   * Runs one flush at a time. A flush requested while another runs cannot join it (that one has
   * already taken its snapshot), so it queues one more; every later request joins the queued one,
   * which starts after the running one ends and covers everything written before it started.
   */
  #flushCoalesced(): Promise<void> {
    if (this.#flushQueued !== undefined) return this.#flushQueued
    if (this.#flushing === undefined) return this.#startFlush()
    this.#flushQueued = this.#flushing.catch(() => {}).then(() => {
      this.#flushQueued = undefined
      // The flush ahead of us may have failed: its dirty state is gone, and a new fdatasync
      // could "succeed" over pages the kernel dropped. Never report success after that.
      if (this.#failed !== undefined) throw this.#failed
      return this.#startFlush()
    })
    return this.#flushQueued
  }

  #startFlush(): Promise<void> {
    const run = this.#flushOnce().finally(() => {
      if (this.#flushing === run) this.#flushing = undefined
    })
    this.#flushing = run
    return run
  }

  async #flushOnce(): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed
    // Snapshot synchronously: which data files to sync, and the index pages as they are now. The
    // index bytes are copied before the data sync, so they only claim blocks whose allocating
    // write completed before this point, and that write is covered by the data sync below.
    const work: { vol: Volume; data: boolean; pages: number[]; runs: { position: number; bytes: Uint8Array }[]; released: Set<number> }[] = []
    for (const vol of this.#volumes.values()) {
      if (!vol.dataDirty && vol.dirtyPages.size === 0) continue
      const pages = [...vol.dirtyPages].sort((a, b) => a - b)
      work.push({ vol, data: vol.dataDirty, pages, runs: this.#indexRuns(vol, pages), released: vol.released })
      vol.dataDirty = false
      vol.dirtyPages.clear()
      // Deleted before this snapshot: absent in the index pages written below.
      vol.released = new Set()
      vol.inflight++
    }
    this.#releasedBlocks = 0
    if (work.length === 0) return
    try {
      await Promise.all(work.map((w) => (w.data ? this.#fdatasync(w.vol.dataFd) : undefined)))
      // Index pages are rewritten in place rather than through a temp file and rename: each entry
      // is a single byte that is 0 or 1 in both the old and the new page, so a write torn at any
      // byte or sector boundary still leaves a valid index that claims only durable blocks (the
      // data sync above came first). Only an allocation or delete made since the previous flush
      // can be lost that way, which is what an unfinished flush allows. The header is written once,
      // atomically, when the volume is created, and never rewritten.
      await Promise.all(
        work.map(async (w) => {
          if (w.runs.length === 0) return
          await Promise.all(w.runs.map((r) => pwriteAll(w.vol.indexFd, r.bytes, r.position)))
          await this.#fdatasync(w.vol.indexFd)
        }),
      )
    } catch (err) {
      // A failed fdatasync may already have dropped the dirty pages it could not write (Linux
      // marks them clean), so a retry could "succeed" over lost bytes. The store stops taking
      // writes and flushes until it is reopened, which is the only honest answer.
      this.#failed ??= new TorusError('TORUS_CORRUPT', `flush failed in ${this.#dir}; writes and flushes are refused until the store is reopened`, { cause: err })
      this.#log.error('flush failed, refusing writes until reopened', { dir: this.#dir, err })
      throw this.#failed
    } finally {
      for (const w of work) this.#release(w.vol)
    }
    const released = work.filter((w) => w.released.size > 0)
    if (released.length > 0 && this.#punchHole !== undefined) {
      this.#reclaiming = this.#reclaiming.then(() => this.#reclaim(released))
    }
  }

  /**
   * Punches holes over blocks whose deletion is durable and that are still absent, merging
   * adjacent ones; each run is held like an allocation meanwhile, so a write to one of its
   * blocks waits and then allocates it afresh. One run at a time, in the background.
   */
  async #reclaim(batches: { vol: Volume; released: Set<number> }[]): Promise<void> {
    const B = this.blockSizeBytes
    for (const { vol, released } of batches) {
      const sorted = [...released].sort((a, b) => a - b)
      for (let k = 0; k < sorted.length; ) {
        if (this.#punchFailed) return
        // Deleted meanwhile: its files are gone with all their space.
        if (this.#volumes.get(vol.id) !== vol) break
        const run: number[] = []
        for (; k < sorted.length; k++) {
          const i = sorted[k]!
          if (run.length > 0 && i !== run[run.length - 1]! + 1) break
          // Reallocated since (or being allocated): its bytes are live again.
          if (vol.index[i] === 1 || vol.pending.has(i)) {
            if (run.length > 0) break
            continue
          }
          run.push(i)
        }
        if (run.length === 0) continue
        let done!: () => void
        const gate = new Promise<void>((resolve) => (done = resolve))
        for (const i of run) vol.pending.set(i, gate)
        vol.inflight++
        try {
          await this.#punchHole!(join(vol.dir, 'data'), run[0]! * B, run.length * B)
        } catch (err) {
          this.#punchFailed = true
          this.#log.warn('cannot give the space of deleted blocks back to the file system; it stays allocated until the blocks are written again', { dir: this.#dir, err })
        } finally {
          for (const i of run) vol.pending.delete(i)
          done()
          this.#release(vol)
        }
      }
    }
  }

  /** Copies the dirty index pages, merged into contiguous runs, with their file positions. */
  #indexRuns(vol: Volume, pages: number[]): { position: number; bytes: Uint8Array }[] {
    const runs: { position: number; bytes: Uint8Array }[] = []
    for (let k = 0; k < pages.length; ) {
      const first = pages[k]!
      let last = first
      while (k + 1 < pages.length && pages[k + 1] === last + 1) last = pages[++k]!
      k++
      const start = first * INDEX_PAGE_BYTES
      const end = Math.min((last + 1) * INDEX_PAGE_BYTES, vol.index.byteLength)
      if (start < end) runs.push({ position: INDEX_HEADER_BYTES + start, bytes: vol.index.slice(start, end) })
    }
    return runs
  }

  async #createVolume(id: VolumeId): Promise<void> {
    let open!: () => void
    this.#gates.set(id, new Promise<void>((resolve) => (open = resolve)))
    const dir = join(this.#dir, String(id))
    try {
      await mkdir(dir, { recursive: true })
      // The index appears atomically (temp, sync, rename) before the data file, so a volume
      // directory without an index can only be one whose creation never finished.
      const tmp = join(dir, 'index.tmp')
      await writeFile(tmp, encodeIndexHeader(this.blockSizeBytes), { flush: true })
      await rename(tmp, join(dir, 'index'))
      const dataFd = await openFd(join(dir, 'data'), RDWR_CREATE)
      const indexFd = await openFd(join(dir, 'index'), fs.constants.O_RDWR).catch(async (err: unknown) => {
        await closeFd(dataFd)
        throw err
      })
      await fsyncDir(dir)
      await fsyncDir(this.#dir)
      this.#volumes.set(id, this.#newVolume(id, dir, dataFd, indexFd, new Uint8Array(0), 0))
      this.#log.debug('volume created', { volume: id })
    } catch (err) {
      throw mapFsError(err as NodeJS.ErrnoException)
    } finally {
      this.#gates.delete(id)
      open()
    }
  }

  async #loadVolume(id: VolumeId): Promise<void> {
    const dir = join(this.#dir, String(id))
    const indexPath = join(dir, 'index')
    let bytes: Uint8Array
    try {
      bytes = await readFile(indexPath)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw mapFsError(err as NodeJS.ErrnoException)
      const data = await stat(join(dir, 'data')).catch(() => undefined)
      if (data !== undefined && data.size > 0) {
        throw new TorusError('TORUS_CORRUPT', `${indexPath} is missing but ${join(dir, 'data')} holds data`, { details: { path: indexPath } })
      }
      this.#log.warn('removing unfinished volume directory', { volume: id, dir })
      await rm(dir, { recursive: true, force: true })
      return
    }
    const index = decodeIndexFile(bytes, indexPath, this.blockSizeBytes)
    let blocks = 0
    let last = -1
    for (let i = index.indexOf(1); i !== -1; i = index.indexOf(1, i + 1)) {
      blocks++
      last = i
    }
    // Every allocated block was written whole (zero-filled) before the index could claim it, so
    // the data file reaches at least the end of the last one. A shorter (or missing) data file
    // means the files were damaged or mixed up: serving it would return zeros as if they were data.
    const dataSize = await stat(join(dir, 'data')).then(
      (st) => st.size,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return 0
        throw mapFsError(err)
      },
    )
    if (last >= 0 && dataSize < (last + 1) * this.blockSizeBytes) {
      throw new TorusError(
        'TORUS_CORRUPT',
        `${join(dir, 'data')} is ${dataSize} bytes but ${indexPath} claims block ${last}, which ends at byte ${(last + 1) * this.blockSizeBytes}`,
        { details: { path: join(dir, 'data') } },
      )
    }
    await rm(join(dir, 'index.tmp'), { force: true })
    const dataFd = await openFd(join(dir, 'data'), RDWR_CREATE)
    const indexFd = await openFd(indexPath, fs.constants.O_RDWR).catch(async (err: unknown) => {
      await closeFd(dataFd)
      throw err
    })
    this.#volumes.set(id, this.#newVolume(id, dir, dataFd, indexFd, index, blocks))
    this.#usedBlocks += blocks
  }

  #newVolume(id: VolumeId, dir: string, dataFd: number, indexFd: number, index: Uint8Array, blocks: number): Volume {
    return { id, dir, dataFd, indexFd, index, blocks, dataDirty: false, dirtyPages: new Set(), pending: new Map(), released: new Set(), inflight: 0, drained: undefined }
  }

  async #closeVolumes(): Promise<void> {
    const volumes = [...this.#volumes.values()]
    this.#volumes.clear()
    this.#usedBlocks = 0
    await Promise.allSettled(volumes.flatMap((v) => [closeFd(v.dataFd), closeFd(v.indexFd)]))
  }
}
