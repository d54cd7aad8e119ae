// The derived values list-peers prints (MEMBER state, Balanced, Usage, relative age) are pure
// functions of the ring and the peer records; these tests pin their definitions case by case.
import { describe, expect, it } from 'vitest'
import type { PeerStatus, RingDescriptor } from '@torus/core'
import { isBalanced, memberState, missingMembers, relativeAge, usagePercent } from '../src/cluster-view.js'
import { GiB, PEER_A, PEER_B, PEER_C } from './helpers/memory-cluster.js'

function peer(id: string, fields: Partial<PeerStatus> = {}): PeerStatus {
  return {
    id,
    address: 'ws://h:40000',
    capacityBytes: 5 * GiB,
    usedBytes: 0,
    rebalanceBytesPerSec: 0,
    repairBytesPerSec: 0,
    ringVersion: 3,
    version: '0.1.0',
    updatedAt: '2024-01-01T00:00:00.000Z',
    alive: true,
    ...fields,
  }
}

const ring: RingDescriptor = { version: 3, type: 'ketama', replication: 2, members: [{ peer: PEER_A, weight: 1 }, { peer: PEER_B, weight: 1 }] }

describe('memberState', () => {
  it('is OK for an alive member, Avail for an alive non-member, DOWN once the lease expired', () => {
    expect(memberState(peer(PEER_A), ring)).toBe('OK')
    expect(memberState(peer(PEER_C), ring)).toBe('Avail')
    expect(memberState(peer(PEER_A, { alive: false }), ring)).toBe('DOWN')
    expect(memberState(peer(PEER_C, { alive: false }), ring)).toBe('DOWN')
  })
})

describe('isBalanced', () => {
  it('is true when every member is alive, on the current ring version and idle', () => {
    expect(isBalanced(ring, [peer(PEER_A), peer(PEER_B), peer(PEER_C, { ringVersion: 1, rebalanceBytesPerSec: 9 })])).toBe(true)
  })
  it('is false for an empty ring', () => {
    expect(isBalanced({ ...ring, members: [] }, [peer(PEER_A)])).toBe(false)
  })
  it('is false when a member is down, behind, moving data or never reported', () => {
    expect(isBalanced(ring, [peer(PEER_A), peer(PEER_B, { alive: false })])).toBe(false)
    expect(isBalanced(ring, [peer(PEER_A), peer(PEER_B, { ringVersion: 2 })])).toBe(false)
    expect(isBalanced(ring, [peer(PEER_A), peer(PEER_B, { rebalanceBytesPerSec: 1 })])).toBe(false)
    expect(isBalanced(ring, [peer(PEER_A), peer(PEER_B, { repairBytesPerSec: 1 })])).toBe(false)
    expect(isBalanced(ring, [peer(PEER_A)])).toBe(false)
  })
})

describe('usagePercent', () => {
  it('sums used over capacity of alive peers only, to two decimals', () => {
    expect(usagePercent([peer(PEER_A, { usedBytes: GiB }), peer(PEER_B, { usedBytes: 0 }), peer(PEER_C, { alive: false, usedBytes: 5 * GiB })])).toBe(10)
    expect(usagePercent([peer(PEER_A, { capacityBytes: 3, usedBytes: 1 })])).toBe(33.33)
  })
  it('is 0 without capacity', () => {
    expect(usagePercent([])).toBe(0)
    expect(usagePercent([peer(PEER_A, { alive: false })])).toBe(0)
  })
})

describe('missingMembers', () => {
  it('lists ring members without a peer record', () => {
    expect(missingMembers(ring, [peer(PEER_A)])).toEqual([PEER_B])
  })
})

describe('relativeAge', () => {
  const now = Date.parse('2024-01-01T12:00:00.000Z')
  const ago = (ms: number): string => relativeAge(new Date(now - ms).toISOString(), now)
  it('reads like the original (go-humanize)', () => {
    expect(ago(400)).toBe('now')
    expect(ago(1000)).toBe('1 second ago')
    expect(ago(2500)).toBe('2 seconds ago')
    expect(ago(59_999)).toBe('59 seconds ago')
    expect(ago(60_000)).toBe('1 minute ago')
    expect(ago(3 * 3_600_000)).toBe('3 hours ago')
    expect(ago(2 * 86_400_000)).toBe('2 days ago')
  })
  it('says "from now" for a heartbeat stamped ahead of our clock', () => {
    expect(ago(-3000)).toBe('3 seconds from now')
  })
  it('says unknown for an unparsable time', () => {
    expect(relativeAge('yesterday', now)).toBe('unknown')
  })
})
