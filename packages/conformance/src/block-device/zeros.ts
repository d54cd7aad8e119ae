// Goal: ranges never written read as zeros, wherever they are and however they are read.
// Method: read fresh devices at the start, middle and end, and read across the edge of written data.
import { expect, it } from 'vitest'
import { firstNot, pattern, readRange, type SuiteContext } from './context.js'

export function zerosTests(ctx: SuiteContext): void {
  const size = ctx.sizeBytes

  it('reads zeros from a never-written device', ctx.run(async (device) => {
    for (const [off, len] of [[0, 4096], [Math.floor(size / 2) - 123, 70_000], [size - 4096, 4096], [size - 1, 1]] as const) {
      expect(firstNot(await readRange(device, off, len), 0)).toBe(-1)
    }
  }))

  it('overwrites every byte of a dirty target with zeros', ctx.run(async (device) => {
    const target = new Uint8Array(10_000).fill(0xff)
    await device.read(12_345, target)
    expect(firstNot(target, 0)).toBe(-1)
  }))

  it.skipIf(!ctx.writable)('reads zeros around and between written ranges', ctx.run(async (device) => {
    await device.write(10_000, pattern(100, 1))
    await device.write(300_000, pattern(100, 2))
    const between = await readRange(device, 10_100, 300_000 - 10_100)
    expect(firstNot(between, 0)).toBe(-1)
    expect(firstNot(await readRange(device, 0, 10_000), 0)).toBe(-1)
  }))
}
