// Goal: a Replica with a stateDir keeps its fencing generations and sector checksums across
// restarts and crashes, and detects bytes changed on disk behind its back.
// Method: real FileBlockStores and state directories under a temporary directory. A clean
// restart closes both and opens new instances; a crash opens new instances over the same
// directories without closing the old ones (what SIGKILL leaves: every completed pwrite, and
// the block index as of the last flush). Corruption is a byte flipped in the data file.
import { existsSync } from 'node:fs'
import { mkdtemp, open as openFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { FileBlockStore } from '@torus/blockstore'
import { BlockRef, SeededRandom, type VolumeId } from '@torus/core'
import { Replica } from '../src/index.js'

const B = 16 * 1024
const V = 7 as VolumeId
let dir: string
const opened: { replica: Replica; store: FileBlockStore }[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'torus-replica-state-'))
})

afterEach(async () => {
  // Newest first, so a crashed (never closed) instance's final flush cannot clobber a later one's files before it closes.
  while (opened.length > 0) {
    const { replica, store } = opened.pop()!
    await replica.close().catch(() => undefined)
    await store.close().catch(() => undefined)
  }
  await rm(dir, { recursive: true, force: true })
})

async function start(options: { stateDir?: string | null; fdatasync?: (fd: number) => Promise<void>; checksumCacheBlocks?: number } = {}) {
  const store = new FileBlockStore({ dir: join(dir, 'blocks'), blockSizeBytes: B, capacityBytes: 256 * B })
  const stateDir = options.stateDir === null ? undefined : (options.stateDir ?? join(dir, 'state'))
  const replica = new Replica({ store, stateDir, fdatasync: options.fdatasync, checksumCacheBlocks: options.checksumCacheBlocks })
  await store.open()
  await replica.open()
  opened.push({ replica, store })
  return { replica, store }
}

async function stop(r: { replica: Replica; store: FileBlockStore }): Promise<void> {
  await r.replica.close()
  await r.store.close()
}

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + 1) & 0xff
  return out
}

/** Flips one byte of block `index` of volume V directly in the FileBlockStore's data file. */
async function flipOnDisk(index: number, offsetBytes: number): Promise<void> {
  const fh = await openFile(join(dir, 'blocks', String(V), 'data'), 'r+')
  try {
    const one = new Uint8Array(1)
    await fh.read(one, 0, 1, index * B + offsetBytes)
    one[0] = one[0]! ^ 0xff
    await fh.write(one, 0, 1, index * B + offsetBytes)
  } finally {
    await fh.close()
  }
}

async function readAll(replica: Replica, index: number): Promise<Uint8Array> {
  const out = new Uint8Array(B)
  await replica.read(new BlockRef(V, index), 0, out)
  return out
}

describe('Replica generations with a stateDir', () => {
  it('keeps the highest generation across a close and reopen, and refuses older writes after it', async () => {
    const first = await start()
    expect(first.replica.announce(V, 5)).toBe(5)
    await stop(first)
    const { replica } = await start()
    expect(replica.generation(V)).toBe(5)
    await expect(replica.write(new BlockRef(V, 0), 0, bytes(10, 1), 4)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    expect(() => replica.announce(V, 3)).toThrow(expect.objectContaining({ code: 'TORUS_LEASE_EXPIRED' }))
    await replica.write(new BlockRef(V, 0), 0, bytes(10, 1), 5)
  })

  it('keeps a generation raised by a write across a crash (reopen without close)', async () => {
    const first = await start()
    await first.replica.write(new BlockRef(V, 0), 0, bytes(10, 1), 9)
    // No flush and no close: the raise must already be on disk.
    const { replica } = await start()
    expect(replica.generation(V)).toBe(9)
    expect(replica.generation(8 as VolumeId)).toBe(0)
    await expect(replica.write(new BlockRef(V, 1), 0, bytes(10, 2), 8)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await expect(replica.flush([[V, 8]])).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    await expect(replica.deleteVolume(V, 1)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
  })

  it('keeps a volume generation after the volume is deleted', async () => {
    const first = await start()
    await first.replica.put(new BlockRef(V, 0), bytes(B, 1), 4)
    await first.replica.deleteVolume(V, 4)
    await stop(first)
    const { replica } = await start()
    await expect(replica.put(new BlockRef(V, 0), bytes(B, 1), 3)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
  })

  it('refuses to open when checksum files exist but state.json is gone', async () => {
    const first = await start()
    await first.replica.put(new BlockRef(V, 0), bytes(B, 1), 2)
    await stop(first)
    await rm(join(dir, 'state', 'state.json'))
    await expect(start()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })

  it('refuses an unreadable state.json and one written for another block size', async () => {
    await stop(await start())
    const store = new FileBlockStore({ dir: join(dir, 'other'), blockSizeBytes: 2 * B, capacityBytes: 16 * B })
    await expect(new Replica({ store, stateDir: join(dir, 'state') }).open()).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
    await writeFile(join(dir, 'state', 'state.json'), '{"format":1,')
    await expect(start()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })

  it('rejects every call with TORUS_NOT_OPEN until open(), and after close()', async () => {
    const store = new FileBlockStore({ dir: join(dir, 'blocks'), blockSizeBytes: B, capacityBytes: 16 * B })
    await store.open()
    const replica = new Replica({ store, stateDir: join(dir, 'state') })
    expect(() => replica.announce(V, 1)).toThrow(expect.objectContaining({ code: 'TORUS_NOT_OPEN' }))
    await expect(replica.read(new BlockRef(V, 0), 0, new Uint8Array(1))).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
    await replica.open()
    await replica.open()
    replica.announce(V, 1)
    await replica.close()
    await replica.close()
    await expect(replica.write(new BlockRef(V, 0), 0, bytes(1, 1), 1)).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
    await store.close()
  })
})

describe('Replica checksums with a stateDir', () => {
  it('keeps sums across a flush and clean restart: no false TORUS_CORRUPT over random writes', async () => {
    const rng = new SeededRandom(42)
    const model = new Map<number, Uint8Array>()
    const first = await start()
    for (let k = 0; k < 200; k++) {
      const index = rng.int(12)
      const offset = rng.int(B)
      const length = 1 + rng.int(Math.min(6000, B - offset))
      const data = bytes(length, k)
      if (rng.int(10) === 0) {
        await first.replica.put(new BlockRef(V, index), bytes(B, 1000 + k), 1)
        model.set(index, bytes(B, 1000 + k))
      } else if (rng.int(15) === 0) {
        await first.replica.delete(new BlockRef(V, index), 1)
        model.delete(index)
      } else {
        await first.replica.write(new BlockRef(V, index), offset, data, 1)
        const block = model.get(index) ?? new Uint8Array(B)
        block.set(data, offset)
        model.set(index, block)
      }
    }
    await first.replica.flush([[V, 1]])
    await stop(first)
    const { replica } = await start()
    for (let index = 0; index < 12; index++) {
      const out = new Uint8Array(B)
      expect(await replica.read(new BlockRef(V, index), 0, out)).toBe(model.has(index))
      expect(out).toEqual(model.get(index) ?? new Uint8Array(B))
    }
  })

  it('keeps sums written before a crash, flushed or not, when data and sums both landed', async () => {
    const first = await start()
    await first.replica.put(new BlockRef(V, 0), bytes(B, 1), 1)
    await first.replica.flush([[V, 1]])
    await first.replica.write(new BlockRef(V, 0), 5000, bytes(3000, 2), 1) // unflushed, both pwrites done
    const { replica } = await start()
    const expected = bytes(B, 1)
    expected.set(bytes(3000, 2), 5000)
    expect(await readAll(replica, 0)).toEqual(expected)
  })

  it('reports a byte flipped on disk while closed as TORUS_CORRUPT after reopen, in that sector only', async () => {
    const first = await start()
    await first.replica.put(new BlockRef(V, 3), bytes(B, 3), 1)
    await first.replica.flush()
    await stop(first)
    await flipOnDisk(3, 4096 + 17) // sector 1
    const { replica } = await start()
    await expect(replica.read(new BlockRef(V, 3), 0, new Uint8Array(B))).rejects.toMatchObject({
      code: 'TORUS_CORRUPT',
      details: { volumeId: V, index: 3, sector: 1 },
    })
    const sector0 = new Uint8Array(4096)
    expect(await replica.read(new BlockRef(V, 3), 0, sector0)).toBe(true)
    expect(sector0).toEqual(bytes(B, 3).subarray(0, 4096))
    // A partial write into the damaged sector must not bless its other bytes.
    await expect(replica.write(new BlockRef(V, 3), 4096, bytes(10, 9), 1)).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    // A whole-block put repairs it.
    await replica.put(new BlockRef(V, 3), bytes(B, 4), 1)
    expect(await readAll(replica, 3)).toEqual(bytes(B, 4))
  })

  it('detects a byte flipped on disk after reopen, once the sums are cached', async () => {
    const first = await start()
    await first.replica.write(new BlockRef(V, 1), 100, bytes(9000, 5), 1)
    await first.replica.flush()
    await stop(first)
    const { replica } = await start()
    const expected = new Uint8Array(B)
    expected.set(bytes(9000, 5), 100)
    expect(await readAll(replica, 1)).toEqual(expected)
    await flipOnDisk(1, 8192 + 5) // sector 2
    await expect(readAll(replica, 1)).rejects.toMatchObject({ code: 'TORUS_CORRUPT', details: { sector: 2 } })
  })

  it('treats a stored block without persisted sums as TORUS_CORRUPT until a put replaces it', async () => {
    const legacy = await start({ stateDir: null }) // in-memory sums only, as before this feature
    await legacy.replica.put(new BlockRef(V, 0), bytes(B, 1), 1)
    await stop(legacy)
    const { replica } = await start()
    await expect(readAll(replica, 0)).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    await expect(replica.write(new BlockRef(V, 0), 10, bytes(10, 2), 1)).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    await replica.put(new BlockRef(V, 0), bytes(B, 3), 1)
    expect(await readAll(replica, 0)).toEqual(bytes(B, 3))
  })

  it('reports TORUS_CORRUPT for an unflushed write whose data was lost but whose sums landed', async () => {
    // The documented crash window: sums are written before the data, so a crash between them
    // leaves new sums over old bytes; the gateway then reads another replica.
    const first = await start()
    await first.replica.put(new BlockRef(V, 0), bytes(B, 1), 1)
    await first.replica.flush()
    await first.replica.write(new BlockRef(V, 0), 0, bytes(100, 2), 1)
    const fh = await openFile(join(dir, 'blocks', String(V), 'data'), 'r+')
    await fh.write(bytes(B, 1).subarray(0, 100), 0, 100, 0) // the data pwrite "never happened"
    await fh.close()
    const { replica } = await start()
    await expect(replica.read(new BlockRef(V, 0), 0, new Uint8Array(10))).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    const rest = new Uint8Array(B - 4096)
    await replica.read(new BlockRef(V, 0), 4096, rest)
    expect(rest).toEqual(bytes(B, 1).subarray(4096))
  })

  it('ignores sums of a block written but never allocated durably (crash before flush)', async () => {
    const first = await start()
    await first.replica.write(new BlockRef(V, 2), 0, bytes(50, 1), 1) // index entry not flushed
    const { replica } = await start()
    expect(await replica.read(new BlockRef(V, 2), 0, new Uint8Array(8))).toBe(false)
    await replica.write(new BlockRef(V, 2), 8000, bytes(50, 2), 1)
    const expected = new Uint8Array(B)
    expected.set(bytes(50, 2), 8000)
    expect(await readAll(replica, 2)).toEqual(expected)
  })

  it('rewrites the whole slot when a deleted block is written again, so old sums never apply', async () => {
    const first = await start()
    await first.replica.put(new BlockRef(V, 0), bytes(B, 1), 1)
    await first.replica.delete(new BlockRef(V, 0), 1)
    await first.replica.flush()
    await stop(first)
    const { replica } = await start()
    expect(await replica.read(new BlockRef(V, 0), 0, new Uint8Array(8))).toBe(false)
    await replica.write(new BlockRef(V, 0), 4096, bytes(10, 2), 1)
    await replica.flush()
    const expected = new Uint8Array(B)
    expected.set(bytes(10, 2), 4096)
    expect(await readAll(replica, 0)).toEqual(expected)
  })

  it('removes the checksum file on deleteVolume, and reads never-written blocks as zeros without creating one', async () => {
    const { replica } = await start()
    const target = new Uint8Array(B).fill(9)
    expect(await replica.read(new BlockRef(V, 5), 0, target)).toBe(false)
    expect(target).toEqual(new Uint8Array(B))
    expect(existsSync(join(dir, 'state', `${V}.crc`))).toBe(false)
    await replica.write(new BlockRef(V, 5), 0, bytes(10, 1), 1)
    expect(existsSync(join(dir, 'state', `${V}.crc`))).toBe(true)
    await replica.deleteVolume(V, 1)
    expect(await readdir(join(dir, 'state'))).toEqual(['state.json'])
    expect(await replica.read(new BlockRef(V, 5), 0, new Uint8Array(4))).toBe(false)
    await replica.write(new BlockRef(V, 5), 0, bytes(10, 2), 1)
    expect((await readAll(replica, 5)).subarray(0, 10)).toEqual(bytes(10, 2))
  })

  it('syncs the checksum files in flush(), only those written since the last flush', async () => {
    const synced: number[] = []
    const { replica } = await start({ fdatasync: async (fd) => void synced.push(fd) })
    await replica.write(new BlockRef(V, 0), 0, bytes(10, 1), 1)
    await replica.flush()
    expect(synced).toHaveLength(1)
    await replica.flush()
    expect(synced).toHaveLength(1)
    await replica.write(new BlockRef(8 as VolumeId, 0), 0, bytes(10, 1), 1)
    await replica.flush()
    expect(synced).toHaveLength(2)
    expect(synced[1]).not.toBe(synced[0])
  })

  it('refuses writes and flushes after a checksum sync failed', async () => {
    const { replica } = await start({ fdatasync: async () => Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })) })
    await replica.write(new BlockRef(V, 0), 0, bytes(10, 1), 1)
    await expect(replica.flush()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    await expect(replica.write(new BlockRef(V, 0), 0, bytes(10, 1), 1)).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
    await expect(replica.flush()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })

  it('puts the old sums back when the store refuses a write, so the old bytes still verify', async () => {
    const { replica, store } = await start()
    await replica.put(new BlockRef(V, 0), bytes(B, 1), 1)
    vi.spyOn(store, 'write').mockRejectedValueOnce(new Error('boom'))
    await expect(replica.write(new BlockRef(V, 0), 100, bytes(5000, 2), 1)).rejects.toThrow('boom')
    expect(await readAll(replica, 0)).toEqual(bytes(B, 1))
    await replica.flush()
    const again = await start()
    expect(await readAll(again.replica, 0)).toEqual(bytes(B, 1))
  })

  it('reloads evicted sums from the checksum file', async () => {
    const { replica } = await start({ checksumCacheBlocks: 2 })
    for (let i = 0; i < 6; i++) await replica.write(new BlockRef(V, i), 4000, bytes(300, i), 1)
    for (let i = 0; i < 6; i++) {
      const out = new Uint8Array(300)
      await replica.read(new BlockRef(V, i), 4000, out)
      expect(out).toEqual(bytes(300, i))
    }
    await flipOnDisk(0, 4001)
    await expect(replica.read(new BlockRef(V, 0), 4000, new Uint8Array(1))).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })
})
