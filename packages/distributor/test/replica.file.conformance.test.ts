// Goal: a Replica with persistent state (stateDir) over a FileBlockStore still meets the
// BlockStore contract, restarts included.
// Method: the shared suite, reopen enabled, over ReplicaBlockStore (a test adapter); each
// instance gets its own temporary directory, removed by destroy().
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileBlockStore } from '@torus/blockstore'
import { describeBlockStore } from '@torus/conformance/blockstore'
import type { BlockStore } from '@torus/core'
import { ReplicaBlockStore } from './helpers/replica-block-store.js'

const B = 16 * 1024
const dirs = new WeakMap<BlockStore, string>()

async function open(dir: string): Promise<BlockStore> {
  const store = new ReplicaBlockStore({
    store: new FileBlockStore({ dir: join(dir, 'blocks'), blockSizeBytes: B, capacityBytes: 64 * B }),
    stateDir: join(dir, 'state'),
  })
  await store.open()
  dirs.set(store, dir)
  return store
}

describeBlockStore({
  name: 'Replica with stateDir over FileBlockStore',
  async create() {
    return open(await mkdtemp(join(tmpdir(), 'torus-replica-')))
  },
  async destroy(store) {
    await store.close()
    const dir = dirs.get(store)
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  },
  async reopen(store) {
    await store.close()
    return open(dirs.get(store)!)
  },
})
