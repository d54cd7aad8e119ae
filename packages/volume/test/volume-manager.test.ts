// Goal: VolumeManager opens a volume once for all its connections, closes it (flush, unlock)
// when the last one goes, runs `prepare` before serving and releases the lock if it fails, and
// refuses to delete a volume in use. Method: MemoryMetadataStore and MemoryBlockStore in process.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MemoryBlockStore } from '@torus/blockstore'
import { isTorusError, silentLogger } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { VolumeManager, type Volume, type VolumeManagerOptions } from '../src/index.js'

const B = 4096

let metadata: MemoryMetadataStore
let store: MemoryBlockStore
let manager: VolumeManager

beforeEach(async () => {
  metadata = new MemoryMetadataStore()
  await metadata.open()
  await metadata.initCluster({ blockSizeBytes: B, replication: 1, ringType: 'single', createdAt: new Date().toISOString() })
  await metadata.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
  store = new MemoryBlockStore({ blockSizeBytes: B })
  await store.open()
  manager = create()
})

afterEach(async () => {
  await manager.closeAll()
  await store.close()
  await metadata.close()
})

function create(overrides: Partial<VolumeManagerOptions> = {}): VolumeManager {
  return new VolumeManager({ metadata, store, holder: 'test/a', leaseTtlMs: 10_000, logger: silentLogger, ...overrides })
}

describe('VolumeManager', () => {
  it('returns undefined for a volume that does not exist, or a name no volume can have', async () => {
    expect(await manager.acquire('nope')).toBeUndefined()
    for (const name of ['', 'x'.repeat(4096), 'a/b', '-x']) expect(await manager.acquire(name)).toBeUndefined()
  })

  it('describes a volume without opening it or taking its lock, also while another holder has it', async () => {
    const other = create({ holder: 'test/b' })
    const held = await other.acquire('pad')
    try {
      expect(await manager.describe('pad')).toEqual({ sizeBytes: 1024 * 1024, supports: held!.volume.supports })
      expect(manager.openVolumes().size).toBe(0)
      expect((await metadata.getVolumeLock('pad'))?.holder).toBe('test/b')
      expect(await manager.describe('nope')).toBeUndefined()
      expect(await manager.describe('')).toBeUndefined()
    } finally {
      await held!.release()
      await other.closeAll()
    }
  })

  it('shares one open volume and one lock among concurrent acquirers', async () => {
    const [a, b] = await Promise.all([manager.acquire('pad'), manager.acquire('pad')])
    expect(a!.volume).toBe(b!.volume)
    expect(manager.openVolumes().get('pad')).toBe(2)
    expect((await metadata.getVolumeLock('pad'))?.holder).toBe('test/a')
    expect(manager.generations().get('pad')).toBe(a!.volume.generation)
    expect(manager.held()).toEqual([{ name: 'pad', id: a!.volume.info.id, generation: a!.volume.generation }])
    await a!.release()
    expect((await metadata.getVolumeLock('pad'))?.holder).toBe('test/a')
    await b!.release()
    expect(await metadata.getVolumeLock('pad')).toBeUndefined()
    expect(manager.openVolumes().size).toBe(0)
  })

  it('tells onOpened once per open, after prepare, and onClosed when the last handle goes', async () => {
    const events: string[] = []
    const m = create({
      prepare: async () => void events.push('prepare'),
      onOpened: (info) => void events.push(`opened ${info.name}`),
      onClosed: (info) => void events.push(`closed ${info.name}`),
    })
    const [a, b] = await Promise.all([m.acquire('pad'), m.acquire('pad')])
    expect(events).toEqual(['prepare', 'opened pad'])
    await a!.release()
    expect(events).toEqual(['prepare', 'opened pad'])
    await b!.release()
    expect(events).toEqual(['prepare', 'opened pad', 'closed pad'])
    expect(m.held()).toEqual([])
    await m.closeAll()
  })

  it('runs beforeClose while it still holds the lock, then closes even when beforeClose fails', async () => {
    const seen: (string | undefined)[] = []
    const m = create({
      beforeClose: async (volume) => {
        seen.push((await metadata.getVolumeLock('pad'))?.holder)
        expect(volume.info.name).toBe('pad')
        throw new Error('recording failed')
      },
    })
    const h = await m.acquire('pad')
    await h!.release()
    expect(seen).toEqual(['test/a'])
    expect(await metadata.getVolumeLock('pad')).toBeUndefined()
    expect(m.held()).toEqual([])
  })

  it('flushes on the last release, and release is idempotent', async () => {
    const handle = (await manager.acquire('pad'))!
    await handle.volume.write(0, new Uint8Array(512).fill(7))
    await handle.release()
    await handle.release()
    const again = (await manager.acquire('pad'))!
    const back = new Uint8Array(512)
    await again.volume.read(0, back)
    expect(back.every((b) => b === 7)).toBe(true)
    await again.release()
  })

  it('runs prepare after locking and before serving; a failing prepare releases the lock', async () => {
    const seen: Array<number | undefined> = []
    manager = create({
      prepare: async (volume: Volume) => {
        seen.push(volume.generation)
        throw new Error('fence failed')
      },
    })
    await expect(manager.acquire('pad')).rejects.toThrow('fence failed')
    expect(seen).toHaveLength(1)
    expect(seen[0]).toBeTypeOf('number')
    expect(await metadata.getVolumeLock('pad')).toBeUndefined()
    expect(manager.openVolumes().size).toBe(0)
  })

  it('a second manager (another gateway) cannot open a volume the first holds', async () => {
    const handle = (await manager.acquire('pad'))!
    const other = create({ holder: 'test/b' })
    const err = await other.acquire('pad').catch((e: unknown) => e)
    expect(isTorusError(err, 'TORUS_LOCKED')).toBe(true)
    await other.closeAll()
    await handle.release()
  })

  it('refuses to delete a volume in use, and deletes it and its blocks once released', async () => {
    const handle = (await manager.acquire('pad'))!
    await handle.volume.write(0, new Uint8Array(B).fill(1))
    await handle.volume.flush()
    const err = await manager.delete('pad').catch((e: unknown) => e)
    expect(isTorusError(err, 'TORUS_LOCKED')).toBe(true)
    await handle.release()
    const info = await manager.delete('pad')
    expect(await metadata.getVolume('pad')).toBeUndefined()
    expect(store.usage().blocks).toBe(0)
    expect(info.name).toBe('pad')
  })
})
