// Goal: usage counts allocated blocks, allocation past capacity fails with TORUS_OUT_OF_SPACE, and a full store still serves allocated blocks.
// Method: fill a small store to capacity (skipped when the harness capacity exceeds FILLABLE_BLOCKS_MAX blocks), then probe at the limit.
import { expect, it } from 'vitest'
import type { BlockStore } from '@torus/core'
import { FILLABLE_BLOCKS_MAX, filled, pattern, ref, type SuiteContext } from './context.js'

export function capacityTests(ctx: SuiteContext): void {
  const B = ctx.blockSizeBytes
  const fillable = ctx.capacityBlocks >= 2 && ctx.capacityBlocks <= FILLABLE_BLOCKS_MAX

  async function fill(store: BlockStore, blocks = ctx.capacityBlocks): Promise<void> {
    for (let i = 0; i < blocks; i++) await store.write(ref(1, i), 0, Uint8Array.of(i & 0xff, 1))
  }

  it('reports zero usage and a positive capacity when fresh', ctx.run(async (store) => {
    expect(store.usage()).toEqual({ usedBytes: 0, blocks: 0, capacityBytes: ctx.capacityBytes })
    expect(ctx.capacityBytes).toBeGreaterThanOrEqual(B)
  }))

  it('counts allocated blocks and not rewrites of them', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.write(ref(1, 1), 5, Uint8Array.of(1))
    await store.write(ref(2, 1), 5, Uint8Array.of(1))
    await store.put(ref(1, 0), pattern(B, 2))
    await store.write(ref(1, 1), 7, Uint8Array.of(1))
    expect(store.usage()).toMatchObject({ blocks: 3, usedBytes: 3 * B })
  }))

  it.skipIf(!fillable)('rejects an allocation past capacity with TORUS_OUT_OF_SPACE', ctx.run(async (store) => {
    await fill(store)
    expect(store.usage()).toMatchObject({ blocks: ctx.capacityBlocks, usedBytes: ctx.capacityBlocks * B })
    const extra = ref(1, ctx.capacityBlocks)
    await expect(store.write(extra, 0, Uint8Array.of(1))).rejects.toMatchObject({ code: 'TORUS_OUT_OF_SPACE' })
    await expect(store.put(extra, new Uint8Array(B))).rejects.toMatchObject({ code: 'TORUS_OUT_OF_SPACE' })
    await expect(store.put(ref(2, 0), new Uint8Array(B))).rejects.toMatchObject({ code: 'TORUS_OUT_OF_SPACE' })
    expect(await store.has(extra)).toBe(false)
    expect(store.usage().blocks).toBe(ctx.capacityBlocks)
  }))

  it.skipIf(!fillable)('still writes and reads allocated blocks when full', ctx.run(async (store) => {
    await fill(store)
    await store.write(ref(1, 0), 100, filled(10, 7))
    await store.put(ref(1, 1), pattern(B, 3))
    const target = new Uint8Array(10)
    expect(await store.read(ref(1, 0), 100, target)).toBe(true)
    expect(target).toEqual(filled(10, 7))
    expect(await store.get(ref(1, 1))).toEqual(pattern(B, 3))
  }))

  it.skipIf(!fillable || !ctx.supports.trim)('makes room for a new block after a delete when full', ctx.run(async (store) => {
    await fill(store)
    await store.delete(ref(1, 0))
    await store.put(ref(2, 0), pattern(B, 1))
    expect(await store.get(ref(2, 0))).toEqual(pattern(B, 1))
    await expect(store.put(ref(3, 0), pattern(B, 1))).rejects.toMatchObject({ code: 'TORUS_OUT_OF_SPACE' })
  }))

  it.skipIf(!fillable || !ctx.supports.trim)('makes room after deleteVolume when full', ctx.run(async (store) => {
    await fill(store)
    await store.deleteVolume(ref(1, 0).volumeId)
    expect(store.usage()).toMatchObject({ blocks: 0, usedBytes: 0 })
    await store.put(ref(2, 0), pattern(B, 1))
  }))

  it.skipIf(!fillable)('allocates exactly the remaining room to concurrent allocations', ctx.run(async (store) => {
    const room = Math.min(2, ctx.capacityBlocks)
    await fill(store, ctx.capacityBlocks - room)
    const results = await Promise.allSettled(
      Array.from({ length: room + 4 }, (_, i) => store.write(ref(5, i), 0, Uint8Array.of(1))),
    )
    const rejected = results.filter((r) => r.status === 'rejected')
    expect(results.length - rejected.length).toBe(room)
    for (const r of rejected) expect(r.reason).toMatchObject({ code: 'TORUS_OUT_OF_SPACE' })
    expect(store.usage().blocks).toBe(ctx.capacityBlocks)
  }))
}
