// Goal: MemoryBlockStore meets the BlockStore contract.
// Method: run the shared conformance suite over small fresh stores (64 blocks, so capacity tests can fill them).
import { describeBlockStore } from '@torus/conformance/blockstore'
import { MemoryBlockStore } from '../src/index.js'

describeBlockStore({
  name: 'MemoryBlockStore',
  async create() {
    const store = new MemoryBlockStore({ blockSizeBytes: 4096, capacityBytes: 64 * 4096 })
    await store.open()
    return store
  },
  async destroy(store) {
    await store.close()
  },
})
