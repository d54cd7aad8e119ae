// Goal: a resolved flush() has fdatasync'd every file holding a write that resolved before it —
// data before index — and a failed sync is never papered over by a later "successful" flush.
// Method: FileBlockStore with a recording (or failing) fdatasync; file descriptors are mapped
// back to paths through /proc/self/fd.
import { readlinkSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BlockRef } from '@torus/core'
import { FileBlockStore } from '../src/index.js'
import { fdatasync as realSync } from '../src/fs-io.js'

const B = 4096
let dir: string
let synced: string[]
let failNext: boolean
const stores: FileBlockStore[] = []

async function open(): Promise<FileBlockStore> {
  const store = new FileBlockStore({
    dir,
    blockSizeBytes: B,
    capacityBytes: 64 * B,
    fdatasync: async (fd) => {
      const file = readlinkSync(`/proc/self/fd/${fd}`).slice(dir.length + 1)
      if (failNext) {
        failNext = false
        await new Promise((r) => setTimeout(r, 50)) // slow enough for other flushes to queue behind
        throw Object.assign(new Error(`EIO: i/o error, fdatasync ${file}`), { code: 'EIO' })
      }
      await realSync(fd)
      synced.push(file)
    },
  })
  stores.push(store)
  await store.open()
  return store
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'torus-fbs-sync-'))
  synced = []
  failNext = false
})
afterEach(async () => {
  await Promise.allSettled(stores.splice(0).map((s) => s.close()))
  await rm(dir, { recursive: true, force: true })
})

describe('FileBlockStore flush', () => {
  it('syncs the data of every written volume before its index, and nothing when clean', async () => {
    const store = await open()
    await store.write(new BlockRef(1, 0), 0, new Uint8Array(10).fill(1))
    await store.write(new BlockRef(2, 5), 100, new Uint8Array(10).fill(2))
    await store.flush()
    expect(synced.filter((f) => f.endsWith('/data')).sort()).toEqual(['1/data', '2/data'])
    for (const v of ['1', '2']) expect(synced.indexOf(`${v}/data`)).toBeLessThan(synced.indexOf(`${v}/index`))

    synced = []
    await store.flush()
    expect(synced).toEqual([])

    // An overwrite of an allocated block changes no index entry: only its data file is synced.
    await store.write(new BlockRef(1, 0), 5, new Uint8Array(3).fill(9))
    await store.flush()
    expect(synced).toEqual(['1/data'])
  })

  it('covers writes that resolved while another flush was running', async () => {
    const store = await open()
    await store.write(new BlockRef(1, 0), 0, new Uint8Array(1))
    const first = store.flush()
    await store.write(new BlockRef(3, 0), 0, new Uint8Array(1))
    synced = []
    await store.flush() // must not be satisfied by `first`, which started before the write
    expect(synced).toContain('3/data')
    expect(synced).toContain('3/index')
    await first
  })

  it('refuses writes and flushes after a failed sync until reopened; reads keep working', async () => {
    const store = await open()
    const ref = new BlockRef(1, 0)
    await store.write(ref, 0, new Uint8Array(4).fill(7))
    failNext = true
    await expect(store.flush()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    // A retry must not report success over pages the kernel may have dropped.
    await expect(store.flush()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    await expect(store.write(ref, 0, new Uint8Array(1))).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    await expect(store.delete(ref)).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    const back = new Uint8Array(4)
    await store.read(ref, 0, back)
    expect([...back]).toEqual([7, 7, 7, 7])
    await store.close()

    const again = await open()
    await again.write(ref, 0, new Uint8Array(1))
    await again.flush()
  })
})

describe('FileBlockStore flush queued behind a failing one', () => {
  it('fails too, instead of reporting success over a failed sync', async () => {
    const store = await open()
    await store.write(new BlockRef(1, 0), 0, new Uint8Array(8).fill(1))
    failNext = true
    const a = store.flush()
    await store.write(new BlockRef(1, 1), 0, new Uint8Array(8).fill(2))
    const b = store.flush() // queued while `a` runs
    await expect(a).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    await expect(b).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })
})

describe('FileBlockStore open after damage', () => {
  it('refuses a data file shorter than the blocks its index claims (TORUS_CORRUPT)', async () => {
    const store = await open()
    await store.write(new BlockRef(1, 3), 0, new Uint8Array(10).fill(1))
    await store.close()
    const { truncate } = await import('node:fs/promises')
    await truncate(join(dir, '1', 'data'), 3 * B + 100)
    const again = new FileBlockStore({ dir, blockSizeBytes: B, capacityBytes: 64 * B })
    await expect(again.open()).rejects.toMatchObject({ code: 'TORUS_CORRUPT', message: expect.stringContaining('claims block 3') })
  })
})
