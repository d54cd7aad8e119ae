/**
 * Reusable WRITE payload buffers. A 1 MiB payload allocated fresh per request costs a malloc
 * (often an mmap), 256 page faults on first touch and later GC work; at sequential-write rates
 * that is a large share of the event loop. Buffers come in power-of-two size classes from
 * 64 KiB to the maximum payload, and at most `maxPooledBytes` are kept idle.
 *
 * A buffer may be released only once nothing reads it any more: the connection releases a
 * payload after the device's `write()` has settled (BlockDevice does not retain `data`).
 */
export class PayloadPool {
  static readonly MIN_POOLED_BYTES = 64 * 1024
  readonly maxPooledBytes: number
  #idleBytes = 0
  readonly #free = new Map<number, Buffer[]>()
  readonly #owned = new WeakSet<ArrayBufferLike>()

  constructor(maxPooledBytes = 64 * 1024 * 1024) {
    this.maxPooledBytes = maxPooledBytes
  }

  /** A buffer of exactly `length` bytes (a view of a pooled buffer when large). */
  acquire(length: number): Buffer {
    if (length < PayloadPool.MIN_POOLED_BYTES) return Buffer.allocUnsafe(length)
    const size = sizeClass(length)
    const list = this.#free.get(size)
    const buf = list?.pop()
    if (buf !== undefined) {
      this.#idleBytes -= size
      return buf.subarray(0, length)
    }
    const fresh = Buffer.allocUnsafeSlow(size)
    this.#owned.add(fresh.buffer)
    return fresh.subarray(0, length)
  }

  /** Returns a buffer from `acquire()`; other buffers are ignored. */
  release(view: Buffer): void {
    if (view.length < PayloadPool.MIN_POOLED_BYTES) return
    const size = view.buffer.byteLength
    if (view.byteOffset !== 0 || !this.#owned.has(view.buffer)) return
    if (this.#idleBytes + size > this.maxPooledBytes) return
    let list = this.#free.get(size)
    if (list === undefined) this.#free.set(size, (list = []))
    list.push(Buffer.from(view.buffer, 0, size))
    this.#idleBytes += size
  }

  get idleBytes(): number {
    return this.#idleBytes
  }
}

function sizeClass(length: number): number {
  return 2 ** Math.ceil(Math.log2(length))
}

/** One pool per process: connections come and go, the buffers stay warm. */
export const sharedPayloadPool = new PayloadPool()
