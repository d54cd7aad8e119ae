import { BlockRef, TorusError, type BlockIndex, type PeerId, type Ring, type RingDescriptor, type VolumeId } from '@torus/core'
import { keyBytes, murmur3, utf8 } from './hash.js'
import { normalizeDescriptor, resolveCount, type NormalizedRing } from './validate.js'

/** Seed for key hashes. Part of the placement format: changing it moves every block. */
const KEY_SEED = 0x746f7275 // "toru"
/** Seed for ketama point hashes, distinct from the key seed. */
const POINT_SEED = 0x73726e67 // "srng"

/**
 * Default ketama points per average weight share. libketama uses 160; with 10 equal peers that
 * leaves each peer's share with a standard deviation near 8% (1/sqrt(160)), so the largest of
 * ten is often 15-20% off. 2048 points bring it to about 2.2%: over ten random sets of ten peers
 * and 100k blocks the worst peer was 6.0% off (1024 points: 9.7%), for 16 KiB of points per
 * peer (16 MiB for 1000 peers) and a lookup that is still one binary search.
 */
export const DEFAULT_KETAMA_POINTS_PER_SHARE = 2048

export interface CreateRingOptions {
  /** Ketama only: virtual nodes per average weight share. Integer >= 1. */
  ketamaPointsPerShare?: number
}

/** The placement key of block `index` of volume `volume`: its 16-byte `BlockRef` encoding. */
export function blockKey(volume: VolumeId | number, index: BlockIndex | number): Uint8Array {
  return new BlockRef(volume, index).toBytes()
}

/** The 32-bit hash a key is placed by (MurmurHash3 x86_32, fixed seed). */
export function hashKey(key: Uint8Array | string): number {
  return murmur3(keyBytes(key), KEY_SEED)
}

function checkKey(key: unknown): Uint8Array | string {
  if (typeof key !== 'string' && !(key instanceof Uint8Array)) {
    throw new TorusError('TORUS_INVALID_ARGUMENT', 'ring key must be a Uint8Array or a string')
  }
  return key
}

/** `single`: the one member holds everything (no member: no peers). */
export class SingleRing implements Ring {
  readonly descriptor: RingDescriptor
  readonly #peers: readonly PeerId[]

  constructor(ring: NormalizedRing) {
    this.descriptor = ring.descriptor
    this.#peers = ring.peers
  }

  peersFor(key: Uint8Array | string, count?: number): PeerId[] {
    checkKey(key)
    const n = resolveCount(count, this.descriptor.replication)
    return this.#peers.slice(0, n)
  }
}

/**
 * `mod`: the primary is member `hash(key) mod N` (members sorted by peer id), replicas are the
 * next members in that order. Even, but adding a member moves most keys; weights are ignored.
 */
export class ModRing implements Ring {
  readonly descriptor: RingDescriptor
  readonly #peers: readonly PeerId[]

  constructor(ring: NormalizedRing) {
    this.descriptor = ring.descriptor
    this.#peers = ring.peers
  }

  peersFor(key: Uint8Array | string, count?: number): PeerId[] {
    const n = Math.min(resolveCount(count, this.descriptor.replication), this.#peers.length)
    const size = this.#peers.length
    const start = hashKey(checkKey(key)) % size
    const out: PeerId[] = []
    for (let i = 0; i < n; i++) out.push(this.#peers[(start + i) % size]!)
    return out
  }
}

/**
 * `ketama`: consistent hashing. Each member owns points on a 32-bit circle in proportion to its
 * weight (`round(pointsPerShare × weight / mean weight)`, at least 1), point `j` of peer `p` at
 * `murmur3(utf8(p) ‖ u32be(j))`. A key goes to the first point at or after its hash, then
 * clockwise to the next distinct peers. Adding a member takes keys only for itself, about
 * weight/total of them.
 */
export class KetamaRing implements Ring {
  readonly descriptor: RingDescriptor
  readonly #peers: readonly PeerId[]
  /** Sorted point hashes. */
  readonly #points: Uint32Array
  /** `#owners[i]` is the index in `#peers` of the peer owning `#points[i]`. */
  readonly #owners: Uint32Array

  constructor(ring: NormalizedRing, pointsPerShare = DEFAULT_KETAMA_POINTS_PER_SHARE) {
    if (!Number.isSafeInteger(pointsPerShare) || pointsPerShare < 1) {
      throw new TorusError('TORUS_INVALID_ARGUMENT', `ketamaPointsPerShare must be an integer >= 1, got ${String(pointsPerShare)}`)
    }
    this.descriptor = ring.descriptor
    this.#peers = ring.peers
    const total = ring.weights.reduce((a, b) => a + b, 0)
    const counts = ring.weights.map((w) => Math.max(1, Math.round((pointsPerShare * w * ring.weights.length) / total)))
    const size = counts.reduce((a, b) => a + b, 0)
    // Pack (hash, owner) into one float64 so one typed-array sort orders points, and equal hashes
    // (rare) fall back to the lower owner index: deterministic whatever the input order.
    const packed = new Float64Array(size)
    let at = 0
    for (const [owner, peer] of ring.peers.entries()) {
      const id = utf8.encode(peer)
      const buf = new Uint8Array(id.length + 4)
      buf.set(id)
      const view = new DataView(buf.buffer)
      for (let j = 0; j < counts[owner]!; j++) {
        view.setUint32(id.length, j)
        packed[at++] = murmur3(buf, POINT_SEED) * 2 ** 20 + owner
      }
    }
    packed.sort()
    this.#points = new Uint32Array(size)
    this.#owners = new Uint32Array(size)
    for (let i = 0; i < size; i++) {
      const v = packed[i]!
      const owner = v % 2 ** 20
      this.#points[i] = (v - owner) / 2 ** 20
      this.#owners[i] = owner
    }
  }

  /** Number of points on the circle (for tools and tests). */
  get pointCount(): number {
    return this.#points.length
  }

  peersFor(key: Uint8Array | string, count?: number): PeerId[] {
    const n = Math.min(resolveCount(count, this.descriptor.replication), this.#peers.length)
    if (n === 0) return []
    const h = hashKey(checkKey(key))
    const points = this.#points
    // First point >= h, wrapping to 0.
    let lo = 0
    let hi = points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid]! < h) lo = mid + 1
      else hi = mid
    }
    const out: PeerId[] = []
    const taken = new Uint8Array(this.#peers.length)
    for (let i = 0; i < points.length && out.length < n; i++) {
      const owner = this.#owners[(lo + i) % points.length]!
      if (taken[owner] === 0) {
        taken[owner] = 1
        out.push(this.#peers[owner]!)
      }
    }
    return out
  }
}

/**
 * Validates `descriptor` and builds its ring. Throws TORUS_INVALID_ARGUMENT for a bad descriptor:
 * unknown type, replication < 1, a negative or fractional version, a member that is not a peer
 * UUID, weight <= 0, duplicate peers, no members for `mod`/`ketama`, or more than one for `single`.
 */
export function createRing(descriptor: RingDescriptor, options: CreateRingOptions = {}): Ring {
  const ring = normalizeDescriptor(descriptor)
  switch (ring.descriptor.type) {
    case 'single':
      return new SingleRing(ring)
    case 'mod':
      return new ModRing(ring)
    case 'ketama':
      return new KetamaRing(ring, options.ketamaPointsPerShare)
  }
}
