// Goal: a rolling restart leaves blocks every owner of which is stale (each missed a takeover
// while it was down); repair makes them readable again when every owner holds the same bytes,
// and leaves them unreadable, never serving a copy that may be old, when the copies differ.
// Method: the 3-peer in-process cluster of repair.test.ts; each takeover is fenceVolume by a
// new lock holder while one peer is cut off (LoopbackHub.isolate), as a daemon opening the
// volume would do; reads go through the gateway.
import { describe, expect, it } from 'vitest'
import { BlockRef, isTorusError, silentLogger } from '@torus/core'
import { fenceVolume } from '../src/index.js'
import { B, blockOn, held, lockAs, repairUntil, setUp } from './helpers/repair-setup.js'

/** As a daemon does: a peer restored a moment ago is reconnecting, worth a few short waits. */
const RETRY = { retries: 2, retryDelayMs: 50 }

async function readThrough(store: { read(ref: BlockRef, off: number, target: Uint8Array): Promise<boolean> }, ref: BlockRef): Promise<number[] | string> {
  const target = new Uint8Array(B)
  try {
    await store.read(ref, 0, target)
    return [...target]
  } catch (err) {
    return isTorusError(err) ? err.code : String(err)
  }
}

describe('blocks whose every copy is stale after a rolling restart', () => {
  it('are whole again once every owner is back and their copies agree', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    // All up: write a block a and x hold, and one a and b hold.
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    const shared = blockOn(c, volumeId, [a.peer, x.peer])
    const withGateway = blockOn(c, volumeId, [a.peer, b.peer])
    await b.store.write(shared, 0, new Uint8Array(B).fill(0x5a))
    await b.store.write(withGateway, 0, new Uint8Array(B).fill(0x6b))
    await b.store.flush()
    b.store.endTenure(volumeId)

    // a is down while the volume is opened and only read: a misses that takeover.
    c.isolate(a)
    expect((await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))).missed).toEqual([a.peer])
    expect(await readThrough(b.store, shared)).toEqual(new Array(B).fill(0x5a))
    b.store.endTenure(volumeId)

    // a is back, x goes down, and the volume is opened again: x misses that one.
    c.restore(a)
    c.isolate(x)
    const g = await lockAs(metadata)
    expect((await fenceVolume(b.store, metadata, volumeId, g, silentLogger, RETRY)).missed).toEqual([x.peer])
    // a rejoins, but for `shared` no current copy is reachable: that block stays out of reach
    // rather than be served from a, which missed a takeover.
    await b.store.repairVolume(volumeId, { metadata })
    expect(await readThrough(b.store, shared)).toBe('TORUS_UNAVAILABLE')
    expect(await readThrough(b.store, withGateway)).toEqual(new Array(B).fill(0x6b))

    // x is back: both copies of `shared` are stale, both hold the same bytes.
    c.restore(x)
    const report = await repairUntil(b.store, volumeId, metadata, (r) => r.remaining === 0)
    expect(report.remaining).toBe(0)
    expect(await metadata.listStaleReplicas(volumeId)).toEqual([])
    expect(b.store.staleReplicas(shared)).toEqual([])
    expect(await readThrough(b.store, shared)).toEqual(new Array(B).fill(0x5a))
    expect(await held(a, shared)).toEqual(new Array(B).fill(0x5a))
    expect(await held(x, shared)).toEqual(new Array(B).fill(0x5a))
    // Both are replicas of it again: a write reaches both.
    await b.store.write(shared, 0, new Uint8Array(8).fill(0x01))
    await b.store.flush()
    expect((await held(a, shared))!.slice(0, 9)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0x5a])
    expect((await held(x, shared))!.slice(0, 9)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0x5a])
  })

  it('stay unreadable, never served from the older copy, when the copies differ', async () => {
    const { c, metadata, volumeId, a, b, x } = await setUp()
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    const shared = blockOn(c, volumeId, [a.peer, x.peer])
    await b.store.write(shared, 0, new Uint8Array(B).fill(0x5a))
    await b.store.flush()
    b.store.endTenure(volumeId)

    // a misses a takeover, and that tenure writes the block: only x has the new bytes.
    c.isolate(a)
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata))
    await b.store.write(shared, 0, new Uint8Array(B).fill(0x7c))
    await b.store.flush()
    b.store.endTenure(volumeId)

    // x misses the next takeover; then everyone is back.
    c.restore(a)
    c.isolate(x)
    await fenceVolume(b.store, metadata, volumeId, await lockAs(metadata), silentLogger, RETRY)
    await b.store.repairVolume(volumeId, { metadata })
    c.restore(x)
    // x rejoins (its other blocks come back), then the block is undecided on every pass.
    await repairUntil(b.store, volumeId, metadata, (r) => r.rejoined > 0 || b.store.volumeStaleReplicas(volumeId).length === 0)
    for (let pass = 0; pass < 3; pass++) expect((await b.store.repairVolume(volumeId, { metadata })).remaining).toBeGreaterThan(0)
    expect(await readThrough(b.store, shared)).toBe('TORUS_UNAVAILABLE')
    expect(await held(a, shared)).toEqual(new Array(B).fill(0x5a))
    expect(await held(x, shared)).toEqual(new Array(B).fill(0x7c))
    expect((await metadata.listStaleReplicas(volumeId)).filter((r) => r.index === shared.index).map((r) => r.peer).sort()).toEqual([a.peer, x.peer].sort())
  })
})
