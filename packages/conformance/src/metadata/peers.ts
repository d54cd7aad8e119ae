// Goal: peers register with a heartbeat record bound to a lease; a peer whose lease ends shows as
// down instead of vanishing, and only a down peer can be forgotten. Method: put, expire, revoke.
import { describe, expect, it } from 'vitest'
import type { PeerInfo } from '@torus/core'
import { CLUSTER, useStore, type SuiteContext } from './context.js'

const A = '00000000-0000-4000-8000-00000000000a'
const B = '00000000-0000-4000-8000-00000000000b'

export function peer(id: string, overrides: Partial<PeerInfo> = {}): PeerInfo {
  return {
    id,
    address: `ws://127.0.0.1:4${id.slice(-4)}`,
    capacityBytes: 5 * 1024 ** 3,
    usedBytes: 0,
    rebalanceBytesPerSec: 0,
    repairBytesPerSec: 0,
    ringVersion: 0,
    version: '0.0.0-test',
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...overrides,
  }
}

export function describePeers({ harness, supports, ttlMs, expireLeases }: SuiteContext): void {
  describe.skipIf(!supports.leases)('peers', () => {
    const h = useStore(harness)

    it('lists no peers on a fresh store', async () => {
      expect(await h.store.listPeers()).toEqual([])
    })

    it('lists registered peers sorted by id, alive, with exactly what they reported', async () => {
      const lease = await h.store.grantLease(ttlMs)
      await h.store.putPeer(peer(B, { nbdAddress: '127.0.0.1:10809', usedBytes: 4096 }), lease)
      await h.store.putPeer(peer(A), lease)
      const peers = await h.store.listPeers()
      expect(peers.map((p) => p.id)).toEqual([A, B])
      expect(peers[1]).toEqual({ ...peer(B, { nbdAddress: '127.0.0.1:10809', usedBytes: 4096 }), alive: true })
      expect(peers[0]).toEqual({ ...peer(A), alive: true })
    })

    it('replaces the record on every heartbeat', async () => {
      const lease = await h.store.grantLease(ttlMs)
      await h.store.putPeer(peer(A, { usedBytes: 1 }), lease)
      await h.store.putPeer(peer(A, { usedBytes: 2, ringVersion: 3, updatedAt: '2026-01-01T00:00:09.000Z' }), lease)
      expect(await h.store.listPeers()).toEqual([{ ...peer(A, { usedBytes: 2, ringVersion: 3, updatedAt: '2026-01-01T00:00:09.000Z' }), alive: true }])
    })

    it('shows a peer as down, not gone, once its lease expires', async () => {
      await h.store.putPeer(peer(A), await h.store.grantLease(ttlMs))
      await expireLeases()
      expect(await h.store.listPeers()).toEqual([{ ...peer(A), alive: false }])
    })

    it('shows a peer as down once its lease is revoked, and alive again after a new heartbeat', async () => {
      const lease = await h.store.grantLease(ttlMs)
      await h.store.putPeer(peer(A), lease)
      await h.store.revokeLease(lease)
      expect((await h.store.listPeers())[0]?.alive).toBe(false)
      await h.store.putPeer(peer(A), await h.store.grantLease(ttlMs))
      expect((await h.store.listPeers())[0]?.alive).toBe(true)
    })

    it('rejects a heartbeat on a dead lease with TORUS_LEASE_EXPIRED and writes nothing', async () => {
      const lease = await h.store.grantLease(ttlMs)
      await h.store.revokeLease(lease)
      await expect(h.store.putPeer(peer(A), lease)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
      expect(await h.store.listPeers()).toEqual([])
    })

    it('rejects malformed peer info with TORUS_INVALID_ARGUMENT', async () => {
      const lease = await h.store.grantLease(ttlMs)
      for (const bad of [
        peer('not-a-uuid'),
        peer(A, { address: '' }),
        peer(A, { capacityBytes: -1 }),
        peer(A, { usedBytes: Number.NaN }),
        peer(A, { updatedAt: 'yesterday' }),
        peer(A, { ringVersion: 1.5 }),
      ]) {
        await expect(h.store.putPeer(bad, lease), JSON.stringify(bad)).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      }
      expect(await h.store.listPeers()).toEqual([])
    })

    it('forgets a down peer; refuses a live one (TORUS_LOCKED) and an unknown one (TORUS_NOT_FOUND)', async () => {
      const lease = await h.store.grantLease(ttlMs)
      await h.store.putPeer(peer(A), lease)
      await expect(h.store.forgetPeer(A)).rejects.toMatchObject({ code: 'TORUS_LOCKED' })
      await expect(h.store.forgetPeer(B)).rejects.toMatchObject({ code: 'TORUS_NOT_FOUND' })
      await h.store.revokeLease(lease)
      await h.store.forgetPeer(A)
      expect(await h.store.listPeers()).toEqual([])
    })

    it('keeps peers independent of the cluster config', async () => {
      await h.store.putPeer(peer(A), await h.store.grantLease(ttlMs))
      await h.store.initCluster(CLUSTER)
      expect((await h.store.listPeers()).map((p) => p.id)).toEqual([A])
    })
  })
}
