// Goal: what the gateway acknowledges stays readable, exactly, through a replica restart before a
// flush and through a takeover after a stale replica could not be recorded (DESIGN.md, data
// path points 2, 3 and 5). Both cases were found by cluster.sim.test.ts.
// Method: the crash-and-restart cluster of that simulation (helpers/sim-cluster.ts): file-backed
// replicas with persistent replica state, a storage-less gateway, a MemoryMetadataStore for the
// stale records; the block is read from a replica that should not serve it.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BlockRef, isTorusError, type PeerId, type VolumeId } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { blockKey } from '@torus/ring'
import { fenceVolume, recordStaleInMetadata, type DegradedHook } from '../src/index.js'
import { SimCluster, type SimPeer } from './helpers/sim-cluster.js'

const B = 8192
let dir: string
let cluster: SimCluster
let metadata: MemoryMetadataStore
let V: VolumeId
/** When set, the stale records of degraded writes fail to be written (metadata unreachable). */
let metadataDown = false

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'torus-durability-'))
  metadata = new MemoryMetadataStore()
  await metadata.open()
  await metadata.initCluster({ blockSizeBytes: B, replication: 2, ringType: 'mod', createdAt: new Date(0).toISOString() })
  V = (await metadata.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })).id
  metadataDown = false
  const record = recordStaleInMetadata(metadata)
  const hook: DegradedHook = async (ref, stale, info) => {
    if (metadataDown) throw new Error('metadata unreachable')
    await record(ref, stale, info)
  }
  cluster = await SimCluster.start({ dir, peers: 3, replication: 2, blockSizeBytes: B, capacityBytes: 64 * B, storagelessGateway: true, onDegraded: () => hook, seed: 1 })
})

afterEach(async () => {
  await cluster.close()
  await metadata.close()
  await rm(dir, { recursive: true, force: true })
})

const gatewayOf = (): SimPeer => cluster.peers[3]!
/** The replica the storage-less gateway reads block 0 from first (ring order). */
const firstReplica = (): SimPeer => cluster.byPeer(cluster.ring.peersFor(blockKey(V, 0))[0]!)

/** Waits until `gateway` is connected to every storage peer again (reconnects take a few ms). */
async function reconnected(gateway: SimPeer, generation: number): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      await gateway.store.announce(V, generation)
      return
    } catch (err) {
      if (tries > 200) throw err
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
}

/** A flush that resolves must have made the acknowledged writes readable; one that refuses is honest too. */
async function flushThenGet(gateway: SimPeer, ref: BlockRef): Promise<Uint8Array | 'refused'> {
  try {
    await gateway.store.flush()
  } catch (err) {
    expect(isTorusError(err, 'TORUS_UNAVAILABLE')).toBe(true)
    return 'refused'
  }
  return (await gateway.store.get(ref)) ?? new Uint8Array(B)
}

describe('DistributedBlockStore flush across a replica restart', () => {
  // The restarted replica lost the write (a new block's allocation, or a delete, lives only in
  // the file store's in-memory index until its flush); the gateway reconnects, flushes it
  // without noticing the restart, and later reads the loss back from it.
  it('does not acknowledge a flush that a restarted replica lost a new block of', async () => {
    const gateway = gatewayOf()
    await fenceVolume(gateway.store, metadata, V, 1)
    const ref = new BlockRef(V, 0)
    await gateway.store.write(ref, 0, new Uint8Array(16).fill(7))
    await cluster.crash(firstReplica())
    await cluster.restart(firstReplica())
    await reconnected(gateway, 1)
    const seen = await flushThenGet(gateway, ref)
    if (seen !== 'refused') expect([...seen.subarray(0, 16)]).toEqual(Array(16).fill(7))
  })

  it('does not read a block from a replica that restarted since it acknowledged unflushed writes of it', async () => {
    const gateway = gatewayOf()
    await fenceVolume(gateway.store, metadata, V, 1)
    const ref = new BlockRef(V, 0)
    await gateway.store.put(ref, new Uint8Array(B).fill(5))
    await gateway.store.flush()
    await gateway.store.write(ref, 0, new Uint8Array(16).fill(6))
    const first = firstReplica()
    await cluster.crash(first)
    await cluster.restart(first)
    await reconnected(gateway, 1)
    // The other replica has the write: the read comes from it, and the restarted one is out.
    const seen = new Uint8Array(16)
    await gateway.store.read(ref, 0, seen)
    expect([...seen]).toEqual(Array(16).fill(6))
    expect(gateway.store.staleReplicas(ref)).toEqual([first.peer])
    await gateway.store.flush()
    expect((await metadata.listStaleReplicas(V)).map((r) => [r.peer, r.index])).toEqual([[first.peer, 0]])
  })

  it('does not acknowledge a flush that a restarted replica lost a delete of', async () => {
    const gateway = gatewayOf()
    await fenceVolume(gateway.store, metadata, V, 1)
    const ref = new BlockRef(V, 0)
    await gateway.store.put(ref, new Uint8Array(B).fill(9))
    await gateway.store.flush()
    await gateway.store.delete(ref)
    await cluster.crash(firstReplica())
    await cluster.restart(firstReplica())
    await reconnected(gateway, 1)
    const seen = await flushThenGet(gateway, ref)
    if (seen !== 'refused') expect(seen[0]).toBe(0)
  })
})

describe('DistributedBlockStore stale replicas the metadata never heard of', () => {
  it('records a mark it could not record before, when the same gateway takes the volume again', async () => {
    const gateway = gatewayOf()
    await fenceVolume(gateway.store, metadata, V, 1)
    const ref = new BlockRef(V, 0)
    const missed = firstReplica()
    await gateway.store.write(ref, 0, new Uint8Array(16).fill(1))
    cluster.isolate(missed)
    metadataDown = true
    await expect(gateway.store.write(ref, 0, new Uint8Array(16).fill(2))).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    metadataDown = false
    cluster.restore(missed)
    await reconnected(gateway, 1)
    // The volume is closed and opened again by the same gateway (a new tenure).
    await fenceVolume(gateway.store, metadata, V, 2)
    expect((await metadata.listStaleReplicas(V)).map((r) => [r.peer, r.index])).toEqual([[missed.peer, 0]])
    expect(gateway.store.staleReplicas(ref)).toEqual([missed.peer])
  })

  // A degraded write whose stale record could not be written fails, but leaves the replica that
  // missed it stale in the gateway's memory only. Later writes skip that replica and complete
  // with every *target* acked, so nothing records it either. The next holder loads the records,
  // finds none for it, and reads the block from it: bytes that acknowledged, flushed writes replaced.
  it('never lets a later holder read a replica that earlier acknowledged writes skipped', async () => {
    const gateway = gatewayOf()
    await fenceVolume(gateway.store, metadata, V, 1)
    const ref = new BlockRef(V, 0)
    const missed = firstReplica()
    await gateway.store.write(ref, 0, new Uint8Array(16).fill(1))
    cluster.isolate(missed)
    metadataDown = true
    await expect(gateway.store.write(ref, 0, new Uint8Array(16).fill(2))).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    metadataDown = false
    cluster.restore(missed)
    await reconnected(gateway, 1)
    await gateway.store.write(ref, 0, new Uint8Array(16).fill(3)) // acked: `missed` is skipped as stale
    await gateway.store.flush()
    expect(gateway.store.staleReplicas(ref)).toEqual([missed.peer])
    // The write of 3s recorded the skipped replica before it was acknowledged.
    expect((await metadata.listStaleReplicas(V)).map((r) => [r.peer, r.index])).toEqual([[missed.peer, 0]])

    // A peer holding no replica of the block takes over, so it reads in ring order.
    const next = cluster.storagePeers.find((p) => !cluster.ring.peersFor(blockKey(V, 0)).includes(p.peer as PeerId))!
    await fenceVolume(next.store, metadata, V, 2)
    const seen = new Uint8Array(16)
    await next.store.read(ref, 0, seen)
    expect([...seen]).toEqual(Array(16).fill(3))
  })
})
