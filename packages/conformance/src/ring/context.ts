import { BlockRef, SeededRandom, type Ring, type RingDescriptor, type RingMember, type RingType } from '@torus/core'

/**
 * How the ring suite builds rings. `type` is the descriptor type the suite asks for; `create`
 * validates and builds (normally `createRing` from `@torus/ring`), throwing
 * TORUS_INVALID_ARGUMENT for a bad descriptor.
 */
export interface RingHarness {
  /** Shown in test titles. */
  name: string
  type: RingType
  create(descriptor: RingDescriptor): Ring
}

/** Blocks the balance and movement properties are measured over. */
export const BLOCKS = 100_000

/** `n` distinct peer UUIDs from `seed`, so failures replay. */
export function peerIds(n: number, seed = 1): string[] {
  const random = new SeededRandom(seed)
  const hex = (len: number): string => Array.from({ length: len }, () => random.int(16).toString(16)).join('')
  const out = new Set<string>()
  while (out.size < n) out.add(`${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`)
  return [...out]
}

export function members(peers: readonly string[], weight = 1): RingMember[] {
  return peers.map((peer) => ({ peer, weight }))
}

export function descriptor(type: RingType, m: readonly RingMember[], replication = 2, version = 1): RingDescriptor {
  return { version, type, replication, members: m }
}

/** Deterministic shuffle (Fisher-Yates over a SeededRandom). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = new SeededRandom(seed)
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** The placement key of block `index` of volume `volume` (its BlockRef bytes). */
export function key(volume: number, index: number): Uint8Array {
  return new BlockRef(volume, index).toBytes()
}

/** Primary peer of each of the first `BLOCKS` blocks of volume 7. */
export function primaries(ring: Ring, blocks = BLOCKS): string[] {
  const out: string[] = new Array<string>(blocks)
  for (let i = 0; i < blocks; i++) out[i] = ring.peersFor(key(7, i), 1)[0]!
  return out
}

/** How many primaries each peer got. */
export function shares(placement: readonly string[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const p of placement) out.set(p, (out.get(p) ?? 0) + 1)
  return out
}
