/**
 * The Ring conformance suite: property checks over `createRing(descriptor)`, one harness per
 * ring type. Determinism, `replication` distinct peers, balance over 100k blocks and movement
 * when a peer joins; properties that only hold for some types (weights, 1/N movement) are gated
 * on `harness.type`, the descriptor's own field.
 */
import { describe } from 'vitest'
import { describeArgs } from './args.js'
import { describeBalance } from './balance.js'
import type { RingHarness } from './context.js'
import { describeDeterminism } from './determinism.js'
import { describeMovement } from './movement.js'
import { describeReplication } from './replication.js'

export type { RingHarness } from './context.js'
export { BALANCE_TOLERANCE, WEIGHT_TOLERANCE } from './balance.js'

export function describeRing(harness: RingHarness): void {
  describe(`Ring conformance: ${harness.name}`, () => {
    describeDeterminism(harness)
    describeReplication(harness)
    describeBalance(harness)
    describeMovement(harness)
    describeArgs(harness)
  })
}
