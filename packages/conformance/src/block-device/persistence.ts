// Goal: everything flushed before a restart reads back afterwards, zeroed ranges included.
// Method: write, flush (or fua), reopen through `harness.reopen`, and compare; skipped when the harness has no reopen.
import { expect, it } from 'vitest'
import type { BlockDevice } from '@torus/core'
import { firstDiff, firstNot, pattern, readRange, type SuiteContext } from './context.js'

export function persistenceTests(ctx: SuiteContext): void {
  const { harness, supports } = ctx
  const size = ctx.sizeBytes
  const canReopen = harness.reopen !== undefined && ctx.writable

  /** Runs `fn` on a fresh device and destroys whichever instance is current at the end. */
  const run = (fn: (device: BlockDevice, reopen: (d: BlockDevice) => Promise<BlockDevice>) => Promise<BlockDevice>) => async () => {
    let current = await harness.create()
    try {
      current = await fn(current, async (d) => {
        current = await harness.reopen!(d)
        return current
      })
    } finally {
      await harness.destroy(current)
    }
  }

  it.skipIf(!canReopen || !supports.flush)('keeps flushed writes across a reopen', run(async (device, reopen) => {
    const a = pattern(300_000, 1)
    await device.write(4095, a)
    await device.write(size - 3, Uint8Array.of(7, 8, 9))
    await device.flush()
    const after = await reopen(device)
    expect(firstDiff(await readRange(after, 4095, a.byteLength), a)).toBe(-1)
    expect(await readRange(after, size - 3, 3)).toEqual(Uint8Array.of(7, 8, 9))
    expect(firstNot(await readRange(after, 0, 4095), 0)).toBe(-1)
    return after
  }))

  it.skipIf(!canReopen || !supports.fua)('keeps a fua write across a reopen', run(async (device, reopen) => {
    const a = pattern(10_000, 2)
    await device.write(123_456, a, { fua: true })
    const after = await reopen(device)
    expect(firstDiff(await readRange(after, 123_456, a.byteLength), a)).toBe(-1)
    return after
  }))

  it.skipIf(!canReopen || !supports.flush || !supports.writeZeroes)('keeps zeroed ranges zero across a reopen', run(async (device, reopen) => {
    await device.write(0, pattern(300_000, 3))
    await device.writeZeroes(1000, 200_000)
    await device.writeZeroes(250_000, 10_000, { noHole: true })
    await device.flush()
    const after = await reopen(device)
    expect(firstNot(await readRange(after, 1000, 200_000), 0)).toBe(-1)
    expect(firstNot(await readRange(after, 250_000, 10_000), 0)).toBe(-1)
    expect(firstDiff(await readRange(after, 0, 1000), pattern(300_000, 3).subarray(0, 1000))).toBe(-1)
    return after
  }))

  it.skipIf(!canReopen || !supports.flush)('takes writes after a reopen and keeps them across another', run(async (device, reopen) => {
    await device.write(0, pattern(5000, 4))
    await device.flush()
    let current = await reopen(device)
    await current.write(2500, pattern(5000, 5))
    await current.flush()
    current = await reopen(current)
    const expected = pattern(7500, 0)
    expected.set(pattern(5000, 4), 0)
    expected.set(pattern(5000, 5), 2500)
    expect(firstDiff(await readRange(current, 0, 7500), expected)).toBe(-1)
    return current
  }))
}
