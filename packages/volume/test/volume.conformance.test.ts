// Goal: Volume is a correct BlockDevice over any block store, at block sizes that make requests span blocks.
// Method: run describeBlockDevice over Volume on MemoryBlockStore (4 KiB and 64 KiB blocks, an odd-sized last block)
// and on FileBlockStore in a temporary directory, with reopen.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileBlockStore } from '@torus/blockstore'
import type { BlockDevice, BlockStore } from '@torus/core'
import { describeBlockDevice, type BlockDeviceHarness } from '@torus/conformance/block-device'
import { Volume } from '../src/index.js'
import { openedMemoryStore, volumeInfo } from './helpers/volumes.js'

/** Harness over Volume on fresh memory stores; read-only views share the writable volume's store. */
function memoryHarness(name: string, sizeBytes: number, blockSizeBytes: number): BlockDeviceHarness {
  const stores = new WeakMap<BlockDevice, BlockStore>()
  const views = new WeakMap<BlockDevice, Volume[]>()
  const info = volumeInfo({ sizeBytes, blockSizeBytes })
  return {
    name,
    async create() {
      const store = await openedMemoryStore(blockSizeBytes)
      const volume = new Volume({ info, store })
      stores.set(volume, store)
      return volume
    },
    async destroy(device) {
      for (const view of views.get(device) ?? []) await view.close()
      await (device as Volume).close()
      await stores.get(device)?.close()
    },
    async openReadOnly(device) {
      const view = new Volume({ info, store: stores.get(device)!, readOnly: true })
      views.set(device, [...(views.get(device) ?? []), view])
      return view
    },
  }
}

// 4 MiB + 512 bytes: the last 4 KiB block is only 512 bytes long within the volume.
describeBlockDevice(memoryHarness('volume on memory store, 4 KiB blocks', 4 * 1024 * 1024 + 512, 4096))
describeBlockDevice(memoryHarness('volume on memory store, 64 KiB blocks', 8 * 1024 * 1024, 64 * 1024))

/** Harness over Volume on a FileBlockStore per instance; `reopen` closes volume and store and opens both again. */
function fileHarness(name: string, sizeBytes: number, blockSizeBytes: number): BlockDeviceHarness {
  const state = new WeakMap<BlockDevice, { dir: string; store: FileBlockStore; views: Volume[] }>()
  const info = volumeInfo({ sizeBytes, blockSizeBytes })
  const openStore = async (dir: string): Promise<FileBlockStore> => {
    const store = new FileBlockStore({ dir, blockSizeBytes, capacityBytes: 2 * sizeBytes })
    await store.open()
    return store
  }
  const closeAll = async (device: BlockDevice): Promise<string> => {
    const s = state.get(device)!
    for (const view of s.views) await view.close()
    await (device as Volume).close()
    await s.store.close()
    return s.dir
  }
  return {
    name,
    async create() {
      const dir = await mkdtemp(join(tmpdir(), 'torus-volume-'))
      const store = await openStore(dir)
      const volume = new Volume({ info, store })
      state.set(volume, { dir, store, views: [] })
      return volume
    },
    async destroy(device) {
      await rm(await closeAll(device), { recursive: true, force: true })
    },
    async reopen(device) {
      const dir = await closeAll(device)
      const store = await openStore(dir)
      const volume = new Volume({ info, store })
      state.set(volume, { dir, store, views: [] })
      return volume
    },
    async openReadOnly(device) {
      const s = state.get(device)!
      const view = new Volume({ info, store: s.store, readOnly: true })
      s.views.push(view)
      return view
    },
  }
}

describeBlockDevice(fileHarness('volume on file store, 64 KiB blocks', 4 * 1024 * 1024 + 512, 64 * 1024))
