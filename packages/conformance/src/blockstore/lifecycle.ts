// Goal: open/close follow the shared lifecycle: close is idempotent and a closed store refuses work.
// Method: drive status transitions on a fresh store and call every method after close, asserting TORUS_NOT_OPEN.
import { expect, it } from 'vitest'
import { volumeId, type BlockStore } from '@torus/core'
import { pattern, ref, type SuiteContext } from './context.js'

export function lifecycleTests(ctx: SuiteContext): void {
  const B = ctx.blockSizeBytes

  it('is open when the harness returns it', ctx.run(async (store) => {
    expect(store.status).toBe('open')
  }))

  it('resolves open() on an open store and keeps its contents', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await store.open()
    expect(store.status).toBe('open')
    expect(await store.get(ref(1, 0))).toEqual(pattern(B, 1))
  }))

  it('closes once and resolves a second close', ctx.run(async (store) => {
    await store.close()
    expect(store.status).toBe('closed')
    await store.close()
    expect(store.status).toBe('closed')
  }))

  it('resolves concurrent closes', ctx.run(async (store) => {
    await store.put(ref(1, 0), pattern(B, 1))
    await Promise.all([store.close(), store.close()])
    expect(store.status).toBe('closed')
  }))

  it('rejects every operation after close with TORUS_NOT_OPEN', ctx.run(async (store) => {
    await store.close()
    const notOpen = { code: 'TORUS_NOT_OPEN' }
    await expect(store.get(ref(1, 0))).rejects.toMatchObject(notOpen)
    await expect(store.put(ref(1, 0), new Uint8Array(B))).rejects.toMatchObject(notOpen)
    await expect(store.read(ref(1, 0), 0, new Uint8Array(8))).rejects.toMatchObject(notOpen)
    await expect(store.write(ref(1, 0), 0, new Uint8Array(8))).rejects.toMatchObject(notOpen)
    await expect(store.has(ref(1, 0))).rejects.toMatchObject(notOpen)
    await expect(store.delete(ref(1, 0))).rejects.toMatchObject(notOpen)
    await expect(store.deleteVolume(volumeId(1))).rejects.toMatchObject(notOpen)
    await expect(store.flush()).rejects.toMatchObject(notOpen)
    if (ctx.supports.iterate) await expect(drain(store)).rejects.toMatchObject(notOpen)
  }))

  it('lets an operation started before close finish', ctx.run(async (store) => {
    const write = store.put(ref(1, 0), pattern(B, 1))
    const close = store.close()
    await expect(write).resolves.toBeUndefined()
    await close
    expect(store.status).toBe('closed')
  }))

  it('resolves flush() with nothing written', ctx.run(async (store) => {
    await store.flush()
    await store.flush()
  }))
}

async function drain(store: BlockStore): Promise<void> {
  for await (const _ of store.refs()) {
    // only the rejection matters
  }
}
