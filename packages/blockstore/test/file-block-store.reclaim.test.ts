// Goal: deleting a block gives its disk space back to the file system (a hole in the data file)
// once the deletion is durable, never punches a block that is live again, holds off writes to a
// block while its hole is punched, flushes on its own after many deletes, and keeps working
// (space kept) when holes cannot be punched. Method: FileBlockStore in a temp dir on the test
// machine's file system, measured with stat(2) block counts; fallocate(1) for real, or a
// wrapper around it that records, delays or fails calls.
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BlockRef, type Logger } from '@torus/core'
import { FileBlockStore, type FileBlockStoreOptions } from '../src/index.js'
import { punchHole } from '../src/punch-hole.js'

const B = 64 * 1024
let dir: string
const stores: FileBlockStore[] = []

async function open(options: Partial<FileBlockStoreOptions> = {}): Promise<FileBlockStore> {
  const store = new FileBlockStore({ dir, blockSizeBytes: B, capacityBytes: 1024 * B, ...options })
  stores.push(store)
  await store.open()
  return store
}

const pattern = (seed: number): Uint8Array => Uint8Array.from({ length: B }, (_, i) => (i * 13 + seed) & 0xff || 1)
/** Bytes the data file of volume 1 takes on disk. */
const onDisk = async (): Promise<number> => (await stat(join(dir, '1', 'data'))).blocks * 512
const ref = (i: number): BlockRef => new BlockRef(1, i)

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'torus-fbs-reclaim-'))
})

afterEach(async () => {
  await Promise.allSettled(stores.splice(0).map((s) => s.close()))
  await rm(dir, { recursive: true, force: true })
})

describe('FileBlockStore gives deleted space back', () => {
  it('punches holes over blocks deleted before a flush, and keeps the others intact', async () => {
    const store = await open()
    for (let i = 0; i < 8; i++) await store.put(ref(i), pattern(i))
    await store.flush()
    const full = await onDisk()
    expect(full).toBeGreaterThanOrEqual(8 * B)
    for (const i of [1, 2, 3, 5, 6]) await store.delete(ref(i))
    await store.flush()
    await eventually(async () => (await onDisk()) <= full - 5 * B, 'five blocks of space back')
    for (const i of [0, 4, 7]) expect(await store.get(ref(i))).toEqual(pattern(i))
    for (const i of [1, 2, 3, 5, 6]) expect(await store.get(ref(i))).toBeUndefined()
    // A freed block is allocated afresh: zeros around a small write, not old bytes.
    await store.write(ref(2), 100, Uint8Array.of(9))
    const again = await store.get(ref(2))
    expect(again?.[100]).toBe(9)
    expect(again?.filter((b) => b !== 0).length).toBe(1)
  })

  it('waits for the deletion to be durable, punches adjacent blocks in one call, and never a block written again', async () => {
    const calls: Array<[number, number]> = []
    const store = await open({ punchHole: async (path, offset, length) => { calls.push([offset / B, length / B]); await punchHole(path, offset, length) } })
    for (let i = 0; i < 6; i++) await store.put(ref(i), pattern(i))
    await store.flush()
    for (const i of [0, 1, 2, 4, 5]) await store.delete(ref(i))
    await new Promise((r) => setTimeout(r, 50))
    expect(calls).toEqual([]) // nothing durable yet
    await store.put(ref(4), pattern(40)) // live again before the flush
    await store.flush()
    await store.close() // waits for the punching
    expect(calls).toEqual([[0, 3], [5, 1]])
    const reopened = await open()
    expect(await reopened.get(ref(3))).toEqual(pattern(3))
    expect(await reopened.get(ref(4))).toEqual(pattern(40))
    for (const i of [0, 1, 2, 5]) expect(await reopened.get(ref(i))).toBeUndefined()
  })

  it('holds a write to a block whose hole is being punched until the hole is done', async () => {
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    let started!: () => void
    const punching = new Promise<void>((r) => (started = r))
    const store = await open({ punchHole: async (path, offset, length) => { started(); await held; await punchHole(path, offset, length) } })
    await store.put(ref(0), pattern(1))
    await store.flush()
    await store.delete(ref(0))
    await store.flush()
    await punching
    let written = false
    const write = store.put(ref(0), pattern(2)).then(() => (written = true))
    await new Promise((r) => setTimeout(r, 50))
    expect(written).toBe(false)
    release()
    await write
    expect(await store.get(ref(0))).toEqual(pattern(2))
    await store.flush()
    expect(await store.get(ref(0))).toEqual(pattern(2))
  })

  it('flushes on its own after many deletes, so trimming and writing elsewhere cannot grow the file without bound', async () => {
    const calls: number[] = []
    const store = await open({ punchHole: async (path, offset, length) => { calls.push(length / B); await punchHole(path, offset, length) } })
    // Write, delete and move on, never flushing: at most ~64 deleted blocks are ever held.
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 48; i++) await store.put(ref(round * 48 + i), pattern(i))
      for (let i = 0; i < 48; i++) await store.delete(ref(round * 48 + i))
    }
    await eventually(async () => calls.reduce((a, b) => a + b, 0) >= 128, 'the deleted blocks to be punched')
    expect(await onDisk()).toBeLessThanOrEqual((48 + 64 + 16) * B)
  })

  it('keeps working with the space allocated when holes cannot be punched, and says so once', async () => {
    const warnings: string[] = []
    const logger: Logger = { debug() {}, info() {}, warn: (msg) => void warnings.push(msg), error() {}, child: () => logger }
    let calls = 0
    const store = await open({
      logger,
      punchHole: async () => {
        calls++
        throw new Error('fallocate: fallocate failed: Operation not supported')
      },
    })
    for (let round = 0; round < 2; round++) {
      await store.put(ref(0), pattern(round))
      await store.put(ref(2), pattern(round))
      await store.flush()
      await store.delete(ref(0))
      await store.delete(ref(2))
      await store.flush()
    }
    await store.close()
    expect(calls).toBe(1)
    expect(warnings.filter((w) => w.includes('cannot give the space of deleted blocks back'))).toHaveLength(1)
    const reopened = await open()
    expect(await reopened.get(ref(0))).toBeUndefined()
  })
})
