// Goal: FileBlockStore meets the BlockStore contract, including persistence across a reopen.
// Method: run the shared suite over stores in fresh temp directories (64 blocks); reopen builds a new instance on the same directory.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeBlockStore } from '@torus/conformance/blockstore'
import { FileBlockStore, type BlockStore } from '../src/index.js'

const BLOCK = 4096
const dirs = new WeakMap<BlockStore, string>()

async function openAt(dir: string): Promise<FileBlockStore> {
  const store = new FileBlockStore({ dir, blockSizeBytes: BLOCK, capacityBytes: 64 * BLOCK })
  await store.open()
  dirs.set(store, dir)
  return store
}

describeBlockStore({
  name: 'FileBlockStore',
  async create() {
    return openAt(await mkdtemp(join(tmpdir(), 'torus-fbs-')))
  },
  async destroy(store) {
    await store.close()
    await rm(dirs.get(store)!, { recursive: true, force: true })
  },
  async reopen(store) {
    await store.close()
    return openAt(dirs.get(store)!)
  },
})
