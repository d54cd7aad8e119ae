import type { AbortOptions } from './common.js'

/** What a block device can do; an NBD server turns these into transmission flags. */
export interface BlockDeviceSupports {
  readonly readOnly: boolean
  readonly flush: boolean
  /** Per-write force-unit-access. */
  readonly fua: boolean
  readonly trim: boolean
  readonly writeZeroes: boolean
  /** `writeZeroes({ fast: true })` fails fast with TORUS_NOT_SUPPORTED instead of writing slowly. */
  readonly fastZero: boolean
  /** A flush on one handle covers writes made through every handle of the same device. */
  readonly multiConn: boolean
}

export interface WriteOptions extends AbortOptions {
  /** Resolve only once these bytes are durable. */
  fua?: boolean
}

export interface WriteZeroesOptions extends WriteOptions {
  /** Keep the range allocated (do not punch a hole). */
  noHole?: boolean
  /** Fail with TORUS_NOT_SUPPORTED unless zeroing is cheaper than writing. */
  fast?: boolean
}

/**
 * A linear array of `sizeBytes` bytes, addressed by byte offset. This is what an NBD export
 * serves. Ranges are validated by the caller; an implementation may still throw RangeError for
 * a range outside `[0, sizeBytes)`.
 *
 * Durability: a resolved `flush()` (or a write with `fua`) means every write that resolved
 * before it survives a crash. Never-written ranges read as zeros.
 *
 * Errors: TORUS_READ_ONLY (write on a read-only device), TORUS_NOT_SUPPORTED (capability absent),
 * TORUS_OUT_OF_SPACE, TORUS_UNAVAILABLE, TORUS_CORRUPT, TORUS_LEASE_EXPIRED (lost the volume).
 */
export interface BlockDevice {
  readonly sizeBytes: number
  readonly supports: BlockDeviceSupports
  /** Fills `target` with the bytes at `[offsetBytes, offsetBytes + target.byteLength)`. */
  read(offsetBytes: number, target: Uint8Array, options?: AbortOptions): Promise<void>
  /**
   * Writes `data` at `offsetBytes`. The device must not keep a reference to `data` once the
   * returned promise settles: callers (the NBD server) recycle the buffer.
   */
  write(offsetBytes: number, data: Uint8Array, options?: WriteOptions): Promise<void>
  flush(options?: AbortOptions): Promise<void>
  /** Advisory: the range's contents are undefined until rewritten; capacity may be released. */
  trim(offsetBytes: number, lengthBytes: number, options?: WriteOptions): Promise<void>
  writeZeroes(offsetBytes: number, lengthBytes: number, options?: WriteZeroesOptions): Promise<void>
}
