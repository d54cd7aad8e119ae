// Goal: Volume agrees with the model device over long random runs of mixed, partly concurrent requests.
// Method: runSimulation with seeds from simulationSeeds() (TORUS_SEED replays one, TORUS_SIM_SEEDS sets how many);
// on FileBlockStore the run also closes and reopens the volume and its store.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { FileBlockStore } from '@torus/blockstore'
import type { BlockDevice } from '@torus/core'
import { Volume } from '../src/index.js'
import { ModelBlockDevice, runSimulation, simulationSeeds } from '@torus/testing'
import { memoryVolume, volumeInfo } from './helpers/volumes.js'

describe('Volume simulation on MemoryBlockStore', () => {
  for (const blockSizeBytes of [4096, 64 * 1024]) {
    for (const seed of simulationSeeds(3)) {
      it(`matches the model with ${blockSizeBytes / 1024} KiB blocks (seed ${seed})`, async () => {
        // An odd size so the last block is short.
        const sizeBytes = 2 * 1024 * 1024 + 1536
        const { volume, store } = await memoryVolume(sizeBytes, blockSizeBytes)
        try {
          const result = await runSimulation({
            device: volume,
            model: new ModelBlockDevice({ sizeBytes }),
            seed,
            steps: 400,
            maxIoBytes: 3 * blockSizeBytes + 17,
            alignBytes: blockSizeBytes,
            concurrency: 6,
          })
          expect(result.counts.write).toBeGreaterThan(0)
          expect(result.counts.read).toBeGreaterThan(0)
        } finally {
          await volume.close()
          await store.close()
        }
      })
    }
  }
})

describe('Volume simulation on FileBlockStore', () => {
  for (const seed of simulationSeeds(1)) {
    it(`matches the model across reopens with 16 KiB blocks (seed ${seed})`, async () => {
      const sizeBytes = 2 * 1024 * 1024 + 512
      const blockSizeBytes = 16 * 1024
      const info = volumeInfo({ sizeBytes, blockSizeBytes })
      const dir = await mkdtemp(join(tmpdir(), 'torus-volume-sim-'))
      const openStore = async (): Promise<FileBlockStore> => {
        const store = new FileBlockStore({ dir, blockSizeBytes, capacityBytes: 2 * sizeBytes })
        await store.open()
        return store
      }
      let store = await openStore()
      let device: BlockDevice = new Volume({ info, store })
      try {
        const result = await runSimulation({
          device,
          model: new ModelBlockDevice({ sizeBytes }),
          seed,
          steps: 300,
          maxIoBytes: 3 * blockSizeBytes + 17,
          alignBytes: blockSizeBytes,
          concurrency: 6,
          reopen: async (old) => {
            await (old as Volume).close()
            await store.close()
            store = await openStore()
            return new Volume({ info, store })
          },
        })
        device = result.device
        expect(result.counts.reopen).toBeGreaterThan(0)
      } finally {
        await (device as Volume).close().catch(() => {})
        await store.close()
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})
