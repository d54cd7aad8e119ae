// Goal: the edges a review of repair found, each reproduced before its fix: a write only a
// peer still stale for the whole volume took is never acknowledged; one bad sector does not shut
// out a copy whose other sectors are the only good ones; a loss a repair's flush finds leaves the
// block readable; stopping a repair during its flush records no healthy replica stale.
// Method: the in-process clusters of repair.test.ts (helpers/repair-setup.ts) and of the cluster
// simulation (helpers/sim-cluster.ts, real crashes and restarts), faults injected by wrapping a
// replica's local store.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { BlockRef, TorusError } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { blockKey } from '@torus/ring'
import { fenceVolume, recordStaleInMetadata } from '../src/index.js'
import { startCluster, type Cluster, type ClusterNode } from './helpers/cluster.js'
import { B, blockOn, lockAs, ownedBy, setUp } from './helpers/repair-setup.js'
import { SimCluster } from './helpers/sim-cluster.js'

/** Holds `node`'s next local writes until `release(fail)`; `hit` resolves when one arrives. */
function gate(node: ClusterNode): { release(fail: boolean): void; hit: Promise<void> } {
  const original = node.local.write.bind(node.local)
  let release!: (fail: boolean) => void
  const opened = new Promise<boolean>((r) => (release = r))
  let hit!: () => void
  const hitP = new Promise<void>((r) => (hit = r))
  node.local.write = async (ref, off, data, opts) => {
    hit()
    if (await opened) throw new TorusError('TORUS_UNAVAILABLE', 'gated write failed')
    return original(ref, off, data, opts)
  }
  return { release, hit: hitP }
}

async function reachable(from: ClusterNode, to: ClusterNode, volumeId: Parameters<ClusterNode['store']['tryAnnounce']>[0]): Promise<void> {
  for (let i = 0; i < 100 && !(await from.store.tryAnnounce(volumeId, from.store.generation(volumeId))).confirmed.includes(to.peer); i++) await new Promise((r) => setTimeout(r, 20))
}

describe('a rejoin that ends while a mutation is in flight', () => {
  it('does not let the peer still stale for the volume be the one acknowledgement', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    c.isolate(a)
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    const ref = blockOn(c, volumeId, [a.peer, x.peer])
    await b.store.write(ref, 0, new Uint8Array(B).fill(0x11))
    for (const i of ownedBy(c, volumeId, a.peer, 40).filter((i) => i !== ref.index).slice(0, 3)) await b.store.write(new BlockRef(volumeId, i), 0, new Uint8Array(B).fill(5))
    await b.store.flush()
    c.restore(a)
    await reachable(b, a, volumeId)
    const ac = new AbortController()
    const repairing = b.store.repairVolume(volumeId, { metadata, signal: ac.signal, bytesPerSecond: 8 * B, concurrency: 1, batchBlocks: 1 }).then((r) => r, (e: unknown) => e)
    // Once a holds its copy of ref, the rejoin sends later writes of ref to a too.
    for (let i = 0; i < 1000 && (await a.local.get(ref))?.[0] !== 0x11; i++) await new Promise((r) => setTimeout(r, 5))
    const g = gate(x)
    const write = b.store.write(ref, 0, new Uint8Array(16).fill(0x22)).then(() => 'acknowledged', (e: unknown) => e)
    await g.hit // held at x, acknowledged by a
    ac.abort() // the repair stops: a stays stale for the whole volume
    expect(await repairing).toMatchObject({ code: 'TORUS_ABORTED' })
    expect(b.store.volumeStaleReplicas(volumeId)).toEqual([a.peer])
    c.isolate(x)
    g.release(true)
    expect(await write).toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    // Repair brings everything back, and the block reads.
    c.restore(x)
    for (let i = 0; i < 60 && b.store.hasStaleReplicas(volumeId); i++) {
      await b.store.repairVolume(volumeId, { metadata }).catch(() => undefined)
      await new Promise((r) => setTimeout(r, 50))
    }
    await b.store.read(ref, 0, new Uint8Array(B))
  }, 20_000)
})

describe('a copy with one bad sector', () => {
  let cluster: Cluster | undefined
  afterEach(async () => {
    await cluster?.close()
    cluster = undefined
  })

  it('is not shut out of the block while another of its sectors is the only good one', async () => {
    const B2 = 8192 // two 4 KiB checksum sectors
    const metadata = new MemoryMetadataStore()
    await metadata.open()
    try {
      await metadata.initCluster({ blockSizeBytes: B2, replication: 2, ringType: 'mod', createdAt: new Date().toISOString() })
      const { id: volumeId } = await metadata.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
      const c = (cluster = await startCluster({ blockSizeBytes: B2, onDegraded: recordStaleInMetadata(metadata), requestTimeoutMs: 500 }))
      const [a, b, x] = c.nodes as [ClusterNode, ClusterNode, ClusterNode]
      const lock = await metadata.lockVolume('pad', 'test', await metadata.grantLease(3_600_000))
      await fenceVolume(b.store, metadata, volumeId, lock.generation)
      const ref = blockOn(c, volumeId, [a.peer, x.peer])
      await b.store.put(ref, new Uint8Array(B2).fill(0x42))
      await b.store.flush()
      const [first, second] = b.store.ring.peersFor(blockKey(volumeId, ref.index)).map((p) => c.byPeer(p))
      // Bit rot behind the replicas' backs: first's sector 1, second's sector 0.
      await first!.local.write(ref, 4096, new Uint8Array(16).fill(0x66))
      await second!.local.write(ref, 0, new Uint8Array(16).fill(0x66))
      const t = new Uint8Array(4096)
      await b.store.read(ref, 4096, t) // first fails its sums, second serves sector 1
      expect(t[0]).toBe(0x42)
      await new Promise((r) => setTimeout(r, 50)) // the whole-block check of `second` fails: nothing is marked
      expect(b.store.staleReplicas(ref)).toEqual([])
      await b.store.read(ref, 0, t) // sector 0 from first
      expect(t[0]).toBe(0x42)
    } finally {
      await metadata.close()
    }
  })
})

describe('a loss a repair flush finds', () => {
  for (const who of ['client', 'repair'] as const) {
    it(`leaves the block readable once a ${who} flush found an unflushed delete lost on every replica`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'torus-repair-edges-'))
      const metadata = new MemoryMetadataStore()
      await metadata.open()
      const B2 = 8192
      await metadata.initCluster({ blockSizeBytes: B2, replication: 2, ringType: 'mod', createdAt: new Date(0).toISOString() })
      const V = (await metadata.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })).id
      const cluster = await SimCluster.start({ dir, peers: 3, replication: 2, blockSizeBytes: B2, capacityBytes: 64 * B2, storagelessGateway: true, onDegraded: () => recordStaleInMetadata(metadata), seed: 1 })
      try {
        const gateway = cluster.peers[3]!
        const g = (await metadata.lockVolume('pad', 'test', await metadata.grantLease(3_600_000))).generation
        await fenceVolume(gateway.store, metadata, V, g)
        const ref = new BlockRef(V, 0)
        const [p, q] = cluster.ring.peersFor(blockKey(V, 0)).map((peer) => cluster.byPeer(peer))
        const r = cluster.storagePeers.find((s) => s !== p && s !== q)!
        await gateway.store.put(ref, new Uint8Array(B2).fill(5))
        await gateway.store.flush()
        // Work for repair: r misses a write of a block it owns.
        let other = 1
        while (!cluster.ring.peersFor(blockKey(V, other)).includes(r.peer)) other++
        cluster.isolate(r)
        await gateway.store.write(new BlockRef(V, other), 0, new Uint8Array(B2).fill(1))
        await gateway.store.flush()
        cluster.restore(r)
        // The delete reaches both replicas; both restart before any flush and bring the block back.
        await gateway.store.delete(ref)
        for (const s of [p!, q!]) {
          await cluster.crash(s)
          await cluster.restart(s)
        }
        for (let tries = 0; ; tries++) {
          try {
            await gateway.store.announce(V, g)
            break
          } catch (err) {
            if (tries > 200) throw err
            await new Promise((resolve) => setTimeout(resolve, 5))
          }
        }
        if (who === 'repair') await gateway.store.repairVolume(V, { metadata })
        // The client is told once, by its flush, whoever found the loss.
        await expect(gateway.store.flush()).rejects.toThrow(/writes were lost/)
        const seen = await gateway.store.get(ref)
        expect(seen?.[0]).toBe(5) // the durable bytes from before the lost delete
        expect(gateway.store.staleReplicas(ref)).toEqual([])
      } finally {
        await cluster.close()
        await metadata.close()
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})

describe('stopping a repair during its flush', () => {
  it('records no healthy replica stale for the client writes that flush carried', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    const stale = blockOn(c, volumeId, [x.peer])
    c.isolate(x)
    await b.store.write(stale, 0, new Uint8Array(B).fill(1))
    c.restore(x)
    await reachable(b, x, volumeId)
    // Client writes (not flushed yet) to blocks on {a, b}.
    const mine = ownedBy(c, volumeId, a.peer, 60).filter((i) => b.store.ring.peersFor(blockKey(volumeId, i)).includes(b.peer)).slice(0, 5)
    for (const i of mine) await b.store.write(new BlockRef(volumeId, i), 0, new Uint8Array(64).fill(7))
    // a's flush is slow (a busy disk), but answers within the request timeout.
    const flush = a.local.flush.bind(a.local)
    let release!: () => void
    const slow = new Promise<void>((r) => (release = r))
    let entered!: () => void
    const inFlush = new Promise<void>((r) => (entered = r))
    a.local.flush = async (o) => {
      entered()
      await slow
      return flush(o)
    }
    const ac = new AbortController()
    const repairing = b.store.repairVolume(volumeId, { metadata, signal: ac.signal }).then((r) => r, (e: unknown) => e)
    await inFlush
    ac.abort() // RepairLoop.stop(), e.g. on shutdown
    await new Promise((r) => setTimeout(r, 100))
    release()
    expect(await repairing).toMatchObject({ code: 'TORUS_ABORTED' })
    expect(mine.filter((i) => b.store.staleReplicas(new BlockRef(volumeId, i)).includes(a.peer))).toEqual([])
    expect((await metadata.listStaleReplicas(volumeId)).filter((r) => r.peer === a.peer)).toEqual([])
  }, 20_000)
})
