// Goal: requests outside [0, sizeBytes) or with malformed numbers fail with RangeError and change nothing,
// and an aborted signal fails with TORUS_ABORTED. Method: issue each bad request per operation, then check the bytes.
import { expect, it } from 'vitest'
import type { BlockDevice } from '@torus/core'
import { firstDiff, pattern, readRange, rejection, type SuiteContext } from './context.js'

type RangeOp = (device: BlockDevice, offsetBytes: number, lengthBytes: number) => Promise<unknown>

export function boundsTests(ctx: SuiteContext): void {
  const size = ctx.sizeBytes
  const { supports } = ctx

  const bad: [string, (size: number) => [number, number]][] = [
    ['starting at the end', (s) => [s, 1]],
    ['crossing the end by one byte', (s) => [s - 1, 2]],
    ['far past the end', (s) => [s * 4, 512]],
    ['at a negative offset', () => [-1, 1]],
    ['at a fractional offset', () => [1.5, 1]],
    ['at a NaN offset', () => [Number.NaN, 1]],
    ['whose end overflows a safe integer', () => [Number.MAX_SAFE_INTEGER, 2]],
  ]

  const ops: [string, boolean, RangeOp][] = [
    ['read', true, (d, o, n) => d.read(o, new Uint8Array(n))],
    ['write', ctx.writable, (d, o, n) => d.write(o, new Uint8Array(n).fill(1))],
    ['trim', ctx.writable && supports.trim, (d, o, n) => d.trim(o, n)],
    ['writeZeroes', ctx.writable && supports.writeZeroes, (d, o, n) => d.writeZeroes(o, n)],
  ]

  for (const [name, enabled, op] of ops) {
    it.skipIf(!enabled)(`rejects ${name} with RangeError for ranges outside the device`, ctx.run(async (device) => {
      for (const [label, make] of bad) {
        const [offset, length] = make(size)
        const err = await rejection(() => op(device, offset, length))
        expect(err, label).toBeInstanceOf(RangeError)
      }
    }))
  }

  for (const [name, enabled, op] of ops.filter(([n]) => n === 'trim' || n === 'writeZeroes')) {
    it.skipIf(!enabled)(`rejects ${name} with RangeError for a negative or fractional length`, ctx.run(async (device) => {
      expect(await rejection(() => op(device, 0, -1))).toBeInstanceOf(RangeError)
      expect(await rejection(() => op(device, 0, 0.5))).toBeInstanceOf(RangeError)
    }))
  }

  it.skipIf(!ctx.writable)('leaves the last bytes unchanged after a write crossing the end is rejected', ctx.run(async (device) => {
    const tail = pattern(100, 1)
    await device.write(size - 100, tail)
    await rejection(() => device.write(size - 50, new Uint8Array(100)))
    expect(firstDiff(await readRange(device, size - 100, 100), tail)).toBe(-1)
  }))

  it('accepts a read of the whole device', ctx.run(async (device) => {
    // Bounded so a huge device does not allocate a huge buffer: read the last 1 MiB, ending exactly at the end.
    const n = Math.min(size, 1024 * 1024)
    await device.read(size - n, new Uint8Array(n))
  }))

  it('rejects a read with TORUS_ABORTED when its signal is already aborted', ctx.run(async (device) => {
    const err = await rejection(() => device.read(0, new Uint8Array(10), { signal: AbortSignal.abort() }))
    expect(err).toMatchObject({ code: 'TORUS_ABORTED' })
  }))

  it.skipIf(!ctx.writable)('rejects a write with TORUS_ABORTED when its signal is already aborted, writing nothing', ctx.run(async (device) => {
    const err = await rejection(() => device.write(0, pattern(10, 2), { signal: AbortSignal.abort() }))
    expect(err).toMatchObject({ code: 'TORUS_ABORTED' })
    expect(firstDiff(await readRange(device, 0, 10), new Uint8Array(10))).toBe(-1)
  }))
}
