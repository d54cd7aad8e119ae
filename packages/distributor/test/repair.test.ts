// Goal: repairVolume brings stale replicas back — per block (a degraded write's record) and for
// a whole volume (a member that missed a takeover) — without ever letting a replica serve bytes
// it lacks, and clears only the records it repaired.
// Method: the 3-peer in-process cluster (mod ring, replication 2) with a MemoryMetadataStore for
// the stale records, fenceVolume as a lock holder runs it, partitions by LoopbackHub.isolate;
// after each repair the repaired peer is made the only reachable replica and read through.
import { describe, expect, it } from 'vitest'
import { BlockRef, SeededRandom } from '@torus/core'
import { blockKey } from '@torus/ring'
import { fenceVolume, RepairLoop } from '../src/index.js'
import { B, blockOn, held, lockAs, otherOwner, ownedBy, repairUntil, setUp } from './helpers/repair-setup.js'

describe('repairVolume: per-block stale records', () => {
  it('copies the block to the stale replica, clears the record once durable, and the replica serves it again', async () => {
    const { c, metadata, volumeId, a, b } = await setUp()
    const g = await lockAs(metadata)
    await fenceVolume(b.store, metadata, volumeId, g)
    const written = blockOn(c, volumeId, [a.peer])
    const other = otherOwner(c, written, a.peer)
    const deleted = new BlockRef(volumeId, ownedBy(c, volumeId, a.peer, 100).find((i) => i !== written.index && otherOwner(c, new BlockRef(volumeId, i), a.peer) === other)!)
    await b.store.write(deleted, 0, new Uint8Array(B).fill(0x22))
    await b.store.flush()

    c.isolate(a)
    await b.store.write(written, 100, new Uint8Array(200).fill(0x11))
    await b.store.delete(deleted)
    await b.store.flush()
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => [r.peer, r.index, r.generation])).toEqual(
      [[a.peer, written.index, g], [a.peer, deleted.index, g]].sort((p, q) => (p[1] as number) - (q[1] as number)),
    )
    // Unreachable: nothing to do yet, and nothing is cleared.
    const early = await b.store.repairVolume(volumeId, { metadata })
    expect(early).toMatchObject({ repaired: 0, remaining: 2 })
    expect(await metadata.listStaleReplicas(volumeId)).toHaveLength(2)

    c.restore(a)
    const report = await repairUntil(b.store, volumeId, metadata, (r) => r.remaining === 0)
    expect(report).toEqual({ repaired: 2, rejoined: 0, bytes: B, remaining: 0 })
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
    expect(b.store.staleReplicas(written)).toEqual([])
    expect(await held(a, written)).toEqual(await held(other, written))
    expect(await a.local.has(deleted)).toBe(false)

    // The repaired replica alone serves what was written while it was away.
    if (other !== b) c.isolate(other)
    else b.local.delete(written) // the gateway's own copy would be read first: remove it
    const target = new Uint8Array(B)
    await b.store.read(written, 0, target)
    expect([...target.subarray(100, 300)]).toEqual(new Array(200).fill(0x11))
    expect(target[0]).toBe(0)
  })

  it('keeps a record a later holder raised to a newer generation', async () => {
    const { c, metadata, volumeId, a, b } = await setUp()
    const g = await lockAs(metadata)
    await fenceVolume(b.store, metadata, volumeId, g)
    const ref = blockOn(c, volumeId, [a.peer])
    c.isolate(a)
    await b.store.write(ref, 0, new Uint8Array(B).fill(0x33))
    c.restore(a)
    // A record raised to a newer generation than b's (a later holder's).
    await metadata.addStaleReplicas([{ volumeId, peer: a.peer, index: ref.index, generation: g + 2 }])
    await repairUntil(b.store, volumeId, metadata, (r) => r.remaining === 0)
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => [r.peer, r.index, r.generation])).toEqual([[a.peer, ref.index, g + 2]])
  })

  it('rejects with TORUS_LEASE_EXPIRED once another holder announced a newer generation', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    c.isolate(a)
    await b.store.write(blockOn(c, volumeId, [a.peer]), 0, new Uint8Array(B).fill(1))
    c.restore(a)
    await fenceVolume(x.store, metadata, volumeId, await lockAs(metadata))
    // b still holds its stale mark; its copy with its old generation is refused by a, which saw x's.
    await expect(repairUntil(b.store, volumeId, metadata, () => false)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
  })

  it('needs the lock generation', async () => {
    const { metadata, volumeId, b } = await setUp()
    await expect(b.store.repairVolume(volumeId, { metadata })).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
  })
})

describe('repairVolume racing writes', () => {
  // Found by the cluster simulation: a write that skips a replica (stale, its copy waiting for
  // a flush) while a flush confirms that copy must leave it stale.
  for (const concurrency of [1, 2, 4]) {
    it(`never makes a replica current without a write that skipped it during the flush (concurrency ${concurrency})`, async () => {
      const { c, metadata, volumeId, a } = await setUp()
      const mine = ownedBy(c, volumeId, a.peer, 20).slice(0, 3).map((i) => new BlockRef(volumeId, i))
      await metadata.addStaleReplicas(mine.map((r) => ({ volumeId, peer: a.peer, index: r.index, generation: 1 })))
      await fenceVolume(a.store, metadata, volumeId, await lockAs(metadata)) // a's own replica is stale for them
      for (const target of mine) {
        const repairing = a.store.repairVolume(volumeId, { metadata, concurrency })
        await a.store.write(target, 3000, new Uint8Array(19).fill(82))
        await repairing
        await a.store.flush()
        if (!a.store.staleReplicas(target).includes(a.peer)) {
          expect(await held(a, target), `block ${target.index}`).toEqual(await held(otherOwner(c, target, a.peer), target))
        }
      }
      // Later passes catch up on everything.
      await repairUntil(a.store, volumeId, metadata, (r) => r.remaining === 0)
      for (const target of mine) expect(await held(a, target)).toEqual(await held(otherOwner(c, target, a.peer), target))
    })
  }
})

describe('a copy that fails its checksums', () => {
  it('is shut out when another replica serves the block, recorded and replaced by repair', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    const ref = blockOn(c, volumeId, [a.peer, x.peer])
    await b.store.write(ref, 0, new Uint8Array(B).fill(0x42))
    await b.store.flush()
    // a's bytes change behind its replica's back; x's stay good.
    const first = b.store.ring.peersFor(blockKey(volumeId, ref.index))[0] === a.peer ? a : x
    const second = first === a ? x : a
    await first.local.put(ref, new Uint8Array(B).fill(0x66))
    const target = new Uint8Array(B)
    await b.store.read(ref, 0, target)
    expect(target[0]).toBe(0x42)
    expect(b.store.staleReplicas(ref)).toEqual([first.peer])
    // Repair records the mark, puts a good copy there and clears the record.
    const report = await repairUntil(b.store, volumeId, metadata, (r) => r.remaining === 0)
    expect(report.repaired).toBe(1)
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
    expect((await first.local.get(ref))![0]).toBe(0x42)
    c.isolate(second)
    await b.store.read(ref, 0, target)
    expect(target[0]).toBe(0x42)
  })

  it('is made known at once (onStaleFound) and recorded by recordOwedStale, as a holder does before letting the volume go', async () => {
    const found: number[] = []
    const { c, metadata, volumeId, a, b, x } = await setUp({ onStaleFound: (id) => found.push(id) })
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    const ref = blockOn(c, volumeId, [a.peer, x.peer])
    await b.store.write(ref, 0, new Uint8Array(B).fill(0x42))
    await b.store.flush()
    const first = b.store.ring.peersFor(blockKey(volumeId, ref.index))[0] === a.peer ? a : x
    // A degraded write records its own mark: nothing to tell.
    const other = blockOn(c, volumeId, [x.peer, b.peer])
    c.isolate(x)
    await b.store.write(other, 0, new Uint8Array(B).fill(0x11))
    await b.store.flush()
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => [r.peer, r.index])).toEqual([[x.peer, other.index]])
    c.restore(x)
    await repairUntil(b.store, volumeId, metadata, (r) => r.remaining === 0)
    await first.local.put(ref, new Uint8Array(B).fill(0x66))
    expect(found).toEqual([])
    await b.store.read(ref, 0, new Uint8Array(B))
    expect(found).toEqual([volumeId])
    // In the gateway's memory only, until recorded.
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
    expect(await b.store.recordOwedStale(volumeId, metadata)).toBe(1)
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => [r.peer, r.index])).toEqual([[first.peer, ref.index]])
    expect(b.store.owedStale(volumeId)).toEqual([])
    expect(await b.store.recordOwedStale(volumeId, metadata)).toBe(0)
  })

  it('is not shut out when it is the only copy that answers', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    const ref = blockOn(c, volumeId, [a.peer, x.peer])
    await b.store.write(ref, 0, new Uint8Array(B).fill(0x42))
    await a.local.put(ref, new Uint8Array(B).fill(0x66))
    c.isolate(x)
    await expect(b.store.read(ref, 0, new Uint8Array(B))).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    expect(b.store.staleReplicas(ref)).toEqual([])
  })
})

describe('a stale replica made current by a client', () => {
  it('loses its record too: a whole-block put that a flush confirmed needs no repair, and the next holder must not shut it out', async () => {
    const { c, metadata, volumeId, a, b } = await setUp()
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    const ref = blockOn(c, volumeId, [a.peer])
    c.isolate(a)
    await b.store.write(ref, 0, new Uint8Array(B).fill(0x21))
    await b.store.flush()
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => r.peer)).toEqual([a.peer])
    c.restore(a)
    // The client rewrites the whole block before any repair: a gets it, and a flush confirms it.
    for (let i = 0; i < 100 && b.store.staleReplicas(ref).length > 0; i++) {
      await b.store.put(ref, new Uint8Array(B).fill(0x22)).catch(() => {})
      await b.store.flush().catch(() => {})
      if (b.store.staleReplicas(ref).length > 0) await new Promise((r) => setTimeout(r, 20))
    }
    expect(b.store.staleReplicas(ref)).toEqual([])
    expect(await held(a, ref)).toEqual(new Array(B).fill(0x22))
    // The record is still there until the next repair pass clears it.
    expect(await b.store.repairVolume(volumeId, { metadata })).toMatchObject({ bytes: 0, remaining: 0 })
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
  })
})

describe('repairVolume: a member stale for the whole volume', () => {
  it('gives it every block it owns, drops what it should not hold, and makes it a replica again', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    const mine = ownedBy(c, volumeId, a.peer, 40)
    // Before the takeover: a holds the old content of some blocks, and a block deleted later.
    await fenceVolume(x.store, metadata, volumeId, await lockAs(metadata))
    for (const i of mine) await x.store.write(new BlockRef(volumeId, i), 0, new Uint8Array(B).fill(0x40 + (i % 32)))
    await x.store.flush()

    c.isolate(a)
    const g = await lockAs(metadata)
    const { missed } = await fenceVolume(b.store, metadata, volumeId, g)
    expect(missed).toEqual([a.peer])
    for (const i of mine.slice(0, 10)) await b.store.write(new BlockRef(volumeId, i), 8, new Uint8Array(16).fill(0x99))
    await b.store.delete(new BlockRef(volumeId, mine[10]!))
    for (const i of ownedBy(c, volumeId, a.peer, 60).filter((i) => i >= 40)) await b.store.write(new BlockRef(volumeId, i), 0, new Uint8Array(B).fill(0x77))
    await b.store.flush()
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => [r.peer, r.index])).toEqual([[a.peer, 'all']])
    // a also holds a block nobody else has (written by a stale holder while it was cut off).
    const leftover = new BlockRef(volumeId, ownedBy(c, volumeId, a.peer, 100).find((i) => i >= 60)!)
    await a.local.put(leftover, new Uint8Array(B).fill(0xee))

    c.restore(a)
    const report = await repairUntil(b.store, volumeId, metadata, (r) => r.remaining === 0)
    expect(report).toMatchObject({ rejoined: 1, remaining: 0 })
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
    expect(b.store.volumeStaleReplicas(volumeId)).toEqual([])
    expect(a.store.replica.generation(volumeId)).toBe(g)
    for (const i of ownedBy(c, volumeId, a.peer, 100)) {
      const ref = new BlockRef(volumeId, i)
      expect(await held(a, ref), `block ${i}`).toEqual(await held(otherOwner(c, ref, a.peer), ref))
    }
    expect(await a.local.has(leftover)).toBe(false)
    // a takes writes again.
    const next = new BlockRef(volumeId, mine[0]!)
    await b.store.write(next, 0, new Uint8Array(4).fill(0x12))
    expect((await a.local.get(next))![0]).toBe(0x12)
  })

  it('stays out of the volume while a member cannot list its blocks, and comes back later', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    c.isolate(a)
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    await b.store.write(blockOn(c, volumeId, [a.peer, x.peer]), 0, new Uint8Array(B).fill(5))
    c.restore(a)
    c.isolate(x)
    const report = await b.store.repairVolume(volumeId, { metadata })
    expect(report).toMatchObject({ rejoined: 0 })
    expect(report.remaining).toBeGreaterThan(0)
    expect(b.store.volumeStaleReplicas(volumeId)).toEqual([a.peer])
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => r.index)).toContain('all')
    c.restore(x)
    expect(await repairUntil(b.store, volumeId, metadata, (r) => r.remaining === 0)).toMatchObject({ rejoined: 1, remaining: 0 })
  })

  it('keeps the rejoining replica equal to the others while writes, deletes and new blocks race with the copy', async () => {
    const { c, metadata, volumeId, a, b } = await setUp()
    const random = new SeededRandom(42)
    const blocks = 80
    c.isolate(a)
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    for (let i = 0; i < blocks / 2; i++) await b.store.write(new BlockRef(volumeId, i), 0, new Uint8Array(B).fill(i))
    await b.store.flush()
    c.restore(a)

    let stop = false
    const writer = (async () => {
      let n = 0
      while (!stop) {
        const ref = new BlockRef(volumeId, random.int(blocks))
        const op = random.int(10)
        if (op === 0) await b.store.delete(ref)
        else if (op === 1) await b.store.put(ref, new Uint8Array(B).fill(n & 0xff))
        else await b.store.write(ref, random.int(B / 512) * 512, new Uint8Array(512).fill(n & 0xff))
        if (++n % 7 === 0) await b.store.flush()
        await new Promise((r) => setImmediate(r))
      }
    })()
    // Slow enough that the writer gets many turns during the copy.
    const report = await repairUntil(b.store, volumeId, metadata, (r) => r.remaining === 0, { bytesPerSecond: 40 * B, concurrency: 2, batchBlocks: 8 }).finally(() => {
      stop = true
    })
    await writer
    await b.store.flush()
    expect(report).toMatchObject({ rejoined: 1, remaining: 0 })
    for (const i of ownedBy(c, volumeId, a.peer, blocks)) {
      const ref = new BlockRef(volumeId, i)
      expect(await held(a, ref), `block ${i}`).toEqual(await held(otherOwner(c, ref, a.peer), ref))
    }
  })
})

describe('repairVolume across tenures', () => {
  it('drops a clear left over from an earlier tenure: a later holder\'s writes may have made it wrong', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    c.isolate(a)
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    c.restore(a)
    // b brings a back, but the metadata store refuses the clear: a is current in b's memory only.
    const refusing = { listStaleReplicas: metadata.listStaleReplicas.bind(metadata), addStaleReplicas: metadata.addStaleReplicas.bind(metadata), clearStaleReplicas: async () => Promise.reject(new Error('etcd down')) }
    await repairUntil(b.store, volumeId, metadata, (r) => r.rejoined === 1, { metadata: refusing })
    expect(b.store.volumeStaleReplicas(volumeId)).toEqual([])
    // x takes over, trusting the record: a block on {a, b} goes to b only.
    await fenceVolume(x.store, metadata, volumeId, await lockAs(metadata))
    const ref = blockOn(c, volumeId, [a.peer, b.peer])
    await x.store.write(ref, 0, new Uint8Array(B).fill(2))
    await x.store.flush()
    // b holds the volume again; a cannot rejoin yet (x is cut off and cannot list its blocks).
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    c.isolate(x)
    await b.store.repairVolume(volumeId, { metadata })
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => [r.peer, r.index])).toContainEqual([a.peer, 'all'])
    expect(b.store.volumeStaleReplicas(volumeId)).toEqual([a.peer])
  })

  it('stops when the tenure ends (endTenure), leaving the peer out', async () => {
    const { c, metadata, volumeId, a, b } = await setUp()
    c.isolate(a)
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    for (const i of ownedBy(c, volumeId, a.peer, 60)) await b.store.write(new BlockRef(volumeId, i), 0, new Uint8Array(B).fill(9))
    c.restore(a)
    for (let i = 0; i < 100 && !(await b.store.tryAnnounce(volumeId, b.store.generation(volumeId))).confirmed.includes(a.peer); i++) await new Promise((r) => setTimeout(r, 20))
    const slow = b.store.repairVolume(volumeId, { metadata, bytesPerSecond: 8 * B, concurrency: 1, batchBlocks: 2 })
    await new Promise((r) => setTimeout(r, 150))
    b.store.endTenure(volumeId)
    await expect(slow).rejects.toMatchObject({ code: expect.stringMatching(/^TORUS_(LEASE_EXPIRED|ABORTED)$/) })
    expect(b.store.volumeStaleReplicas(volumeId)).toEqual([a.peer])
    expect((await metadata.listStaleReplicas(volumeId)).map((r) => r.index)).toEqual(['all'])
  })

  it('is not stopped by another volume of the gateway being fenced, and leaves that told-once error to the client', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    const { id: other } = await metadata.createVolume({ name: 'other', sizeBytes: 1024 * 1024 })
    const otherLock = await metadata.lockVolume('other', 'b', await metadata.grantLease(3_600_000))
    await fenceVolume(b.store, metadata, other, otherLock.generation)
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    // b has an unflushed write to `other` when x takes `other` over.
    await b.store.write(new BlockRef(other, 0), 0, new Uint8Array(B).fill(1))
    await metadata.unlockVolume(otherLock)
    await fenceVolume(x.store, metadata, other, (await metadata.lockVolume('other', 'x', await metadata.grantLease(3_600_000))).generation)
    // pad has a stale replica to repair.
    const ref = blockOn(c, volumeId, [a.peer])
    c.isolate(a)
    await b.store.write(ref, 0, new Uint8Array(B).fill(3))
    c.restore(a)
    const report = await repairUntil(b.store, volumeId, metadata, (r) => r.remaining === 0)
    expect(report.remaining).toBe(0)
    // The client's flush still hears that `other` was fenced, once.
    await expect(b.store.flush()).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await b.store.flush()
  })
})

describe('RepairLoop', () => {
  it('repairs the volumes it is given in the background, counts it, and stops', async () => {
    const { c, metadata, volumeId, a, b } = await setUp()
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    const refs = ownedBy(c, volumeId, a.peer, 30).slice(0, 4).map((i) => new BlockRef(volumeId, i))
    c.isolate(a)
    for (const ref of refs) await b.store.write(ref, 0, new Uint8Array(B).fill(4))
    c.restore(a)
    expect(b.store.hasStaleReplicas(volumeId)).toBe(true)
    const loop = new RepairLoop({ store: b.store, metadata, volumes: () => [{ id: volumeId, name: 'pad' }], intervalMs: 50 })
    loop.start()
    try {
      for (let i = 0; i < 200 && (loop.stats.repairedBlocks < refs.length || loop.stats.remaining > 0); i++) await new Promise((r) => setTimeout(r, 25))
      expect(loop.stats).toMatchObject({ repairedBlocks: refs.length, remaining: 0 })
      expect(loop.stats.bytes).toBe(refs.length * B)
      expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
      expect(b.store.hasStaleReplicas(volumeId)).toBe(false)
    } finally {
      await loop.stop()
    }
    const passes = loop.stats.passes
    await new Promise((r) => setTimeout(r, 150))
    expect(loop.stats.passes).toBe(passes)
  })
})

describe('replica.list', () => {
  it('pages through the blocks a replica holds, ascending, and refuses a malformed body', async () => {
    const { volumeId, a, b } = await setUp()
    for (const i of [9, 2, 5, 700]) await a.local.put(new BlockRef(volumeId, i), new Uint8Array(B).fill(1))
    expect(await a.store.replica.list(volumeId, -1, 3)).toEqual({ indexes: [2, 5, 9], more: true })
    expect(await a.store.replica.list(volumeId, 9, 3)).toEqual({ indexes: [700], more: false })
    const conn = await b.transport.connect(a.address)
    try {
      expect(await conn.request('replica.list', { volumeId, after: 2, limit: 2 })).toEqual({ indexes: [5, 9], more: true, incarnation: a.store.replica.incarnation })
      for (const body of [{ volumeId, after: 'x', limit: 2 }, { volumeId, after: -2, limit: 2 }, { volumeId, after: -1, limit: 0 }, { volumeId, after: -1, limit: 70000 }, { after: -1, limit: 2 }]) {
        await expect(conn.request('replica.list', body), JSON.stringify(body)).rejects.toMatchObject({ code: 'TORUS_PROTOCOL' })
      }
    } finally {
      await conn.close()
    }
  })
})
