import type { BlockRef } from '../block-ref.js'
import type { VolumeId } from '../ids.js'
import type { AbortOptions, LifecycleStatus } from './common.js'

/** What a block store can do. Callers and conformance suites branch on these, never on names. */
export interface BlockStoreSupports {
  /** Blocks survive close() and a process crash after flush(). */
  readonly persistent: boolean
  /** `delete()` releases capacity (thin provisioning). */
  readonly trim: boolean
  /** `refs()` enumerates stored blocks. */
  readonly iterate: boolean
}

export interface BlockStoreUsage {
  /** Bytes held by allocated blocks (allocated blocks × block size). */
  readonly usedBytes: number
  /** The limit; an allocation past it fails with TORUS_OUT_OF_SPACE. */
  readonly capacityBytes: number
  /** Number of allocated blocks. */
  readonly blocks: number
}

/**
 * Fixed-size blocks addressed by {@link BlockRef}, updated in place.
 *
 * Every block is `blockSizeBytes` long. A block that was never written (or was deleted)
 * is *absent*: `get()` returns `undefined`, `read()` fills zeros and resolves `false`,
 * and it holds no capacity. The first write to an absent block allocates it, zero-filled,
 * so a sub-block write moves only its own bytes.
 *
 * Durability: a write is visible to reads as soon as it resolves, and survives a crash of
 * the process once a later `flush()` has resolved. Writes to non-overlapping ranges may run
 * concurrently, including ranges within one block; the store keeps them both.
 *
 * Errors: TORUS_NOT_OPEN (not open), TORUS_OUT_OF_SPACE (allocation past capacity),
 * TORUS_ABORTED (signal), TORUS_CORRUPT (stored bytes fail verification).
 * Bad arguments (offset/length outside the block, wrong block length) throw RangeError.
 */
export interface BlockStore {
  readonly blockSizeBytes: number
  readonly supports: BlockStoreSupports
  readonly status: LifecycleStatus

  open(options?: AbortOptions): Promise<void>
  /** Flushes and releases resources. Safe to call twice. */
  close(): Promise<void>

  /** A copy of the whole block, or `undefined` when it is absent. */
  get(ref: BlockRef, options?: AbortOptions): Promise<Uint8Array | undefined>
  /** Replaces the whole block; `block.byteLength` must equal `blockSizeBytes`. */
  put(ref: BlockRef, block: Uint8Array, options?: AbortOptions): Promise<void>
  /**
   * Fills `target` with the bytes at `[offsetBytes, offsetBytes + target.byteLength)` of the
   * block (zeros when absent). Resolves `true` when the block is allocated.
   */
  read(ref: BlockRef, offsetBytes: number, target: Uint8Array, options?: AbortOptions): Promise<boolean>
  /**
   * Writes `data` at `offsetBytes` within the block, allocating it (zero-filled) if absent.
   * `data` (like `put`'s `block`) must not be retained once the promise settles.
   */
  write(ref: BlockRef, offsetBytes: number, data: Uint8Array, options?: AbortOptions): Promise<void>
  has(ref: BlockRef, options?: AbortOptions): Promise<boolean>
  /** Makes the block absent and releases its capacity. No-op when absent. */
  delete(ref: BlockRef, options?: AbortOptions): Promise<void>
  /** Deletes every block of the volume. */
  deleteVolume(volumeId: VolumeId, options?: AbortOptions): Promise<void>
  /** Resolves once every write and delete that resolved before this call is durable. */
  flush(options?: AbortOptions): Promise<void>
  usage(): BlockStoreUsage
  /** Stored block refs (in no particular order), optionally of one volume. Needs `supports.iterate`. */
  refs(volumeId?: VolumeId, options?: AbortOptions): AsyncIterable<BlockRef>
}

export interface BlockStoreOptions {
  blockSizeBytes: number
  capacityBytes: number
}
