import {
  BlockRef,
  silentLogger,
  throwIfAborted,
  TorusError,
  type AbortOptions,
  type BlockDevice,
  type BlockDeviceSupports,
  type BlockStore,
  type Logger,
  type VolumeInfo,
  type VolumeLock,
  type WriteOptions,
  type WriteZeroesOptions,
} from '@torus/core'
import type { VolumeLease } from './volume-lease.js'

export type VolumeStatus = 'open' | 'closing' | 'closed'

export interface VolumeOptions {
  info: VolumeInfo
  /** Must have the volume's block size. The volume does not own it: `close()` leaves it open. */
  store: BlockStore
  logger?: Logger
  /** Reads only; every mutation fails with TORUS_READ_ONLY. */
  readOnly?: boolean
  /**
   * The write lock this volume serves under (see `openVolume`). When it is lost, mutations fail
   * with TORUS_LEASE_EXPIRED; `close()` releases it.
   */
  lease?: VolumeLease
}

/** One block's share of a byte range. */
interface Span {
  readonly ref: BlockRef
  /** Offset inside the block. */
  readonly offsetBytes: number
  readonly lengthBytes: number
  /** Offset of this span from the start of the request. */
  readonly requestOffsetBytes: number
  /** The span covers every byte the block holds within the volume. */
  readonly whole: boolean
}

// One zero buffer per block size, shared by every volume, so zeroing never allocates per call.
const zeroBuffers = new Map<number, Uint8Array>()
function zeroBuffer(bytes: number): Uint8Array {
  let buf = zeroBuffers.get(bytes)
  if (buf === undefined) {
    buf = new Uint8Array(bytes)
    zeroBuffers.set(bytes, buf)
  }
  return buf
}

/**
 * A {@link BlockDevice} over a {@link BlockStore}: byte offset `o` lives in block
 * `floor(o / blockSizeBytes)`. A request that spans several blocks becomes one store call per
 * block, run in parallel, each on a subarray of the caller's buffer (no copies).
 */
export class Volume implements BlockDevice {
  readonly info: VolumeInfo
  readonly sizeBytes: number
  readonly blockSizeBytes: number
  readonly supports: BlockDeviceSupports

  readonly #store: BlockStore
  readonly #log: Logger
  readonly #lease: VolumeLease | undefined
  #status: VolumeStatus = 'open'
  #closing: Promise<void> | undefined
  readonly #inFlight = new Set<Promise<unknown>>()

  constructor(options: VolumeOptions) {
    const { info, store } = options
    if (store.blockSizeBytes !== info.blockSizeBytes) {
      throw new RangeError(`store block size ${store.blockSizeBytes} does not match volume block size ${info.blockSizeBytes}`)
    }
    if (!Number.isSafeInteger(info.sizeBytes) || info.sizeBytes < 0) throw new RangeError(`invalid volume size: ${info.sizeBytes}`)
    this.info = info
    this.sizeBytes = info.sizeBytes
    this.blockSizeBytes = info.blockSizeBytes
    this.#store = store
    this.#lease = options.lease
    this.#log = (options.logger ?? silentLogger).child({ component: 'volume', volume: info.name })
    this.supports = volumeSupports(options.readOnly ?? false)
  }

  get name(): string {
    return this.info.name
  }

  get status(): VolumeStatus {
    return this.#status
  }

  /** The lock's fencing token, or `undefined` when the volume was opened without a lock. */
  get generation(): number | undefined {
    return this.#lease?.lock.generation
  }

  /** The write lock held, or `undefined` (read-only, or constructed without one). */
  get lock(): VolumeLock | undefined {
    return this.#lease?.lock
  }

  /** Set once the write lock is lost: the error every later mutation fails with. */
  get lost(): TorusError | undefined {
    return this.#lease?.lost
  }

  read(offsetBytes: number, target: Uint8Array, options?: AbortOptions): Promise<void> {
    if (!(target instanceof Uint8Array)) return Promise.reject(new TypeError('target must be a Uint8Array'))
    return this.#run(offsetBytes, target.byteLength, options, 'read', () => this.#read(offsetBytes, target, options))
  }

  write(offsetBytes: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    if (!(data instanceof Uint8Array)) return Promise.reject(new TypeError('data must be a Uint8Array'))
    return this.#run(offsetBytes, data.byteLength, options, 'write', async () => {
      await this.#write(offsetBytes, data, options)
      if (options?.fua === true) await this.#store.flush(signalOnly(options))
    })
  }

  flush(options?: AbortOptions): Promise<void> {
    return this.#run(0, 0, options, 'flush', async () => {
      await this.#store.flush(signalOnly(options))
    })
  }

  trim(offsetBytes: number, lengthBytes: number, options?: WriteOptions): Promise<void> {
    return this.#run(offsetBytes, lengthBytes, options, 'write', async () => {
      // Trim is advisory: partial blocks keep their bytes, whole blocks give their capacity back.
      const spans = this.#spans(offsetBytes, lengthBytes).filter((s) => s.whole)
      await settleAll(spans.map((s) => this.#store.delete(s.ref, signalOnly(options))))
      if (options?.fua === true) await this.#store.flush(signalOnly(options))
    })
  }

  writeZeroes(offsetBytes: number, lengthBytes: number, options?: WriteZeroesOptions): Promise<void> {
    return this.#run(offsetBytes, lengthBytes, options, 'write', async () => {
      await this.#writeZeroes(offsetBytes, lengthBytes, options)
      if (options?.fua === true) await this.#store.flush(signalOnly(options))
    })
  }

  /**
   * Waits for in-flight requests, flushes, then releases the write lock. Safe to call twice.
   * The store stays open (it may serve other volumes).
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  async #close(): Promise<void> {
    this.#status = 'closing'
    await Promise.allSettled([...this.#inFlight])
    let flushError: unknown
    // A lost volume must not write anything more, and a read-only one has nothing to flush.
    if (this.#lease?.lost === undefined && !this.supports.readOnly) {
      try {
        await this.#store.flush()
      } catch (err) {
        flushError = err
        this.#log.error('flush on close failed', { err })
      }
    }
    try {
      await this.#lease?.release()
    } finally {
      this.#status = 'closed'
      this.#log.debug('volume closed')
    }
    if (flushError !== undefined) throw flushError
  }

  /**
   * Validates, checks state, then runs `op` while tracking it so `close()` can wait for it.
   * Every failure, bad arguments included, is a rejection rather than a synchronous throw.
   */
  #run(offsetBytes: number, lengthBytes: number, options: AbortOptions | undefined, kind: 'read' | 'flush' | 'write', op: () => Promise<void>): Promise<void> {
    try {
      this.#checkRange(offsetBytes, lengthBytes)
      if (this.#status !== 'open') throw new TorusError('TORUS_NOT_OPEN', `volume ${this.info.name} is ${this.#status}`)
      throwIfAborted(options?.signal)
      if (kind === 'write' && this.supports.readOnly) {
        throw new TorusError('TORUS_READ_ONLY', `volume ${this.info.name} is open read-only`)
      }
      // A lost lock stops every mutation and flush; reads keep working.
      if (kind !== 'read') this.#lease?.assertHeld()
    } catch (err) {
      return Promise.reject(err)
    }
    const p = op()
    this.#inFlight.add(p)
    const untrack = (): void => {
      this.#inFlight.delete(p)
    }
    p.then(untrack, untrack)
    return p
  }

  #checkRange(offsetBytes: number, lengthBytes: number): void {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) throw new RangeError(`invalid offset: ${offsetBytes}`)
    if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0) throw new RangeError(`invalid length: ${lengthBytes}`)
    if (offsetBytes + lengthBytes > this.sizeBytes || (lengthBytes > 0 && offsetBytes >= this.sizeBytes)) {
      throw new RangeError(`range [${offsetBytes}, ${offsetBytes + lengthBytes}) is outside the volume (${this.sizeBytes} bytes)`)
    }
  }

  #spans(offsetBytes: number, lengthBytes: number): Span[] {
    const B = this.blockSizeBytes
    const spans: Span[] = []
    const end = offsetBytes + lengthBytes
    let pos = offsetBytes
    while (pos < end) {
      const index = Math.floor(pos / B)
      const blockStart = index * B
      const blockEnd = Math.min(blockStart + B, this.sizeBytes)
      const spanEnd = Math.min(end, blockStart + B)
      spans.push({
        ref: new BlockRef(this.info.id, index),
        offsetBytes: pos - blockStart,
        lengthBytes: spanEnd - pos,
        requestOffsetBytes: pos - offsetBytes,
        whole: pos === blockStart && spanEnd >= blockEnd,
      })
      pos = spanEnd
    }
    return spans
  }

  async #read(offsetBytes: number, target: Uint8Array, options?: AbortOptions): Promise<void> {
    const spans = this.#spans(offsetBytes, target.byteLength)
    await settleAll(
      spans.map((s) =>
        this.#store.read(s.ref, s.offsetBytes, target.subarray(s.requestOffsetBytes, s.requestOffsetBytes + s.lengthBytes), signalOnly(options)),
      ),
    )
  }

  async #write(offsetBytes: number, data: Uint8Array, options?: AbortOptions): Promise<void> {
    const spans = this.#spans(offsetBytes, data.byteLength)
    await settleAll(
      spans.map((s) =>
        this.#store.write(s.ref, s.offsetBytes, data.subarray(s.requestOffsetBytes, s.requestOffsetBytes + s.lengthBytes), signalOnly(options)),
      ),
    )
  }

  async #writeZeroes(offsetBytes: number, lengthBytes: number, options?: WriteZeroesOptions): Promise<void> {
    const noHole = options?.noHole === true
    const abort = signalOnly(options)
    const spans = this.#spans(offsetBytes, lengthBytes)
    const partial = spans.filter((s) => !s.whole)
    // Allocation of the (at most two) partial blocks decides whether they need real writes.
    const allocated = noHole ? partial.map(() => true) : await Promise.all(partial.map((s) => this.#store.has(s.ref, abort)))
    if (options?.fast === true) {
      // Fast means deletes and skips only; refuse before touching anything.
      if ((noHole && spans.length > 0) || allocated.some(Boolean)) {
        throw new TorusError('TORUS_NOT_SUPPORTED', 'fast zero needs writes for this range')
      }
    }
    const zeros = zeroBuffer(this.blockSizeBytes)
    const ops: Promise<void>[] = []
    for (const s of spans) {
      if (s.whole && !noHole) ops.push(this.#store.delete(s.ref, abort))
      else if (s.whole || allocated[partial.indexOf(s)] === true) ops.push(this.#store.write(s.ref, s.offsetBytes, zeros.subarray(0, s.lengthBytes), abort))
    }
    await settleAll(ops)
  }
}

function signalOnly(options: AbortOptions | undefined): AbortOptions | undefined {
  return options?.signal === undefined ? undefined : { signal: options.signal }
}

/**
 * Like `Promise.all`, but waits for every promise before rejecting with the first error, so no
 * store call is still writing into a caller's buffer once the request has failed.
 */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  if (promises.length === 1) {
    await promises[0]
    return
  }
  const results = await Promise.allSettled(promises)
  for (const r of results) if (r.status === 'rejected') throw r.reason
}

/** What every Volume offers (`readOnly` aside): known before opening one, e.g. for NBD_OPT_INFO. */
export function volumeSupports(readOnly: boolean): BlockDeviceSupports {
  return Object.freeze({
    readOnly,
    flush: true,
    fua: true,
    trim: true,
    writeZeroes: true,
    fastZero: true,
    // Honest because the store's flush covers every write, whichever handle made it.
    multiConn: true,
  })
}
