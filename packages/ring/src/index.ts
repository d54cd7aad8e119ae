/**
 * @packageDocumentation
 * Pure block placement: {@link createRing} turns a `RingDescriptor` (plain data kept in
 * metadata) into a `Ring` whose `peersFor(key)` lists the peers holding a key. No I/O and no
 * randomness; the hash is MurmurHash3 x86_32 with fixed seeds, so every peer computes the same
 * placement from the same descriptor.
 */
export type { Ring, RingDescriptor, RingMember, RingType } from '@torus/core'
export { blockKey, createRing, hashKey, KetamaRing, ModRing, SingleRing, DEFAULT_KETAMA_POINTS_PER_SHARE, type CreateRingOptions } from './rings.js'
export { murmur3 } from './hash.js'
