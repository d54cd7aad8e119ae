// Goal: a volume lock has one holder at a time, is bound to its lease, and carries a fencing
// generation that grows with every acquisition. Method: contend, expire, revoke and unlock.
import { describe, expect, it } from 'vitest'
import type { VolumeLock } from '@torus/core'
import { CLUSTER, MiB, useStore, volumeWithLease, type SuiteContext } from './context.js'

export function describeLocks({ harness, supports, ttlMs, expireLeases }: SuiteContext): void {
  describe.skipIf(!supports.leases)('volume locks', () => {
    const h = useStore(harness)

    it('returns a lock naming the volume, holder and lease, and getVolumeLock returns it', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const lock = await h.store.lockVolume('vol', 'node-a', leaseId)
      expect(lock).toMatchObject({ volume: 'vol', holder: 'node-a', leaseId })
      expect(Number.isSafeInteger(lock.generation)).toBe(true)
      expect(await h.store.getVolumeLock('vol')).toEqual(lock)
    })

    it('returns undefined from getVolumeLock for an unlocked volume', async () => {
      await volumeWithLease(h.store, ttlMs)
      expect(await h.store.getVolumeLock('vol')).toBeUndefined()
    })

    it('rejects a second locker with TORUS_LOCKED naming the holder in message and details', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const held = await h.store.lockVolume('vol', 'torusd@node-a:4321', leaseId)
      const other = await h.store.grantLease(ttlMs)
      const err: unknown = await h.store.lockVolume('vol', 'torusd@node-b:4321', other).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'TORUS_LOCKED', details: { holder: 'torusd@node-a:4321' } })
      expect((err as Error).message).toContain('torusd@node-a:4321')
      expect(await h.store.getVolumeLock('vol')).toEqual(held)
    })

    it('rejects relocking by the current holder with TORUS_LOCKED', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      await h.store.lockVolume('vol', 'node-a', leaseId)
      await expect(h.store.lockVolume('vol', 'node-a', leaseId)).rejects.toMatchObject({ code: 'TORUS_LOCKED' })
    })

    it('drops the lock when its lease expires, and the next lock has a greater generation', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const first = await h.store.lockVolume('vol', 'node-a', leaseId)
      await expireLeases()
      expect(await h.store.getVolumeLock('vol')).toBeUndefined()
      const second = await h.store.lockVolume('vol', 'node-b', await h.store.grantLease(ttlMs))
      expect(second.generation).toBeGreaterThan(first.generation)
    })

    it('drops the lock when its lease is revoked, and the next lock has a greater generation', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const first = await h.store.lockVolume('vol', 'node-a', leaseId)
      await h.store.revokeLease(leaseId)
      expect(await h.store.getVolumeLock('vol')).toBeUndefined()
      const second = await h.store.lockVolume('vol', 'node-b', await h.store.grantLease(ttlMs))
      expect(second.generation).toBeGreaterThan(first.generation)
    })

    it('releases the lock on unlockVolume', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const lock = await h.store.lockVolume('vol', 'node-a', leaseId)
      await h.store.unlockVolume(lock)
      expect(await h.store.getVolumeLock('vol')).toBeUndefined()
    })

    it('hands out strictly increasing generations across repeated acquisitions', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      let previous: VolumeLock | undefined
      for (let i = 0; i < 5; i++) {
        const lock = await h.store.lockVolume('vol', `node-${i}`, leaseId)
        if (previous !== undefined) expect(lock.generation).toBeGreaterThan(previous.generation)
        await h.store.unlockVolume(lock)
        previous = lock
      }
    })

    it('keeps generations increasing across volumes locked in turn', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs, 'one')
      await h.store.createVolume({ name: 'two', sizeBytes: MiB })
      const a = await h.store.lockVolume('one', 'node-a', leaseId)
      const b = await h.store.lockVolume('two', 'node-a', leaseId)
      await h.store.unlockVolume(a)
      const c = await h.store.lockVolume('one', 'node-a', leaseId)
      expect(c.generation).toBeGreaterThan(a.generation)
      expect(await h.store.getVolumeLock('two')).toEqual(b)
    })

    it('ignores unlockVolume with a stale lock after the volume was unlocked and relocked', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const stale = await h.store.lockVolume('vol', 'node-a', leaseId)
      await h.store.unlockVolume(stale)
      const current = await h.store.lockVolume('vol', 'node-b', await h.store.grantLease(ttlMs))
      await h.store.unlockVolume(stale)
      expect(await h.store.getVolumeLock('vol')).toEqual(current)
    })

    it('ignores unlockVolume with a lock whose lease expired after someone else took the volume', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const stale = await h.store.lockVolume('vol', 'node-a', leaseId)
      await expireLeases()
      const current = await h.store.lockVolume('vol', 'node-b', await h.store.grantLease(ttlMs))
      await h.store.unlockVolume(stale)
      expect(await h.store.getVolumeLock('vol')).toEqual(current)
    })

    it('treats unlockVolume of a lock that is already gone as a no-op', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      const lock = await h.store.lockVolume('vol', 'node-a', leaseId)
      await h.store.unlockVolume(lock)
      await expect(h.store.unlockVolume(lock)).resolves.toBeUndefined()
    })

    it('rejects locking a missing volume with TORUS_NOT_FOUND', async () => {
      await h.store.initCluster(CLUSTER)
      const leaseId = await h.store.grantLease(ttlMs)
      await expect(h.store.lockVolume('ghost', 'node-a', leaseId)).rejects.toMatchObject({ code: 'TORUS_NOT_FOUND' })
    })

    it('rejects locking with an expired lease with TORUS_LEASE_EXPIRED', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      await expireLeases()
      await expect(h.store.lockVolume('vol', 'node-a', leaseId)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
      expect(await h.store.getVolumeLock('vol')).toBeUndefined()
    })

    it('rejects locking with a revoked lease with TORUS_LEASE_EXPIRED', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs)
      await h.store.revokeLease(leaseId)
      await expect(h.store.lockVolume('vol', 'node-a', leaseId)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    })

    it('releases every lock bound to a lease when it is revoked', async () => {
      const { leaseId } = await volumeWithLease(h.store, ttlMs, 'one')
      await h.store.createVolume({ name: 'two', sizeBytes: MiB })
      await h.store.lockVolume('one', 'node-a', leaseId)
      await h.store.lockVolume('two', 'node-a', leaseId)
      await h.store.revokeLease(leaseId)
      expect(await h.store.getVolumeLock('one')).toBeUndefined()
      expect(await h.store.getVolumeLock('two')).toBeUndefined()
    })
  })
}
