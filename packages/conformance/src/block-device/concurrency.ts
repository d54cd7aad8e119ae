// Goal: requests issued together over disjoint ranges all take effect, including several inside one block.
// Method: issue many parallel writes (and reads of other ranges), await them all, then read everything back.
import { expect, it } from 'vitest'
import { firstDiff, pattern, readRange, type SuiteContext } from './context.js'

export function concurrencyTests(ctx: SuiteContext): void {
  const itw = it.skipIf(!ctx.writable)

  itw('keeps every one of many parallel 512-byte writes packed into the first 64 KiB', ctx.run(async (device) => {
    const writes = Array.from({ length: 128 }, (_, i) => device.write(i * 512, pattern(512, i + 1)))
    await Promise.all(writes)
    const all = await readRange(device, 0, 128 * 512)
    for (let i = 0; i < 128; i++) expect(firstDiff(all.subarray(i * 512, (i + 1) * 512), pattern(512, i + 1)), `write ${i}`).toBe(-1)
  }))

  itw('keeps parallel odd-sized writes that share blocks and cross block edges', ctx.run(async (device) => {
    // Back-to-back ranges of 1..9000 bytes: neighbours share blocks at every common block size.
    const ranges: [number, number][] = []
    let off = 3
    for (let i = 0; i < 64; i++) {
      const len = 1 + ((i * 2749) % 9000)
      ranges.push([off, len])
      off += len
    }
    await Promise.all(ranges.map(([o, n], i) => device.write(o, pattern(n, 100 + i))))
    for (const [i, [o, n]] of ranges.entries()) expect(firstDiff(await readRange(device, o, n), pattern(n, 100 + i)), `write ${i}`).toBe(-1)
  }))

  itw('serves parallel reads of one range while other ranges are written', ctx.run(async (device) => {
    const stable = pattern(50_000, 7)
    await device.write(0, stable)
    const ops: Promise<unknown>[] = []
    const reads: Promise<Uint8Array>[] = []
    for (let i = 0; i < 16; i++) {
      ops.push(device.write(60_000 + i * 3000, pattern(3000, 200 + i)))
      reads.push(readRange(device, 0, 50_000))
    }
    await Promise.all(ops)
    for (const r of await Promise.all(reads)) expect(firstDiff(r, stable)).toBe(-1)
  }))

  itw('leaves each byte from one of two concurrent overlapping writes', ctx.run(async (device) => {
    await Promise.all([device.write(1000, new Uint8Array(200_000).fill(0xaa)), device.write(1000, new Uint8Array(200_000).fill(0xbb))])
    const after = await readRange(device, 1000, 200_000)
    expect(after.findIndex((b) => b !== 0xaa && b !== 0xbb)).toBe(-1)
  }))

  it.skipIf(!ctx.writable || !ctx.supports.writeZeroes || !ctx.supports.trim)('keeps parallel writes beside parallel zeroes and trims in the same blocks', ctx.run(async (device) => {
    await device.write(0, pattern(40_000, 9))
    const kept = pattern(1000, 10)
    await Promise.all([
      device.writeZeroes(0, 1000),
      device.write(1000, kept),
      device.trim(2000, 1000),
      device.writeZeroes(3000, 1000, { noHole: true }),
    ])
    const after = await readRange(device, 0, 4000)
    expect(firstDiff(after.subarray(0, 1000), new Uint8Array(1000))).toBe(-1)
    expect(firstDiff(after.subarray(1000, 2000), kept)).toBe(-1)
    expect(firstDiff(after.subarray(3000, 4000), new Uint8Array(1000))).toBe(-1)
  }))
}
