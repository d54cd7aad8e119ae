import { describe, expect, it } from 'vitest'
import { BLOCKS, descriptor, members, peerIds, primaries, type RingHarness } from './context.js'

export function describeMovement(harness: RingHarness): void {
  const type = harness.type
  describe('movement', () => {
    it.runIf(type === 'mod' || type === 'ketama')('adding one peer to 10', () => {
      const peers = peerIds(11, 41)
      const before = primaries(harness.create(descriptor(type, members(peers.slice(0, 10)), 2, 1)))
      const after = primaries(harness.create(descriptor(type, members(peers), 2, 2)))
      const added = peers[10]!
      let moved = 0
      let movedElsewhere = 0
      for (let i = 0; i < BLOCKS; i++) {
        if (before[i] !== after[i]) {
          moved++
          if (after[i] !== added) movedElsewhere++
        }
      }
      const fraction = moved / BLOCKS
      const ideal = 1 / 11
      console.info(`[ring ${harness.name}] movement, 10 -> 11 peers: ${(fraction * 100).toFixed(2)}% of primaries moved (ideal 1/(N+1) = ${(ideal * 100).toFixed(2)}%), ${movedElsewhere} moved between old peers`)
      if (type === 'ketama') {
        // Consistent hashing: only the newcomer takes blocks, about its share of them.
        expect(fraction).toBeGreaterThanOrEqual(0.5 * ideal)
        expect(fraction).toBeLessThanOrEqual(1.5 * ideal)
        expect(movedElsewhere).toBe(0)
      } else {
        // hash mod N reshuffles almost everything: why ketama is the default.
        expect(fraction).toBeGreaterThan(0.5)
      }
    })

    it.runIf(type === 'ketama')('removing one of 11 peers moves only its blocks', () => {
      const peers = peerIds(11, 42)
      const gone = peers[4]!
      const before = primaries(harness.create(descriptor(type, members(peers), 2, 1)), 20_000)
      const after = primaries(harness.create(descriptor(type, members(peers.filter((p) => p !== gone)), 2, 2)), 20_000)
      for (let i = 0; i < before.length; i++) if (before[i] !== gone) expect(after[i]).toBe(before[i])
    })
  })
}
