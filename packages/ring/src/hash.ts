/**
 * MurmurHash3 x86_32 (Austin Appleby, public domain), hand-written so the package stays pure
 * and runs anywhere: no `node:crypto`, no I/O. It is fast, and its finaliser spreads
 * near-identical inputs (consecutive block indexes) evenly over 32 bits. Not cryptographic:
 * placement only needs a stable, well-mixed hash, and the output is part of the placement
 * format (changing it moves every block), so it must never change.
 */
export function murmur3(bytes: Uint8Array, seed = 0): number {
  let h = seed >>> 0
  const n = bytes.length
  const tail = n & ~3
  for (let i = 0; i < tail; i += 4) {
    let k = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  const rest = n & 3
  if (rest > 0) {
    let k = 0
    if (rest === 3) k ^= bytes[tail + 2]! << 16
    if (rest >= 2) k ^= bytes[tail + 1]! << 8
    k ^= bytes[tail]!
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
  }
  h ^= n
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const utf8 = new TextEncoder()

/** The bytes a placement key is hashed as: itself, or a string's UTF-8 encoding. */
export function keyBytes(key: Uint8Array | string): Uint8Array {
  return typeof key === 'string' ? utf8.encode(key) : key
}

export { utf8 }
