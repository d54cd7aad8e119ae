import { MemoryBlockStore } from '@torus/blockstore'
import { volumeId, type BlockStore, type VolumeInfo } from '@torus/core'
import { Volume } from '../../src/index.js'

export function volumeInfo(overrides: Partial<VolumeInfo> & { sizeBytes: number; blockSizeBytes: number }): VolumeInfo {
  return { name: 'vol', id: volumeId(1), type: 'block', replication: 1, createdAt: '2024-01-01T00:00:00.000Z', ...overrides }
}

export async function openedMemoryStore(blockSizeBytes: number): Promise<MemoryBlockStore> {
  const store = new MemoryBlockStore({ blockSizeBytes })
  await store.open()
  return store
}

/** A volume over its own fresh memory store; `close` closes both. */
export async function memoryVolume(sizeBytes: number, blockSizeBytes: number): Promise<{ volume: Volume; store: BlockStore }> {
  const store = await openedMemoryStore(blockSizeBytes)
  return { volume: new Volume({ info: volumeInfo({ sizeBytes, blockSizeBytes }), store }), store }
}
