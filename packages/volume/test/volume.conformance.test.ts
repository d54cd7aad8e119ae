// Goal: Volume is a correct BlockDevice over any block store, at block sizes that make requests span blocks.
// Method: run describeBlockDevice over Volume on MemoryBlockStore (4 KiB and 64 KiB blocks, an odd-sized last block).
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
