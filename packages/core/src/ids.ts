/** Branded identifiers: a VolumeId cannot be passed where a BlockIndex is expected. */
declare const brand: unique symbol
type Brand<T, B extends string> = T & { readonly [brand]: B }

/** Numeric volume id, allocated by the metadata store and never reused. */
export type VolumeId = Brand<number, 'VolumeId'>
/** Zero-based index of a block within its volume. */
export type BlockIndex = Brand<number, 'BlockIndex'>
/** A peer's UUID, persisted in its data dir. */
export type PeerId = Brand<string, 'PeerId'>

export const MAX_VOLUME_ID = 0xffff_ffff

export function volumeId(n: number): VolumeId {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_VOLUME_ID) throw new RangeError(`invalid volume id: ${n}`)
  return n as VolumeId
}

export function blockIndex(n: number): BlockIndex {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid block index: ${n}`)
  return n as BlockIndex
}

/** A lowercase UUID: peer ids and cluster ids. */
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export function peerId(s: string): PeerId {
  if (!UUID_RE.test(s)) throw new RangeError(`invalid peer id: ${s}`)
  return s as PeerId
}
