// Goal: invalid arguments are programmer errors (RangeError/TypeError, no code) and aborted signals reject with TORUS_ABORTED.
// Method: call each method with bad refs, lengths and offsets or a pre-aborted signal, then check the store did not change.
import { expect, it } from 'vitest'
import { BlockRef, type VolumeId } from '@torus/core'
import { filled, pattern, ref, type SuiteContext } from './context.js'

/** A BlockRef-shaped value that skips the constructor's checks. */
function forgedRef(volume: number, index: number): BlockRef {
  return Object.assign(Object.create(BlockRef.prototype) as BlockRef, { volumeId: volume, index })
}

export function argsTests(ctx: SuiteContext): void {
  const B = ctx.blockSizeBytes

  it('rejects a put whose block is not blockSizeBytes long with RangeError', ctx.run(async (store) => {
    await expect(store.put(ref(1, 0), new Uint8Array(B - 1))).rejects.toThrow(RangeError)
    await expect(store.put(ref(1, 0), new Uint8Array(B + 1))).rejects.toThrow(RangeError)
    await expect(store.put(ref(1, 0), new Uint8Array(0))).rejects.toThrow(RangeError)
    expect(await store.has(ref(1, 0))).toBe(false)
  }))

  it('rejects writes that reach past the block or start at a bad offset with RangeError', ctx.run(async (store) => {
    await expect(store.write(ref(1, 0), B - 3, new Uint8Array(4))).rejects.toThrow(RangeError)
    await expect(store.write(ref(1, 0), 0, new Uint8Array(B + 1))).rejects.toThrow(RangeError)
    await expect(store.write(ref(1, 0), -1, new Uint8Array(1))).rejects.toThrow(RangeError)
    await expect(store.write(ref(1, 0), 1.5, new Uint8Array(1))).rejects.toThrow(RangeError)
    await expect(store.write(ref(1, 0), Number.NaN, new Uint8Array(1))).rejects.toThrow(RangeError)
    await expect(store.write(ref(1, 0), B + 1, new Uint8Array(0))).rejects.toThrow(RangeError)
    expect(await store.has(ref(1, 0))).toBe(false)
  }))

  it('rejects reads that reach past the block or start at a bad offset with RangeError', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await expect(store.read(ref(1, 0), B - 3, new Uint8Array(4))).rejects.toThrow(RangeError)
    await expect(store.read(ref(1, 0), 0, new Uint8Array(B + 1))).rejects.toThrow(RangeError)
    await expect(store.read(ref(1, 0), -1, new Uint8Array(1))).rejects.toThrow(RangeError)
    await expect(store.read(ref(1, 0), 0.5, new Uint8Array(1))).rejects.toThrow(RangeError)
  }))

  it('rejects a BlockRef with an invalid volume or index with RangeError', ctx.run(async (store) => {
    await expect(store.get(forgedRef(0, 0))).rejects.toThrow(RangeError)
    await expect(store.put(forgedRef(1, -1), new Uint8Array(B))).rejects.toThrow(RangeError)
    await expect(store.write(forgedRef(1, 0.5), 0, new Uint8Array(1))).rejects.toThrow(RangeError)
    await expect(store.has(forgedRef(-3, 0))).rejects.toThrow(RangeError)
    await expect(store.delete(forgedRef(1, Number.NaN))).rejects.toThrow(RangeError)
    await expect(store.deleteVolume(0 as VolumeId)).rejects.toThrow(RangeError)
  }))

  it('rejects data that is not a Uint8Array with TypeError', ctx.run(async (store) => {
    const notBytes = 'abc' as unknown as Uint8Array
    await expect(store.put(ref(1, 0), notBytes)).rejects.toThrow(TypeError)
    await expect(store.write(ref(1, 0), 0, notBytes)).rejects.toThrow(TypeError)
    await expect(store.read(ref(1, 0), 0, notBytes)).rejects.toThrow(TypeError)
  }))

  it('rejects every operation with TORUS_ABORTED when the signal already fired', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    const signal = AbortSignal.abort()
    const aborted = { code: 'TORUS_ABORTED' }
    await expect(store.get(ref(1, 0), { signal })).rejects.toMatchObject(aborted)
    await expect(store.put(ref(1, 1), new Uint8Array(B), { signal })).rejects.toMatchObject(aborted)
    await expect(store.read(ref(1, 0), 0, new Uint8Array(8), { signal })).rejects.toMatchObject(aborted)
    await expect(store.write(ref(1, 1), 0, new Uint8Array(8), { signal })).rejects.toMatchObject(aborted)
    await expect(store.has(ref(1, 0), { signal })).rejects.toMatchObject(aborted)
    await expect(store.delete(ref(1, 0), { signal })).rejects.toMatchObject(aborted)
    await expect(store.deleteVolume(ref(1, 0).volumeId, { signal })).rejects.toMatchObject(aborted)
    await expect(store.flush({ signal })).rejects.toMatchObject(aborted)
  }))

  it('changes nothing when an aborted or invalid call is rejected', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    const signal = AbortSignal.abort()
    await store.put(ref(1, 0), filled(B, 9), { signal }).catch(() => {})
    await store.write(ref(1, 0), 0, filled(8, 9), { signal }).catch(() => {})
    await store.delete(ref(1, 0), { signal }).catch(() => {})
    await store.write(ref(1, 0), B - 1, filled(8, 9)).catch(() => {})
    await store.put(ref(1, 1), filled(B, 9), { signal }).catch(() => {})
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 1))
    expect(await store.has(ref(1, 1))).toBe(false)
    expect(store.usage().blocks).toBe(1)
  }))
}
