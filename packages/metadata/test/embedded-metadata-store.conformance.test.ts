// Runs the MetadataStore conformance suite over EmbeddedMetadataStore in a temp dir on a
// ManualClock; `reopen` builds a new store over the same dir, as a process restart would.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ManualClock } from '@torus/core'
import type { MetadataStore } from '@torus/core'
import { describeMetadataStore } from '@torus/conformance/metadata'
import { EmbeddedMetadataStore } from '../src/index.js'

const clock = new ManualClock()

async function openStore(dir: string): Promise<EmbeddedMetadataStore> {
  const store = new EmbeddedMetadataStore({ dir, clock })
  await store.open()
  return store
}

function dirOf(store: MetadataStore): string {
  return (store as EmbeddedMetadataStore).dir
}

describeMetadataStore({
  name: 'EmbeddedMetadataStore',
  async create() {
    return openStore(await mkdtemp(join(tmpdir(), 'torus-metadata-')))
  },
  async destroy(store) {
    await store.close()
    await rm(dirOf(store), { recursive: true, force: true })
  },
  async advanceTime(ms) {
    clock.advance(ms)
  },
  async reopen(store) {
    await store.close()
    return openStore(dirOf(store))
  },
})
