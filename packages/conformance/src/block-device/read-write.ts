// Goal: bytes written at any offset and length read back exactly, and nothing around them changes.
// Method: write seeded patterns at aligned, unaligned, block-spanning, 1-byte and end-of-device ranges, then read back wider ranges.
import { expect, it } from 'vitest'
import { firstDiff, firstNot, pattern, readRange, type SuiteContext } from './context.js'

export function readWriteTests(ctx: SuiteContext): void {
  const size = ctx.sizeBytes
  const itw = it.skipIf(!ctx.writable)

  itw('reads back an aligned 4 KiB write', ctx.run(async (device) => {
    const data = pattern(4096, 1)
    await device.write(8192, data)
    expect(firstDiff(await readRange(device, 8192, 4096), data)).toBe(-1)
  }))

  itw('reads back an unaligned write and leaves its neighbours zero', ctx.run(async (device) => {
    const data = pattern(1000, 2)
    await device.write(4093, data)
    const around = await readRange(device, 4000, 1200)
    expect(firstNot(around.subarray(0, 93), 0)).toBe(-1)
    expect(firstDiff(around.subarray(93, 1093), data)).toBe(-1)
    expect(firstNot(around.subarray(1093), 0)).toBe(-1)
  }))

  itw('reads back a write spanning many blocks at an odd offset', ctx.run(async (device) => {
    const length = Math.min(size - 4097, 1024 * 1024 + 3)
    const data = pattern(length, 3)
    await device.write(4097, data)
    expect(firstDiff(await readRange(device, 4097, length), data)).toBe(-1)
    // Read back through many small unaligned windows too, so block boundaries are crossed on read.
    for (let off = 0; off < length; off += 65_521) {
      const n = Math.min(777, length - off)
      expect(firstDiff(await readRange(device, 4097 + off, n), data.subarray(off, off + n))).toBe(-1)
    }
  }))

  itw('reads back single-byte writes at block-like boundaries', ctx.run(async (device) => {
    const offsets = [0, 511, 512, 4095, 4096, 65_535, 65_536, 524_287, 524_288].filter((o) => o < size)
    for (const [i, off] of offsets.entries()) await device.write(off, Uint8Array.of(i + 1))
    for (const [i, off] of offsets.entries()) expect(await readRange(device, off, 1)).toEqual(Uint8Array.of(i + 1))
    const first = await readRange(device, 0, 4097)
    expect(first[1]).toBe(0)
    expect(first[4094]).toBe(0)
  }))

  itw('writes and reads the last byte of the device', ctx.run(async (device) => {
    await device.write(size - 1, Uint8Array.of(0x5a))
    expect(await readRange(device, size - 1, 1)).toEqual(Uint8Array.of(0x5a))
    const tail = await readRange(device, size - 4096, 4096)
    expect(firstNot(tail.subarray(0, 4095), 0)).toBe(-1)
    expect(tail[4095]).toBe(0x5a)
  }))

  itw('writes a range that ends exactly at the end of the device', ctx.run(async (device) => {
    const data = pattern(10_000, 4)
    await device.write(size - data.byteLength, data)
    expect(firstDiff(await readRange(device, size - data.byteLength, data.byteLength), data)).toBe(-1)
  }))

  itw('overwrites part of earlier data and keeps the rest', ctx.run(async (device) => {
    const base = pattern(20_000, 5)
    const patch = pattern(3_000, 6)
    await device.write(1000, base)
    await device.write(1000 + 7_777, patch)
    const expected = base.slice()
    expected.set(patch, 7_777)
    expect(firstDiff(await readRange(device, 1000, 20_000), expected)).toBe(-1)
  }))

  itw('fills a subarray target in place without touching bytes outside it', ctx.run(async (device) => {
    const data = pattern(5000, 7)
    await device.write(3000, data)
    const buffer = new Uint8Array(7000).fill(0xee)
    await device.read(3000, buffer.subarray(1000, 6000))
    expect(firstNot(buffer.subarray(0, 1000), 0xee)).toBe(-1)
    expect(firstDiff(buffer.subarray(1000, 6000), data)).toBe(-1)
    expect(firstNot(buffer.subarray(6000), 0xee)).toBe(-1)
  }))

  itw('writes from a subarray of a larger buffer', ctx.run(async (device) => {
    const big = pattern(10_000, 8)
    await device.write(100, big.subarray(2000, 6000))
    expect(firstDiff(await readRange(device, 100, 4000), big.subarray(2000, 6000))).toBe(-1)
  }))

  itw('keeps written data after the caller reuses its buffer', ctx.run(async (device) => {
    const data = pattern(4096, 9)
    const expected = data.slice()
    await device.write(0, data)
    data.fill(0)
    expect(firstDiff(await readRange(device, 0, 4096), expected)).toBe(-1)
  }))
}
