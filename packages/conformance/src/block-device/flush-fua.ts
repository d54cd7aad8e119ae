// Goal: flush and force-unit-access complete and never change what reads return.
// Method: flush idle and after writes, write with `fua`, and read back; durability across restarts is in persistence.ts.
import { expect, it } from 'vitest'
import { firstDiff, firstNot, pattern, readRange, type SuiteContext } from './context.js'

export function flushFuaTests(ctx: SuiteContext): void {
  const { supports } = ctx

  it.skipIf(!supports.flush)('resolves a flush with nothing written', ctx.run(async (device) => {
    await device.flush()
    await device.flush()
  }))

  it.skipIf(!ctx.writable || !supports.flush)('keeps written data readable after a flush', ctx.run(async (device) => {
    const data = pattern(70_000, 1)
    await device.write(1234, data)
    await device.flush()
    expect(firstDiff(await readRange(device, 1234, data.byteLength), data)).toBe(-1)
  }))

  it.skipIf(!ctx.writable || !supports.flush)('resolves a flush issued while writes are in flight', ctx.run(async (device) => {
    const writes = Array.from({ length: 8 }, (_, i) => device.write(i * 20_000, pattern(10_000, i + 2)))
    const flush = device.flush()
    await Promise.all([...writes, flush])
    for (let i = 0; i < 8; i++) expect(firstDiff(await readRange(device, i * 20_000, 10_000), pattern(10_000, i + 2))).toBe(-1)
  }))

  it.skipIf(!ctx.writable || !supports.fua)('reads back a write made with fua', ctx.run(async (device) => {
    const data = pattern(5000, 20)
    await device.write(4000, data, { fua: true })
    expect(firstDiff(await readRange(device, 4000, 5000), data)).toBe(-1)
  }))

  it.skipIf(!ctx.writable || !supports.fua || !supports.writeZeroes)('zeroes a range with fua', ctx.run(async (device) => {
    await device.write(0, pattern(9000, 21))
    await device.writeZeroes(100, 8000, { fua: true })
    expect(firstNot(await readRange(device, 100, 8000), 0)).toBe(-1)
  }))

  it.skipIf(!ctx.writable || !supports.fua || !supports.trim)('resolves a trim with fua', ctx.run(async (device) => {
    await device.write(0, pattern(9000, 22))
    await device.trim(0, 9000, { fua: true })
  }))
}
