// Goal: the file backend's own promises: on-disk layout, index validation, durability without close(), cleanup and error mapping.
// Method: drive FileBlockStore in temp directories, inspect or damage its files directly, and open fresh instances on the same directory.
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BlockRef, volumeId } from '@torus/core'
import { FileBlockStore } from '../src/index.js'
import { mapFsError } from '../src/fs-io.js'

const B = 4096
let dir: string
const stores: FileBlockStore[] = []

async function open(options: { capacityBlocks?: number; blockSizeBytes?: number } = {}): Promise<FileBlockStore> {
  const store = new FileBlockStore({ dir, blockSizeBytes: options.blockSizeBytes ?? B, capacityBytes: (options.capacityBlocks ?? 64) * B })
  stores.push(store)
  await store.open()
  return store
}

function bytes(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff)
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'torus-fbs-unit-'))
})

afterEach(async () => {
  // Instances "dropped" by a test are closed here, after the test has made its point.
  await Promise.allSettled(stores.splice(0).map((s) => s.close()))
  await rm(dir, { recursive: true, force: true })
})

describe('FileBlockStore on disk', () => {
  it('places block i at offset i × blockSize of the volume data file, behind an index', async () => {
    const store = await open()
    await store.put(new BlockRef(3, 2), bytes(B, 1))
    await store.flush()
    const data = await readFile(join(dir, '3', 'data'))
    expect(data.byteLength).toBe(3 * B)
    expect(new Uint8Array(data.subarray(2 * B))).toEqual(bytes(B, 1))
    const index = await readFile(join(dir, '3', 'index'))
    expect(index.subarray(0, 8).toString('latin1')).toBe('TORUSIDX')
    expect([...index.subarray(16, 19)]).toEqual([0, 0, 1])
  })

  it('removes the volume directory on deleteVolume', async () => {
    const store = await open()
    await store.put(new BlockRef(1, 0), bytes(B, 1))
    await store.put(new BlockRef(2, 0), bytes(B, 2))
    await store.deleteVolume(volumeId(1))
    expect((await readdir(dir)).sort()).toEqual(['2'])
  })

  it('reports an allocation past capacity with the used and total bytes', async () => {
    const store = await open({ capacityBlocks: 1 })
    await store.put(new BlockRef(1, 0), bytes(B, 1))
    const err: unknown = await store.put(new BlockRef(1, 1), bytes(B, 1)).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'TORUS_OUT_OF_SPACE' })
    expect((err as Error).message).toContain(`${B} of ${B} bytes used`)
  })

  it('enforces capacity against usage found on open', async () => {
    const first = await open({ capacityBlocks: 2 })
    await first.put(new BlockRef(1, 0), bytes(B, 1))
    await first.put(new BlockRef(2, 0), bytes(B, 1))
    await first.close()
    const second = await open({ capacityBlocks: 2 })
    await expect(second.write(new BlockRef(1, 1), 0, bytes(8, 1))).rejects.toMatchObject({ code: 'TORUS_OUT_OF_SPACE' })
  })
})

describe('FileBlockStore deleteVolume races', () => {
  it('keeps usage equal to the allocated blocks when deleteVolume races writes and allocations', async () => {
    const store = await open()
    for (let i = 0; i < 8; i++) await store.put(new BlockRef(1, i), bytes(B, i))
    const ops: Promise<unknown>[] = []
    for (let i = 0; i < 16; i++) {
      ops.push(store.write(new BlockRef(1, i), 0, bytes(64, i)))
      if (i === 4) ops.push(store.deleteVolume(volumeId(1)))
      ops.push(store.read(new BlockRef(1, i), 0, new Uint8Array(64)))
    }
    await Promise.all(ops)
    let allocated = 0
    for (let i = 0; i < 16; i++) if (await store.has(new BlockRef(1, i))) allocated++
    expect(store.usage().blocks).toBe(allocated)
    await store.close()
    const again = await open()
    expect(again.usage().blocks).toBe(allocated)
  })
})

describe('FileBlockStore index validation', () => {
  async function storeWithOneBlock(): Promise<string> {
    const store = await open()
    await store.put(new BlockRef(1, 0), bytes(B, 1))
    await store.close()
    return join(dir, '1', 'index')
  }

  it('rejects a foreign index file with TORUS_CORRUPT naming its path', async () => {
    const path = await storeWithOneBlock()
    await writeFile(path, 'this is not an index file at all')
    const err: unknown = await open().catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'TORUS_CORRUPT' })
    expect((err as Error).message).toContain(path)
  })

  it('rejects a truncated header with TORUS_CORRUPT', async () => {
    const path = await storeWithOneBlock()
    await writeFile(path, (await readFile(path)).subarray(0, 10))
    await expect(open()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })

  it('rejects an unknown format version with TORUS_CORRUPT', async () => {
    const path = await storeWithOneBlock()
    const index = await readFile(path)
    index[9] = 99
    await writeFile(path, index)
    await expect(open()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })

  it('rejects an index entry that is neither 0 nor 1 with TORUS_CORRUPT', async () => {
    const path = await storeWithOneBlock()
    const index = await readFile(path)
    index[16] = 7
    await writeFile(path, index)
    await expect(open()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })

  it('rejects a store written with another block size with TORUS_INVALID_ARGUMENT', async () => {
    await storeWithOneBlock()
    await expect(open({ blockSizeBytes: 2 * B })).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
  })

  it('stays closed after a failed open and can open once the damage is removed', async () => {
    const path = await storeWithOneBlock()
    await writeFile(path, 'garbage')
    const store = new FileBlockStore({ dir, blockSizeBytes: B, capacityBytes: 64 * B })
    await expect(store.open()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    expect(store.status).toBe('closed')
    await rm(join(dir, '1'), { recursive: true })
    await store.open()
    expect(store.usage().blocks).toBe(0)
    await store.close()
  })
})

describe('FileBlockStore durability without close', () => {
  it('keeps flushed data, index and usage when the instance is dropped without close', async () => {
    const first = await open()
    await first.put(new BlockRef(1, 0), bytes(B, 1))
    await first.write(new BlockRef(1, 5000), 100, bytes(50, 2))
    await first.flush()
    // `first` is abandoned here, as after a crash: no close(), no further flush.
    const second = await open()
    expect(await second.get(new BlockRef(1, 0))).toEqual(bytes(B, 1))
    const target = new Uint8Array(50)
    expect(await second.read(new BlockRef(1, 5000), 100, target)).toBe(true)
    expect(target).toEqual(bytes(50, 2))
    expect(second.usage().blocks).toBe(2)
  })

  it('keeps a flushed delete when the instance is dropped without close', async () => {
    const first = await open()
    await first.put(new BlockRef(1, 0), bytes(B, 1))
    await first.put(new BlockRef(1, 1), bytes(B, 2))
    await first.flush()
    await first.delete(new BlockRef(1, 0))
    await first.flush()
    const second = await open()
    expect(await second.has(new BlockRef(1, 0))).toBe(false)
    expect(await second.get(new BlockRef(1, 1))).toEqual(bytes(B, 2))
    expect(second.usage().blocks).toBe(1)
  })

  it('writes an allocation to the index only on flush', async () => {
    const first = await open()
    await first.put(new BlockRef(1, 0), bytes(B, 1))
    await first.flush()
    await first.put(new BlockRef(1, 1), bytes(B, 2))
    const second = await open()
    expect(await second.has(new BlockRef(1, 0))).toBe(true)
    expect(await second.has(new BlockRef(1, 1))).toBe(false)
  })

  it('covers every write made before a flush even while other flushes overlap it', async () => {
    const first = await open()
    const ops: Promise<void>[] = []
    for (let i = 0; i < 32; i++) {
      ops.push(first.write(new BlockRef(1 + (i % 3), i), 0, bytes(64, i)))
      if (i % 4 === 3) ops.push(first.flush())
    }
    await Promise.all(ops)
    await first.flush()
    const second = await open()
    for (let i = 0; i < 32; i++) {
      const target = new Uint8Array(64)
      expect(await second.read(new BlockRef(1 + (i % 3), i), 0, target)).toBe(true)
      expect(target).toEqual(bytes(64, i))
    }
  })
})

describe('FileBlockStore open', () => {
  it('removes leftovers of an interrupted deleteVolume, index write or volume creation', async () => {
    const first = await open()
    await first.put(new BlockRef(1, 0), bytes(B, 1))
    await first.close()
    await mkdir(join(dir, '.7.deleted'))
    await writeFile(join(dir, '.7.deleted', 'data'), 'old')
    await writeFile(join(dir, '1', 'index.tmp'), 'partial')
    await mkdir(join(dir, '9'))
    const second = await open()
    expect((await readdir(dir)).sort()).toEqual(['1'])
    expect(await readdir(join(dir, '1'))).not.toContain('index.tmp')
    expect(await second.get(new BlockRef(1, 0))).toEqual(bytes(B, 1))
  })

  it('ignores entries it does not own', async () => {
    await writeFile(join(dir, 'README'), 'hello')
    await mkdir(join(dir, 'lost+found'))
    const store = await open()
    expect(store.usage().blocks).toBe(0)
    expect((await stat(join(dir, 'README'))).isFile()).toBe(true)
  })

  it('rejects a volume directory whose data has no index with TORUS_CORRUPT', async () => {
    await mkdir(join(dir, '4'))
    await writeFile(join(dir, '4', 'data'), bytes(B, 1))
    await expect(open()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })
})

describe('mapFsError', () => {
  it('maps ENOSPC and EDQUOT to TORUS_OUT_OF_SPACE and keeps the cause', () => {
    const enospc = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
    expect(mapFsError(enospc)).toMatchObject({ code: 'TORUS_OUT_OF_SPACE', cause: enospc })
    expect(mapFsError(Object.assign(new Error('quota'), { code: 'EDQUOT' }))).toMatchObject({ code: 'TORUS_OUT_OF_SPACE' })
  })

  it('maps EIO to TORUS_CORRUPT and passes other errors through', () => {
    expect(mapFsError(Object.assign(new Error('io'), { code: 'EIO' }))).toMatchObject({ code: 'TORUS_CORRUPT' })
    const eacces = Object.assign(new Error('denied'), { code: 'EACCES' })
    expect(mapFsError(eacces)).toBe(eacces)
  })
})
