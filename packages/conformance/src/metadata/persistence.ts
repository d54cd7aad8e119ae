// Goal: a persistent store comes back after a restart with its config, volumes, id counter and
// fencing generations intact, and with locks whose leases lapsed gone. Method: write, reopen, read.
import { describe, expect, it } from 'vitest'
import { CLUSTER, MiB, initialised, useStore, volumeWithLease, type SuiteContext } from './context.js'
import { peer } from './peers.js'

export function describePersistence({ harness, supports, ttlMs, elapse, expireLeases }: SuiteContext): void {
  describe.skipIf(harness.reopen === undefined || !supports.persistent)('persistence across reopen', () => {
    const h = useStore(harness)

    it('keeps the cluster config (with its secretCheck) and volumes', async () => {
      const config = { ...CLUSTER, secretCheck: `${'5a'.repeat(16)}:${'c3'.repeat(32)}` }
      const store = await initialised(h.store, config)
      await store.createVolume({ name: 'b', sizeBytes: 2 * MiB })
      await store.createVolume({ name: 'a', sizeBytes: MiB, blockSizeBytes: 4096, replication: 1 })
      const volumes = await store.listVolumes()
      const reopened = await h.reopen()
      expect(reopened.status).toBe('open')
      expect(await reopened.getClusterConfig()).toEqual(config)
      expect(await reopened.listVolumes()).toEqual(volumes)
      await expect(reopened.initCluster(CLUSTER)).rejects.toMatchObject({ code: 'TORUS_ALREADY_EXISTS' })
    })

    it('keeps the ring, the peers (a peer whose lease lapsed as down) and nextVolumeId', async () => {
      const store = await initialised(h.store)
      const A = '00000000-0000-4000-8000-00000000000a'
      await store.setRing({ version: 1, type: 'ketama', replication: 2, members: [{ peer: A, weight: 7 }] })
      await store.putPeer(peer(A), await store.grantLease(ttlMs))
      await store.createVolume({ name: 'a', sizeBytes: 2 * MiB })
      const next = await store.nextVolumeId()
      const reopened = await h.reopen()
      expect(await reopened.getRing()).toEqual({ version: 1, type: 'ketama', replication: 2, members: [{ peer: A, weight: 7 }] })
      expect(await reopened.nextVolumeId()).toBe(next)
      expect((await reopened.listPeers()).map((p) => p.id)).toEqual([A])
      await expireLeases()
      expect(await reopened.listPeers()).toEqual([{ ...peer(A), alive: false }])
    })

    it('keeps a deleted volume deleted', async () => {
      const store = await initialised(h.store)
      await store.createVolume({ name: 'gone', sizeBytes: MiB })
      await store.deleteVolume('gone')
      const reopened = await h.reopen()
      expect(await reopened.getVolume('gone')).toBeUndefined()
    })

    it('never reuses a volume id allocated before the reopen', async () => {
      const store = await initialised(h.store)
      const a = await store.createVolume({ name: 'a', sizeBytes: MiB })
      const b = await store.createVolume({ name: 'b', sizeBytes: MiB })
      await store.deleteVolume('b')
      const reopened = await h.reopen()
      const c = await reopened.createVolume({ name: 'c', sizeBytes: MiB })
      const b2 = await reopened.createVolume({ name: 'b', sizeBytes: MiB })
      expect([a.id, b.id]).not.toContain(c.id)
      expect([a.id, b.id, c.id]).not.toContain(b2.id)
    })

    it('keeps a lock and its lease when the lease is kept alive', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const lock = await h.store.lockVolume('vol', 'node-a', leaseId)
      const reopened = await h.reopen()
      expect(await reopened.getVolumeLock('vol')).toEqual(lock)
      await reopened.keepAlive(leaseId)
      await elapse(ttlMs * 0.6)
      await reopened.keepAlive(leaseId)
      expect(await reopened.getVolumeLock('vol')).toEqual(lock)
    })

    it('drops a lock whose lease lapses across the reopen', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      await h.store.lockVolume('vol', 'node-a', leaseId)
      const reopened = await h.reopen()
      await expireLeases()
      expect(await reopened.getVolumeLock('vol')).toBeUndefined()
      await expect(reopened.keepAlive(leaseId)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    })

    it('keeps a revoked lease revoked', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      await h.store.lockVolume('vol', 'node-a', leaseId)
      await h.store.revokeLease(leaseId)
      const reopened = await h.reopen()
      expect(await reopened.getVolumeLock('vol')).toBeUndefined()
      await expect(reopened.keepAlive(leaseId)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    })

    it('hands out a greater lock generation after the reopen', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const before = await h.store.lockVolume('vol', 'node-a', leaseId)
      await h.store.unlockVolume(before)
      const reopened = await h.reopen()
      const after = await reopened.lockVolume('vol', 'node-b', await reopened.grantLease(ttlMs))
      expect(after.generation).toBeGreaterThan(before.generation)
    })
  })
}
