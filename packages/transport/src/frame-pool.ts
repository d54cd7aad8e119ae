/**
 * Reusable output buffers for large frames.
 *
 * Why: a replica write or read reply carries up to a block (512 KiB by default). Packing it into
 * a new buffer each time churns external memory, and V8 starts a collection every few tens of MiB
 * of it. Under a 1 MiB sequential write, the gateway collected garbage about 20 times a second
 * (docs/benchmarks.md). A pipe that copies a frame into the socket (ws) hands the buffer back
 * once the write completes, and the next large frame reuses it.
 *
 * Only pipes whose frames are written out and then forgotten may use a pool. The loopback pipe
 * delivers the frame object itself, and the receiver keeps views into it, so it must not.
 * Releasing too late is harmless: the buffer becomes garbage. Releasing too early would corrupt
 * a frame, so a buffer is released only by the pipe's write callback, or by the session for a
 * frame it never handed to a pipe.
 */
export const FRAME_POOL_GRANULE = 64 * 1024

export class FrameBufferPool {
  readonly #free = new Map<number, Buffer[]>()
  // Lent buffers by their memory, with the one object that may give each back: the buffer itself
  // until `lend` names the frame packed into it. A stale second release of an earlier frame in the
  // same memory is then a different object and cannot free the buffer under its new frame.
  readonly #lent = new WeakMap<ArrayBufferLike, { buf: Buffer; holder: Uint8Array }>()
  #freeBytes = 0
  readonly #maxFreeBytes: number

  /** `maxFreeBytes`: idle buffers kept beyond this are dropped for the GC. */
  constructor(maxFreeBytes = 32 * 1024 * 1024) {
    this.#maxFreeBytes = maxFreeBytes
  }

  /** A buffer of at least `size` bytes (rounded up to 64 KiB), lent until {@link release}. */
  acquire(size: number): Buffer {
    const bytes = Math.ceil(Math.max(1, size) / FRAME_POOL_GRANULE) * FRAME_POOL_GRANULE
    const free = this.#free.get(bytes)
    let buf = free?.pop()
    if (buf !== undefined) this.#freeBytes -= bytes
    // Slow: its own ArrayBuffer, never a slice of Node's shared pool. `release` finds the buffer
    // by a frame's ArrayBuffer.
    else buf = Buffer.allocUnsafeSlow(bytes)
    this.#lent.set(buf.buffer, { buf, holder: buf })
    return buf
  }

  /**
   * Hands the lent `buf` over to `frame`, a view of it: from now on only `release(frame)` gives
   * it back. Returns false (and changes nothing) when `frame` is not in `buf`.
   */
  lend(buf: Buffer, frame: Uint8Array): boolean {
    const entry = this.#lent.get(buf.buffer)
    if (entry === undefined || entry.holder !== buf || frame.buffer !== buf.buffer) return false
    entry.holder = frame
    return true
  }

  /** True if `frame` is the current holder of a buffer lent by this pool. */
  owns(frame: Uint8Array): boolean {
    return this.#lent.get(frame.buffer)?.holder === frame
  }

  /**
   * Takes back the buffer `frame` holds. The caller must not touch `frame` again. Anything that
   * is not a current holder (another view of the same memory, a frame released before, a frame
   * not from this pool) is ignored.
   */
  release(frame: Uint8Array): void {
    const entry = this.#lent.get(frame.buffer)
    if (entry === undefined || entry.holder !== frame) return
    this.#lent.delete(frame.buffer)
    const { buf } = entry
    if (this.#freeBytes + buf.byteLength > this.#maxFreeBytes) return
    let free = this.#free.get(buf.byteLength)
    if (free === undefined) this.#free.set(buf.byteLength, (free = []))
    free.push(buf)
    this.#freeBytes += buf.byteLength
  }

  /** Bytes held idle for reuse. */
  get freeBytes(): number {
    return this.#freeBytes
  }
}
