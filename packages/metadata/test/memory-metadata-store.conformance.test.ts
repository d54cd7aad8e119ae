// Runs the MetadataStore conformance suite over MemoryMetadataStore on a ManualClock, so lease
// expiry is driven by advanceTime rather than by sleeping.
import { ManualClock, SeededRandom } from '@torus/core'
import { describeMetadataStore } from '@torus/conformance/metadata'
import { MemoryMetadataStore } from '../src/index.js'

const clock = new ManualClock()

describeMetadataStore({
  name: 'MemoryMetadataStore',
  async create() {
    const store = new MemoryMetadataStore({ clock, random: new SeededRandom(1) })
    await store.open()
    return store
  },
  async destroy(store) {
    await store.close()
  },
  async advanceTime(ms) {
    clock.advance(ms)
  },
})
