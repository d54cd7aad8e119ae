// Goal: a read-only device serves reads and refuses every mutation with TORUS_READ_ONLY, changing nothing.
// Method: use the harness's devices when they are read-only, else a read-only view from `openReadOnly`.
import { expect, it } from 'vitest'
import type { BlockDevice } from '@torus/core'
import { firstDiff, pattern, readRange, rejection, type SuiteContext } from './context.js'

async function expectRefusesMutations(device: BlockDevice): Promise<void> {
  expect(device.supports.readOnly).toBe(true)
  expect(await rejection(() => device.write(0, pattern(10, 1)))).toMatchObject({ code: 'TORUS_READ_ONLY' })
  expect(await rejection(() => device.write(0, pattern(10, 1), { fua: true }))).toMatchObject({ code: 'TORUS_READ_ONLY' })
  if (device.supports.trim) expect(await rejection(() => device.trim(0, 4096))).toMatchObject({ code: 'TORUS_READ_ONLY' })
  if (device.supports.writeZeroes) {
    expect(await rejection(() => device.writeZeroes(0, 4096))).toMatchObject({ code: 'TORUS_READ_ONLY' })
  }
}

export function readOnlyTests(ctx: SuiteContext): void {
  it.skipIf(ctx.writable)('refuses writes, trims and zeroes with TORUS_READ_ONLY and still reads', ctx.run(async (device) => {
    const before = await readRange(device, 0, 8192)
    await expectRefusesMutations(device)
    expect(firstDiff(await readRange(device, 0, 8192), before)).toBe(-1)
  }))

  it.skipIf(!ctx.writable || ctx.harness.openReadOnly === undefined)('reads written data through a read-only view that refuses mutations', ctx.run(async (device) => {
    const data = pattern(100_000, 2)
    await device.write(500, data)
    if (device.supports.flush) await device.flush()
    const view = await ctx.harness.openReadOnly!(device)
    expect(firstDiff(await readRange(view, 500, data.byteLength), data)).toBe(-1)
    await expectRefusesMutations(view)
    expect(firstDiff(await readRange(device, 500, data.byteLength), data)).toBe(-1)
  }))
}
