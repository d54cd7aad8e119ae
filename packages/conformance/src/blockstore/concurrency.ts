// Goal: concurrent operations never lose or corrupt each other, above all while a fresh block is being allocated.
// Method: fire many unawaited writes and reads at once (often into one fresh or just-deleted block) and compare with a model.
import { expect, it } from 'vitest'
import { filled, firstNot, pattern, ref, type SuiteContext } from './context.js'

export function concurrencyTests(ctx: SuiteContext): void {
  const B = ctx.blockSizeBytes
  const pieces = Math.min(64, B)
  const pieceBytes = Math.floor(B / pieces)

  it('keeps every one of many concurrent non-overlapping writes inside one fresh block', ctx.run(async (store) => {
    const expected = new Uint8Array(B)
    const writes: Promise<void>[] = []
    for (let p = 0; p < pieces; p++) {
      const data = pattern(pieceBytes, p + 1)
      expected.set(data, p * pieceBytes)
      writes.push(store.write(ref(1, 0), p * pieceBytes, data))
    }
    await Promise.all(writes)
    expect(await store.get(ref(1, 0))).toEqual(expected)
    expect(store.usage().blocks).toBe(1)
  }))

  it('keeps concurrent non-overlapping writes into a just-deleted block, with zeros elsewhere', ctx.run(async (store) => {
    for (let round = 0; round < 5; round++) {
      await store.put(ref(1, 0), filled(B, 0xaa))
      await store.delete(ref(1, 0))
      const expected = new Uint8Array(B)
      const writes: Promise<void>[] = []
      // Every other piece, so the gaps must read as zeros rather than the old 0xaa.
      for (let p = 0; p < pieces; p += 2) {
        const data = pattern(pieceBytes, 100 * round + p + 1)
        expected.set(data, p * pieceBytes)
        writes.push(store.write(ref(1, 0), p * pieceBytes, data))
      }
      await Promise.all(writes)
      expect(await store.get(ref(1, 0))).toEqual(expected)
    }
  }))

  it('never shows stale bytes to reads that race the allocation of a block', ctx.run(async (store) => {
    const fresh = filled(pieceBytes, 0x55)
    for (let round = 0; round < 10; round++) {
      const r = ref(1, round % 3)
      await store.put(r, filled(B, 0xaa))
      await store.delete(r)
      const reads: Promise<Uint8Array | undefined>[] = []
      const partial: Promise<Uint8Array>[] = []
      const write = store.write(r, 0, fresh)
      // Spread the reads over microtask and event-loop turns so some land mid-allocation.
      for (let i = 0; i < 12; i++) {
        reads.push(store.get(r))
        const target = new Uint8Array(B)
        partial.push(store.read(r, 0, target).then(() => target))
        await (i % 3 === 2 ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve())
      }
      await write
      for (const seen of [...(await Promise.all(reads)), ...(await Promise.all(partial))]) {
        if (seen === undefined) continue
        expect(seen.includes(0xaa)).toBe(false)
        expect(firstNot(seen.subarray(pieceBytes), 0)).toBe(-1)
      }
      const final = (await store.get(r))!
      expect(firstNot(final.subarray(0, pieceBytes), 0x55)).toBe(-1)
      expect(firstNot(final.subarray(pieceBytes), 0)).toBe(-1)
    }
  }))

  it('lands every one of many concurrent puts and writes across blocks and volumes', ctx.run(async (store) => {
    const blocks = Math.min(16, Math.floor(ctx.capacityBlocks / 2))
    const model = new Map<string, Uint8Array>()
    const ops: Promise<void>[] = []
    for (let v = 1; v <= 2; v++) {
      for (let i = 0; i < blocks / 2; i++) {
        const block = i % 2 === 0 ? pattern(B, v * 1000 + i) : new Uint8Array(B)
        if (i % 2 === 0) ops.push(store.put(ref(v, i), block))
        else
          for (let p = 0; p < 8; p++) {
            const data = pattern(pieceBytes, v * 1000 + i * 10 + p)
            block.set(data, p * pieceBytes)
            ops.push(store.write(ref(v, i), p * pieceBytes, data))
          }
        model.set(`${v}:${i}`, block)
      }
    }
    await Promise.all(ops)
    for (const [key, block] of model) {
      const [v, i] = key.split(':').map(Number) as [number, number]
      expect(await store.get(ref(v, i))).toEqual(block)
    }
    expect(store.usage().blocks).toBe(model.size)
  }))

  it('leaves exactly one of two concurrent whole-block puts', ctx.run(async (store) => {
    for (let round = 0; round < 5; round++) {
      const r = ref(1, round)
      await Promise.all([store.put(r, filled(B, 1)), store.put(r, filled(B, 2))])
      const block = (await store.get(r))!
      expect([firstNot(block, 1), firstNot(block, 2)]).toContain(-1)
    }
  }))

  it('counts a block once when concurrent writes allocate it', ctx.run(async (store) => {
    await Promise.all([0, 1, 2, 3].map((p) => store.write(ref(1, 0), p * pieceBytes, filled(pieceBytes, p + 1))))
    await Promise.all([store.put(ref(1, 1), filled(B, 1)), store.write(ref(1, 1), 0, filled(8, 2))])
    expect(store.usage()).toMatchObject({ blocks: 2, usedBytes: 2 * B })
  }))
}
