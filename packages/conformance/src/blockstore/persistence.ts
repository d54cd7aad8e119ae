// Goal: when the harness can reopen, flushed writes, deletes and usage survive a restart.
// Method: write, flush, reopen through harness.reopen (a new instance over the same state), then compare.
import { expect, it } from 'vitest'
import { volumeId, type BlockStore } from '@torus/core'
import { filled, firstNot, pattern, ref, type SuiteContext } from './context.js'

export function persistenceTests(ctx: SuiteContext): void {
  const B = ctx.blockSizeBytes
  const reopen = ctx.harness.reopen?.bind(ctx.harness)

  /** Like ctx.run, but `fn` may reopen; the last instance is destroyed. */
  const run = (fn: (store: BlockStore, again: (s: BlockStore) => Promise<BlockStore>) => Promise<BlockStore>) => async () => {
    let store = await ctx.harness.create()
    try {
      store = await fn(store, async (s) => (store = await reopen!(s)))
    } finally {
      await ctx.harness.destroy(store)
    }
  }

  it.skipIf(!reopen)('keeps data written and flushed across a reopen', run(async (store, again) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.write(ref(1, 9), 300, pattern(50, 2))
    await store.put(ref(2, 1_000), pattern(B, 3))
    await store.flush()
    store = await again(store)
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 1))
    const expected = new Uint8Array(B)
    expected.set(pattern(50, 2), 300)
    expect(await store.get(ref(1, 9))).toEqual(expected)
    expect(await store.get(ref(2, 1_000))).toEqual(pattern(B, 3))
    expect(await store.has(ref(1, 1))).toBe(false)
    return store
  }))

  it.skipIf(!reopen)('recomputes usage after a reopen', run(async (store, again) => {
    for (let i = 0; i < 3; i++) await store.write(ref(1, i * 2), 0, Uint8Array.of(1))
    await store.put(ref(4, 0), pattern(B, 1))
    await store.flush()
    store = await again(store)
    expect(store.usage()).toEqual({ blocks: 4, usedBytes: 4 * B, capacityBytes: ctx.capacityBytes })
    return store
  }))

  it.skipIf(!reopen)('keeps flushed deletes and deleteVolume across a reopen', run(async (store, again) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.put(ref(1, 1), pattern(B, 2))
    await store.put(ref(2, 0), pattern(B, 3))
    await store.put(ref(3, 0), pattern(B, 4))
    await store.flush()
    await store.delete(ref(1, 0))
    await store.deleteVolume(volumeId(2))
    await store.flush()
    store = await again(store)
    expect(await store.has(ref(1, 0))).toBe(false)
    expect(await store.has(ref(2, 0))).toBe(false)
    expect(await store.get(ref(1, 1))).toEqual(pattern(B, 2))
    expect(await store.get(ref(3, 0))).toEqual(pattern(B, 4))
    expect(store.usage().blocks).toBe(2)
    return store
  }))

  it.skipIf(!reopen)('keeps writes made before close without an explicit flush', run(async (store, again) => {
    await store.put(ref(1, 0), pattern(B, 5))
    store = await again(store)
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 5))
    return store
  }))

  it.skipIf(!reopen)('zero-fills a block allocated after a reopen where a deleted one lived', run(async (store, again) => {
    await store.put(ref(1, 0), filled(B, 0xaa))
    await store.flush()
    await store.delete(ref(1, 0))
    store = await again(store)
    await store.write(ref(1, 0), 0, Uint8Array.of(1))
    const block = (await store.get(ref(1, 0)))!
    expect(firstNot(block.subarray(1), 0)).toBe(-1)
    store = await again(store)
    expect(await store.get(ref(1, 0))).toEqual(block)
    return store
  }))
}
