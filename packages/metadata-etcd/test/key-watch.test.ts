// Goal: a watch that falls behind a compaction resynchronises instead of dying. Method: against
// a real etcd (TORUS_ETCD_ENDPOINTS), start a KeyWatch from a revision that has been compacted
// away — etcd cancels such a watch — and check that it reads again, watches from the new
// revision, and still reports later changes; then do the same through EtcdMetadataStore.watchRing.
import { randomUUID } from 'node:crypto'
import { Etcd3 } from 'etcd3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger, type RingDescriptor } from '@torus/core'
import { eventually } from '@torus/conformance'
import { EtcdMetadataStore } from '../src/index.js'
import { KeyWatch } from '../src/key-watch.js'

const endpoints = (process.env.TORUS_ETCD_ENDPOINTS ?? '').split(',').map((h) => h.trim()).filter((h) => h !== '')

describe.skipIf(endpoints.length === 0)('KeyWatch against etcd', () => {
  let client: Etcd3
  const prefix = `torus-test/${randomUUID()}/`

  beforeAll(() => {
    client = new Etcd3({ hosts: endpoints })
  })
  afterAll(async () => {
    await client.delete().prefix(prefix)
    client.close()
  })

  it('resynchronises after etcd cancels a watch whose start revision was compacted', async () => {
    const ns = client.namespace(prefix)
    await ns.put('k').value('v1')
    const old = (await ns.get('k').exec()).header.revision
    await ns.put('k').value('v2')
    await ns.put('k').value('v3')
    const now = (await ns.get('k').exec()).header.revision
    await client.kv.compact({ revision: now, physical: true })

    const values: string[] = []
    const errors: unknown[] = []
    let reads = 0
    const watch = new KeyWatch({
      ns,
      keys: ['k'],
      resyncMs: 0,
      logger: silentLogger,
      read: async () => {
        reads++
        const res = await ns.get('k').exec()
        values.push(res.kvs[0]?.value.toString() ?? '')
        // The first read pretends to be stale, so the watch starts behind the compaction.
        return reads === 1 ? old : res.header.revision
      },
      onError: (err) => errors.push(err),
    })
    try {
      await watch.start()
      await eventually(() => expect(errors.length).toBeGreaterThan(0))
      // etcd 3.4 cancels with an empty reason (the compact revision rides in the response).
      expect(String((errors[0] as Error).message)).toMatch(/canceled/i)
      await eventually(() => expect(reads).toBeGreaterThanOrEqual(2))
      await ns.put('k').value('v4')
      await eventually(() => expect(values.at(-1)).toBe('v4'))
    } finally {
      await watch.close()
    }
  })

  it('delivers the latest ring, in order, through a burst of changes and a compaction', async () => {
    const store = new EtcdMetadataStore({ hosts: endpoints, prefix: `${prefix}ring/`, ringResyncMs: 200 })
    await store.open()
    const seen: number[] = []
    try {
      await store.initCluster({ blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama', createdAt: new Date().toISOString() })
      const watch = await store.watchRing((r: RingDescriptor) => seen.push(r.version))
      const member = (n: number): { peer: string; weight: number } => ({ peer: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, weight: 1 })
      for (let v = 1; v <= 5; v++) await store.setRing({ version: v, type: 'ketama', replication: 2, members: [member(v)] })
      const rev = (await client.get(`${prefix}ring/ring`).exec()).header.revision
      await client.kv.compact({ revision: rev, physical: true })
      await store.setRing({ version: 6, type: 'ketama', replication: 2, members: [member(6)] })
      await eventually(() => expect(seen.at(-1)).toBe(6))
      expect([...seen].sort((a, b) => a - b)).toEqual(seen)
      expect(new Set(seen).size).toBe(seen.length)
      await watch.close()
    } finally {
      await store.close()
    }
  })
})
