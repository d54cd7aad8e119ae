// Goal: refs() enumerates exactly the stored blocks, per store or per volume, when supports.iterate.
// Method: store and delete blocks across volumes, collect refs() into sorted strings and compare.
import { expect, it } from 'vitest'
import { volumeId, type BlockStore, type VolumeId } from '@torus/core'
import { pattern, ref, type SuiteContext } from './context.js'

async function collect(store: BlockStore, volume?: VolumeId): Promise<string[]> {
  const out: string[] = []
  for await (const r of store.refs(volume)) out.push(`${r.volumeId}:${r.index}`)
  return out.sort()
}

export function iterateTests(ctx: SuiteContext): void {
  const B = ctx.blockSizeBytes
  const iterate = ctx.supports.iterate

  it.skipIf(!iterate)('yields nothing for an empty store', ctx.run(async (store) => {
    expect(await collect(store)).toEqual([])
  }))

  it.skipIf(!iterate)('yields every stored block once, across volumes', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.write(ref(1, 7), 3, Uint8Array.of(1))
    await store.put(ref(2, 4), pattern(B, 2))
    expect(await collect(store)).toEqual(['1:0', '1:7', '2:4'])
  }))

  it.skipIf(!iterate)('yields only the given volume\'s blocks', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.put(ref(2, 4), pattern(B, 2))
    await store.put(ref(2, 5), pattern(B, 3))
    expect(await collect(store, volumeId(2))).toEqual(['2:4', '2:5'])
    expect(await collect(store, volumeId(3))).toEqual([])
  }))

  it.skipIf(!iterate)('does not yield deleted blocks or deleted volumes', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.put(ref(1, 1), pattern(B, 2))
    await store.put(ref(2, 0), pattern(B, 3))
    await store.delete(ref(1, 0))
    await store.deleteVolume(volumeId(2))
    expect(await collect(store)).toEqual(['1:1'])
  }))

  it.skipIf(iterate)('rejects refs() with TORUS_NOT_SUPPORTED', ctx.run(async (store) => {
    await expect(collect(store)).rejects.toMatchObject({ code: 'TORUS_NOT_SUPPORTED' })
  }))
}
