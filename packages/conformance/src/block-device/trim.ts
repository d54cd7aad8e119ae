// Goal: trim leaves the range undefined but harmless (each byte reads as before or as zero), never touches
// bytes outside it, and the range takes new writes normally. Method: write, trim, read, rewrite, read.
import { expect, it } from 'vitest'
import { firstDiff, pattern, readRange, type SuiteContext } from './context.js'

/** Index of the first byte that is neither the old byte nor zero, or -1. */
function firstNotOldOrZero(actual: Uint8Array, old: Uint8Array): number {
  return actual.findIndex((b, i) => b !== 0 && b !== old[i])
}

export function trimTests(ctx: SuiteContext): void {
  const size = ctx.sizeBytes
  const itt = it.skipIf(!ctx.writable || !ctx.supports.trim)

  itt('reads old bytes or zeros in a trimmed range and keeps the rest', ctx.run(async (device) => {
    const data = pattern(300_000, 1)
    await device.write(0, data)
    await device.trim(1000, 250_000)
    const after = await readRange(device, 0, 300_000)
    expect(firstDiff(after.subarray(0, 1000), data.subarray(0, 1000))).toBe(-1)
    expect(firstNotOldOrZero(after.subarray(1000, 251_000), data.subarray(1000, 251_000))).toBe(-1)
    expect(firstDiff(after.subarray(251_000), data.subarray(251_000))).toBe(-1)
  }))

  itt('reads back data rewritten over a trimmed range', ctx.run(async (device) => {
    await device.write(0, pattern(200_000, 2))
    await device.trim(0, 200_000)
    const fresh = pattern(150_000, 3)
    await device.write(7, fresh)
    expect(firstDiff(await readRange(device, 7, 150_000), fresh)).toBe(-1)
  }))

  itt('trims a never-written range', ctx.run(async (device) => {
    await device.trim(4096, 65_536)
    await device.trim(size - 100, 100)
  }))

  itt('trims the whole device and takes new writes afterwards', ctx.run(async (device) => {
    await device.write(size - 5000, pattern(5000, 4))
    await device.trim(0, size)
    await device.write(size - 10, pattern(10, 5))
    expect(firstDiff(await readRange(device, size - 10, 10), pattern(10, 5))).toBe(-1)
  }))
}
