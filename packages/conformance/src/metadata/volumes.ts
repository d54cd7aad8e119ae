// Goal: volumes are created, read, listed and deleted as the contract says, with cluster defaults
// and ids that are never reused. Method: drive one store through each call, valid and invalid.
import { describe, expect, it } from 'vitest'
import { CLUSTER, MiB, initialised, useStore, type SuiteContext } from './context.js'

export function describeVolumes({ harness, supports, ttlMs }: SuiteContext): void {
  describe('volumes', () => {
    const h = useStore(harness)

    it('creates a volume with the cluster block size and replication by default', async () => {
      const store = await initialised(h.store, { ...CLUSTER, blockSizeBytes: 64 * 1024, replication: 3 })
      const info = await store.createVolume({ name: 'pad', sizeBytes: 16 * MiB })
      expect(info).toMatchObject({ name: 'pad', type: 'block', sizeBytes: 16 * MiB, blockSizeBytes: 64 * 1024, replication: 3 })
      expect(Number.isSafeInteger(info.id) && info.id >= 1).toBe(true)
      expect(Number.isNaN(Date.parse(info.createdAt))).toBe(false)
    })

    it('uses an explicit block size and replication over the defaults', async () => {
      const store = await initialised(h.store)
      const info = await store.createVolume({ name: 'pad', sizeBytes: 16 * MiB, blockSizeBytes: 4096, replication: 1 })
      expect(info).toMatchObject({ blockSizeBytes: 4096, replication: 1 })
    })

    it('returns the created volume from getVolume and undefined for an unknown name', async () => {
      const store = await initialised(h.store)
      const info = await store.createVolume({ name: 'pad', sizeBytes: 16 * MiB })
      expect(await store.getVolume('pad')).toEqual(info)
      expect(await store.getVolume('nope')).toBeUndefined()
    })

    it('lists volumes sorted by name in byte order', async () => {
      const store = await initialised(h.store)
      for (const name of ['b', 'a', 'c10', 'Zed', 'c2']) await store.createVolume({ name, sizeBytes: MiB })
      expect((await store.listVolumes()).map((v) => v.name)).toEqual(['Zed', 'a', 'b', 'c10', 'c2'])
    })

    it('reports nextVolumeId: 1 on a fresh store, above every id handed out, never lowered by a delete', async () => {
      expect(await h.store.nextVolumeId()).toBe(1)
      await initialised(h.store)
      const a = await h.store.createVolume({ name: 'a', sizeBytes: 8 * MiB })
      const b = await h.store.createVolume({ name: 'b', sizeBytes: 8 * MiB })
      const next = await h.store.nextVolumeId()
      expect(next).toBeGreaterThan(Math.max(a.id, b.id))
      await h.store.deleteVolume('b')
      expect(await h.store.nextVolumeId()).toBe(next)
    })

    it('lists nothing on a fresh cluster', async () => {
      const store = await initialised(h.store)
      expect(await store.listVolumes()).toEqual([])
    })

    it('gives each volume a distinct id', async () => {
      const store = await initialised(h.store)
      const ids = new Set<number>()
      for (let i = 0; i < 5; i++) ids.add((await store.createVolume({ name: `v${i}`, sizeBytes: MiB })).id)
      expect(ids.size).toBe(5)
    })

    it('rejects a duplicate name with TORUS_ALREADY_EXISTS and keeps the original', async () => {
      const store = await initialised(h.store)
      const first = await store.createVolume({ name: 'pad', sizeBytes: 16 * MiB })
      await expect(store.createVolume({ name: 'pad', sizeBytes: 32 * MiB })).rejects.toMatchObject({ code: 'TORUS_ALREADY_EXISTS' })
      expect(await store.getVolume('pad')).toEqual(first)
    })

    it('deletes a volume and returns what it deleted', async () => {
      const store = await initialised(h.store)
      const info = await store.createVolume({ name: 'pad', sizeBytes: 16 * MiB })
      expect(await store.deleteVolume('pad')).toEqual(info)
      expect(await store.getVolume('pad')).toBeUndefined()
      expect(await store.listVolumes()).toEqual([])
    })

    it('never reuses an id after delete and re-create', async () => {
      const store = await initialised(h.store)
      const seen = new Set<number>()
      for (let round = 0; round < 3; round++) {
        const info = await store.createVolume({ name: 'pad', sizeBytes: MiB })
        expect(seen.has(info.id)).toBe(false)
        seen.add(info.id)
        await store.deleteVolume('pad')
      }
      const other = await store.createVolume({ name: 'other', sizeBytes: MiB })
      expect(seen.has(other.id)).toBe(false)
    })

    it('rejects deleting a missing volume with TORUS_NOT_FOUND', async () => {
      const store = await initialised(h.store)
      await expect(store.deleteVolume('ghost')).rejects.toMatchObject({ code: 'TORUS_NOT_FOUND' })
    })

    it.skipIf(!supports.leases)('rejects deleting a locked volume with TORUS_LOCKED, and deletes it once unlocked', async () => {
      const store = await initialised(h.store)
      await store.createVolume({ name: 'pad', sizeBytes: MiB })
      const lock = await store.lockVolume('pad', 'node-a', await store.grantLease(ttlMs))
      await expect(store.deleteVolume('pad')).rejects.toMatchObject({ code: 'TORUS_LOCKED' })
      expect(await store.getVolume('pad')).toBeDefined()
      await store.unlockVolume(lock)
      await store.deleteVolume('pad')
      expect(await store.getVolume('pad')).toBeUndefined()
    })

    const badNames = ['', '-lead', '.dot', 'a/b', 'a@snap', 'has space', 'x'.repeat(64), 'ünï']
    it.each(badNames)('rejects the volume name %j with TORUS_INVALID_ARGUMENT', async (name) => {
      const store = await initialised(h.store)
      await expect(store.createVolume({ name, sizeBytes: MiB })).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      expect(await store.listVolumes()).toEqual([])
    })

    it('accepts a 63-character name made of every allowed character class', async () => {
      const store = await initialised(h.store)
      const name = `A9._-${'z'.repeat(58)}`
      expect((await store.createVolume({ name, sizeBytes: MiB })).name).toBe(name)
    })

    const badSizes = [0, -MiB, 512, MiB - 512, MiB + 1, 1.5 * MiB + 0.5, Number.NaN, Number.MAX_VALUE]
    it.each(badSizes)('rejects the volume size %d with TORUS_INVALID_ARGUMENT', async (sizeBytes) => {
      const store = await initialised(h.store)
      await expect(store.createVolume({ name: 'pad', sizeBytes })).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      expect(await store.getVolume('pad')).toBeUndefined()
    })

    it('rejects a bad block size or replication with TORUS_INVALID_ARGUMENT', async () => {
      const store = await initialised(h.store)
      for (const request of [
        { name: 'pad', sizeBytes: MiB, blockSizeBytes: 1000 },
        { name: 'pad', sizeBytes: MiB, blockSizeBytes: 2048 },
        { name: 'pad', sizeBytes: MiB, replication: 0 },
        { name: 'pad', sizeBytes: MiB, replication: 17 },
      ]) {
        await expect(store.createVolume(request)).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      }
      expect(await store.listVolumes()).toEqual([])
    })
  })
}
