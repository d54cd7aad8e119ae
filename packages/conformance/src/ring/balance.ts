import { describe, expect, it } from 'vitest'
import { BLOCKS, descriptor, members, peerIds, primaries, shares, type RingHarness } from './context.js'

/** Allowed deviation of each peer's primary share from its fair share, per ring type. */
export const BALANCE_TOLERANCE = { mod: 0.03, ketama: 0.1 } as const
/** Allowed deviation of a double-weight ketama peer's share ratio from 2. */
export const WEIGHT_TOLERANCE = 0.15

export function describeBalance(harness: RingHarness): void {
  const type = harness.type
  describe('balance', () => {
    it.runIf(type === 'mod' || type === 'ketama')(`10 equal peers each get 1/10 of ${BLOCKS} primaries within a tolerance`, () => {
      const tolerance = type === 'mod' ? BALANCE_TOLERANCE.mod : BALANCE_TOLERANCE.ketama
      const peers = peerIds(10, 31)
      const counts = shares(primaries(harness.create(descriptor(type, members(peers), 2))))
      const fair = BLOCKS / peers.length
      const deviations = peers.map((p) => (counts.get(p) ?? 0) / fair - 1)
      const worst = Math.max(...deviations.map(Math.abs))
      console.info(`[ring ${harness.name}] balance, 10 equal peers, ${BLOCKS} blocks: worst primary share ${(worst * 100).toFixed(2)}% off 1/N (tolerance ±${tolerance * 100}%)`)
      for (const d of deviations) expect(Math.abs(d)).toBeLessThanOrEqual(tolerance)
    })

    it.runIf(type === 'ketama')('a peer with twice the weight gets about twice the share', () => {
      const peers = peerIds(10, 32)
      const heavy = peers[0]!
      const m = peers.map((peer) => ({ peer, weight: peer === heavy ? 2 * 5e9 : 5e9 }))
      const counts = shares(primaries(harness.create(descriptor(type, m, 2))))
      const others = peers.slice(1).map((p) => counts.get(p) ?? 0)
      const ratio = (counts.get(heavy) ?? 0) / (others.reduce((a, b) => a + b, 0) / others.length)
      console.info(`[ring ${harness.name}] weighted: a 2x-weight peer among 10 got ${ratio.toFixed(3)}x the mean share (tolerance 2 ±${WEIGHT_TOLERANCE * 100}%)`)
      expect(Math.abs(ratio / 2 - 1)).toBeLessThanOrEqual(WEIGHT_TOLERANCE)
      // Every peer, heavy or not, stays near its weighted fair share too.
      const total = 11
      for (const p of peers) {
        const fair = (BLOCKS * (p === heavy ? 2 : 1)) / total
        expect(Math.abs((counts.get(p) ?? 0) / fair - 1)).toBeLessThanOrEqual(WEIGHT_TOLERANCE)
      }
    })
  })
}
