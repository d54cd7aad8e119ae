import {
  BlockRef,
  MAX_VOLUME_ID,
  TorusError,
  throwIfAborted,
  type AbortOptions,
  type BlockStore,
  type BlockStoreSupports,
  type BlockStoreUsage,
  type LifecycleStatus,
  type VolumeId,
} from '@torus/core'

export interface AbstractBlockStoreOptions {
  /** Size of every block. A positive integer; backends may narrow it further. */
  blockSizeBytes: number
}

/**
 * The public half of every block store: each public method checks its arguments (RangeError or
 * TypeError), the lifecycle status (TORUS_NOT_OPEN) and its signal (TORUS_ABORTED), then calls
 * the protected `_method` of the same name. Backends override only the `_methods`, and receive
 * arguments that are already valid: offsets and lengths lie inside the block, `put` blocks are
 * exactly `blockSizeBytes` long, and zero-length reads and writes never reach them.
 *
 * `close()` waits for the operations in flight before it calls `_close()`, so backends may
 * release resources there without racing their own I/O.
 */
export abstract class AbstractBlockStore implements BlockStore, AsyncDisposable {
  readonly blockSizeBytes: number
  abstract readonly supports: BlockStoreSupports

  #status: LifecycleStatus = 'closed'
  #opening: Promise<void> | undefined
  #closing: Promise<void> | undefined
  #inflight = 0
  #idle: (() => void) | undefined

  constructor(options: AbstractBlockStoreOptions) {
    const size = options.blockSizeBytes
    if (!Number.isSafeInteger(size) || size < 1 || size > 0x7fff_ffff) {
      throw new RangeError(`invalid blockSizeBytes: ${String(size)}`)
    }
    this.blockSizeBytes = size
  }

  get status(): LifecycleStatus {
    return this.#status
  }

  async open(options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal)
    if (this.#closing !== undefined) await this.#closing
    if (this.#status === 'open') return
    if (this.#opening === undefined) {
      this.#status = 'opening'
      this.#opening = this._open(options).then(
        () => {
          this.#status = 'open'
          this.#opening = undefined
        },
        (err: unknown) => {
          this.#status = 'closed'
          this.#opening = undefined
          throw toError(err)
        },
      )
    }
    return this.#opening
  }

  async close(): Promise<void> {
    if (this.#opening !== undefined) await this.#opening.catch(() => {})
    if (this.#closing !== undefined) return this.#closing
    if (this.#status === 'closed') return
    this.#status = 'closing'
    this.#closing = (async () => {
      try {
        if (this.#inflight > 0) await new Promise<void>((resolve) => (this.#idle = resolve))
        await this._close()
      } finally {
        this.#status = 'closed'
        this.#closing = undefined
      }
    })()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  async get(ref: BlockRef, options?: AbortOptions): Promise<Uint8Array | undefined> {
    this.#checkRef(ref)
    this.#admit(options)
    try {
      return await this._get(ref, options)
    } finally {
      this.#done()
    }
  }

  async put(ref: BlockRef, block: Uint8Array, options?: AbortOptions): Promise<void> {
    this.#checkRef(ref)
    checkBytes(block, 'block')
    if (block.byteLength !== this.blockSizeBytes) {
      throw new RangeError(`block must be ${this.blockSizeBytes} bytes, got ${block.byteLength}`)
    }
    this.#admit(options)
    try {
      await this._put(ref, block, options)
    } finally {
      this.#done()
    }
  }

  async read(ref: BlockRef, offsetBytes: number, target: Uint8Array, options?: AbortOptions): Promise<boolean> {
    this.#checkRef(ref)
    checkBytes(target, 'target')
    this.#checkRange(offsetBytes, target.byteLength)
    this.#admit(options)
    try {
      return target.byteLength === 0 ? await this._has(ref, options) : await this._read(ref, offsetBytes, target, options)
    } finally {
      this.#done()
    }
  }

  async write(ref: BlockRef, offsetBytes: number, data: Uint8Array, options?: AbortOptions): Promise<void> {
    this.#checkRef(ref)
    checkBytes(data, 'data')
    this.#checkRange(offsetBytes, data.byteLength)
    this.#admit(options)
    if (data.byteLength === 0) return this.#done()
    try {
      await this._write(ref, offsetBytes, data, options)
    } finally {
      this.#done()
    }
  }

  async has(ref: BlockRef, options?: AbortOptions): Promise<boolean> {
    this.#checkRef(ref)
    this.#admit(options)
    try {
      return await this._has(ref, options)
    } finally {
      this.#done()
    }
  }

  async delete(ref: BlockRef, options?: AbortOptions): Promise<void> {
    this.#checkRef(ref)
    this.#admit(options)
    try {
      await this._delete(ref, options)
    } finally {
      this.#done()
    }
  }

  async deleteVolume(volumeId: VolumeId, options?: AbortOptions): Promise<void> {
    checkVolumeId(volumeId)
    this.#admit(options)
    try {
      await this._deleteVolume(volumeId, options)
    } finally {
      this.#done()
    }
  }

  async flush(options?: AbortOptions): Promise<void> {
    this.#admit(options)
    try {
      await this._flush(options)
    } finally {
      this.#done()
    }
  }

  usage(): BlockStoreUsage {
    return this._usage()
  }

  /**
   * Not counted as an operation in flight (an abandoned iterator must not block `close()`);
   * instead each step checks that the store is still open.
   */
  async *refs(volumeId?: VolumeId, options?: AbortOptions): AsyncIterable<BlockRef> {
    if (volumeId !== undefined) checkVolumeId(volumeId)
    this.#checkOpen(options)
    if (!this.supports.iterate) throw new TorusError('TORUS_NOT_SUPPORTED', 'this block store cannot enumerate its blocks')
    for await (const ref of this._refs(volumeId, options)) {
      this.#checkOpen(options)
      yield ref
    }
  }

  /** Acquires resources. Called once per open; the status is `opening` meanwhile. */
  protected async _open(_options?: AbortOptions): Promise<void> {}
  /** Releases resources. No operation is in flight; persistent backends flush here. */
  protected async _close(): Promise<void> {}
  protected abstract _get(ref: BlockRef, options?: AbortOptions): Promise<Uint8Array | undefined>
  protected abstract _put(ref: BlockRef, block: Uint8Array, options?: AbortOptions): Promise<void>
  /** `target` is non-empty and lies within the block. */
  protected abstract _read(ref: BlockRef, offsetBytes: number, target: Uint8Array, options?: AbortOptions): Promise<boolean>
  /** `data` is non-empty and lies within the block. */
  protected abstract _write(ref: BlockRef, offsetBytes: number, data: Uint8Array, options?: AbortOptions): Promise<void>
  protected abstract _has(ref: BlockRef, options?: AbortOptions): Promise<boolean>
  protected abstract _delete(ref: BlockRef, options?: AbortOptions): Promise<void>
  protected abstract _deleteVolume(volumeId: VolumeId, options?: AbortOptions): Promise<void>
  protected async _flush(_options?: AbortOptions): Promise<void> {}
  protected abstract _usage(): BlockStoreUsage
  protected _refs(_volumeId: VolumeId | undefined, _options?: AbortOptions): AsyncIterable<BlockRef> {
    throw new TorusError('TORUS_NOT_SUPPORTED', 'this block store cannot enumerate its blocks')
  }

  #checkOpen(options: AbortOptions | undefined): void {
    if (this.#status !== 'open') throw new TorusError('TORUS_NOT_OPEN', `block store is ${this.#status}`)
    throwIfAborted(options?.signal)
  }

  #admit(options: AbortOptions | undefined): void {
    this.#checkOpen(options)
    this.#inflight++
  }

  #done(): void {
    if (--this.#inflight === 0 && this.#idle !== undefined) {
      const idle = this.#idle
      this.#idle = undefined
      idle()
    }
  }

  #checkRef(ref: BlockRef): void {
    if (typeof ref !== 'object' || ref === null) throw new TypeError('ref must be a BlockRef')
    checkVolumeId(ref.volumeId)
    const index = ref.index as number
    if (!Number.isSafeInteger(index) || index < 0 || index > Math.floor(Number.MAX_SAFE_INTEGER / this.blockSizeBytes) - 1) {
      throw new RangeError(`invalid block index: ${String(index)}`)
    }
  }

  #checkRange(offsetBytes: number, lengthBytes: number): void {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes + lengthBytes > this.blockSizeBytes) {
      throw new RangeError(
        `range [${String(offsetBytes)}, ${String(offsetBytes)}+${lengthBytes}) is outside the ${this.blockSizeBytes}-byte block`,
      )
    }
  }
}

function checkVolumeId(volumeId: VolumeId): void {
  const id = volumeId as number
  if (!Number.isSafeInteger(id) || id < 1 || id > MAX_VOLUME_ID) throw new RangeError(`invalid volume id: ${String(id)}`)
}

function checkBytes(bytes: Uint8Array, name: string): void {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`)
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new TypeError(`non-error rejection: ${String(err)}`)
}
