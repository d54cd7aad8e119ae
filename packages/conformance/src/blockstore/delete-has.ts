// Goal: delete and deleteVolume make blocks absent (zeros, no stale bytes) and touch nothing else.
// Method: store patterns, delete some blocks or a whole volume, then check has/get/read and usage on all refs.
import { expect, it } from 'vitest'
import { volumeId } from '@torus/core'
import { filled, firstNot, pattern, ref, type SuiteContext } from './context.js'

export function deleteHasTests(ctx: SuiteContext): void {
  const B = ctx.blockSizeBytes

  it('reports has() false for a never-written block and true once written', ctx.run(async (store) => {
    expect(await store.has(ref(1, 0))).toBe(false)
    await store.write(ref(1, 0), 10, Uint8Array.of(1))
    await store.put(ref(1, 1), pattern(B, 1))
    expect(await store.has(ref(1, 0))).toBe(true)
    expect(await store.has(ref(1, 1))).toBe(true)
  }))

  it('makes a deleted block absent to get, read and has', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.delete(ref(1, 0))
    expect(await store.has(ref(1, 0))).toBe(false)
    expect(await store.get(ref(1, 0))).toBeUndefined()
    const target = filled(B, 0xff)
    expect(await store.read(ref(1, 0), 0, target)).toBe(false)
    expect(firstNot(target, 0)).toBe(-1)
  }))

  it('ignores a delete of an absent block', ctx.run(async (store) => {
    await store.delete(ref(1, 0))
    expect(await store.has(ref(1, 0))).toBe(false)
    expect(store.usage().blocks).toBe(0)
  }))

  it('leaves neighbouring blocks alone on delete', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.put(ref(1, 1), pattern(B, 2))
    await store.put(ref(2, 0), pattern(B, 3))
    await store.delete(ref(1, 0))
    expect(await store.get(ref(1, 1))).toEqual(pattern(B, 2))
    expect(await store.get(ref(2, 0))).toEqual(pattern(B, 3))
  }))

  it('starts a rewritten block from zeros after delete, with no stale bytes', ctx.run(async (store) => {
    await store.put(ref(1, 0), filled(B, 0xaa))
    await store.delete(ref(1, 0))
    await store.write(ref(1, 0), 100, filled(16, 0x55))
    const block = (await store.get(ref(1, 0)))!
    expect(firstNot(block.subarray(0, 100), 0)).toBe(-1)
    expect(firstNot(block.subarray(100, 116), 0x55)).toBe(-1)
    expect(firstNot(block.subarray(116), 0)).toBe(-1)
  }))

  it('removes every block of a volume on deleteVolume and leaves other volumes', ctx.run(async (store) => {
    for (let i = 0; i < 4; i++) {
      await store.put(ref(1, i), pattern(B, i))
      await store.put(ref(2, i), pattern(B, 10 + i))
    }
    await store.deleteVolume(volumeId(1))
    for (let i = 0; i < 4; i++) {
      expect(await store.has(ref(1, i))).toBe(false)
      expect(await store.get(ref(2, i))).toEqual(pattern(B, 10 + i))
    }
  }))

  it('ignores deleteVolume of a volume with no blocks', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.deleteVolume(volumeId(99))
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 1))
  }))

  it('starts from zeros when a volume is written again after deleteVolume', ctx.run(async (store) => {
    await store.put(ref(1, 0), filled(B, 0xaa))
    await store.deleteVolume(volumeId(1))
    await store.write(ref(1, 0), 0, Uint8Array.of(1))
    const block = (await store.get(ref(1, 0)))!
    expect(block[0]).toBe(1)
    expect(firstNot(block.subarray(1), 0)).toBe(-1)
  }))

  it.skipIf(!ctx.supports.trim)('releases capacity on delete', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.put(ref(1, 1), pattern(B, 2))
    expect(store.usage()).toMatchObject({ blocks: 2, usedBytes: 2 * B })
    await store.delete(ref(1, 0))
    expect(store.usage()).toMatchObject({ blocks: 1, usedBytes: B })
  }))

  it.skipIf(!ctx.supports.trim)('releases only that volume\'s capacity on deleteVolume', ctx.run(async (store) => {
    for (let i = 0; i < 3; i++) await store.put(ref(1, i), pattern(B, i))
    await store.put(ref(2, 0), pattern(B, 9))
    await store.deleteVolume(volumeId(1))
    expect(store.usage()).toMatchObject({ blocks: 1, usedBytes: B })
  }))
}
