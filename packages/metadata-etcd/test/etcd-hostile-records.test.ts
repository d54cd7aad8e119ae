// Goal: whatever sits in etcd, EtcdMetadataStore never hands out a bad record: malformed or
// tampered keys give TORUS_CORRUPT naming the full key and how to fix it, a counter moved back
// cannot give two volumes one id, and a ring that goes back (a restore) is still delivered.
// Method: a real etcd (TORUS_ETCD_ENDPOINTS), keys written behind the store's back with a raw
// etcd3 client, each test under its own prefix.
import { randomUUID } from 'node:crypto'
import { Etcd3 } from 'etcd3'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { peerId } from '@torus/core'
import type { RingDescriptor } from '@torus/core'
import { eventually } from '@torus/conformance'
import { EtcdMetadataStore } from '../src/index.js'

const endpoints = (process.env.TORUS_ETCD_ENDPOINTS ?? '').split(',').map((h) => h.trim()).filter((h) => h !== '')
const PEER = '00000000-0000-4000-8000-00000000000a'
const OTHER = '00000000-0000-4000-8000-00000000000b'

describe.skipIf(endpoints.length === 0)('EtcdMetadataStore with hostile etcd contents', () => {
  let client: Etcd3
  let prefix: string
  let store: EtcdMetadataStore

  beforeAll(() => {
    client = new Etcd3({ hosts: endpoints })
  })
  afterAll(() => client.close())
  beforeEach(async () => {
    prefix = `torus-test/${randomUUID()}/`
    store = new EtcdMetadataStore({ hosts: endpoints, prefix, ringResyncMs: 200 })
    await store.open()
    await store.initCluster({ blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama', createdAt: new Date().toISOString() })
  })
  afterEach(async () => {
    await store.close()
    await client.delete().prefix(prefix)
  })

  const put = (key: string, value: string): Promise<unknown> => client.put(`${prefix}${key}`).value(value).exec()

  async function corrupt(call: () => Promise<unknown>, key: string): Promise<void> {
    const err = (await call().then(
      () => undefined,
      (e: unknown) => e,
    )) as { code?: string; message?: string } | undefined
    expect(err?.code).toBe('TORUS_CORRUPT')
    expect(err?.message).toContain(`etcd key ${prefix}${key} is malformed`)
    // Deleting is offered only for keys whose loss harms nothing.
    if (key.startsWith('stale/')) {
      expect(err?.message).toContain('do not delete it: it marks a replica that missed writes')
      expect(err?.message).not.toContain('etcdctl del')
    } else if (key === 'cluster' || key.startsWith('volumes/') || key.startsWith('volume-ids/')) {
      expect(err?.message).toContain('do not delete it')
      expect(err?.message).not.toContain('etcdctl del')
    } else {
      expect(err?.message).toContain(`etcdctl del ${prefix}${key}`)
    }
  }

  it('reports a malformed cluster record instead of using it', async () => {
    for (const bad of ['{}', 'not json', JSON.stringify({ blockSizeBytes: 3, replication: 99, ringType: 'zzz', createdAt: 'x' })]) {
      await put('cluster', bad)
      await corrupt(() => store.getClusterConfig(), 'cluster')
      await corrupt(() => store.createVolume({ name: 'v', sizeBytes: 1024 * 1024 }), 'cluster')
    }
  })

  it('reports malformed volume records, and a record stored under another name', async () => {
    for (const bad of ['{}', '[]', JSON.stringify({ name: 'x', id: 1, type: 'block', sizeBytes: -5, blockSizeBytes: 524288, replication: 2, createdAt: new Date().toISOString() })]) {
      await put('volumes/x', bad)
      await corrupt(() => store.listVolumes(), 'volumes/x')
      await corrupt(() => store.getVolume('x'), 'volumes/x')
    }
    await put('volumes/x', JSON.stringify({ name: 'y', id: 1, type: 'block', sizeBytes: 1048576, blockSizeBytes: 524288, replication: 2, createdAt: new Date().toISOString() }))
    await corrupt(() => store.getVolume('x'), 'volumes/x')
  })

  it('refuses a counter that is not a plain decimal, and never gives two volumes one id', async () => {
    const first = await store.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
    for (const bad of ['0x10', ' 7 ', '1e3', '-1', '']) {
      await put('volume-ids/next', bad)
      await corrupt(() => store.nextVolumeId(), 'volume-ids/next')
      await corrupt(() => store.createVolume({ name: 'dup', sizeBytes: 1024 * 1024 }), 'volume-ids/next')
    }
    await put('volume-ids/next', String(first.id))
    const err = await store.createVolume({ name: 'dup', sizeBytes: 1024 * 1024 }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'TORUS_CORRUPT', details: { id: first.id } })
    expect(await store.getVolume('dup')).toBeUndefined()
  })

  it('refuses a volume record whose id was never reserved for it: another volume\'s id, or one never handed out', async () => {
    const real = await store.createVolume({ name: 'cv', sizeBytes: 256 * 1024 * 1024 })
    const forged = (id: number): string => JSON.stringify({ ...real, name: 'zz', id })
    // The same id as cv: served, it would read and overwrite cv's blocks.
    await put('volumes/zz', forged(real.id))
    await corrupt(() => store.getVolume('zz'), 'volumes/zz')
    await corrupt(() => store.listVolumes(), 'volumes/zz')
    const err = (await store.getVolume('zz').catch((e: unknown) => e)) as Error
    expect(err.message).toContain(`its id ${real.id} belongs to volume cv (${prefix}volume-ids/${real.id})`)
    // An id no create ever allocated.
    await put('volumes/zz', forged(77))
    const never = (await store.getVolume('zz').catch((e: unknown) => e)) as Error
    expect(never.message).toContain(`its id 77 was never given to it: ${prefix}volume-ids/77 is absent`)
    // The genuine volume is unaffected.
    expect(await store.getVolume('cv')).toEqual(real)
    await client.delete().key(`${prefix}volumes/zz`)
    expect(await store.listVolumes()).toEqual([real])
  })

  it('reports a peer record filed under another peer id, and a lock not bound to a lease', async () => {
    const lease = await store.grantLease(2000)
    await store.putPeer({ id: PEER, address: 'ws://127.0.0.1:1', capacityBytes: 1, usedBytes: 0, rebalanceBytesPerSec: 0, repairBytesPerSec: 0, ringVersion: 0, version: 't', updatedAt: new Date().toISOString() }, lease)
    const [record] = (await client.getAll().prefix(`${prefix}peers/`).strings()) ? Object.values(await client.getAll().prefix(`${prefix}peers/`).strings()) : []
    await put(`peers/${OTHER}`, record!)
    await corrupt(() => store.listPeers(), `peers/${OTHER}`)
    await client.delete().key(`${prefix}peers/${OTHER}`)

    await store.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
    await put('locks/pad', JSON.stringify({ holder: 'someone', leaseId: '1' }))
    await corrupt(() => store.getVolumeLock('pad'), 'locks/pad')
    await corrupt(() => store.deleteVolume('pad'), 'locks/pad')
  })

  it('reports malformed stale-replica records, and one filed under another key, without offering to delete them', async () => {
    const vol = await store.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
    const good = { volumeId: vol.id, peer: peerId(PEER), index: 3, generation: 2, recordedAt: new Date().toISOString() }
    const key = `stale/${vol.id}/${PEER}/3`
    for (const bad of ['not json', '{}', JSON.stringify({ ...good, index: -3 }), JSON.stringify({ ...good, generation: 'x' }), JSON.stringify({ ...good, recordedAt: undefined }), JSON.stringify({ ...good, peer: OTHER })]) {
      await put(key, bad)
      await corrupt(() => store.listStaleReplicas(vol.id), key)
      await corrupt(() => store.addStaleReplicas([{ ...good, generation: 9 }]), key)
    }
    await put(key, JSON.stringify(good))
    expect(await store.listStaleReplicas(vol.id)).toEqual([good])
    // The key's trailing "all" and the record's index must agree too.
    await put(`stale/${vol.id}/${PEER}/all`, JSON.stringify(good))
    await corrupt(() => store.listStaleReplicas(vol.id), `stale/${vol.id}/${PEER}/all`)
  })

  it('delivers a ring that went back (a restore) to a watcher, with the stored content', async () => {
    const ring = (version: number, n: number): RingDescriptor => ({
      version,
      type: 'ketama',
      replication: 2,
      members: [{ peer: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, weight: 1 }],
    })
    const seen: RingDescriptor[] = []
    const watch = await store.watchRing((r) => seen.push(r))
    try {
      for (let v = 1; v <= 3; v++) await store.setRing(ring(v, v))
      await eventually(() => expect(seen.at(-1)?.version).toBe(3))
      await put('ring', JSON.stringify(ring(2, 2)))
      await eventually(() => expect(seen.at(-1)).toEqual(ring(2, 2)))
      await store.setRing(ring(3, 9))
      await eventually(() => expect(seen.at(-1)).toEqual(ring(3, 9)))
    } finally {
      await watch.close()
    }
  })

  it('refuses to create a cluster inside another cluster\'s prefix, or around one', async () => {
    const inner = new EtcdMetadataStore({ hosts: endpoints, prefix: `${prefix}volumes/` })
    await inner.open()
    try {
      await expect(inner.initCluster({ blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama', createdAt: new Date().toISOString() })).rejects.toMatchObject({
        code: 'TORUS_INVALID_ARGUMENT',
        message: expect.stringContaining(`lies inside the cluster at prefix ${prefix}`),
      })
    } finally {
      await inner.close()
    }
    const outerPrefix = prefix.split('/').slice(0, -2).join('/') + '/'
    const outer = new EtcdMetadataStore({ hosts: endpoints, prefix: outerPrefix })
    await outer.open()
    try {
      await expect(outer.initCluster({ blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama', createdAt: new Date().toISOString() })).rejects.toMatchObject({
        code: 'TORUS_INVALID_ARGUMENT',
        message: expect.stringContaining('contains the cluster at prefix'),
      })
      expect(await outer.getClusterConfig()).toBeUndefined()
    } finally {
      await outer.close()
    }
    // A volume named "cluster" is not a nested cluster.
    await store.createVolume({ name: 'cluster', sizeBytes: 1024 * 1024 })
    expect((await store.listVolumes()).map((v) => v.name)).toContain('cluster')
  })
})
