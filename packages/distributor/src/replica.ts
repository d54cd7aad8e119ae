/**
 * The replica side of the data path: what one peer does with the blocks it holds for the ring.
 * A {@link Replica} wraps the peer's local `BlockStore` and adds generation fencing and
 * per-sector CRC-32C checksums; {@link serveReplica} exposes it to other peers' gateways as the
 * `replica.*` transport methods. The gateway on the same peer calls the `Replica` directly.
 */
import {
  BlockRef,
  TorusError,
  type BlockStore,
  type RequestHandler,
  type Transport,
  type TransportValue,
  type VolumeId,
} from '@torus/core'
import { crc32c } from './crc32c.js'

/** Checksum granularity: a partial write re-checksums only the sectors it touches. */
export const SECTOR_BYTES = 4096

export interface ReplicaOptions {
  /** The peer's local store, opened and closed by its owner (the `DistributedBlockStore`). */
  store: BlockStore
}

/**
 * One peer's replicas. Every mutation carries the volume's lock generation; the replica keeps
 * the highest generation it has seen per volume and refuses lower ones with TORUS_LEASE_EXPIRED,
 * so a gateway whose lock was taken over cannot overwrite the new holder's data (DESIGN.md,
 * data path point 5).
 *
 * Checksums: one CRC-32C per 4 KiB sector (the last sector of a block may be shorter), kept in
 * a sidecar map beside the store and checked on every read; a mismatch is TORUS_CORRUPT.
 * The sidecar lives in memory in this first cut: it needs no change to the `BlockStore`
 * contract or to on-disk formats, and costs 4 bytes per 4 KiB. A block found in the store
 * without sidecar entry (after a restart) is adopted on first touch: its checksums are computed
 * from the bytes then on disk. Persisting the sidecar (a checksum layer under the store) is
 * follow-up work.
 *
 * Operations on one block are serialised (a per-block mutex), so a read never sees data and
 * checksums from two different writes.
 */
export class Replica {
  readonly store: BlockStore
  readonly sectorBytes: number
  readonly #generations = new Map<VolumeId, number>()
  readonly #sums = new Map<string, Uint32Array>()
  readonly #locks = new Map<string, Promise<void>>()
  readonly #zeroSums: Uint32Array

  constructor(options: ReplicaOptions) {
    this.store = options.store
    this.sectorBytes = Math.min(SECTOR_BYTES, this.store.blockSizeBytes)
    const sectors = Math.ceil(this.store.blockSizeBytes / this.sectorBytes)
    this.#zeroSums = new Uint32Array(sectors)
    for (let s = 0; s < sectors; s++) this.#zeroSums[s] = crc32c(new Uint8Array(this.#sectorLength(s)))
  }

  get blockSizeBytes(): number {
    return this.store.blockSizeBytes
  }

  /** The highest generation seen for `volumeId` (0 when none). */
  generation(volumeId: VolumeId): number {
    return this.#generations.get(volumeId) ?? 0
  }

  /** Raises the volume's generation to `generation`; refuses a lower one. Returns the highest. */
  announce(volumeId: VolumeId, generation: number): number {
    this.#fence(volumeId, generation)
    return this.generation(volumeId)
  }

  async write(ref: BlockRef, offsetBytes: number, data: Uint8Array, generation: number): Promise<void> {
    this.#fence(ref.volumeId, generation)
    await this.#locked(ref, async () => {
      await this.#sumsFor(ref, true)
      this.#fence(ref.volumeId, generation)
      await this.store.write(ref, offsetBytes, data)
      await this.#resum(ref, offsetBytes, data.byteLength)
    })
  }

  async put(ref: BlockRef, block: Uint8Array, generation: number): Promise<void> {
    this.#fence(ref.volumeId, generation)
    await this.#locked(ref, async () => {
      this.#fence(ref.volumeId, generation)
      await this.store.put(ref, block)
      this.#sums.set(ref.toString(), this.#checksum(block))
    })
  }

  /** Fills `target` from the block, verifying every sector it touches. Resolves `true` when allocated. */
  async read(ref: BlockRef, offsetBytes: number, target: Uint8Array): Promise<boolean> {
    if (target.byteLength === 0) return this.store.has(ref)
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
      const sums = await this.#sumsFor(ref, false)
      for (let s = first; s <= last; s++) {
        const sector = buf.subarray((s - first) * S, (s - first) * S + this.#sectorLength(s))
        if (crc32c(sector) !== sums[s]) {
          throw new TorusError('TORUS_CORRUPT', 'sector checksum mismatch', {
            details: { volumeId: ref.volumeId, index: ref.index, sector: s },
          })
        }
      }
      target.set(buf.subarray(offsetBytes - start, offsetBytes - start + target.byteLength))
      return true
    })
  }

  async has(ref: BlockRef): Promise<boolean> {
    return this.store.has(ref)
  }

  async delete(ref: BlockRef, generation: number): Promise<void> {
    this.#fence(ref.volumeId, generation)
    await this.#locked(ref, async () => {
      await this.store.delete(ref)
      this.#sums.delete(ref.toString())
    })
  }

  async deleteVolume(volumeId: VolumeId, generation: number): Promise<void> {
    this.#fence(volumeId, generation)
    await this.store.deleteVolume(volumeId)
    const prefix = `${volumeId}:`
    for (const key of [...this.#sums.keys()]) if (key.startsWith(prefix)) this.#sums.delete(key)
  }

  /** Makes every write applied so far durable, after checking the gateway's generations. */
  async flush(generations: Iterable<readonly [VolumeId, number]> = []): Promise<void> {
    for (const [volumeId, generation] of generations) this.#fence(volumeId, generation)
    await this.store.flush()
  }

  #fence(volumeId: VolumeId, generation: number): void {
    const highest = this.generation(volumeId)
    if (generation < highest) {
      throw new TorusError('TORUS_LEASE_EXPIRED', 'a newer lock generation holds this volume', {
        details: { volumeId, generation, highest },
      })
    }
    if (generation > highest) this.#generations.set(volumeId, generation)
  }

  #sectorLength(sector: number): number {
    return Math.min(this.sectorBytes, this.blockSizeBytes - sector * this.sectorBytes)
  }

  #checksum(block: Uint8Array): Uint32Array {
    const sums = new Uint32Array(this.#zeroSums.length)
    for (let s = 0; s < sums.length; s++) sums[s] = crc32c(block.subarray(s * this.sectorBytes, s * this.sectorBytes + this.#sectorLength(s)))
    return sums
  }

  /** The block's checksums: from the sidecar, else adopted from the stored bytes, else (absent) zeros. */
  async #sumsFor(ref: BlockRef, forWrite: boolean): Promise<Uint32Array> {
    const key = ref.toString()
    let sums = this.#sums.get(key)
    if (sums !== undefined) return sums
    const block = await this.store.get(ref)
    if (block === undefined && !forWrite) throw new TorusError('TORUS_INTERNAL', 'block vanished during a read')
    sums = block === undefined ? this.#zeroSums.slice() : this.#checksum(block)
    this.#sums.set(key, sums)
    return sums
  }

  async #resum(ref: BlockRef, offsetBytes: number, lengthBytes: number): Promise<void> {
    const S = this.sectorBytes
    const first = Math.floor(offsetBytes / S)
    const last = Math.floor((offsetBytes + lengthBytes - 1) / S)
    const buf = new Uint8Array(Math.min((last + 1) * S, this.blockSizeBytes) - first * S)
    await this.store.read(ref, first * S, buf)
    const sums = this.#sums.get(ref.toString())!
    for (let s = first; s <= last; s++) sums[s] = crc32c(buf.subarray((s - first) * S, (s - first) * S + this.#sectorLength(s)))
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
} as const

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
    return null
  })
  on(REPLICA_METHODS.put, async (b) => {
    await replica.put(b.ref(), b.bytes('bytes'), b.int('generation'))
    return null
  })
  on(REPLICA_METHODS.read, async (b) => {
    const length = b.int('length')
    if (length > replica.blockSizeBytes) throw new TorusError('TORUS_INVALID_ARGUMENT', 'read longer than a block')
    const bytes = new Uint8Array(length)
    const allocated = await replica.read(b.ref(), b.int('offset'), bytes)
    return { allocated, bytes: allocated ? bytes : new Uint8Array(0) }
  })
  on(REPLICA_METHODS.has, (b) => replica.has(b.ref()))
  on(REPLICA_METHODS.delete, async (b) => {
    await replica.delete(b.ref(), b.int('generation'))
    return null
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
    return null
  })
  on(REPLICA_METHODS.announce, (b) => ({ generation: replica.announce(b.ref(0).volumeId, b.int('generation')) }))
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
