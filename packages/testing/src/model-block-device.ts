import {
  throwIfAborted,
  TorusError,
  type AbortOptions,
  type BlockDevice,
  type BlockDeviceSupports,
  type WriteOptions,
  type WriteZeroesOptions,
} from '@torus/core'

export interface ModelBlockDeviceOptions {
  sizeBytes: number
  /** Every mutation fails with TORUS_READ_ONLY. */
  readOnly?: boolean
}

const PAGE_BYTES = 4096

/**
 * The simplest correct {@link BlockDevice}: a sparse map of 4 KiB pages in memory, every
 * operation synchronous underneath. It is the oracle for simulations and a plain memory device
 * for other packages' tests. Trim and writeZeroes both zero the range (trim's contents are
 * undefined, so zeros are a valid choice); pages that become all zero are dropped.
 */
export class ModelBlockDevice implements BlockDevice {
  readonly sizeBytes: number
  readonly supports: BlockDeviceSupports
  readonly #pages = new Map<number, Uint8Array>()

  constructor(options: ModelBlockDeviceOptions) {
    if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes < 0) throw new RangeError(`invalid size: ${options.sizeBytes}`)
    this.sizeBytes = options.sizeBytes
    this.supports = Object.freeze({
      readOnly: options.readOnly ?? false,
      flush: true,
      fua: true,
      trim: true,
      writeZeroes: true,
      // Zeroing only drops or clears pages, so it is always fast.
      fastZero: true,
      multiConn: true,
    })
  }

  /** Number of 4 KiB pages holding data (for tests that check capacity was released). */
  get allocatedPages(): number {
    return this.#pages.size
  }

  async read(offsetBytes: number, target: Uint8Array, options?: AbortOptions): Promise<void> {
    this.#check(offsetBytes, target.byteLength, options, false)
    this.#each(offsetBytes, target.byteLength, (page, start, len, at) => {
      const p = this.#pages.get(page)
      if (p === undefined) target.fill(0, at, at + len)
      else target.set(p.subarray(start, start + len), at)
    })
  }

  async write(offsetBytes: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    this.#check(offsetBytes, data.byteLength, options, true)
    this.#each(offsetBytes, data.byteLength, (page, start, len, at) => {
      let p = this.#pages.get(page)
      if (p === undefined) {
        p = new Uint8Array(PAGE_BYTES)
        this.#pages.set(page, p)
      }
      p.set(data.subarray(at, at + len), start)
    })
  }

  async flush(options?: AbortOptions): Promise<void> {
    this.#check(0, 0, options, false)
  }

  async trim(offsetBytes: number, lengthBytes: number, options?: WriteOptions): Promise<void> {
    this.#check(offsetBytes, lengthBytes, options, true)
    this.#zero(offsetBytes, lengthBytes)
  }

  async writeZeroes(offsetBytes: number, lengthBytes: number, options?: WriteZeroesOptions): Promise<void> {
    this.#check(offsetBytes, lengthBytes, options, true)
    this.#zero(offsetBytes, lengthBytes)
  }

  #zero(offsetBytes: number, lengthBytes: number): void {
    this.#each(offsetBytes, lengthBytes, (page, start, len) => {
      const p = this.#pages.get(page)
      if (p === undefined) return
      p.fill(0, start, start + len)
      if (p.every((b) => b === 0)) this.#pages.delete(page)
    })
  }

  #check(offsetBytes: number, lengthBytes: number, options: AbortOptions | undefined, mutates: boolean): void {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) throw new RangeError(`invalid offset: ${offsetBytes}`)
    if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0) throw new RangeError(`invalid length: ${lengthBytes}`)
    if (offsetBytes + lengthBytes > this.sizeBytes || (lengthBytes > 0 && offsetBytes >= this.sizeBytes)) {
      throw new RangeError(`range [${offsetBytes}, ${offsetBytes + lengthBytes}) is outside the device (${this.sizeBytes} bytes)`)
    }
    throwIfAborted(options?.signal)
    if (mutates && this.supports.readOnly) throw new TorusError('TORUS_READ_ONLY', 'device is read-only')
  }

  /** Calls `fn(page, offsetInPage, length, offsetInRequest)` for each page the range touches. */
  #each(offsetBytes: number, lengthBytes: number, fn: (page: number, start: number, len: number, at: number) => void): void {
    let pos = offsetBytes
    const end = offsetBytes + lengthBytes
    while (pos < end) {
      const page = Math.floor(pos / PAGE_BYTES)
      const start = pos - page * PAGE_BYTES
      const len = Math.min(PAGE_BYTES - start, end - pos)
      fn(page, start, len, pos - offsetBytes)
      pos += len
    }
  }
}
