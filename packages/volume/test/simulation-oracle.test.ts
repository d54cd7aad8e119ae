// Goal: the simulation used by volume.sim.test.ts actually catches a wrong device and names the seed to replay.
// Method: run it over ModelBlockDevice wrappers that lose writes or ignore zeroes, and over a plain model.
import { describe, expect, it } from 'vitest'
import type { BlockDevice, WriteOptions, WriteZeroesOptions } from '@torus/core'
import { ModelBlockDevice, runSimulation } from '@torus/testing'

const size = 1024 * 1024

/** A model device that silently drops every `n`th write, or ignores writeZeroes. */
function broken(kind: 'drop-writes' | 'ignore-zeroes'): BlockDevice {
  const inner = new ModelBlockDevice({ sizeBytes: size })
  let writes = 0
  return {
    sizeBytes: inner.sizeBytes,
    supports: inner.supports,
    read: (o, t, opts) => inner.read(o, t, opts),
    write: async (o, d, opts?: WriteOptions) => {
      if (kind === 'drop-writes' && ++writes % 7 === 0) return
      await inner.write(o, d, opts)
    },
    flush: (opts) => inner.flush(opts),
    trim: (o, n, opts) => inner.trim(o, n, opts),
    writeZeroes: async (o, n, opts?: WriteZeroesOptions) => {
      if (kind !== 'ignore-zeroes') await inner.writeZeroes(o, n, opts)
    },
  }
}

describe('runSimulation', () => {
  it('passes a correct device against itself', async () => {
    const result = await runSimulation({ device: new ModelBlockDevice({ sizeBytes: size }), model: new ModelBlockDevice({ sizeBytes: size }), seed: 1, steps: 200, maxIoBytes: 20_000 })
    expect(result.seed).toBeTypeOf('number')
  })

  for (const kind of ['drop-writes', 'ignore-zeroes'] as const) {
    it(`fails with the step and TORUS_SEED on a device that has ${kind}`, async () => {
      const err = await runSimulation({ device: broken(kind), model: new ModelBlockDevice({ sizeBytes: size }), seed: 42, steps: 400, maxIoBytes: 20_000 }).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(Error)
      expect((err as Error).message).toMatch(/simulation failed at step \d+/)
      expect((err as Error).message).toMatch(/TORUS_SEED=\d+/)
    })
  }
})
