// Goal: racing mutations are linearisable: one winner per contended name or lock, no lost updates.
// Method: fire N identical or independent calls at once and count the outcomes.
import { describe, expect, it } from 'vitest'
import { MiB, initialised, settle, useStore, volumeWithLease, type SuiteContext } from './context.js'

const N = 16

export function describeConcurrency({ harness, supports, ttlMs }: SuiteContext): void {
  describe('concurrency', () => {
    const h = useStore(harness)

    it(`lets exactly one of ${N} concurrent createVolume calls for one name succeed`, async () => {
      const store = await initialised(h.store)
      const { fulfilled, rejected } = await settle(
        Array.from({ length: N }, (_, i) => store.createVolume({ name: 'pad', sizeBytes: (i + 1) * MiB })),
      )
      expect(fulfilled).toHaveLength(1)
      expect(rejected).toHaveLength(N - 1)
      for (const err of rejected) expect(err).toMatchObject({ code: 'TORUS_ALREADY_EXISTS' })
      expect(await store.listVolumes()).toEqual(fulfilled)
    })

    it(`keeps all ${N} concurrent createVolume calls for distinct names, with distinct ids`, async () => {
      const store = await initialised(h.store)
      const created = await Promise.all(Array.from({ length: N }, (_, i) => store.createVolume({ name: `v${i}`, sizeBytes: MiB })))
      expect(new Set(created.map((v) => v.id)).size).toBe(N)
      expect(await store.listVolumes()).toHaveLength(N)
    })

    it.skipIf(!supports.leases)(`lets exactly one of ${N} concurrent lockVolume calls win`, async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const leases = [leaseId, ...(await Promise.all(Array.from({ length: N - 1 }, () => h.store.grantLease(ttlMs))))]
      const { fulfilled, rejected } = await settle(leases.map((lease, i) => h.store.lockVolume('vol', `node-${i}`, lease)))
      expect(fulfilled).toHaveLength(1)
      for (const err of rejected) expect(err).toMatchObject({ code: 'TORUS_LOCKED' })
      expect(await h.store.getVolumeLock('vol')).toEqual(fulfilled[0])
    })

    it.skipIf(!supports.leases)('lets exactly one of a racing lockVolume and deleteVolume succeed', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const [locked, deleted] = await Promise.allSettled([h.store.lockVolume('vol', 'node-a', leaseId), h.store.deleteVolume('vol')])
      if (locked.status === 'fulfilled') {
        expect(deleted).toMatchObject({ status: 'rejected', reason: { code: 'TORUS_LOCKED' } })
        expect(await h.store.getVolume('vol')).toBeDefined()
      } else {
        expect(locked).toMatchObject({ status: 'rejected', reason: { code: 'TORUS_NOT_FOUND' } })
        expect(deleted.status).toBe('fulfilled')
        expect(await h.store.getVolume('vol')).toBeUndefined()
      }
    })

    it('applies interleaved creates and deletes without losing any', async () => {
      const store = await initialised(h.store)
      for (let i = 0; i < N; i++) await store.createVolume({ name: `old${i}`, sizeBytes: MiB })
      await Promise.all([
        ...Array.from({ length: N }, (_, i) => store.deleteVolume(`old${i}`)),
        ...Array.from({ length: N }, (_, i) => store.createVolume({ name: `new${i}`, sizeBytes: MiB })),
      ])
      const names = (await store.listVolumes()).map((v) => v.name)
      expect(names).toEqual(Array.from({ length: N }, (_, i) => `new${i}`).sort())
    })
  })
}
