import type { PeerId } from '../ids.js'
import type { RingType } from './metadata-store.js'

/** One ring member: a peer and its placement weight. */
export interface RingMember {
  /** The peer's UUID (see `peerId()`). */
  readonly peer: string
  /**
   * Placement weight, > 0: capacity in bytes or any relative weight. Only the ratios matter;
   * `ketama` places blocks in proportion to it, `single` and `mod` ignore it.
   */
  readonly weight: number
}

/**
 * A ring as plain data, stored in metadata (`@torus/ring` turns it into placement). Changes are
 * compare-and-swap on `version`, which goes up by one each time. Placement depends only on the
 * descriptor's contents, not on the order of `members`.
 */
export interface RingDescriptor {
  /** Non-negative integer; +1 on every change. */
  readonly version: number
  /** `single`: one peer holds everything; `mod`: hash mod N; `ketama`: weighted consistent hashing. */
  readonly type: RingType
  /** How many distinct peers hold each block by default, >= 1. */
  readonly replication: number
  /** Distinct peers. `mod` and `ketama` need at least one; `single` takes at most one. */
  readonly members: readonly RingMember[]
}

/** Pure placement: which peers hold a key. No I/O, no randomness; safe to share. */
export interface Ring {
  /** The validated descriptor this ring was built from. */
  readonly descriptor: RingDescriptor
  /**
   * The peers for `key`, distinct and ordered by preference (the first is the primary).
   * Length is `min(count ?? descriptor.replication, members.length)`. A string key is hashed
   * as its UTF-8 bytes. `count` must be a non-negative integer, else TORUS_INVALID_ARGUMENT.
   */
  peersFor(key: Uint8Array | string, count?: number): PeerId[]
}
