/**
 * The `BlockDevice` conformance suite. Every block device (a `Volume` over any block store, the
 * model device, later an NBD client device) runs it:
 *
 * ```ts
 * describeBlockDevice({ name: 'volume/memory', create: async () => new Volume({ info, store }), destroy: (v) => v.close() })
 * ```
 *
 * Harness requirements: `create()` returns a fresh device, at least 1 MiB long, whose bytes all
 * read as zero. Tests gate on `supports.*` and on the presence of `harness.reopen` (persistence)
 * and `harness.openReadOnly` (read-only views); a harness whose devices are read-only runs only
 * the read tests and the read-only checks.
 */
import { describe } from 'vitest'
import { boundsTests } from './bounds.js'
import { concurrencyTests } from './concurrency.js'
import { createContext, type BlockDeviceHarness } from './context.js'
import { flushFuaTests } from './flush-fua.js'
import { persistenceTests } from './persistence.js'
import { readOnlyTests } from './read-only.js'
import { readWriteTests } from './read-write.js'
import { trimTests } from './trim.js'
import { writeZeroesTests } from './write-zeroes.js'
import { zerosTests } from './zeros.js'

export type { BlockDeviceHarness, SuiteContext as BlockDeviceSuiteContext } from './context.js'
export { pattern, firstDiff } from './context.js'
export { withInstance, type Harness } from '../harness.js'

/** Registers the suite under `describe('BlockDevice conformance: <name>')`. */
export function describeBlockDevice(harness: BlockDeviceHarness): void {
  describe(`BlockDevice conformance: ${harness.name}`, async () => {
    // One probe instance tells us what to gate on before the tests are collected.
    const probe = await harness.create()
    const facts = { supports: { ...probe.supports }, sizeBytes: probe.sizeBytes }
    await harness.destroy(probe)
    if (facts.sizeBytes < 1024 * 1024) throw new RangeError(`describeBlockDevice needs a device of at least 1 MiB, got ${facts.sizeBytes}`)
    const ctx = createContext(harness, facts)

    describe('read and write', () => readWriteTests(ctx))
    describe('never-written ranges', () => zerosTests(ctx))
    describe('flush and fua', () => flushFuaTests(ctx))
    describe('trim', () => trimTests(ctx))
    describe('writeZeroes', () => writeZeroesTests(ctx))
    describe('bounds and arguments', () => boundsTests(ctx))
    describe('concurrency', () => concurrencyTests(ctx))
    describe('read-only', () => readOnlyTests(ctx))
    describe('persistence', () => persistenceTests(ctx))
  })
}
