// Goal: a store only works while open, closes idempotently and honours an aborted signal.
// Method: close a store and call every method, and pass pre-aborted signals to reads and writes.
import { describe, expect, it } from 'vitest'
import type { MetadataStore, VolumeLock } from '@torus/core'
import { CLUSTER, MiB, initialised, useStore, type SuiteContext } from './context.js'

const STALE_LOCK: VolumeLock = { volume: 'vol', holder: 'node-a', leaseId: 'lease', generation: 1 }

const CALLS: [string, (store: MetadataStore) => Promise<unknown>][] = [
  ['getClusterConfig', (s) => s.getClusterConfig()],
  ['initCluster', (s) => s.initCluster(CLUSTER)],
  ['createVolume', (s) => s.createVolume({ name: 'vol', sizeBytes: MiB })],
  ['getVolume', (s) => s.getVolume('vol')],
  ['listVolumes', (s) => s.listVolumes()],
  ['deleteVolume', (s) => s.deleteVolume('vol')],
  ['grantLease', (s) => s.grantLease(10_000)],
  ['keepAlive', (s) => s.keepAlive('lease')],
  ['revokeLease', (s) => s.revokeLease('lease')],
  ['lockVolume', (s) => s.lockVolume('vol', 'node-a', 'lease')],
  ['getVolumeLock', (s) => s.getVolumeLock('vol')],
  ['unlockVolume', (s) => s.unlockVolume(STALE_LOCK)],
]

export function describeLifecycle({ harness }: SuiteContext): void {
  describe('lifecycle', () => {
    const h = useStore(harness)

    it('reports status open after create', () => {
      expect(h.store.status).toBe('open')
    })

    it('reports status closed after close, and a second close resolves', async () => {
      await h.store.close()
      expect(h.store.status).toBe('closed')
      await expect(h.store.close()).resolves.toBeUndefined()
      expect(h.store.status).toBe('closed')
    })

    it.each(CALLS)('rejects %s after close with TORUS_NOT_OPEN', async (_name, call) => {
      await initialised(h.store)
      await h.store.close()
      await expect(call(h.store)).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
    })

    it('rejects a read with an aborted signal with TORUS_ABORTED', async () => {
      const signal = AbortSignal.abort()
      await expect(h.store.getClusterConfig({ signal })).rejects.toMatchObject({ code: 'TORUS_ABORTED' })
      await expect(h.store.listVolumes({ signal })).rejects.toMatchObject({ code: 'TORUS_ABORTED' })
    })

    it('rejects a mutation with an aborted signal with TORUS_ABORTED and does not apply it', async () => {
      const store = await initialised(h.store)
      const signal = AbortSignal.abort()
      await expect(store.createVolume({ name: 'vol', sizeBytes: MiB }, { signal })).rejects.toMatchObject({ code: 'TORUS_ABORTED' })
      expect(await store.getVolume('vol')).toBeUndefined()
    })
  })
}
