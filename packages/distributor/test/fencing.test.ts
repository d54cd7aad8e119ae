// Goal: what a new lock holder does before serving (fenceVolume), what a storage-less gateway
// can do, and that a stale holder coming back cannot change data.
// Method: the 3-peer in-process cluster (replication 2) plus a MemoryMetadataStore for the
// stale-replica records; a partition is LoopbackHub.isolate.
import { afterEach, describe, expect, it } from 'vitest'
import { BlockRef, type PeerId, type VolumeId } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { blockKey } from '@torus/ring'
import { LoopbackTransport } from '@torus/transport'
import { DistributedBlockStore, fenceVolume, recordStaleInMetadata } from '../src/index.js'
import { startCluster, testPeer, type Cluster } from './helpers/cluster.js'

const B = 4096
let cluster: Cluster | undefined
const closers: (() => Promise<void>)[] = []

afterEach(async () => {
  while (closers.length > 0) await closers.pop()!()
  await cluster?.close()
  cluster = undefined
})

async function metadataWithVolume(): Promise<{ metadata: MemoryMetadataStore; volumeId: VolumeId }> {
  const metadata = new MemoryMetadataStore()
  await metadata.open()
  closers.push(() => metadata.close())
  await metadata.initCluster({ blockSizeBytes: B, replication: 2, ringType: 'mod', createdAt: new Date().toISOString() })
  const info = await metadata.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
  return { metadata, volumeId: info.id }
}

/** The first block of `volumeId` whose replicas are exactly the two given peers, in either order. */
function blockOn(c: Cluster, volumeId: VolumeId, peers: PeerId[]): BlockRef {
  const ring = c.nodes[0]!.store.ring
  for (let i = 0; i < 1000; i++) {
    const replicas = ring.peersFor(blockKey(volumeId, i))
    if (replicas.length === peers.length && peers.every((p) => replicas.includes(p))) return new BlockRef(volumeId, i)
  }
  throw new Error('no such block')
}

describe('fenceVolume', () => {
  it('announces to every member, and records one it cannot reach stale for the whole volume before serving', async () => {
    const c = (cluster = await startCluster())
    const { metadata, volumeId } = await metadataWithVolume()
    const [a, b, x] = c.nodes as [NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>]
    c.isolate(a)
    const { missed } = await fenceVolume(b.store, metadata, volumeId, 7)
    expect(missed).toEqual([a.peer])
    expect(b.store.volumeStaleReplicas(volumeId)).toEqual([a.peer])
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => [r.peer, r.index, r.generation])).toEqual([[a.peer, 'all', 7]])
    expect(b.store.replica.generation(volumeId)).toBe(7)
    expect(x.store.replica.generation(volumeId)).toBe(7)

    // A block on {a, x}: written to x only, read from x only, although a is reachable again.
    const ref = blockOn(c, volumeId, [a.peer, x.peer])
    c.restore(a)
    await b.store.write(ref, 0, new Uint8Array(B).fill(0x5a))
    expect(await a.local.has(ref)).toBe(false)
    expect((await x.local.get(ref))?.[0]).toBe(0x5a)
    await a.local.put(ref, new Uint8Array(B).fill(0xee)) // whatever a holds must not be served
    const target = new Uint8Array(B)
    await b.store.read(ref, 0, target)
    expect(target[0]).toBe(0x5a)

    // Another gateway taking the volume over later loads the record from metadata.
    const { missed: none } = await fenceVolume(x.store, metadata, volumeId, 8)
    expect(none).toEqual([])
    expect(x.store.volumeStaleReplicas(volumeId)).toEqual([a.peer])
    await x.store.read(ref, 0, target)
    expect(target[0]).toBe(0x5a)
  })

  it('records the member a read-only tenure missed too: the old holder, cut off, may have written to it alone', async () => {
    const c = (cluster = await startCluster())
    const { metadata, volumeId } = await metadataWithVolume()
    const [a, b, x] = c.nodes as [NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>]
    const ref = blockOn(c, volumeId, [a.peer, x.peer])
    // Real locks: repair clears records only while the volume's lock is held with its generation.
    let lock = await metadata.lockVolume('pad', 'a', await metadata.grantLease(3_600_000))
    await fenceVolume(a.store, metadata, volumeId, lock.generation)
    await a.store.write(ref, 0, new Uint8Array(B).fill(0x11))
    await a.store.flush()
    // a (the holder, with a replica of ref) is cut off; x takes over and only reads.
    c.isolate(a)
    await metadata.unlockVolume(lock)
    lock = await metadata.lockVolume('pad', 'x', await metadata.grantLease(3_600_000))
    expect((await fenceVolume(x.store, metadata, volumeId, lock.generation)).missed).toEqual([a.peer])
    // The old holder writes on: its own replica takes it, x refuses it.
    await expect(a.store.write(ref, 0, new Uint8Array(B).fill(0xbb))).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    expect((await a.local.get(ref))?.[0]).toBe(0xbb)
    // a comes back and holds the volume again: it must not serve its own divergent copy.
    c.restore(a)
    await metadata.unlockVolume(lock)
    lock = await metadata.lockVolume('pad', 'a', await metadata.grantLease(3_600_000))
    await fenceVolume(a.store, metadata, volumeId, lock.generation, undefined, { retries: 20, retryDelayMs: 50 })
    expect(a.store.volumeStaleReplicas(volumeId)).toEqual([a.peer])
    const target = new Uint8Array(B)
    await a.store.read(ref, 0, target)
    expect(target[0]).toBe(0x11)
    // Repair makes it a replica again, with x's bytes.
    for (let i = 0; i < 100 && a.store.volumeStaleReplicas(volumeId).length > 0; i++) {
      await a.store.repairVolume(volumeId, { metadata })
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(a.store.volumeStaleReplicas(volumeId)).toEqual([])
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
    expect((await a.local.get(ref))?.[0]).toBe(0x11)
    void b
  })

  it('fails the takeover, serving nothing, when the record of a missed member cannot be written', async () => {
    const c = (cluster = await startCluster())
    const { metadata, volumeId } = await metadataWithVolume()
    const [a, b] = c.nodes as [NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>]
    const flaky = {
      listStaleReplicas: (id: VolumeId) => metadata.listStaleReplicas(id),
      addStaleReplicas: async () => {
        throw new Error('etcd down')
      },
    }
    c.isolate(a)
    await expect(fenceVolume(b.store, flaky, volumeId, 9)).rejects.toThrow('etcd down')
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
  })

  it('loads per-block stale records written by a degraded write through another gateway', async () => {
    const { metadata, volumeId } = await metadataWithVolume()
    const c = (cluster = await startCluster({ onDegraded: recordStaleInMetadata(metadata) }))
    const [a, b, x] = c.nodes as [NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>]
    await fenceVolume(b.store, metadata, volumeId, 1)
    const ref = blockOn(c, volumeId, [a.peer, x.peer])
    await b.store.write(ref, 0, new Uint8Array(B).fill(1))
    c.isolate(a)
    await b.store.write(ref, 0, new Uint8Array(B).fill(2)) // degraded: a missed it
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => [r.peer, r.index])).toEqual([[a.peer, ref.index]])
    c.restore(a)
    await fenceVolume(x.store, metadata, volumeId, 2)
    expect(x.store.staleReplicas(ref)).toEqual([a.peer])
    // a still holds the old bytes; a gateway on a itself must not read its own stale copy.
    await fenceVolume(a.store, metadata, volumeId, 3)
    const target = new Uint8Array(B)
    await a.store.read(ref, 0, target)
    expect(target[0]).toBe(2)
  })

  it('tries a silent member again before marking it stale for the whole volume', async () => {
    const c = (cluster = await startCluster())
    const { metadata, volumeId } = await metadataWithVolume()
    const [a, b] = c.nodes as [NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>]
    c.isolate(a)
    setTimeout(() => c.restore(a), 60)
    const { missed } = await fenceVolume(b.store, metadata, volumeId, 3, undefined, { retries: 20, retryDelayMs: 50 })
    expect(missed).toEqual([])
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
    expect(a.store.replica.generation(volumeId)).toBe(3)
  })

  it('reaches a member back from an outage at once, though its connection is still in reconnect back-off', async () => {
    // A back-off of 30-60 s: without an immediate redial the member would be missed.
    const c = (cluster = await startCluster({ reconnectDelayMs: 60_000 }))
    const { metadata, volumeId } = await metadataWithVolume()
    const [a, b] = [c.nodes[0]!, c.nodes[1]!]
    expect((await fenceVolume(b.store, metadata, volumeId, 1)).missed).toEqual([])
    c.isolate(a)
    await new Promise((r) => setTimeout(r, 50)) // b's connection notices, and waits to redial
    c.restore(a)
    expect((await fenceVolume(b.store, metadata, volumeId, 2)).missed).toEqual([])
    expect(a.store.replica.generation(volumeId)).toBe(2)
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
  })

  it('refuses the takeover when a member has seen a newer generation', async () => {
    const c = (cluster = await startCluster())
    const { metadata, volumeId } = await metadataWithVolume()
    await fenceVolume(c.nodes[0]!.store, metadata, volumeId, 5)
    await expect(fenceVolume(c.nodes[1]!.store, metadata, volumeId, 4)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
  })

  it('is not raised by a malformed request: a refused write or put leaves the generation as it was', async () => {
    const c = (cluster = await startCluster())
    const { metadata, volumeId } = await metadataWithVolume()
    await fenceVolume(c.nodes[0]!.store, metadata, volumeId, 5)
    const replica = c.nodes[1]!.store.replica
    const ref = new BlockRef(volumeId, 0)
    await expect(replica.write(ref, B - 2, new Uint8Array(16), Number.MAX_SAFE_INTEGER)).rejects.toThrow(/outside the 4096-byte block/)
    await expect(replica.put(ref, new Uint8Array(B - 1), Number.MAX_SAFE_INTEGER)).rejects.toThrow(RangeError)
    expect(replica.generation(volumeId)).toBe(5)
    // The holder still writes.
    await c.nodes[0]!.store.write(ref, 0, new Uint8Array(B).fill(7))
    await c.nodes[0]!.store.flush()
  })
})

describe('a stale holder after a partition', () => {
  it('cannot change data once a new holder took over: its writes are refused by fencing', async () => {
    const c = (cluster = await startCluster())
    const { metadata, volumeId } = await metadataWithVolume()
    const [a, b, x] = c.nodes as [NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>, NonNullable<Cluster['nodes'][0]>]
    await fenceVolume(a.store, metadata, volumeId, 1)
    const ref = blockOn(c, volumeId, [b.peer, x.peer])
    await a.store.write(ref, 0, new Uint8Array(B).fill(1))
    c.isolate(a)
    await fenceVolume(b.store, metadata, volumeId, 2)
    await b.store.write(ref, 0, new Uint8Array(B).fill(2))
    c.restore(a)
    await expect(a.store.write(ref, 0, new Uint8Array(B).fill(3))).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await expect(a.store.flush()).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    const target = new Uint8Array(B)
    await b.store.read(ref, 0, target)
    expect(target[0]).toBe(2)
    await x.local.read(ref, 0, target)
    expect(target[0]).toBe(2)
  })
})

describe('a storage-less gateway', () => {
  it('writes, reads and flushes through the replicas without holding any', async () => {
    const c = (cluster = await startCluster())
    const { metadata, volumeId } = await metadataWithVolume()
    const transport = new LoopbackTransport({ hub: c.hub, clusterId: 'test-cluster', peerId: testPeer(8), secret: 'distributor-test-secret-0123456789' })
    closers.push(() => transport.close())
    const addresses = new Map(c.nodes.map((n) => [n.peer, n.address]))
    const gateway = new DistributedBlockStore({ peerId: testPeer(8), ring: c.nodes[0]!.store.ring, transport, blockSizeBytes: B, peerAddress: (p) => addresses.get(p) })
    await gateway.open()
    closers.push(() => gateway.close())
    expect(gateway.hasReplica).toBe(false)
    expect(() => gateway.replica).toThrow(TypeError)
    await fenceVolume(gateway, metadata, volumeId, 1)
    const ref = new BlockRef(volumeId, 3)
    await gateway.write(ref, 100, new Uint8Array([1, 2, 3]))
    await gateway.flush()
    const target = new Uint8Array(3)
    await gateway.read(ref, 100, target)
    expect([...target]).toEqual([1, 2, 3])
    for (const peer of c.nodes[0]!.store.ring.peersFor(blockKey(volumeId, 3))) expect(await c.byPeer(peer).local.has(ref)).toBe(true)
    expect(gateway.usage().capacityBytes).toBe(0)
  })

  it('needs a block size when it has no local store', () => {
    expect(() => new DistributedBlockStore({ peerId: testPeer(8), ring: { descriptor: { version: 1, type: 'single', replication: 1, members: [] } } as never, transport: {} as never, peerAddress: () => undefined })).toThrow(/blockSizeBytes/)
  })
})
