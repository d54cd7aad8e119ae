// Goal: Volume-specific behaviour the BlockDevice suite cannot see: block mapping, capacity, zero-copy, lifecycle.
// Method: drive a Volume over a MemoryBlockStore (sometimes wrapped to record calls) and inspect the store.
import { describe, expect, it } from 'vitest'
import { MemoryBlockStore } from '@torus/blockstore'
import { BlockRef, volumeId, type BlockStore } from '@torus/core'
import { Volume } from '../src/index.js'
import { memoryVolume, openedMemoryStore, volumeInfo } from './helpers/volumes.js'

const KiB = 1024
const MiB = 1024 * KiB
const B = 4 * KiB

async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

/** Records every store call's block index, offset and the buffer it was given. */
function recording(store: BlockStore): { store: BlockStore; calls: { op: string; index: number; offset?: number; buffer?: Uint8Array }[] } {
  const calls: { op: string; index: number; offset?: number; buffer?: Uint8Array }[] = []
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        const [ref, offset, buffer] = args
        if (ref instanceof BlockRef) {
          calls.push({
            op: String(prop),
            index: ref.index,
            ...(typeof offset === 'number' ? { offset } : {}),
            ...(buffer instanceof Uint8Array ? { buffer } : {}),
          })
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return { store: proxy, calls }
}

describe('Volume', () => {
  it('throws RangeError when the store block size differs from the volume', async () => {
    const store = await openedMemoryStore(8 * KiB)
    expect(() => new Volume({ info: volumeInfo({ sizeBytes: MiB, blockSizeBytes: B }), store })).toThrow(RangeError)
    await store.close()
  })

  it('reports sizeBytes and the capability manifest', async () => {
    const { volume } = await memoryVolume(MiB + 512, B)
    expect(volume.sizeBytes).toBe(MiB + 512)
    expect(volume.supports).toEqual({ readOnly: false, flush: true, fua: true, trim: true, writeZeroes: true, fastZero: true, multiConn: true })
    expect(volume.generation).toBeUndefined()
  })

  it('splits a spanning write into one store write per block, each a subarray of the caller data', async () => {
    const { store, calls } = recording(await openedMemoryStore(B))
    const volume = new Volume({ info: volumeInfo({ sizeBytes: MiB, blockSizeBytes: B }), store })
    const data = new Uint8Array(2 * B + 200).fill(7)
    await volume.write(B - 100, data)
    const writes = calls.filter((c) => c.op === 'write')
    expect(writes.map((c) => [c.index, c.offset, c.buffer?.byteLength])).toEqual([
      [0, B - 100, 100],
      [1, 0, B],
      [2, 0, B],
      [3, 0, 100],
    ])
    for (const w of writes) expect(w.buffer?.buffer).toBe(data.buffer)
  })

  it('reads straight into subarrays of the caller target', async () => {
    const { store, calls } = recording(await openedMemoryStore(B))
    const volume = new Volume({ info: volumeInfo({ sizeBytes: MiB, blockSizeBytes: B }), store })
    const target = new Uint8Array(3 * B)
    await volume.read(B / 2, target.subarray(0, 2 * B))
    const reads = calls.filter((c) => c.op === 'read')
    expect(reads.map((c) => [c.index, c.offset, c.buffer?.byteOffset, c.buffer?.byteLength])).toEqual([
      [0, B / 2, 0, B / 2],
      [1, 0, B / 2, B],
      [2, 0, B / 2 + B, B / 2],
    ])
    for (const r of reads) expect(r.buffer?.buffer).toBe(target.buffer)
  })

  it('frees wholly trimmed blocks and leaves partially trimmed ones allocated', async () => {
    const { volume, store } = await memoryVolume(MiB, B)
    await volume.write(0, new Uint8Array(4 * B).fill(1))
    expect(store.usage().blocks).toBe(4)
    await volume.trim(100, 3 * B)
    // Block 0 and 3 are partial; 1 and 2 are whole.
    expect(store.usage().blocks).toBe(2)
    const head = new Uint8Array(B)
    await volume.read(0, head)
    expect(head[99]).toBe(1)
  })

  it('frees the short last block when a trim reaches the end of the volume', async () => {
    const { volume, store } = await memoryVolume(MiB + 512, B)
    await volume.write(MiB, new Uint8Array(512).fill(3))
    expect(store.usage().blocks).toBe(1)
    await volume.trim(MiB, 512)
    expect(store.usage().blocks).toBe(0)
  })

  it('zeroes whole blocks by deleting them, and never allocates blocks that were absent', async () => {
    const { volume, store } = await memoryVolume(MiB, B)
    await volume.write(0, new Uint8Array(2 * B).fill(1))
    await volume.writeZeroes(0, 10 * B + 5)
    expect(store.usage().blocks).toBe(0)
    await volume.writeZeroes(20 * B + 1, B)
    expect(store.usage().blocks).toBe(0)
  })

  it('allocates zeroed blocks with noHole', async () => {
    const { volume, store } = await memoryVolume(MiB, B)
    await volume.writeZeroes(B - 1, 2 * B + 2, { noHole: true })
    expect(store.usage().blocks).toBe(4)
    expect(await store.get(new BlockRef(volumeId(1), 1))).toEqual(new Uint8Array(B))
  })

  it('fast-zeroes when only deletes and skips are needed', async () => {
    const { volume, store } = await memoryVolume(MiB, B)
    await volume.write(B, new Uint8Array(B).fill(1))
    await volume.writeZeroes(100, 3 * B, { fast: true })
    expect(store.usage().blocks).toBe(0)
  })

  it('refuses a fast zero that would write an allocated partial block, changing nothing', async () => {
    const { volume, store } = await memoryVolume(MiB, B)
    await volume.write(0, new Uint8Array(3 * B).fill(1))
    expect(await rejection(() => volume.writeZeroes(100, 2 * B, { fast: true }))).toMatchObject({ code: 'TORUS_NOT_SUPPORTED' })
    expect(store.usage().blocks).toBe(3)
    const all = new Uint8Array(3 * B)
    await volume.read(0, all)
    expect(all.every((b) => b === 1)).toBe(true)
  })

  it('refuses a fast zero with noHole', async () => {
    const { volume } = await memoryVolume(MiB, B)
    expect(await rejection(() => volume.writeZeroes(0, B, { fast: true, noHole: true }))).toMatchObject({ code: 'TORUS_NOT_SUPPORTED' })
  })

  it('keeps volumes with different ids apart in one store', async () => {
    const store = await openedMemoryStore(B)
    const a = new Volume({ info: volumeInfo({ name: 'a', id: volumeId(1), sizeBytes: MiB, blockSizeBytes: B }), store })
    const b = new Volume({ info: volumeInfo({ name: 'b', id: volumeId(2), sizeBytes: MiB, blockSizeBytes: B }), store })
    await a.write(0, new Uint8Array(B).fill(0xa))
    await b.write(0, new Uint8Array(B).fill(0xb))
    await b.trim(0, MiB)
    const fromA = new Uint8Array(B)
    await a.read(0, fromA)
    expect(fromA.every((x) => x === 0xa)).toBe(true)
  })

  it('flushes the store on flush, fua and close', async () => {
    const { store, calls } = recording(await openedMemoryStore(B))
    let flushes = 0
    const counting = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'flush') return async () => void flushes++
        return Reflect.get(target, prop, receiver) as unknown
      },
    })
    const volume = new Volume({ info: volumeInfo({ sizeBytes: MiB, blockSizeBytes: B }), store: counting })
    await volume.flush()
    await volume.write(0, new Uint8Array(10), { fua: true })
    await volume.close()
    expect(flushes).toBe(3)
    expect(calls.some((c) => c.op === 'write')).toBe(true)
  })

  it('rejects every operation with TORUS_NOT_OPEN after close, and closes twice safely', async () => {
    const { volume, store } = await memoryVolume(MiB, B)
    await volume.close()
    await volume.close()
    expect(volume.status).toBe('closed')
    for (const op of [
      () => volume.read(0, new Uint8Array(1)),
      () => volume.write(0, new Uint8Array(1)),
      () => volume.flush(),
      () => volume.trim(0, B),
      () => volume.writeZeroes(0, B),
    ]) {
      expect(await rejection(op)).toMatchObject({ code: 'TORUS_NOT_OPEN' })
    }
    expect(store.status).toBe('open')
  })

  it('waits for in-flight writes before close resolves', async () => {
    const { volume } = await memoryVolume(MiB, B)
    const write = volume.write(0, new Uint8Array(64 * KiB).fill(9))
    await volume.close()
    await expect(write).resolves.toBeUndefined()
  })

  it('refuses mutations with TORUS_READ_ONLY but flushes when read-only', async () => {
    const store = await openedMemoryStore(B)
    const volume = new Volume({ info: volumeInfo({ sizeBytes: MiB, blockSizeBytes: B }), store, readOnly: true })
    expect(volume.supports.readOnly).toBe(true)
    expect(await rejection(() => volume.write(0, new Uint8Array(1)))).toMatchObject({ code: 'TORUS_READ_ONLY' })
    await volume.flush()
  })

  it('rejects, rather than throws, on a non-Uint8Array buffer', async () => {
    const { volume } = await memoryVolume(MiB, B)
    expect(await rejection(() => volume.read(0, [] as unknown as Uint8Array))).toBeInstanceOf(TypeError)
    expect(await rejection(() => volume.write(0, 'x' as unknown as Uint8Array))).toBeInstanceOf(TypeError)
  })

  it('disposes with await using', async () => {
    const store = new MemoryBlockStore({ blockSizeBytes: B })
    await store.open()
    let volume: Volume
    {
      await using v = new Volume({ info: volumeInfo({ sizeBytes: MiB, blockSizeBytes: B }), store })
      volume = v
    }
    expect(volume.status).toBe('closed')
  })
})
