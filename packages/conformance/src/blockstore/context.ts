import { BlockRef, type BlockStore, type BlockStoreSupports } from '@torus/core'
import { withInstance, type Harness } from '../harness.js'

/** What every concern file receives: the harness plus facts probed from one instance. */
export interface SuiteContext {
  readonly harness: Harness<BlockStore>
  readonly supports: BlockStoreSupports
  readonly blockSizeBytes: number
  readonly capacityBytes: number
  /** How many blocks fit; the capacity tests fill the store only when this is small. */
  readonly capacityBlocks: number
  /** A test body that runs `fn` on a fresh store and always destroys it. */
  run(fn: (store: BlockStore) => Promise<void>): () => Promise<void>
}

/** Capacity tests fill the store block by block; above this many blocks they are skipped. */
export const FILLABLE_BLOCKS_MAX = 4096

export function createContext(
  harness: Harness<BlockStore>,
  probe: { supports: BlockStoreSupports; blockSizeBytes: number; capacityBytes: number },
): SuiteContext {
  return {
    harness,
    supports: probe.supports,
    blockSizeBytes: probe.blockSizeBytes,
    capacityBytes: probe.capacityBytes,
    capacityBlocks: Math.floor(probe.capacityBytes / probe.blockSizeBytes),
    run: (fn) => () => withInstance(harness, fn),
  }
}

export function ref(volume: number, index: number): BlockRef {
  return new BlockRef(volume, index)
}

export function filled(lengthBytes: number, byte: number): Uint8Array {
  return new Uint8Array(lengthBytes).fill(byte)
}

/** Deterministic bytes that differ per `seed`, and are never all zero. */
export function pattern(lengthBytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(lengthBytes)
  let x = (seed * 2654435761 + 1) >>> 0
  for (let i = 0; i < lengthBytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = (x >>> 16) & 0xff
  }
  out[0] = (seed % 255) + 1
  return out
}

/** Index of the first byte that differs from `byte`, or -1. Keeps failure output small. */
export function firstNot(bytes: Uint8Array, byte: number): number {
  return bytes.findIndex((b) => b !== byte)
}
