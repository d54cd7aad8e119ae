// Goal: leases live exactly as long as they are kept alive, and revocation is immediate.
// Method: grant, then move time (ManualClock or a short real TTL) around keep-alives.
import { describe, expect, it } from 'vitest'
import { useStore, type SuiteContext } from './context.js'

export function describeLeases({ harness, supports, ttlMs, elapse, expireLeases }: SuiteContext): void {
  describe.skipIf(!supports.leases)('leases', () => {
    const h = useStore(harness)

    it('grants distinct non-empty lease ids', async () => {
      const a = await h.store.grantLease(ttlMs)
      const b = await h.store.grantLease(ttlMs)
      expect(typeof a).toBe('string')
      expect(a.length).toBeGreaterThan(0)
      expect(b).not.toBe(a)
    })

    it('keeps a lease alive past its original TTL when kept alive in time', async () => {
      const lease = await h.store.grantLease(ttlMs)
      await elapse(ttlMs * 0.6)
      await h.store.keepAlive(lease)
      await elapse(ttlMs * 0.6)
      await expect(h.store.keepAlive(lease)).resolves.toBeUndefined()
    })

    it('rejects keepAlive with TORUS_LEASE_EXPIRED once the TTL passed without a keep-alive', async () => {
      const lease = await h.store.grantLease(ttlMs)
      await expireLeases()
      await expect(h.store.keepAlive(lease)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    })

    it('expires only the lease that was not kept alive', async () => {
      const kept = await h.store.grantLease(ttlMs)
      const dropped = await h.store.grantLease(ttlMs)
      // Two TTLs in half-TTL steps: past any backend's expiry slack, yet `kept` never lapses.
      for (let i = 0; i < 4; i++) {
        await elapse(ttlMs * 0.5)
        await h.store.keepAlive(kept)
      }
      await expect(h.store.keepAlive(dropped)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
      await expect(h.store.keepAlive(kept)).resolves.toBeUndefined()
    })

    it('rejects keepAlive on a revoked lease with TORUS_LEASE_EXPIRED', async () => {
      const lease = await h.store.grantLease(ttlMs)
      await h.store.revokeLease(lease)
      await expect(h.store.keepAlive(lease)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    })

    it('treats revoking a lease that is already gone as a no-op', async () => {
      const lease = await h.store.grantLease(ttlMs)
      await h.store.revokeLease(lease)
      await expect(h.store.revokeLease(lease)).resolves.toBeUndefined()
    })

    it('rejects a non-positive TTL with a RangeError', async () => {
      await expect(h.store.grantLease(0)).rejects.toMatchObject({ name: 'RangeError' })
      await expect(h.store.grantLease(-5)).rejects.toMatchObject({ name: 'RangeError' })
    })
  })
}
