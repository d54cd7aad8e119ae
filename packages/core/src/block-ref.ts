import { blockIndex, volumeId, type BlockIndex, type VolumeId } from './ids.js'

/**
 * The address of one block: which volume, which index.
 *
 * Wire layout (16 bytes, big endian):
 * ```
 * 0        8                16
 * +--------+----------------+
 * | volume | index          |
 * | u64    | u64            |
 * +--------+----------------+
 * ```
 */
export class BlockRef {
  readonly volumeId: VolumeId
  readonly index: BlockIndex

  constructor(volume: VolumeId | number, index: BlockIndex | number) {
    this.volumeId = volumeId(volume)
    this.index = blockIndex(index)
  }

  static readonly BYTES = 16

  toBytes(): Uint8Array {
    const out = new Uint8Array(BlockRef.BYTES)
    const view = new DataView(out.buffer)
    view.setBigUint64(0, BigInt(this.volumeId))
    view.setBigUint64(8, BigInt(this.index))
    return out
  }

  static fromBytes(bytes: Uint8Array): BlockRef {
    if (bytes.byteLength !== BlockRef.BYTES) throw new RangeError(`BlockRef needs ${BlockRef.BYTES} bytes, got ${bytes.byteLength}`)
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const v = view.getBigUint64(0)
    const i = view.getBigUint64(8)
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || i > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('BlockRef out of range')
    return new BlockRef(Number(v), Number(i))
  }

  /** A compact string key, `"<volume>:<index>"`, for maps. */
  toString(): string {
    return `${this.volumeId}:${this.index}`
  }

  equals(other: BlockRef): boolean {
    return this.volumeId === other.volumeId && this.index === other.index
  }
}
