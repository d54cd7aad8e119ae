// Goal: sub-block reads and writes move only their own bytes, and absent blocks read as zeros.
// Method: write and read small ranges at the edges and middle of fresh and existing blocks, then compare with get.
import { expect, it } from 'vitest'
import { filled, firstNot, pattern, ref, type SuiteContext } from './context.js'

export function readWriteTests(ctx: SuiteContext): void {
  const B = ctx.blockSizeBytes

  it('fills zeros and resolves false when reading an absent block', ctx.run(async (store) => {
    const target = filled(64, 0xff)
    expect(await store.read(ref(1, 0), 16, target)).toBe(false)
    expect(firstNot(target, 0)).toBe(-1)
  }))

  it('resolves true and returns the range when reading an allocated block', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    const target = new Uint8Array(100)
    expect(await store.read(ref(1, 0), 50, target)).toBe(true)
    expect(target).toEqual(pattern(B, 1).subarray(50, 150))
  }))

  it('allocates a fresh block zero-filled around a sub-block write', ctx.run(async (store) => {
    const data = pattern(100, 2)
    await store.write(ref(1, 0), 200, data)
    expect(await store.has(ref(1, 0))).toBe(true)
    const expected = new Uint8Array(B)
    expected.set(data, 200)
    expect(await store.get(ref(1, 0))).toEqual(expected)
  }))

  it('leaves the rest of an existing block intact on a sub-block write', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 3))
    const data = pattern(10, 4)
    await store.write(ref(1, 0), 1000, data)
    const expected = pattern(B, 3)
    expected.set(data, 1000)
    expect(await store.get(ref(1, 0))).toEqual(expected)
  }))

  it('writes and reads the first and the last byte of a block', ctx.run(async (store) => {
    await store.write(ref(1, 0), 0, Uint8Array.of(7))
    await store.write(ref(1, 0), B - 1, Uint8Array.of(9))
    const first = new Uint8Array(1)
    const last = new Uint8Array(1)
    await store.read(ref(1, 0), 0, first)
    await store.read(ref(1, 0), B - 1, last)
    expect([first[0], last[0]]).toEqual([7, 9])
    const block = await store.get(ref(1, 0))
    expect(firstNot(block!.subarray(1, B - 1), 0)).toBe(-1)
  }))

  it('accepts a whole-block write at offset 0', ctx.run(async (store) => {
    await store.write(ref(1, 0), 0, pattern(B, 5))
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 5))
  }))

  it('fills only the viewed bytes of a subarray target', ctx.run(async (store) => {
    await store.put(ref(1, 0), filled(B, 0x42))
    const backing = filled(96, 0x11)
    await store.read(ref(1, 0), 0, backing.subarray(32, 64))
    expect(firstNot(backing.subarray(0, 32), 0x11)).toBe(-1)
    expect(firstNot(backing.subarray(32, 64), 0x42)).toBe(-1)
    expect(firstNot(backing.subarray(64), 0x11)).toBe(-1)
  }))

  it('writes exactly the viewed bytes of a subarray', ctx.run(async (store) => {
    const backing = filled(96, 0x11)
    backing.fill(0x22, 32, 64)
    await store.write(ref(1, 0), 8, backing.subarray(32, 64))
    const block = await store.get(ref(1, 0))
    expect(firstNot(block!.subarray(8, 40), 0x22)).toBe(-1)
    expect(firstNot(block!.subarray(40), 0)).toBe(-1)
  }))

  it('leaves an absent block absent after a zero-length write', ctx.run(async (store) => {
    await store.write(ref(1, 0), 0, new Uint8Array(0))
    expect(await store.has(ref(1, 0))).toBe(false)
  }))

  it('reads back a sequence of small writes in one block like a model', ctx.run(async (store) => {
    const model = new Uint8Array(B)
    for (let i = 0; i < 32; i++) {
      const length = 1 + ((i * 37) % 300)
      const offset = (i * 997) % (B - length)
      const data = pattern(length, 10 + i)
      await store.write(ref(1, 5), offset, data)
      model.set(data, offset)
    }
    expect(await store.get(ref(1, 5))).toEqual(model)
  }))
}
