import {
  BlockRef,
  TorusError,
  type BlockIndex,
  type BlockStoreSupports,
  type BlockStoreUsage,
  type VolumeId,
} from '@torus/core'
import { AbstractBlockStore } from './abstract-block-store.js'

export interface MemoryBlockStoreOptions {
  blockSizeBytes: number
  /** Allocation limit. Defaults to `Number.MAX_SAFE_INTEGER` (in practice: the heap). */
  capacityBytes?: number
}

/**
 * Blocks in a `Map` per volume. Not persistent: contents survive `close()` and a later `open()`
 * of the same instance, but not the process. Every operation completes synchronously inside its
 * promise, so concurrent writes never interleave partially.
 */
export class MemoryBlockStore extends AbstractBlockStore {
  readonly supports: BlockStoreSupports = Object.freeze({ persistent: false, trim: true, iterate: true })
  readonly #capacityBytes: number
  readonly #volumes = new Map<VolumeId, Map<BlockIndex, Uint8Array>>()
  #blocks = 0

  constructor(options: MemoryBlockStoreOptions) {
    super(options)
    const capacity = options.capacityBytes ?? Number.MAX_SAFE_INTEGER
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`invalid capacityBytes: ${String(capacity)}`)
    this.#capacityBytes = capacity
  }

  protected async _get(ref: BlockRef): Promise<Uint8Array | undefined> {
    return this.#volumes.get(ref.volumeId)?.get(ref.index)?.slice()
  }

  protected async _put(ref: BlockRef, block: Uint8Array): Promise<void> {
    const existing = this.#volumes.get(ref.volumeId)?.get(ref.index)
    if (existing !== undefined) existing.set(block)
    else this.#allocate(ref).set(block)
  }

  protected async _read(ref: BlockRef, offsetBytes: number, target: Uint8Array): Promise<boolean> {
    const block = this.#volumes.get(ref.volumeId)?.get(ref.index)
    if (block === undefined) {
      target.fill(0)
      return false
    }
    target.set(block.subarray(offsetBytes, offsetBytes + target.byteLength))
    return true
  }

  protected async _write(ref: BlockRef, offsetBytes: number, data: Uint8Array): Promise<void> {
    const block = this.#volumes.get(ref.volumeId)?.get(ref.index) ?? this.#allocate(ref)
    block.set(data, offsetBytes)
  }

  protected async _has(ref: BlockRef): Promise<boolean> {
    return this.#volumes.get(ref.volumeId)?.has(ref.index) ?? false
  }

  protected async _delete(ref: BlockRef): Promise<void> {
    const volume = this.#volumes.get(ref.volumeId)
    if (volume?.delete(ref.index) === true) {
      this.#blocks--
      if (volume.size === 0) this.#volumes.delete(ref.volumeId)
    }
  }

  protected async _deleteVolume(volumeId: VolumeId): Promise<void> {
    const volume = this.#volumes.get(volumeId)
    if (volume === undefined) return
    this.#blocks -= volume.size
    this.#volumes.delete(volumeId)
  }

  protected _usage(): BlockStoreUsage {
    return { usedBytes: this.#blocks * this.blockSizeBytes, capacityBytes: this.#capacityBytes, blocks: this.#blocks }
  }

  protected override async *_refs(volumeId: VolumeId | undefined): AsyncIterable<BlockRef> {
    // Snapshot the keys so deletes during iteration cannot skip or repeat entries.
    const volumes = volumeId === undefined ? [...this.#volumes.keys()] : [volumeId]
    for (const id of volumes) {
      const indexes = [...(this.#volumes.get(id)?.keys() ?? [])]
      for (const index of indexes) yield new BlockRef(id, index)
    }
  }

  #allocate(ref: BlockRef): Uint8Array {
    const usedBytes = this.#blocks * this.blockSizeBytes
    if (usedBytes + this.blockSizeBytes > this.#capacityBytes) {
      throw new TorusError(
        'TORUS_OUT_OF_SPACE',
        `no room for another ${this.blockSizeBytes}-byte block: ${usedBytes} of ${this.#capacityBytes} bytes used`,
        { details: { usedBytes, capacityBytes: this.#capacityBytes } },
      )
    }
    let volume = this.#volumes.get(ref.volumeId)
    if (volume === undefined) {
      volume = new Map()
      this.#volumes.set(ref.volumeId, volume)
    }
    const block = new Uint8Array(this.blockSizeBytes)
    volume.set(ref.index, block)
    this.#blocks++
    return block
  }
}
