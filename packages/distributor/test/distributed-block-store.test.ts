// Goal: the gateway's replication rules: fan-out, acknowledgement and the degraded hook, stale
// replicas, flush, fencing and checksum failover.
// Method: a 3-peer in-process cluster (replication 2); faults come from LoopbackHub.isolate and
// from corrupting a replica's local store directly; spies on Replica methods show who served what.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { BlockRef, type PeerId } from '@torus/core'
import { blockKey } from '@torus/ring'
import type { DegradedHook } from '../src/index.js'
import { startCluster, type Cluster, type ClusterNode, type ClusterOptions } from './helpers/cluster.js'

const B = 4096
let cluster: Cluster | undefined

afterEach(async () => {
  await cluster?.close()
  cluster = undefined
})

async function start(options: ClusterOptions = {}): Promise<Cluster> {
  cluster = await startCluster(options)
  return cluster
}

/** A block of volume 1 whose replicas satisfy `want` (given in ring order). */
function findRef(c: Cluster, want: (replicas: PeerId[]) => boolean, volume = 1): { ref: BlockRef; replicas: ClusterNode[] } {
  const ring = c.nodes[0]!.store.ring
  for (let i = 0; i < 1000; i++) {
    const replicas = ring.peersFor(blockKey(volume, i))
    if (want(replicas)) return { ref: new BlockRef(volume, i), replicas: replicas.map((p) => c.byPeer(p)) }
  }
  throw new Error('no such block')
}

const remoteOnly = (c: Cluster) => findRef(c, (r) => !r.includes(c.nodes[0]!.peer))
const withLocal = (c: Cluster) => findRef(c, (r) => r[1] === c.nodes[0]!.peer)

/**
 * Restores `node` and waits until the gateway's link to it is back (isolation drops the link and
 * it redials with back-off): a put to a block `node` holds must reach every replica.
 */
async function restoreAndReconnect(c: Cluster, node: ClusterNode): Promise<void> {
  c.restore(node)
  const probe = findRef(c, (r) => r.includes(node.peer) && r.every((p) => p !== c.nodes[0]!.peer), 99).ref
  const gateway = c.nodes[0]!.store
  await vi.waitFor(
    async () => {
      await gateway.put(probe, new Uint8Array(B)).catch(() => {})
      await gateway.flush().catch(() => {})
      expect(gateway.staleReplicas(probe)).toEqual([])
    },
    { timeout: 2_000, interval: 10 },
  )
}

function bytes(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => ((i * 7 + seed * 13) & 0xff) | 1)
}

function recorder(): { hook: DegradedHook; calls: { ref: string; stale: PeerId[] }[] } {
  const calls: { ref: string; stale: PeerId[] }[] = []
  return { calls, hook: async (ref, stale) => void calls.push({ ref: ref.toString(), stale: [...stale] }) }
}

describe('DistributedBlockStore writes', () => {
  it('writes to every replica the ring names and to no other peer', async () => {
    const c = await start()
    const { ref, replicas } = remoteOnly(c)
    await c.nodes[0]!.store.write(ref, 100, bytes(50, 1))
    for (const n of replicas) expect((await n.local.get(ref))!.subarray(100, 150)).toEqual(bytes(50, 1))
    expect(await c.nodes[0]!.local.has(ref)).toBe(false)
  })

  it('sends a sub-block write as only its own bytes', async () => {
    const c = await start()
    const { ref, replicas } = remoteOnly(c)
    const spies = replicas.map((n) => vi.spyOn(n.store.replica, 'write'))
    await c.nodes[0]!.store.write(ref, 1000, bytes(10, 2))
    for (const spy of spies) {
      expect(spy).toHaveBeenCalledTimes(1)
      expect(spy.mock.calls[0]![1]).toBe(1000)
      expect(spy.mock.calls[0]![2].byteLength).toBe(10)
    }
  })

  it('fails a write that reached only some replicas with TORUS_UNAVAILABLE when there is no hook', async () => {
    const c = await start()
    const { ref, replicas } = remoteOnly(c)
    c.isolate(replicas[0]!)
    await expect(c.nodes[0]!.store.write(ref, 0, bytes(8, 3))).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    // The replica that missed it is still never read for this block.
    expect(c.nodes[0]!.store.staleReplicas(ref)).toEqual([replicas[0]!.peer])
  })

  it('acknowledges a degraded write once onDegraded resolves, and records the stale replica', async () => {
    const rec = recorder()
    const c = await start({ onDegraded: rec.hook })
    const { ref, replicas } = remoteOnly(c)
    c.isolate(replicas[1]!)
    await c.nodes[0]!.store.write(ref, 0, bytes(8, 4))
    expect(rec.calls).toEqual([{ ref: ref.toString(), stale: [replicas[1]!.peer] }])
    expect(c.nodes[0]!.store.staleReplicas(ref)).toEqual([replicas[1]!.peer])
  })

  it('fails the write with TORUS_UNAVAILABLE when onDegraded rejects', async () => {
    const c = await start({ onDegraded: async () => Promise.reject(new Error('etcd down')) })
    const { ref, replicas } = remoteOnly(c)
    c.isolate(replicas[1]!)
    await expect(c.nodes[0]!.store.write(ref, 0, bytes(8, 5))).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
  })

  it('fails with TORUS_UNAVAILABLE and calls no hook when no replica acked', async () => {
    const rec = recorder()
    const c = await start({ onDegraded: rec.hook })
    const { ref, replicas } = remoteOnly(c)
    for (const n of replicas) c.isolate(n)
    await expect(c.nodes[0]!.store.write(ref, 0, bytes(8, 6))).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    await expect(c.nodes[0]!.store.put(ref, bytes(B, 6))).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    expect(rec.calls).toEqual([])
  })

  it('fails with TORUS_OUT_OF_SPACE when every replica of the block is full', async () => {
    const c = await start({ capacityBytes: B })
    const { ref, replicas } = remoteOnly(c)
    const same = findRef(c, (r) => r.join() === replicas.map((n) => n.peer).join() && r.length === 2, 3).ref
    await c.nodes[0]!.store.write(ref, 0, bytes(8, 27))
    await expect(c.nodes[0]!.store.write(same, 0, bytes(8, 28))).rejects.toMatchObject({ code: 'TORUS_OUT_OF_SPACE' })
  })

  it('makes a stale replica current again with a whole-block put, once a flush made it durable there', async () => {
    const rec = recorder()
    const c = await start({ onDegraded: rec.hook })
    const { ref, replicas } = remoteOnly(c)
    c.isolate(replicas[0]!)
    await c.nodes[0]!.store.write(ref, 0, bytes(8, 7))
    await restoreAndReconnect(c, replicas[0]!)
    await c.nodes[0]!.store.put(ref, bytes(B, 8))
    expect(await replicas[0]!.local.get(ref)).toEqual(bytes(B, 8))
    // A restart before the flush could bring its stale copy back: still stale until then.
    expect(c.nodes[0]!.store.staleReplicas(ref)).toEqual([replicas[0]!.peer])
    await c.nodes[0]!.store.flush()
    expect(c.nodes[0]!.store.staleReplicas(ref)).toEqual([])
  })
})

describe('DistributedBlockStore reads', () => {
  it('reads from the local replica when this peer holds one', async () => {
    const c = await start()
    const { ref, replicas } = withLocal(c)
    await c.nodes[0]!.store.write(ref, 0, bytes(16, 9))
    const remote = vi.spyOn(replicas[0]!.store.replica, 'read')
    const target = new Uint8Array(16)
    expect(await c.nodes[0]!.store.read(ref, 0, target)).toBe(true)
    expect(target).toEqual(bytes(16, 9))
    expect(remote).not.toHaveBeenCalled()
  })

  it('never reads a block from a replica that is stale for it', async () => {
    const rec = recorder()
    const c = await start({ onDegraded: rec.hook })
    const { ref, replicas } = remoteOnly(c)
    await c.nodes[0]!.store.put(ref, bytes(B, 10))
    c.isolate(replicas[0]!)
    await c.nodes[0]!.store.write(ref, 0, bytes(100, 11))
    await restoreAndReconnect(c, replicas[0]!)
    const staleRead = vi.spyOn(replicas[0]!.store.replica, 'read')
    const expected = bytes(B, 10)
    expected.set(bytes(100, 11), 0)
    expect(await c.nodes[0]!.store.get(ref)).toEqual(expected)
    expect(staleRead).not.toHaveBeenCalled()
  })

  it('fails over to the next replica when the first is unreachable', async () => {
    const c = await start()
    const { ref, replicas } = remoteOnly(c)
    await c.nodes[0]!.store.put(ref, bytes(B, 12))
    c.isolate(replicas[0]!)
    expect(await c.nodes[0]!.store.get(ref)).toEqual(bytes(B, 12))
  })

  it('tries a peer whose read just failed last for other blocks, and first again once it answers', async () => {
    const c = await start()
    const first = remoteOnly(c)
    const down = first.replicas[0]!
    // Another block, away from the gateway, whose first replica is the same peer.
    const other = findRef(c, (r) => r[0] === down.peer && !r.includes(c.nodes[0]!.peer), 2)
    const gateway = c.nodes[0]!.store
    await gateway.put(first.ref, bytes(B, 14))
    await gateway.put(other.ref, bytes(B, 15))
    c.isolate(down)
    expect(await gateway.get(first.ref)).toEqual(bytes(B, 14))
    await restoreAndReconnect(c, down)
    const reads = vi.spyOn(down.store.replica, 'read')
    expect(await gateway.get(other.ref)).toEqual(bytes(B, 15))
    expect(reads).not.toHaveBeenCalled()
    // It still answers when it is the only one left, and then it is trusted again.
    c.isolate(other.replicas[1]!)
    await vi.waitFor(async () => expect(await gateway.get(other.ref)).toEqual(bytes(B, 15)), { timeout: 2_000, interval: 20 })
    c.restore(other.replicas[1]!)
    reads.mockClear()
    expect(await gateway.get(other.ref)).toEqual(bytes(B, 15))
    expect(reads).toHaveBeenCalledTimes(1)
  })

  it('fails a read with TORUS_UNAVAILABLE, never zeros, when no replica is reachable', async () => {
    const c = await start()
    const { ref, replicas } = remoteOnly(c)
    await c.nodes[0]!.store.put(ref, bytes(B, 13))
    for (const n of replicas) c.isolate(n)
    await expect(c.nodes[0]!.store.get(ref)).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    await expect(c.nodes[0]!.store.read(ref, 0, new Uint8Array(8))).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
  })

  it('detects corrupt sectors on the local replica and serves the block from the next one', async () => {
    const c = await start()
    const { ref } = withLocal(c)
    const gateway = c.nodes[0]!
    await gateway.store.put(ref, bytes(B, 14))
    // Flip bytes under the replica's feet, in its second sector... of a 4 KiB block: sector 0.
    await gateway.local.write(ref, 200, Uint8Array.of(0, 0, 0))
    await expect(gateway.store.replica.read(ref, 0, new Uint8Array(B))).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    expect(await gateway.store.get(ref)).toEqual(bytes(B, 14))
  })

  it('fails over when a remote replica reports corruption', async () => {
    const c = await start()
    const { ref, replicas } = remoteOnly(c)
    await c.nodes[0]!.store.put(ref, bytes(B, 15))
    await replicas[0]!.local.write(ref, 4000, Uint8Array.of(0xff ^ bytes(B, 15)[4000]!))
    const target = new Uint8Array(96)
    expect(await c.nodes[0]!.store.read(ref, 4000, target)).toBe(true)
    expect(target).toEqual(bytes(B, 15).subarray(4000))
  })
})

describe('DistributedBlockStore checksums on larger blocks', () => {
  it('verifies only the sectors a read touches, and keeps partial writes verifiable', async () => {
    const c = await start({ blockSizeBytes: 16 * 1024 })
    const { ref, replicas } = remoteOnly(c)
    const gw = c.nodes[0]!.store
    await gw.write(ref, 4090, bytes(20, 16)) // straddles sectors 0 and 1
    await replicas[0]!.local.write(ref, 12_000, Uint8Array.of(9)) // corrupt sector 2 on the first replica
    const target = new Uint8Array(20)
    await replicas[0]!.store.replica.read(ref, 4090, target)
    expect(target).toEqual(bytes(20, 16))
    await expect(replicas[0]!.store.replica.read(ref, 8192, new Uint8Array(10))).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    const whole = (await gw.get(ref))!
    expect(whole.subarray(4090, 4110)).toEqual(bytes(20, 16))
    expect(whole[12_000]).toBe(0)
  })
})

describe('DistributedBlockStore flush', () => {
  it('flushes the local store and every peer that received writes since the last flush', async () => {
    const c = await start()
    const a = remoteOnly(c)
    const spies = c.nodes.map((n) => vi.spyOn(n.store.replica, 'flush'))
    await c.nodes[0]!.store.write(a.ref, 0, bytes(8, 17))
    await c.nodes[0]!.store.flush()
    const flushed = c.nodes.filter((_, i) => spies[i]!.mock.calls.length > 0).map((n) => n.peer)
    expect(new Set(flushed)).toEqual(new Set([c.nodes[0]!.peer, ...a.replicas.map((n) => n.peer)]))
    // Nothing written since: only the local store is flushed again.
    for (const s of spies) s.mockClear()
    await c.nodes[0]!.store.flush()
    expect(spies.map((s) => s.mock.calls.length)).toEqual([1, 0, 0])
  })

  it('rejects when a written replica cannot flush, and asks it again on the next flush', async () => {
    const c = await start()
    const { ref, replicas } = remoteOnly(c)
    await c.nodes[0]!.store.write(ref, 0, bytes(8, 18))
    c.isolate(replicas[0]!)
    await expect(c.nodes[0]!.store.flush()).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    c.restore(replicas[0]!)
    const spy = vi.spyOn(replicas[0]!.store.replica, 'flush')
    await vi.waitFor(() => c.nodes[0]!.store.flush(), { timeout: 2_000, interval: 20 })
    expect(spy).toHaveBeenCalled()
  })
})

describe('DistributedBlockStore degraded flush', () => {
  it('completes when a written replica is unreachable but another made the block durable, recording it stale first', async () => {
    const rec = recorder()
    const c = await start({ onDegraded: rec.hook })
    const gateway = c.nodes[0]!.store
    const { ref, replicas } = remoteOnly(c)
    await gateway.write(ref, 0, bytes(8, 21))
    c.isolate(replicas[1]!)
    await gateway.flush()
    expect(rec.calls).toEqual([{ ref: ref.toString(), stale: [replicas[1]!.peer] }])
    expect(gateway.staleReplicas(ref)).toEqual([replicas[1]!.peer])
    // Nothing is owed any more: the next flush does not fail on the isolated replica.
    await gateway.flush()
    const target = new Uint8Array(8)
    await gateway.read(ref, 0, target)
    expect(target).toEqual(bytes(8, 21))
  })

  it('fails, and records nothing, when no other replica made the block durable', async () => {
    const rec = recorder()
    const c = await start({ onDegraded: rec.hook })
    const gateway = c.nodes[0]!.store
    const { ref, replicas } = remoteOnly(c)
    await gateway.write(ref, 0, bytes(8, 22))
    c.isolate(replicas[0]!)
    c.isolate(replicas[1]!)
    await expect(gateway.flush()).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    expect(rec.calls).toEqual([])
    // Both still owe the write: once they are back, a flush makes it durable and succeeds.
    c.restore(replicas[0]!)
    c.restore(replicas[1]!)
    await vi.waitFor(() => gateway.flush(), { timeout: 2_000, interval: 20 })
    expect(rec.calls).toEqual([])
    expect(gateway.staleReplicas(ref)).toEqual([])
  })

  it('keeps owing the flush when the stale record cannot be written', async () => {
    let etcdUp = false
    const recorded: string[] = []
    const c = await start({ onDegraded: async (ref) => { if (!etcdUp) throw new Error('etcd down'); recorded.push(ref.toString()) } })
    const gateway = c.nodes[0]!.store
    const { ref, replicas } = remoteOnly(c)
    await gateway.write(ref, 0, bytes(8, 23))
    c.isolate(replicas[1]!)
    await expect(gateway.flush()).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    etcdUp = true
    await gateway.flush()
    expect(recorded).toEqual([ref.toString()])
  })
})

describe('DistributedBlockStore flush ordering', () => {
  it('does not acknowledge a flush while an earlier one is still waiting for a replica', async () => {
    const c = await start()
    const gw = c.nodes[0]!.store
    const { ref, replicas } = remoteOnly(c)
    await gw.write(ref, 0, bytes(8, 30))
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const real = replicas[0]!.store.replica.flush.bind(replicas[0]!.store.replica)
    vi.spyOn(replicas[0]!.store.replica, 'flush').mockImplementationOnce(async (g) => {
      await held
      return real(g)
    })
    let firstDone = false
    let secondDone = false
    const first = gw.flush().then(() => (firstDone = true))
    const second = gw.flush().then(() => (secondDone = true))
    await new Promise((r) => setTimeout(r, 50))
    expect([firstDone, secondDone]).toEqual([false, false])
    release()
    await Promise.all([first, second])
    expect([firstDone, secondDone]).toEqual([true, true])
  })
})

describe('DistributedBlockStore fencing', () => {
  it('refuses writes and flushes from an older generation once a new holder announced', async () => {
    const c = await start()
    const { ref } = withLocal(c)
    const old = c.nodes[0]!.store
    const next = c.nodes[1]!.store
    old.setGeneration(ref.volumeId, 1)
    await old.write(ref, 0, bytes(8, 19))
    await next.announce(ref.volumeId, 2)
    for (const n of c.nodes) expect(n.store.replica.generation(ref.volumeId)).toBe(2)
    await expect(old.write(ref, 0, bytes(8, 20))).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await expect(old.put(ref, bytes(B, 20))).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await expect(old.flush()).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await expect(old.announce(ref.volumeId, 1)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    // The new holder writes, and the old bytes are gone from every replica it reads.
    await next.write(ref, 0, bytes(8, 21))
    const target = new Uint8Array(8)
    await next.read(ref, 0, target)
    expect(target).toEqual(bytes(8, 21))
  })

  it('fails one flush, not every later one, when a volume with unflushed writes is taken over', async () => {
    const c = await start()
    const gw = c.nodes[0]!.store
    const kept = new BlockRef(1, 0)
    const lost = new BlockRef(2, 0)
    gw.setGeneration(lost.volumeId, 1)
    await gw.write(lost, 0, bytes(8, 27))
    await gw.write(kept, 0, bytes(8, 28))
    await c.nodes[1]!.store.announce(lost.volumeId, 2)
    await expect(gw.flush()).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await gw.write(kept, 0, bytes(8, 29))
    await gw.flush()
    await gw.flush()
  })

  it('keeps flushing its other volumes after losing one volume to a newer holder', async () => {
    const c = await start()
    const gw = c.nodes[0]!.store
    const kept = new BlockRef(1, 0)
    const lost = new BlockRef(2, 0)
    gw.setGeneration(lost.volumeId, 1)
    await gw.write(lost, 0, bytes(8, 24))
    await gw.flush()
    await c.nodes[1]!.store.announce(lost.volumeId, 2)
    await gw.write(kept, 0, bytes(8, 25))
    await gw.flush()
    await expect(gw.write(lost, 0, bytes(8, 26))).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
  })

  it('raises a replica generation on a higher write and refuses a lower one', async () => {
    const c = await start()
    const replica = c.nodes[2]!.store.replica
    const ref = new BlockRef(7, 0)
    await replica.write(ref, 0, Uint8Array.of(1), 5)
    expect(replica.generation(ref.volumeId)).toBe(5)
    await expect(replica.write(ref, 0, Uint8Array.of(2), 4)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await expect(replica.delete(ref, 4)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await expect(replica.deleteVolume(ref.volumeId, 4)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    expect(await c.nodes[2]!.local.get(ref)).toEqual(Uint8Array.from({ length: B }, (_, i) => (i === 0 ? 1 : 0)))
  })

  it('fails announce with TORUS_UNAVAILABLE when a ring member cannot be reached', async () => {
    const c = await start()
    c.isolate(c.nodes[2]!)
    await expect(c.nodes[0]!.store.announce(new BlockRef(1, 0).volumeId, 3)).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
  })
})

describe('replica requests from the wire', () => {
  it('refuses a malformed body with TORUS_PROTOCOL and an out-of-block range with TORUS_INVALID_ARGUMENT', async () => {
    const c = await start()
    const conn = await c.nodes[0]!.transport.connect(c.nodes[1]!.address)
    try {
      await expect(conn.request('replica.write', { volumeId: 1 })).rejects.toMatchObject({ code: 'TORUS_PROTOCOL' })
      await expect(conn.request('replica.write', { volumeId: 1, index: 0, offset: B, bytes: Uint8Array.of(1), generation: 0, seq: 1 })).rejects.toMatchObject({
        code: 'TORUS_INVALID_ARGUMENT',
      })
      await expect(conn.request('replica.read', { volumeId: 1, index: 0, offset: 0, length: B + 1 })).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
    } finally {
      await conn.close()
    }
  })
})

describe('DistributedBlockStore across a whole-cluster restart', () => {
  it('keeps flushed blocks on file-backed replicas, and checks sectors again after adopting their checksums', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const { FileBlockStore } = await import('@torus/blockstore')
    const dir = await mkdtemp(join(tmpdir(), 'torus-distributor-restart-'))
    const options: ClusterOptions = {
      local: (i, blockSizeBytes) => new FileBlockStore({ dir: join(dir, `peer-${i}`), blockSizeBytes, capacityBytes: 2 ** 24 }),
    }
    try {
      let c = await start(options)
      const { ref, replicas } = remoteOnly(c)
      await c.nodes[0]!.store.put(ref, bytes(B, 22))
      await c.nodes[0]!.store.write(ref, 10, bytes(5, 23))
      await c.nodes[0]!.store.flush()
      await c.close()
      c = await start(options)
      const expected = bytes(B, 22)
      expected.set(bytes(5, 23), 10)
      expect(await c.nodes[0]!.store.get(ref)).toEqual(expected)
      // Checksums were adopted from disk on that read; corruption after it is caught and skipped.
      const first = c.byPeer(replicas[0]!.peer)
      await first.local.write(ref, 3000, Uint8Array.of(0))
      await expect(first.store.replica.read(ref, 0, new Uint8Array(B))).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
      expect(await c.nodes[0]!.store.get(ref)).toEqual(expected)
    } finally {
      await cluster?.close()
      cluster = undefined
      await rm(dir, { recursive: true, force: true })
    }
  })
})
