// Goal: writeZeroes makes a range read as zeros (with or without a hole) and never touches bytes outside it;
// a fast zero either zeroes or refuses with TORUS_NOT_SUPPORTED and changes nothing. Method: write, zero, read.
import { expect, it } from 'vitest'
import { firstDiff, firstNot, pattern, readRange, type SuiteContext } from './context.js'

export function writeZeroesTests(ctx: SuiteContext): void {
  const size = ctx.sizeBytes
  const itz = it.skipIf(!ctx.writable || !ctx.supports.writeZeroes)

  for (const noHole of [false, true]) {
    const how = noHole ? 'with noHole' : 'allowing a hole'

    itz(`zeroes an unaligned multi-block range ${how} and keeps its neighbours`, ctx.run(async (device) => {
      const data = pattern(400_000, 1)
      await device.write(0, data)
      await device.writeZeroes(777, 300_001, { noHole })
      const after = await readRange(device, 0, 400_000)
      expect(firstDiff(after.subarray(0, 777), data.subarray(0, 777))).toBe(-1)
      expect(firstNot(after.subarray(777, 300_778), 0)).toBe(-1)
      expect(firstDiff(after.subarray(300_778), data.subarray(300_778))).toBe(-1)
    }))

    itz(`zeroes a never-written range ${how}`, ctx.run(async (device) => {
      await device.writeZeroes(1000, 200_000, { noHole })
      expect(firstNot(await readRange(device, 0, 202_000), 0)).toBe(-1)
    }))

    itz(`zeroes a few bytes inside written data ${how}`, ctx.run(async (device) => {
      const data = pattern(8192, 2)
      await device.write(0, data)
      await device.writeZeroes(4090, 10, { noHole })
      const expected = data.slice()
      expected.fill(0, 4090, 4100)
      expect(firstDiff(await readRange(device, 0, 8192), expected)).toBe(-1)
    }))

    itz(`zeroes the end of the device ${how}`, ctx.run(async (device) => {
      await device.write(size - 70_000, pattern(70_000, 3))
      await device.writeZeroes(size - 65_537, 65_537, { noHole })
      const tail = await readRange(device, size - 70_000, 70_000)
      expect(firstDiff(tail.subarray(0, 70_000 - 65_537), pattern(70_000, 3).subarray(0, 70_000 - 65_537))).toBe(-1)
      expect(firstNot(tail.subarray(70_000 - 65_537), 0)).toBe(-1)
    }))
  }

  itz('accepts new writes into a zeroed range', ctx.run(async (device) => {
    await device.write(0, pattern(200_000, 4))
    await device.writeZeroes(0, 200_000)
    await device.write(1000, pattern(10, 5))
    const after = await readRange(device, 0, 200_000)
    expect(firstDiff(after.subarray(1000, 1010), pattern(10, 5))).toBe(-1)
    expect(firstNot(after.subarray(0, 1000), 0)).toBe(-1)
    expect(firstNot(after.subarray(1010), 0)).toBe(-1)
  }))

  const itf = it.skipIf(!ctx.writable || !ctx.supports.writeZeroes || !ctx.supports.fastZero)

  for (const [label, offsetBytes, lengthBytes, noHole] of [
    ['an unaligned range inside written data', 1001, 200_000, false],
    ['an unaligned range with noHole', 1001, 200_000, true],
    ['a 4 KiB-aligned range', 65_536, 131_072, false],
  ] as const) {
    itf(`fast-zeroes ${label} or refuses with TORUS_NOT_SUPPORTED leaving the data intact`, ctx.run(async (device) => {
      const data = pattern(400_000, 6)
      await device.write(0, data)
      let refused = false
      try {
        await device.writeZeroes(offsetBytes, lengthBytes, { fast: true, noHole })
      } catch (err) {
        expect(err).toMatchObject({ code: 'TORUS_NOT_SUPPORTED' })
        refused = true
      }
      const after = await readRange(device, 0, 400_000)
      const expected = data.slice()
      if (!refused) expected.fill(0, offsetBytes, offsetBytes + lengthBytes)
      expect(firstDiff(after, expected)).toBe(-1)
    }))
  }

  itf('fast-zeroes a never-written range or refuses with TORUS_NOT_SUPPORTED', ctx.run(async (device) => {
    try {
      await device.writeZeroes(12_345, 300_000, { fast: true })
    } catch (err) {
      expect(err).toMatchObject({ code: 'TORUS_NOT_SUPPORTED' })
    }
    expect(firstNot(await readRange(device, 0, 320_000), 0)).toBe(-1)
  }))
}
