// Goal: whole-block put and get round-trip exactly and keep blocks independent.
// Method: put known patterns at several refs, read them back with get, and mutate buffers to prove copies.
import { expect, it } from 'vitest'
import { filled, pattern, ref, type SuiteContext } from './context.js'

export function putGetTests(ctx: SuiteContext): void {
  const B = ctx.blockSizeBytes

  it('returns undefined for a never-written block', ctx.run(async (store) => {
    expect(await store.get(ref(1, 0))).toBeUndefined()
    expect(await store.get(ref(7, 12345))).toBeUndefined()
  }))

  it('returns the bytes of a put block', ctx.run(async (store) => {
    const block = pattern(B, 1)
    await store.put(ref(1, 3), block)
    expect(await store.get(ref(1, 3))).toEqual(block)
  }))

  it('replaces the whole block on a second put', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.put(ref(1, 0), pattern(B, 2))
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 2))
  }))

  it('keeps blocks of different indexes and volumes apart', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.put(ref(1, 1), pattern(B, 2))
    await store.put(ref(2, 0), pattern(B, 3))
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 1))
    expect(await store.get(ref(1, 1))).toEqual(pattern(B, 2))
    expect(await store.get(ref(2, 0))).toEqual(pattern(B, 3))
    expect(await store.get(ref(2, 1))).toBeUndefined()
  }))

  it('does not keep a reference to the buffer passed to put', ctx.run(async (store) => {
    const block = pattern(B, 4)
    await store.put(ref(1, 0), block)
    block.fill(0xee)
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 4))
  }))

  it('returns a copy that callers may change freely', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 5))
    const first = await store.get(ref(1, 0))
    first!.fill(0xee)
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 5))
  }))

  it('stores exactly the viewed bytes of a subarray', ctx.run(async (store) => {
    const backing = filled(B + 64, 0x11)
    backing.set(pattern(B, 6), 32)
    await store.put(ref(1, 0), backing.subarray(32, 32 + B))
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 6))
  }))

  it('stores a block at a large index', ctx.run(async (store) => {
    await store.put(ref(3, 1_000_000), pattern(B, 7))
    expect(await store.get(ref(3, 1_000_000))).toEqual(pattern(B, 7))
    expect(await store.get(ref(3, 999_999))).toBeUndefined()
  }))
}
