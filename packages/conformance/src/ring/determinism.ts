import { describe, expect, it } from 'vitest'
import { descriptor, key, members, peerIds, shuffled, type RingHarness } from './context.js'

export function describeDeterminism(harness: RingHarness): void {
  const count = harness.type === 'single' ? 1 : 10
  const m = members(peerIds(count, 11)).map((x, i) => ({ ...x, weight: 1 + (i % 3) }))

  describe('determinism', () => {
    it('the same descriptor gives the same placement, twice and from two builds', () => {
      const a = harness.create(descriptor(harness.type, m, 3))
      const b = harness.create(descriptor(harness.type, m, 3))
      for (let i = 0; i < 2000; i++) {
        const first = a.peersFor(key(3, i))
        expect(a.peersFor(key(3, i))).toEqual(first)
        expect(b.peersFor(key(3, i))).toEqual(first)
      }
    })

    it('member order does not matter', () => {
      const a = harness.create(descriptor(harness.type, m, 3))
      for (const seed of [1, 2, 3]) {
        const b = harness.create(descriptor(harness.type, shuffled(m, seed), 3))
        for (let i = 0; i < 2000; i++) expect(b.peersFor(key(3, i))).toEqual(a.peersFor(key(3, i)))
      }
    })

    it('string keys hash as their UTF-8 bytes', () => {
      const ring = harness.create(descriptor(harness.type, m, 2))
      for (const s of ['', 'a', 'volume/pad/0', 'ünïcödé']) {
        expect(ring.peersFor(s)).toEqual(ring.peersFor(new TextEncoder().encode(s)))
      }
    })

    it('exposes a descriptor equal to its input, up to member order', () => {
      const ring = harness.create(descriptor(harness.type, shuffled(m, 9), 3, 42))
      expect(ring.descriptor).toMatchObject({ version: 42, type: harness.type, replication: 3 })
      const byPeer = (x: { peer: string }, y: { peer: string }): number => (x.peer < y.peer ? -1 : 1)
      expect([...ring.descriptor.members].sort(byPeer)).toEqual([...m].sort(byPeer))
    })
  })
}
