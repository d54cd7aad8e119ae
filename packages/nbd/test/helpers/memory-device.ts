import { TorusError, type AbortOptions, type BlockDevice, type BlockDeviceSupports, type WriteOptions, type WriteZeroesOptions } from '@torus/core'

export interface MemoryDeviceOptions {
  supports?: Partial<BlockDeviceSupports>
  /** Make every call wait this long (ms), to keep requests in flight. */
  delayMs?: number
}

const ALL: BlockDeviceSupports = {
  readOnly: false,
  flush: true,
  fua: true,
  trim: true,
  writeZeroes: true,
  fastZero: true,
  multiConn: true,
}

/** A tiny in-memory BlockDevice for tests, with hooks to inject failures and delays. */
export class MemoryDevice implements BlockDevice {
  readonly sizeBytes: number
  readonly supports: BlockDeviceSupports
  readonly bytes: Uint8Array
  delayMs: number
  /** Every call, in order: `[method, offset, length, options]`. */
  readonly calls: Array<[string, number, number, unknown]> = []
  /** When set, the next calls throw it (or the value it returns). */
  fail: ((method: string) => unknown) | undefined
  flushes = 0

  constructor(sizeBytes: number, options: MemoryDeviceOptions = {}) {
    this.sizeBytes = sizeBytes
    this.bytes = new Uint8Array(sizeBytes)
    this.supports = { ...ALL, ...options.supports }
    this.delayMs = options.delayMs ?? 0
  }

  async #enter(method: string, offset: number, length: number, options: unknown): Promise<void> {
    this.calls.push([method, offset, length, options])
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs))
    const f = this.fail?.(method)
    if (f !== undefined) throw f
    if (offset < 0 || offset + length > this.sizeBytes) throw new RangeError(`range ${offset}+${length} outside device`)
  }

  async read(offset: number, target: Uint8Array, options?: AbortOptions): Promise<void> {
    await this.#enter('read', offset, target.byteLength, options)
    target.set(this.bytes.subarray(offset, offset + target.byteLength))
  }

  async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    await this.#enter('write', offset, data.byteLength, options)
    if (this.supports.readOnly) throw new TorusError('TORUS_READ_ONLY', 'read-only')
    this.bytes.set(data, offset)
  }

  async flush(options?: AbortOptions): Promise<void> {
    await this.#enter('flush', 0, 0, options)
    this.flushes++
  }

  async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    await this.#enter('trim', offset, length, options)
    this.bytes.fill(0, offset, offset + length)
  }

  async writeZeroes(offset: number, length: number, options?: WriteZeroesOptions): Promise<void> {
    await this.#enter('writeZeroes', offset, length, options)
    if (options?.fast === true && !this.supports.fastZero) throw new TorusError('TORUS_NOT_SUPPORTED', 'no fast zero')
    this.bytes.fill(0, offset, offset + length)
  }
}
