import { AbstractBlockStore } from '@torus/blockstore'
import type { AbortOptions, BlockRef, BlockStore, BlockStoreSupports, BlockStoreUsage, VolumeId } from '@torus/core'
import { Replica, type ReplicaOptions } from '../../src/index.js'

/**
 * A `Replica` seen as a `BlockStore` (every mutation at one fixed generation), so the shared
 * conformance suite, reopen included, can run over a replica with persistent state. Test-only:
 * the real callers are the gateway and `serveReplica`.
 */
export class ReplicaBlockStore extends AbstractBlockStore {
  readonly supports: BlockStoreSupports
  readonly replica: Replica
  readonly #inner: BlockStore
  readonly #generation: number

  constructor(options: ReplicaOptions & { generation?: number }) {
    super({ blockSizeBytes: options.store.blockSizeBytes })
    this.#inner = options.store
    this.#generation = options.generation ?? 1
    this.replica = new Replica(options)
    this.supports = { ...options.store.supports }
  }

  protected override async _open(options?: AbortOptions): Promise<void> {
    await this.#inner.open(options)
    await this.replica.open()
  }

  protected override async _close(): Promise<void> {
    try {
      await this.replica.close()
    } finally {
      await this.#inner.close()
    }
  }

  protected async _get(ref: BlockRef): Promise<Uint8Array | undefined> {
    const block = new Uint8Array(this.blockSizeBytes)
    return (await this.replica.read(ref, 0, block)) ? block : undefined
  }

  protected _put(ref: BlockRef, block: Uint8Array): Promise<void> {
    return this.replica.put(ref, block, this.#generation)
  }

  protected _read(ref: BlockRef, offsetBytes: number, target: Uint8Array): Promise<boolean> {
    return this.replica.read(ref, offsetBytes, target)
  }

  protected _write(ref: BlockRef, offsetBytes: number, data: Uint8Array): Promise<void> {
    return this.replica.write(ref, offsetBytes, data, this.#generation)
  }

  protected _has(ref: BlockRef): Promise<boolean> {
    return this.replica.has(ref)
  }

  protected _delete(ref: BlockRef): Promise<void> {
    return this.replica.delete(ref, this.#generation)
  }

  protected _deleteVolume(volumeId: VolumeId): Promise<void> {
    return this.replica.deleteVolume(volumeId, this.#generation)
  }

  protected override _flush(): Promise<void> {
    return this.replica.flush()
  }

  protected _usage(): BlockStoreUsage {
    return this.#inner.usage()
  }

  protected override _refs(volumeId: VolumeId | undefined): AsyncIterable<BlockRef> {
    return this.#inner.refs(volumeId)
  }
}
