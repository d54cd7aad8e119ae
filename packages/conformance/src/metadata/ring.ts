// Goal: the ring descriptor lives in metadata and changes only by compare-and-swap on its
// version; watchers see every change, in order, without duplicates. Method: CAS races, watches.
import { describe, expect, it } from 'vitest'
import type { RingDescriptor } from '@torus/core'
import { eventually } from '../harness.js'
import { CLUSTER, settle, useStore, type SuiteContext } from './context.js'

const A = '00000000-0000-4000-8000-00000000000a'
const B = '00000000-0000-4000-8000-00000000000b'
const C = '00000000-0000-4000-8000-00000000000c'

function ring(version: number, members: string[], overrides: Partial<RingDescriptor> = {}): RingDescriptor {
  return { version, type: 'ketama', replication: 2, members: members.map((peer) => ({ peer, weight: 1024 })), ...overrides }
}

export function describeRing({ harness, supports }: SuiteContext): void {
  describe('ring', () => {
    const h = useStore(harness)

    it('has no ring before the cluster is initialised, and setRing then fails with TORUS_NOT_INITIALIZED', async () => {
      expect(await h.store.getRing()).toBeUndefined()
      await expect(h.store.setRing(ring(1, [A]))).rejects.toMatchObject({ code: 'TORUS_NOT_INITIALIZED' })
    })

    it('starts at version 0 with the cluster ring type and replication and no members', async () => {
      await h.store.initCluster(CLUSTER)
      expect(await h.store.getRing()).toEqual({ version: 0, type: CLUSTER.ringType, replication: CLUSTER.replication, members: [] })
    })

    it('stores version + 1 and returns it with members sorted by peer id', async () => {
      await h.store.initCluster(CLUSTER)
      await h.store.setRing(ring(1, [C, A]))
      expect(await h.store.getRing()).toEqual(ring(1, [A, C]))
      await h.store.setRing(ring(2, [A, B, C], { type: 'mod', replication: 3 }))
      expect(await h.store.getRing()).toEqual(ring(2, [A, B, C], { type: 'mod', replication: 3 }))
    })

    it('rejects a version that does not follow the current one with TORUS_CONFLICT and changes nothing', async () => {
      await h.store.initCluster(CLUSTER)
      await h.store.setRing(ring(1, [A]))
      for (const version of [1, 3, 7]) {
        await expect(h.store.setRing(ring(version, [A, B]))).rejects.toMatchObject({ code: 'TORUS_CONFLICT', details: { currentVersion: 1 } })
      }
      expect(await h.store.getRing()).toEqual(ring(1, [A]))
    })

    it('lets exactly one of several concurrent writers of the same version win', async () => {
      await h.store.initCluster(CLUSTER)
      const { fulfilled, rejected } = await settle([A, B, C].map((p) => h.store.setRing(ring(1, [p]))))
      expect(fulfilled).toHaveLength(1)
      expect(rejected).toHaveLength(2)
      for (const err of rejected) expect(err).toMatchObject({ code: 'TORUS_CONFLICT' })
      const stored = await h.store.getRing()
      expect(stored?.version).toBe(1)
      expect(stored?.members).toHaveLength(1)
    })

    it('rejects malformed descriptors with TORUS_INVALID_ARGUMENT', async () => {
      await h.store.initCluster(CLUSTER)
      for (const bad of [
        ring(0, [A]),
        ring(1, [A, A]),
        ring(1, ['nope']),
        ring(1, [A], { replication: 0 }),
        ring(1, [A, B], { type: 'single' }),
        { ...ring(1, [A]), type: 'round-robin' } as unknown as RingDescriptor,
        { version: 1, type: 'ketama', replication: 2, members: [{ peer: A, weight: -1 }] } as RingDescriptor,
      ]) {
        await expect(h.store.setRing(bad), JSON.stringify(bad)).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      }
      expect((await h.store.getRing())?.version).toBe(0)
    })

    it('accepts an empty ring (every member removed)', async () => {
      await h.store.initCluster(CLUSTER)
      await h.store.setRing(ring(1, [A]))
      await h.store.setRing(ring(2, []))
      expect(await h.store.getRing()).toEqual(ring(2, []))
    })

    it.skipIf(!supports.watch)('delivers the current ring to a new watcher, then each change in order, once', async () => {
      await h.store.initCluster(CLUSTER)
      const seen: number[] = []
      const watch = await h.store.watchRing((r) => seen.push(r.version))
      try {
        await eventually(() => expect(seen).toEqual([0]))
        await h.store.setRing(ring(1, [A]))
        await eventually(() => expect(seen).toEqual([0, 1]))
        await h.store.setRing(ring(2, [A, B]))
        await h.store.setRing(ring(3, [A, B, C]))
        await eventually(() => expect(seen[seen.length - 1]).toBe(3))
        // Intermediate versions may be skipped, but never repeated or reordered.
        expect([...seen].sort((x, y) => x - y)).toEqual(seen)
        expect(new Set(seen).size).toBe(seen.length)
      } finally {
        await watch.close()
      }
    })

    it.skipIf(!supports.watch)('delivers nothing before init, then the first ring once the cluster exists', async () => {
      const seen: RingDescriptor[] = []
      const watch = await h.store.watchRing((r) => seen.push(r))
      try {
        await new Promise((resolve) => setTimeout(resolve, 50))
        expect(seen).toEqual([])
        await h.store.initCluster(CLUSTER)
        await h.store.setRing(ring(1, [A]))
        await eventually(() => expect(seen.at(-1)).toEqual(ring(1, [A])))
      } finally {
        await watch.close()
      }
    })

    it.skipIf(!supports.watch)('stops delivering after close', async () => {
      await h.store.initCluster(CLUSTER)
      const seen: number[] = []
      const watch = await h.store.watchRing((r) => seen.push(r.version))
      await eventually(() => expect(seen).toEqual([0]))
      await watch.close()
      await watch.close()
      await h.store.setRing(ring(1, [A]))
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(seen).toEqual([0])
    })
  })
}
