// Goal: Volume agrees with the model device over long random runs of mixed, partly concurrent requests.
// Method: runSimulation with seeds from simulationSeeds() (TORUS_SEED replays one, TORUS_SIM_SEEDS sets how many).
import { describe, expect, it } from 'vitest'
import { ModelBlockDevice, runSimulation, simulationSeeds } from '@torus/testing'
import { memoryVolume } from './helpers/volumes.js'

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
