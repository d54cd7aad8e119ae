// Shared set-up for the repair tests: a 3-peer in-process cluster (mod ring, replication 2,
// 4 KiB blocks) with a MemoryMetadataStore for the stale records and real volume locks (repair
// clears records only while the lock is held with its generation, as in a daemon).
import { afterEach } from 'vitest'
import { BlockRef, type PeerId, type VolumeId, type VolumeLock } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { blockKey } from '@torus/ring'
import { recordStaleInMetadata, type DistributedBlockStore, type RepairReport } from '../../src/index.js'
import { startCluster, type Cluster, type ClusterNode, type ClusterOptions } from './cluster.js'

export const B = 4096
let cluster: Cluster | undefined
const closers: (() => Promise<void>)[] = []

afterEach(async () => {
  lockHeld = undefined
  while (closers.length > 0) await closers.pop()!()
  await cluster?.close()
  cluster = undefined
})

export async function setUp(options: Pick<ClusterOptions, 'onStaleFound'> = {}): Promise<{ c: Cluster; metadata: MemoryMetadataStore; volumeId: VolumeId; a: ClusterNode; b: ClusterNode; x: ClusterNode }> {
  const metadata = new MemoryMetadataStore()
  await metadata.open()
  closers.push(() => metadata.close())
  await metadata.initCluster({ blockSizeBytes: B, replication: 2, ringType: 'mod', createdAt: new Date().toISOString() })
  const { id: volumeId } = await metadata.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
  const c = (cluster = await startCluster({ ...options, onDegraded: recordStaleInMetadata(metadata), requestTimeoutMs: 500 }))
  const [a, b, x] = c.nodes as [ClusterNode, ClusterNode, ClusterNode]
  return { c, metadata, volumeId, a, b, x }
}

let lockHeld: VolumeLock | undefined

/**
 * Takes pad's lock for a new holder (releasing the previous test holder's): repair clears
 * records only while the lock is held with its generation, as a daemon's would be.
 */
export async function lockAs(metadata: MemoryMetadataStore): Promise<number> {
  if (lockHeld !== undefined) await metadata.unlockVolume(lockHeld)
  lockHeld = await metadata.lockVolume('pad', 'test', await metadata.grantLease(3_600_000))
  return lockHeld.generation
}

/**
 * Runs repair until `done` holds for its report: a peer just restored is reached once its
 * transport reconnected (a few milliseconds here), as a daemon's periodic repair would find it.
 */
export async function repairUntil(store: DistributedBlockStore, volumeId: VolumeId, metadata: MemoryMetadataStore, done: (r: RepairReport) => boolean, extra: object = {}): Promise<RepairReport> {
  const deadline = Date.now() + 5_000
  for (;;) {
    const report = await store.repairVolume(volumeId, { metadata, ...extra })
    if (done(report)) return report
    if (Date.now() > deadline) throw new Error(`repair did not get there: ${JSON.stringify(report)}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Indexes below `limit` whose replicas include `peer`. */
export function ownedBy(c: Cluster, volumeId: VolumeId, peer: PeerId, limit: number): number[] {
  const ring = c.nodes[0]!.store.ring
  return Array.from({ length: limit }, (_, i) => i).filter((i) => ring.peersFor(blockKey(volumeId, i)).includes(peer))
}

export function blockOn(c: Cluster, volumeId: VolumeId, peers: PeerId[]): BlockRef {
  const ring = c.nodes[0]!.store.ring
  for (let i = 0; i < 1000; i++) {
    const replicas = ring.peersFor(blockKey(volumeId, i))
    if (peers.every((p) => replicas.includes(p))) return new BlockRef(volumeId, i)
  }
  throw new Error('no such block')
}

/** The other replica of `ref` besides `peer`. */
export function otherOwner(c: Cluster, ref: BlockRef, peer: PeerId): ClusterNode {
  return c.byPeer(c.nodes[0]!.store.ring.peersFor(blockKey(ref.volumeId, ref.index)).find((p) => p !== peer)!)
}

/** What `node`'s own store holds for `ref` (undefined when absent). */
export async function held(node: ClusterNode, ref: BlockRef): Promise<number[] | undefined> {
  const block = await node.local.get(ref)
  return block === undefined ? undefined : [...block]
}
