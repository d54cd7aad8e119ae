/**
 * The replica side of the data path: what one peer does with the blocks it holds for the ring.
 * A {@link Replica} wraps the peer's local `BlockStore` and adds generation fencing and
 * per-sector CRC-32C checksums; {@link serveReplica} exposes it to other peers' gateways as the
 * `replica.*` transport methods. The gateway on the same peer calls the `Replica` directly.
 */
import { randomUUID } from 'node:crypto'
import {
  BlockRef,
  TorusError,
  type BlockStore,
  type RequestHandler,
  type Transport,
  type TransportValue,
  type VolumeId,
} from '@torus/core'
import { ChecksumFiles } from './checksum-file.js'
import { crc32c } from './crc32c.js'
import { ReplicaState } from './replica-state.js'

/** Checksum granularity: a partial write re-checksums only the sectors it touches. */
export const SECTOR_BYTES = 4096

export interface ReplicaOptions {
  /** The peer's local store, opened and closed by its owner (the `DistributedBlockStore`). */
  store: BlockStore
  /**
   * Where generations and checksums are kept durably (`state.json`, `<volumeId>.crc`); the
   * replica must then be opened with {@link Replica.open} before use. Absent: both live in
   * memory only and are lost on restart (for in-memory stores and tests).
   */
  stateDir?: string | undefined
  /** How a checksum file is made durable. Default: fdatasync(2). Tests pass a recording one. */
  fdatasync?: ((fd: number) => Promise<void>) | undefined
  /** With `stateDir`: how many blocks' checksums stay cached in memory. Default 65536. */
  checksumCacheBlocks?: number | undefined
}

/**
 * One peer's replicas. Every mutation carries the volume's lock generation; the replica keeps
 * the highest generation it has seen per volume and refuses lower ones with TORUS_LEASE_EXPIRED,
 * so a gateway whose lock was taken over cannot overwrite the new holder's data (DESIGN.md,
 * data path point 5).
 *
 * Checksums: one CRC-32C per 4 KiB sector (the last sector of a block may be shorter), kept
 * beside the store and checked for every sector a read touches; a mismatch is TORUS_CORRUPT.
 * A write computes the new sums from its own bytes (reading, and verifying, only a partially
 * covered first or last sector) and stores them together with the data (both writes are
 * issued at once).
 *
 * With `stateDir`, generations and sums survive a restart (replica-state.ts, checksum-file.ts):
 * a raised generation is on disk before it is acted on, and `flush()` makes the sums durable
 * with the data. After a restart a block the store holds but whose sums were never stored (or
 * whose bytes do not match them) reads as TORUS_CORRUPT, and the gateway reads another replica:
 * that covers data written before sums were persisted and a crash between a write's sum and data
 * pwrites (only unflushed writes, which carry no promise; the gateway sees the restart by the
 * replica's new incarnation at its next flush). A `put` repairs such a block.
 * Without `stateDir` both live in memory, and a block found without sums is adopted on first
 * touch from the bytes then stored.
 *
 * Operations on one block are serialised (a per-block mutex), so a read never sees data and
 * checksums from two different writes.
 */
export class Replica {
  readonly store: BlockStore
  readonly sectorBytes: number
  /**
   * Names this run of the replica; a restart gets a new one. Every mutation and flush reply
   * carries it, so a gateway sees when writes it had acknowledged went to a run that died before
   * making them durable (they may be lost there).
   */
  readonly incarnation: string = randomUUID()
  readonly #stateDir: string | undefined
  readonly #fdatasync: ((fd: number) => Promise<void>) | undefined
  readonly #cacheBlocks: number
  /** Generations when there is no `stateDir`. */
  readonly #generations = new Map<VolumeId, number>()
  #state: ReplicaState | undefined
  #files: ChecksumFiles | undefined
  /** Sums by block: the only copy without `stateDir`, else a cache (least recently used first). */
  readonly #sums = new Map<string, Uint32Array>()
  readonly #locks = new Map<string, Promise<void>>()
  readonly #zeroSums: Uint32Array

  constructor(options: ReplicaOptions) {
    this.store = options.store
    this.sectorBytes = Math.min(SECTOR_BYTES, this.store.blockSizeBytes)
    this.#stateDir = options.stateDir
    this.#fdatasync = options.fdatasync
    this.#cacheBlocks = options.checksumCacheBlocks ?? 65536
    const sectors = Math.ceil(this.store.blockSizeBytes / this.sectorBytes)
    this.#zeroSums = new Uint32Array(sectors)
    for (let s = 0; s < sectors; s++) this.#zeroSums[s] = crc32c(new Uint8Array(this.#sectorLength(s)))
  }

  get blockSizeBytes(): number {
    return this.store.blockSizeBytes
  }

  /** Loads the durable state from `stateDir` (a no-op without one). Opening twice is a no-op. */
  async open(): Promise<void> {
    if (this.#stateDir === undefined || this.#state !== undefined) return
    const state = ReplicaState.load(this.#stateDir, { blockSizeBytes: this.blockSizeBytes, sectorBytes: this.sectorBytes })
    this.#files = new ChecksumFiles({ dir: this.#stateDir, sectorsPerBlock: this.#zeroSums.length, fdatasync: this.#fdatasync })
    this.#state = state
  }

  /** Makes the checksums durable and closes their files. Safe twice; the store is not closed. */
  async close(): Promise<void> {
    // New calls fail TORUS_NOT_OPEN from here; let the ones holding a block lock finish first.
    this.#state = undefined
    await Promise.all(this.#locks.values())
    const files = this.#files
    this.#files = undefined
    if (this.#stateDir !== undefined) this.#sums.clear()
    await files?.close()
  }

  /** The highest generation seen for `volumeId` (0 when none). */
  generation(volumeId: VolumeId): number {
    this.#checkOpen()
    return this.#state?.generation(volumeId) ?? this.#generations.get(volumeId) ?? 0
  }

  /**
   * Raises the volume's generation to `generation`; refuses a lower one. Returns the highest.
   * With `stateDir` the raise is on disk before this returns.
   */
  announce(volumeId: VolumeId, generation: number): number {
    this.#fence(volumeId, generation)
    return this.generation(volumeId)
  }

  async write(ref: BlockRef, offsetBytes: number, data: Uint8Array, generation: number): Promise<void> {
    // Validate before fencing: a request refused as malformed must not raise the generation
    // (a raise is durable and shuts every holder below it out of the volume).
    this.#checkRange(offsetBytes, data.byteLength)
    this.#fence(ref.volumeId, generation)
    if (data.byteLength === 0) return this.store.write(ref, offsetBytes, data)
    await this.#locked(ref, async () => {
      this.#fence(ref.volumeId, generation)
      const present = await this.store.has(ref)
      const old = present ? await this.#sumsFor(ref) : undefined
      const sums = (old ?? this.#zeroSums).slice()
      const S = this.sectorBytes
      const end = offsetBytes + data.byteLength
      const first = Math.floor(offsetBytes / S)
      const last = Math.floor((end - 1) / S)
      for (let s = first; s <= last; s++) {
        const from = s * S
        const to = from + this.#sectorLength(s)
        if (offsetBytes <= from && end >= to) {
          sums[s] = crc32c(data.subarray(from - offsetBytes, to - offsetBytes))
          continue
        }
        // A partially covered sector: merge with the bytes it holds, which must be intact, or
        // the new sum would vouch for corrupt bytes.
        const sector = new Uint8Array(to - from)
        if (old !== undefined) {
          await this.store.read(ref, from, sector)
          if (crc32c(sector) !== old[s]) throw corrupt(ref, s)
        }
        const a = Math.max(offsetBytes, from)
        sector.set(data.subarray(a - offsetBytes, Math.min(end, to) - offsetBytes), a - from)
        sums[s] = crc32c(sector)
      }
      // Sums and data go out together (one round trip to the I/O threads instead of two). A
      // crash before both land leaves a new block absent (the store's index is written on flush
      // only, and a slot without its block is ignored), or an existing one mismatching in the
      // sectors of this unflushed write (TORUS_CORRUPT there; the gateway reads another replica).
      const files = this.#files
      const [sumsWritten, dataWritten] = await Promise.allSettled([
        files === undefined ? Promise.resolve() : old === undefined ? files.storeAll(ref, sums) : files.storeRange(ref, sums, first, last),
        this.store.write(ref, offsetBytes, data),
      ])
      if (dataWritten.status === 'rejected') {
        if (sumsWritten.status === 'fulfilled') await this.#restore(ref, old, first, last)
        throw dataWritten.reason
      }
      if (sumsWritten.status === 'rejected') throw sumsWritten.reason
      this.#remember(ref, sums)
    })
  }

  async put(ref: BlockRef, block: Uint8Array, generation: number): Promise<void> {
    if (block.byteLength !== this.blockSizeBytes) throw new RangeError(`block must be ${this.blockSizeBytes} bytes, got ${block.byteLength}`)
    this.#fence(ref.volumeId, generation)
    await this.#locked(ref, async () => {
      this.#fence(ref.volumeId, generation)
      const sums = this.#checksum(block)
      let old: Uint32Array | undefined
      if (this.#files !== undefined) {
        if (await this.store.has(ref)) old = this.#cached(ref) ?? (await this.#files.load(ref))
        await this.#files.storeAll(ref, sums)
      }
      try {
        await this.store.put(ref, block)
      } catch (err) {
        await this.#restore(ref, old, 0, sums.length - 1)
        throw err
      }
      this.#remember(ref, sums)
    })
  }

  /** Fills `target` from the block, verifying every sector it touches. Resolves `true` when allocated. */
  async read(ref: BlockRef, offsetBytes: number, target: Uint8Array): Promise<boolean> {
    this.#checkOpen()
    if (target.byteLength === 0) return this.store.has(ref)
    this.#checkRange(offsetBytes, target.byteLength)
    return this.#locked(ref, async () => {
      const S = this.sectorBytes
      const first = Math.floor(offsetBytes / S)
      const last = Math.floor((offsetBytes + target.byteLength - 1) / S)
      const start = first * S
      const buf = new Uint8Array(Math.min((last + 1) * S, this.blockSizeBytes) - start)
      if (!(await this.store.read(ref, start, buf))) {
        this.#sums.delete(ref.toString())
        target.fill(0)
        return false
      }
      const sums = await this.#sumsFor(ref)
      for (let s = first; s <= last; s++) {
        const sector = buf.subarray((s - first) * S, (s - first) * S + this.#sectorLength(s))
        if (crc32c(sector) !== sums[s]) throw corrupt(ref, s)
      }
      target.set(buf.subarray(offsetBytes - start, offsetBytes - start + target.byteLength))
      return true
    })
  }

  async has(ref: BlockRef): Promise<boolean> {
    this.#checkOpen()
    return this.store.has(ref)
  }

  /** Deletes the block. Its stored sums stay until the block is allocated again (see checksum-file.ts). */
  async delete(ref: BlockRef, generation: number): Promise<void> {
    this.#fence(ref.volumeId, generation)
    await this.#locked(ref, async () => {
      // Again under the lock: a newer holder may have announced while this waited.
      this.#fence(ref.volumeId, generation)
      await this.store.delete(ref)
      this.#sums.delete(ref.toString())
    })
  }

  async deleteVolume(volumeId: VolumeId, generation: number): Promise<void> {
    this.#fence(volumeId, generation)
    // Blocks first: a crash in between leaves a checksum file for absent blocks, which is ignored.
    const files = this.#files
    await this.store.deleteVolume(volumeId)
    await files?.drop(volumeId)
    const prefix = `${volumeId}:`
    for (const key of [...this.#sums.keys()]) if (key.startsWith(prefix)) this.#sums.delete(key)
  }

  /**
   * The indexes of the blocks of `volumeId` this replica holds, ascending, starting after
   * `after` (-1: from the start), at most `limit` of them; `more` when some were left off.
   * Repair uses it to learn which blocks a replica that missed a takeover must be given or lose.
   */
  async list(volumeId: VolumeId, after: number, limit: number): Promise<{ indexes: number[]; more: boolean }> {
    this.#checkOpen()
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`invalid limit: ${String(limit)}`)
    const indexes: number[] = []
    for await (const ref of this.store.refs(volumeId)) if (ref.index > after) indexes.push(ref.index)
    indexes.sort((a, b) => a - b)
    return { indexes: indexes.slice(0, limit), more: indexes.length > limit }
  }

  /** Makes every write applied so far durable, data and checksums, after checking the gateway's generations. */
  async flush(generations: Iterable<readonly [VolumeId, number]> = []): Promise<void> {
    for (const [volumeId, generation] of generations) this.#fence(volumeId, generation)
    await Promise.all([this.store.flush(), this.#files?.flush()])
  }

  #checkOpen(): void {
    if (this.#stateDir !== undefined && this.#state === undefined) throw new TorusError('TORUS_NOT_OPEN', 'replica state is not open')
  }

  #checkRange(offsetBytes: number, lengthBytes: number): void {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes + lengthBytes > this.blockSizeBytes) {
      throw new RangeError(`range [${String(offsetBytes)}, ${String(offsetBytes)}+${lengthBytes}) is outside the ${this.blockSizeBytes}-byte block`)
    }
  }

  #fence(volumeId: VolumeId, generation: number): void {
    const highest = this.generation(volumeId)
    if (generation < highest) {
      throw new TorusError('TORUS_LEASE_EXPIRED', 'a newer lock generation holds this volume', {
        details: { volumeId, generation, highest },
      })
    }
    if (generation === highest) return
    if (this.#state !== undefined) this.#state.raise(volumeId, generation)
    else this.#generations.set(volumeId, generation)
  }

  #sectorLength(sector: number): number {
    return Math.min(this.sectorBytes, this.blockSizeBytes - sector * this.sectorBytes)
  }

  #checksum(block: Uint8Array): Uint32Array {
    const sums = new Uint32Array(this.#zeroSums.length)
    for (let s = 0; s < sums.length; s++) sums[s] = crc32c(block.subarray(s * this.sectorBytes, s * this.sectorBytes + this.#sectorLength(s)))
    return sums
  }

  /**
   * The sums of a block the store holds: cached, else from its checksum file (none stored is
   * TORUS_CORRUPT), else, without `stateDir`, adopted from the bytes the store holds now.
   */
  async #sumsFor(ref: BlockRef): Promise<Uint32Array> {
    let sums = this.#cached(ref)
    if (sums !== undefined) return sums
    if (this.#files !== undefined) {
      sums = await this.#files.load(ref)
      if (sums === undefined) {
        throw new TorusError('TORUS_CORRUPT', 'no checksums stored for this block', { details: { volumeId: ref.volumeId, index: ref.index } })
      }
    } else {
      const block = await this.store.get(ref)
      if (block === undefined) throw new TorusError('TORUS_INTERNAL', 'block vanished during a read')
      sums = this.#checksum(block)
    }
    this.#remember(ref, sums)
    return sums
  }

  #cached(ref: BlockRef): Uint32Array | undefined {
    const key = ref.toString()
    const sums = this.#sums.get(key)
    if (sums !== undefined && this.#files !== undefined) {
      this.#sums.delete(key)
      this.#sums.set(key, sums)
    }
    return sums
  }

  #remember(ref: BlockRef, sums: Uint32Array): void {
    const key = ref.toString()
    this.#sums.delete(key)
    this.#sums.set(key, sums)
    // Only a cache when the sums are on disk too; without `stateDir` this map is their only copy.
    if (this.#files !== undefined && this.#sums.size > this.#cacheBlocks) this.#sums.delete(this.#sums.keys().next().value!)
  }

  /** After a failed store write: puts the block's previous sums back (best effort) and forgets the cached ones. */
  async #restore(ref: BlockRef, old: Uint32Array | undefined, first: number, last: number): Promise<void> {
    this.#sums.delete(ref.toString())
    if (this.#files !== undefined && old !== undefined) await this.#files.storeRange(ref, old, first, last).catch(() => undefined)
  }

  async #locked<T>(ref: BlockRef, fn: () => Promise<T>): Promise<T> {
    const key = ref.toString()
    const prev = this.#locks.get(key)
    let release!: () => void
    const mine = new Promise<void>((resolve) => (release = resolve))
    const tail = prev === undefined ? mine : prev.then(() => mine)
    this.#locks.set(key, tail)
    if (prev !== undefined) await prev
    try {
      return await fn()
    } finally {
      release()
      if (this.#locks.get(key) === tail) this.#locks.delete(key)
    }
  }
}

function corrupt(ref: BlockRef, sector: number): TorusError {
  return new TorusError('TORUS_CORRUPT', 'sector checksum mismatch', { details: { volumeId: ref.volumeId, index: ref.index, sector } })
}

/** The transport methods a replica serves; gateways call them with these bodies. */
export const REPLICA_METHODS = {
  /** `{ volumeId, index, offset, bytes, generation, seq }` → `null` */
  write: 'replica.write',
  /** `{ volumeId, index, bytes, generation, seq }` → `null` (a whole block) */
  put: 'replica.put',
  /** `{ volumeId, index, offset, length }` → `{ allocated, bytes }` */
  read: 'replica.read',
  /** `{ volumeId, index }` → `boolean` */
  has: 'replica.has',
  /** `{ volumeId, index, generation }` → `null` */
  delete: 'replica.delete',
  /** `{ volumeId, generation }` → `null` */
  deleteVolume: 'replica.deleteVolume',
  /** `{ generations: [[volumeId, generation], …] }` → `null`, once durable */
  flush: 'replica.flush',
  /** `{ volumeId, generation }` → `{ generation }` (the replica's highest) */
  announce: 'replica.announce',
  /** `{ volumeId, after, limit }` → `{ indexes, more, incarnation }` (`after` -1 from the start; limit at most 65536) */
  list: 'replica.list',
} as const

/** The most indexes one `replica.list` reply carries. */
export const LIST_LIMIT_MAX = 65536

/** Registers the `replica.*` handlers for `replica` on `transport`. */
export function serveReplica(transport: Transport, replica: Replica): void {
  const on = (method: string, fn: (body: Body) => Promise<TransportValue> | TransportValue): void => {
    const handler: RequestHandler = async (body) => {
      try {
        return await fn(new Body(body))
      } catch (err) {
        // Bad offsets or lengths from the wire are the caller's fault, not ours.
        if (err instanceof RangeError || err instanceof TypeError) throw new TorusError('TORUS_INVALID_ARGUMENT', err.message)
        throw err
      }
    }
    transport.handle(method, handler)
  }
  on(REPLICA_METHODS.write, async (b) => {
    await replica.write(b.ref(), b.int('offset'), b.bytes('bytes'), b.int('generation'))
    return { incarnation: replica.incarnation }
  })
  on(REPLICA_METHODS.put, async (b) => {
    await replica.put(b.ref(), b.bytes('bytes'), b.int('generation'))
    return { incarnation: replica.incarnation }
  })
  on(REPLICA_METHODS.read, async (b) => {
    const length = b.int('length')
    if (length > replica.blockSizeBytes) throw new TorusError('TORUS_INVALID_ARGUMENT', 'read longer than a block')
    const bytes = new Uint8Array(length)
    const allocated = await replica.read(b.ref(), b.int('offset'), bytes)
    return { allocated, bytes: allocated ? bytes : new Uint8Array(0), incarnation: replica.incarnation }
  })
  on(REPLICA_METHODS.has, (b) => replica.has(b.ref()))
  on(REPLICA_METHODS.delete, async (b) => {
    await replica.delete(b.ref(), b.int('generation'))
    return { incarnation: replica.incarnation }
  })
  on(REPLICA_METHODS.deleteVolume, async (b) => {
    await replica.deleteVolume(b.ref(0).volumeId, b.int('generation'))
    return null
  })
  on(REPLICA_METHODS.flush, async (b) => {
    const list = b.value('generations')
    if (!Array.isArray(list)) throw protocol('generations must be an array')
    const pairs = list.map((pair: unknown): [VolumeId, number] => {
      if (!Array.isArray(pair) || pair.length !== 2 || !isInt(pair[0]) || !isInt(pair[1])) throw protocol('bad generation pair')
      return [new BlockRef(pair[0] as number, 0).volumeId, pair[1] as number]
    })
    await replica.flush(pairs)
    return { incarnation: replica.incarnation }
  })
  on(REPLICA_METHODS.announce, (b) => ({ generation: replica.announce(b.ref(0).volumeId, b.int('generation')) }))
  on(REPLICA_METHODS.list, async (b) => {
    const after = b.value('after')
    if (after !== -1 && !isInt(after)) throw protocol('after must be -1 or a block index')
    const limit = b.int('limit')
    if (limit < 1 || limit > LIST_LIMIT_MAX) throw protocol(`limit must be 1 to ${LIST_LIMIT_MAX}`)
    return { ...(await replica.list(b.ref(0).volumeId, after as number, limit)), incarnation: replica.incarnation }
  })
}

function protocol(message: string): TorusError {
  return new TorusError('TORUS_PROTOCOL', `malformed replica request: ${message}`)
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** Typed access to a request body from the wire; anything missing or mistyped is TORUS_PROTOCOL. */
class Body {
  readonly #body: Record<string, unknown>
  constructor(body: TransportValue) {
    if (typeof body !== 'object' || body === null || Array.isArray(body) || body instanceof Uint8Array) throw protocol('body must be an object')
    this.#body = body as Record<string, unknown>
  }

  value(name: string): unknown {
    return this.#body[name]
  }

  int(name: string): number {
    const v = this.#body[name]
    if (!isInt(v)) throw protocol(`${name} must be a non-negative integer`)
    return v
  }

  bytes(name: string): Uint8Array {
    const v = this.#body[name]
    if (!(v instanceof Uint8Array)) throw protocol(`${name} must be bytes`)
    return v
  }

  ref(index?: number): BlockRef {
    return new BlockRef(this.int('volumeId'), index ?? this.int('index'))
  }
}
