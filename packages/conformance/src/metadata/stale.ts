// Goal: stale-replica records (which peer missed writes to which block) are durable, idempotent,
// kept per volume in a fixed order, never downgraded to a lower generation, and gone with their
// volume. Method: add, re-add, clear and delete through the contract; reopen when persistent.
import { describe, expect, it } from 'vitest'
import { peerId, volumeId } from '@torus/core'
import type { MetadataStore, StaleReplica, VolumeId } from '@torus/core'
import { MiB, initialised, settle, useStore, type SuiteContext } from './context.js'

const A = peerId('00000000-0000-4000-8000-00000000000a')
const B = peerId('00000000-0000-4000-8000-00000000000b')

/** The records as listed, without the store-assigned `recordedAt`. */
function bare(records: StaleReplica[]): Omit<StaleReplica, 'recordedAt'>[] {
  return records.map(({ recordedAt: _at, ...rest }) => rest)
}

async function volume(store: MetadataStore, name = 'vol'): Promise<VolumeId> {
  if ((await store.getClusterConfig()) === undefined) await initialised(store)
  return (await store.createVolume({ name, sizeBytes: 8 * MiB })).id
}

export function describeStaleReplicas({ harness, supports }: SuiteContext): void {
  describe('stale replicas', () => {
    const h = useStore(harness)

    it('lists nothing for a volume without records, or for an unknown volume id', async () => {
      const id = await volume(h.store)
      expect(await h.store.listStaleReplicas(id)).toEqual([])
      expect(await h.store.listStaleReplicas(volumeId(4242))).toEqual([])
      await h.store.addStaleReplicas([])
      await h.store.clearStaleReplicas([])
    })

    it('lists records sorted by peer, then index with all first, each with a recordedAt', async () => {
      const id = await volume(h.store)
      await h.store.addStaleReplicas([
        { volumeId: id, peer: B, index: 10, generation: 3 },
        { volumeId: id, peer: A, index: 9, generation: 3 },
        { volumeId: id, peer: B, index: 'all', generation: 4 },
        { volumeId: id, peer: B, index: 2, generation: 3, recordedAt: '2026-01-02T03:04:05.000Z' },
        { volumeId: id, peer: A, index: 10, generation: 3 },
      ])
      const listed = await h.store.listStaleReplicas(id)
      expect(bare(listed)).toEqual([
        { volumeId: id, peer: A, index: 9, generation: 3 },
        { volumeId: id, peer: A, index: 10, generation: 3 },
        { volumeId: id, peer: B, index: 'all', generation: 4 },
        { volumeId: id, peer: B, index: 2, generation: 3 },
        { volumeId: id, peer: B, index: 10, generation: 3 },
      ])
      for (const r of listed) expect(Number.isNaN(Date.parse(r.recordedAt ?? ''))).toBe(false)
      expect(listed[3]?.recordedAt).toBe('2026-01-02T03:04:05.000Z')
    })

    it('keeps the higher generation when a record is added again, in one call or in several', async () => {
      const id = await volume(h.store)
      await h.store.addStaleReplicas([{ volumeId: id, peer: A, index: 1, generation: 5, recordedAt: '2026-01-01T00:00:00.000Z' }])
      await h.store.addStaleReplicas([{ volumeId: id, peer: A, index: 1, generation: 3 }])
      await h.store.addStaleReplicas([{ volumeId: id, peer: A, index: 1, generation: 5 }])
      expect(await h.store.listStaleReplicas(id)).toEqual([{ volumeId: id, peer: A, index: 1, generation: 5, recordedAt: '2026-01-01T00:00:00.000Z' }])
      await h.store.addStaleReplicas([
        { volumeId: id, peer: A, index: 1, generation: 8 },
        { volumeId: id, peer: A, index: 1, generation: 7 },
      ])
      expect(bare(await h.store.listStaleReplicas(id))).toEqual([{ volumeId: id, peer: A, index: 1, generation: 8 }])
    })

    it('keeps the higher generation when two adds race', async () => {
      const id = await volume(h.store)
      const gens = [4, 9, 2, 7, 9, 1]
      const { rejected } = await settle(gens.map((generation) => h.store.addStaleReplicas([{ volumeId: id, peer: A, index: 0, generation }])))
      expect(rejected).toEqual([])
      expect(bare(await h.store.listStaleReplicas(id))).toEqual([{ volumeId: id, peer: A, index: 0, generation: 9 }])
    })

    it('keeps each volume to its own records (volume 1 is not volume 10)', async () => {
      const ids: VolumeId[] = []
      for (let i = 0; i < 10; i++) ids.push(await volume(h.store, `v${i}`))
      const [one, ten] = [ids[0]!, ids[9]!]
      expect([one, ten]).toEqual([1, 10])
      await h.store.addStaleReplicas([
        { volumeId: one, peer: A, index: 0, generation: 1 },
        { volumeId: ten, peer: B, index: 'all', generation: 2 },
      ])
      expect(bare(await h.store.listStaleReplicas(one))).toEqual([{ volumeId: one, peer: A, index: 0, generation: 1 }])
      expect(bare(await h.store.listStaleReplicas(ten))).toEqual([{ volumeId: ten, peer: B, index: 'all', generation: 2 }])
    })

    it('clears the named records only, and ignores records that do not exist', async () => {
      const id = await volume(h.store)
      await h.store.addStaleReplicas([
        { volumeId: id, peer: A, index: 'all', generation: 1 },
        { volumeId: id, peer: A, index: 3, generation: 1 },
        { volumeId: id, peer: B, index: 3, generation: 1 },
      ])
      await h.store.clearStaleReplicas([
        { volumeId: id, peer: A, index: 'all' },
        { volumeId: id, peer: B, index: 4 },
        { volumeId: volumeId(4242), peer: B, index: 3 },
      ])
      expect(bare(await h.store.listStaleReplicas(id))).toEqual([
        { volumeId: id, peer: A, index: 3, generation: 1 },
        { volumeId: id, peer: B, index: 3, generation: 1 },
      ])
      // Whole records are accepted as keys, so a caller can clear what it listed.
      await h.store.clearStaleReplicas(await h.store.listStaleReplicas(id))
      expect(await h.store.listStaleReplicas(id)).toEqual([])
    })

    it('clears a record with upToGeneration only when it is stored at that generation or lower', async () => {
      const id = await volume(h.store)
      await h.store.addStaleReplicas([
        { volumeId: id, peer: A, index: 1, generation: 4 },
        { volumeId: id, peer: A, index: 2, generation: 4 },
        { volumeId: id, peer: B, index: 'all', generation: 7 },
        { volumeId: id, peer: B, index: 2, generation: 3 },
      ])
      await h.store.clearStaleReplicas([
        { volumeId: id, peer: A, index: 1, upToGeneration: 4 },
        { volumeId: id, peer: A, index: 2, upToGeneration: 3 },
        { volumeId: id, peer: B, index: 'all', upToGeneration: 6 },
        { volumeId: id, peer: B, index: 2, upToGeneration: 9 },
        { volumeId: id, peer: B, index: 5, upToGeneration: 9 },
      ])
      expect(bare(await h.store.listStaleReplicas(id))).toEqual([
        { volumeId: id, peer: A, index: 2, generation: 4 },
        { volumeId: id, peer: B, index: 'all', generation: 7 },
      ])
      // The same key twice: the stricter condition holds.
      await h.store.clearStaleReplicas([
        { volumeId: id, peer: A, index: 2, upToGeneration: 9 },
        { volumeId: id, peer: A, index: 2, upToGeneration: 1 },
      ])
      expect(bare(await h.store.listStaleReplicas(id))).toHaveLength(2)
      await expect(h.store.clearStaleReplicas([{ volumeId: id, peer: A, index: 2, upToGeneration: -1 }])).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      await expect(h.store.clearStaleReplicas([{ volumeId: id, peer: A, index: 2, upToGeneration: 1.5 }])).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
    })

    it.skipIf(!supports.leases)('with lockGeneration, clears only while the volume lock is held with that generation', async () => {
      const id = await volume(h.store, 'locked')
      const lease = await h.store.grantLease(60_000)
      const lock = await h.store.lockVolume('locked', 'repairer', lease)
      await h.store.addStaleReplicas([
        { volumeId: id, peer: A, index: 1, generation: lock.generation },
        { volumeId: id, peer: A, index: 2, generation: lock.generation },
        { volumeId: id, peer: B, index: 'all', generation: lock.generation },
      ])
      await h.store.clearStaleReplicas([{ volumeId: id, peer: A, index: 1, upToGeneration: lock.generation }], { lockGeneration: lock.generation })
      await h.store.clearStaleReplicas([{ volumeId: id, peer: B, index: 'all' }], { lockGeneration: lock.generation })
      expect(bare(await h.store.listStaleReplicas(id))).toEqual([{ volumeId: id, peer: A, index: 2, generation: lock.generation }])
      // Another generation, or no lock at all: nothing is cleared.
      await expect(h.store.clearStaleReplicas([{ volumeId: id, peer: A, index: 2, upToGeneration: lock.generation }], { lockGeneration: lock.generation + 1 })).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
      // Also when there is nothing to clear.
      await expect(h.store.clearStaleReplicas([{ volumeId: id, peer: B, index: 7 }], { lockGeneration: lock.generation + 1 })).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
      await h.store.unlockVolume(lock)
      await expect(h.store.clearStaleReplicas([{ volumeId: id, peer: A, index: 2 }], { lockGeneration: lock.generation })).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
      expect(await h.store.listStaleReplicas(id)).toHaveLength(1)
      await expect(h.store.clearStaleReplicas([{ volumeId: id, peer: A, index: 2 }, { volumeId: volumeId(4242), peer: A, index: 2 }], { lockGeneration: lock.generation })).rejects.toThrow(TypeError)
    })

    it('round-trips a batch larger than one backend transaction', async () => {
      const id = await volume(h.store)
      const records = Array.from({ length: 250 }, (_, i) => ({ volumeId: id, peer: i % 2 === 0 ? A : B, index: i, generation: 1 + (i % 3) }))
      await h.store.addStaleReplicas(records)
      const listed = await h.store.listStaleReplicas(id)
      expect(listed).toHaveLength(250)
      expect(bare(listed)).toEqual([...records].sort((a, b) => (a.peer !== b.peer ? (a.peer < b.peer ? -1 : 1) : a.index - b.index)))
      await h.store.clearStaleReplicas(records)
      expect(await h.store.listStaleReplicas(id)).toEqual([])
    })

    it('drops a volume\'s records with the volume, and refuses records for a volume that is gone', async () => {
      const id = await volume(h.store, 'gone')
      const kept = await volume(h.store, 'kept')
      await h.store.addStaleReplicas([
        { volumeId: id, peer: A, index: 'all', generation: 1 },
        { volumeId: kept, peer: A, index: 0, generation: 1 },
      ])
      await h.store.deleteVolume('gone')
      expect(await h.store.listStaleReplicas(id)).toEqual([])
      expect(await h.store.listStaleReplicas(kept)).toHaveLength(1)
      await expect(h.store.addStaleReplicas([{ volumeId: id, peer: A, index: 1, generation: 2 }])).rejects.toMatchObject({ code: 'TORUS_NOT_FOUND' })
      // A volume created again under the same name has a new id and no records.
      const again = await volume(h.store, 'gone')
      expect(again).not.toBe(id)
      expect(await h.store.listStaleReplicas(again)).toEqual([])
    })

    it('writes nothing when one record names an unknown volume', async () => {
      const id = await volume(h.store)
      await expect(
        h.store.addStaleReplicas([
          { volumeId: id, peer: A, index: 0, generation: 1 },
          { volumeId: volumeId(4242), peer: A, index: 0, generation: 1 },
        ]),
      ).rejects.toMatchObject({ code: 'TORUS_NOT_FOUND' })
      expect(await h.store.listStaleReplicas(id)).toEqual([])
    })

    it('rejects malformed records with TORUS_INVALID_ARGUMENT and writes none of the batch', async () => {
      const id = await volume(h.store)
      const good = { volumeId: id, peer: A, index: 0, generation: 1 }
      const bad: unknown[] = [
        { ...good, peer: 'node-a' },
        { ...good, peer: A.toUpperCase() },
        { ...good, index: -1 },
        { ...good, index: 1.5 },
        { ...good, index: 'some' },
        { ...good, generation: -1 },
        { ...good, generation: '3' },
        { ...good, volumeId: 0 },
        { ...good, recordedAt: 'yesterday' },
        null,
      ]
      for (const record of bad) {
        await expect(h.store.addStaleReplicas([good, record as StaleReplica])).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      }
      await expect(h.store.clearStaleReplicas([{ volumeId: id, peer: A, index: -1 }])).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      await expect(h.store.listStaleReplicas(0 as VolumeId)).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      await expect(h.store.addStaleReplicas(good as unknown as StaleReplica[])).rejects.toBeInstanceOf(TypeError)
      expect(await h.store.listStaleReplicas(id)).toEqual([])
    })

    it.skipIf(harness.reopen === undefined || !supports.persistent)('keeps records across a reopen', async () => {
      const id = await volume(h.store)
      await h.store.addStaleReplicas([
        { volumeId: id, peer: B, index: 7, generation: 2 },
        { volumeId: id, peer: A, index: 'all', generation: 3 },
      ])
      const before = await h.store.listStaleReplicas(id)
      const reopened = await h.reopen()
      expect(await reopened.listStaleReplicas(id)).toEqual(before)
      await reopened.clearStaleReplicas([{ volumeId: id, peer: B, index: 7 }])
      const again = await h.reopen()
      expect(bare(await again.listStaleReplicas(id))).toEqual([{ volumeId: id, peer: A, index: 'all', generation: 3 }])
    })
  })
}
