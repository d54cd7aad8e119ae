// Goal: the cluster config is written exactly once and everything volume-related waits for it.
// Method: init, re-init with a different config, and create a volume on an uninitialised store.
import { describe, expect, it } from 'vitest'
import { CLUSTER, MiB, useStore, type SuiteContext } from './context.js'

export function describeCluster({ harness }: SuiteContext): void {
  describe('cluster config', () => {
    const h = useStore(harness)

    it('returns undefined before initCluster', async () => {
      expect(await h.store.getClusterConfig()).toBeUndefined()
    })

    it('returns the config given to initCluster', async () => {
      await h.store.initCluster(CLUSTER)
      expect(await h.store.getClusterConfig()).toEqual(CLUSTER)
    })

    it('assigns a cluster id (a UUID) when none is given, and rejects a malformed one', async () => {
      const { id: _id, ...withoutId } = CLUSTER
      await expect(h.store.initCluster({ ...CLUSTER, id: 'cluster-1' })).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      await h.store.initCluster(withoutId)
      const stored = await h.store.getClusterConfig()
      expect(stored).toEqual({ ...withoutId, id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/) })
    })

    it('keeps a secretCheck given to initCluster, and rejects a malformed one', async () => {
      const secretCheck = `${'0f'.repeat(16)}:${'a1'.repeat(32)}`
      for (const bad of ['', `${'0F'.repeat(16)}:${'a1'.repeat(32)}`, `${'0f'.repeat(16)}${'a1'.repeat(32)}`, `${'0f'.repeat(16)}:${'a1'.repeat(31)}`, 42]) {
        await expect(h.store.initCluster({ ...CLUSTER, secretCheck: bad as string })).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      }
      expect(await h.store.getClusterConfig()).toBeUndefined()
      await h.store.initCluster({ ...CLUSTER, secretCheck })
      expect(await h.store.getClusterConfig()).toEqual({ ...CLUSTER, secretCheck })
    })

    it('rejects a second initCluster with TORUS_ALREADY_EXISTS and keeps the first config', async () => {
      await h.store.initCluster(CLUSTER)
      const other = { ...CLUSTER, blockSizeBytes: 64 * 1024, replication: 3, ringType: 'mod' as const }
      await expect(h.store.initCluster(other)).rejects.toMatchObject({ code: 'TORUS_ALREADY_EXISTS' })
      expect(await h.store.getClusterConfig()).toEqual(CLUSTER)
    })

    it('rejects an invalid block size or replication with TORUS_INVALID_ARGUMENT', async () => {
      await expect(h.store.initCluster({ ...CLUSTER, blockSizeBytes: 1000 })).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      await expect(h.store.initCluster({ ...CLUSTER, replication: 0 })).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      expect(await h.store.getClusterConfig()).toBeUndefined()
    })

    it('rejects createVolume before initCluster with TORUS_NOT_INITIALIZED', async () => {
      await expect(h.store.createVolume({ name: 'early', sizeBytes: 8 * MiB })).rejects.toMatchObject({
        code: 'TORUS_NOT_INITIALIZED',
      })
      expect(await h.store.listVolumes()).toEqual([])
    })
  })
}
