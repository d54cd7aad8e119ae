import type { BlockDevice, BlockDeviceSupports } from '@torus/core'
import { withInstance, type Harness } from '../harness.js'

/**
 * A {@link Harness} for block devices. `create()` returns a fresh device whose bytes all read as
 * zero, at least 1 MiB long.
 */
export interface BlockDeviceHarness extends Harness<BlockDevice> {
  /**
   * Present when the device can be opened read-only: returns a read-only device over the same
   * bytes as `instance` (e.g. a second handle opened with `readOnly`). The harness releases the
   * view when `destroy(instance)` runs.
   */
  openReadOnly?(instance: BlockDevice): Promise<BlockDevice>
}

/** What every concern file receives: the harness plus facts probed from one instance. */
export interface SuiteContext {
  readonly harness: BlockDeviceHarness
  readonly supports: BlockDeviceSupports
  readonly sizeBytes: number
  /** Mutating tests are skipped when the harness creates read-only devices. */
  readonly writable: boolean
  /** A test body that runs `fn` on a fresh device and always destroys it. */
  run(fn: (device: BlockDevice) => Promise<void>): () => Promise<void>
}

export function createContext(harness: BlockDeviceHarness, probe: { supports: BlockDeviceSupports; sizeBytes: number }): SuiteContext {
  return {
    harness,
    supports: probe.supports,
    sizeBytes: probe.sizeBytes,
    writable: !probe.supports.readOnly,
    run: (fn) => () => withInstance(harness, fn),
  }
}

/** Deterministic bytes that differ per `seed`, never periodic at a power of two, never zero. */
export function pattern(lengthBytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(lengthBytes)
  let x = (seed * 2654435761 + 1) >>> 0
  for (let i = 0; i < lengthBytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = ((x >>> 16) % 255) + 1
  }
  return out
}

/** Index of the first byte where `actual` and `expected` differ, or -1. Keeps failure output small. */
export function firstDiff(actual: Uint8Array, expected: Uint8Array): number {
  if (actual.byteLength !== expected.byteLength) return Math.min(actual.byteLength, expected.byteLength)
  for (let i = 0; i < actual.byteLength; i++) if (actual[i] !== expected[i]) return i
  return -1
}

/** Index of the first byte that is not `byte`, or -1. */
export function firstNot(bytes: Uint8Array, byte: number): number {
  return bytes.findIndex((b) => b !== byte)
}

/** Reads `[offsetBytes, offsetBytes + lengthBytes)` into a fresh buffer. */
export async function readRange(device: BlockDevice, offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
  const target = new Uint8Array(lengthBytes)
  await device.read(offsetBytes, target)
  return target
}

/**
 * The rejection of `fn()`, whether it throws synchronously or rejects; fails when it resolves.
 * Lets tests assert codes with `toMatchObject({ code })`.
 */
export async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn()
  } catch (err) {
    return err
  }
  throw new Error('expected the call to fail, but it resolved')
}
