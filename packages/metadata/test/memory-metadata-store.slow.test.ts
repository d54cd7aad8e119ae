// Runs the MetadataStore conformance suite over MemoryMetadataStore on the system clock, which
// exercises the suite's real-time path (2 s TTLs and sleeps) that etcd-backed stores rely on.
import { describeMetadataStore } from '@torus/conformance/metadata'
import { MemoryMetadataStore } from '../src/index.js'

describeMetadataStore({
  name: 'MemoryMetadataStore (real time)',
  async create() {
    const store = new MemoryMetadataStore()
    await store.open()
    return store
  },
  async destroy(store) {
    await store.close()
  },
})
