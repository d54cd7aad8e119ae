import { describe, expect, it } from 'vitest'
import { descriptor, key, members, peerIds, type RingHarness } from './context.js'

export function describeReplication(harness: RingHarness): void {
  const multi = harness.type !== 'single'

  describe('replication', () => {
    it.runIf(multi)('gives `replication` distinct members, primary first', () => {
      const peers = peerIds(10, 21)
      for (const replication of [1, 2, 3, 5]) {
        const ring = harness.create(descriptor(harness.type, members(peers), replication))
        const wrong: number[] = []
        for (let i = 0; i < 1000; i++) {
          const got = ring.peersFor(key(5, i))
          const ok =
            got.length === replication && new Set(got).size === replication && got.every((p) => peers.includes(p)) && ring.peersFor(key(5, i), 1)[0] === got[0]
          if (!ok) wrong.push(i)
        }
        expect(wrong, `blocks with a wrong peer list at replication ${replication}`).toEqual([])
      }
    })

    it.runIf(multi)('count overrides replication; a longer list extends the shorter one', () => {
      const ring = harness.create(descriptor(harness.type, members(peerIds(10, 22)), 2))
      for (let i = 0; i < 500; i++) {
        const all = ring.peersFor(key(5, i), 10)
        expect(new Set(all).size).toBe(10)
        expect(ring.peersFor(key(5, i), 4)).toEqual(all.slice(0, 4))
        expect(ring.peersFor(key(5, i))).toEqual(all.slice(0, 2))
        expect(ring.peersFor(key(5, i), 0)).toEqual([])
      }
    })

    it.runIf(multi)('fewer members than replication gives every member', () => {
      const peers = peerIds(3, 23)
      const ring = harness.create(descriptor(harness.type, members(peers), 5))
      for (let i = 0; i < 500; i++) {
        const got = ring.peersFor(key(5, i))
        expect([...got].sort()).toEqual([...peers].sort())
        expect(ring.peersFor(key(5, i), 99)).toEqual(got)
      }
    })

    it('one member holds everything', () => {
      const [peer] = peerIds(1, 24)
      const ring = harness.create(descriptor(harness.type, members([peer!]), 3))
      for (let i = 0; i < 100; i++) expect(ring.peersFor(key(5, i))).toEqual([peer])
    })

    it('rejects a bad count with TORUS_INVALID_ARGUMENT', () => {
      const ring = harness.create(descriptor(harness.type, members(peerIds(1, 25)), 1))
      for (const count of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => ring.peersFor(key(5, 0), count)).toThrow(expect.objectContaining({ code: 'TORUS_INVALID_ARGUMENT' }))
      }
    })
  })
}
