/**
 * The `BlockStore` conformance suite. Every block store, layer and composite runs it:
 *
 * ```ts
 * describeBlockStore({ name: 'memory', create: async () => open(new MemoryBlockStore(…)), destroy: (s) => s.close() })
 * ```
 *
 * Harness requirements: `create()` returns a fresh, opened, empty store; `destroy()` accepts a
 * store that is already closed. The store should hold at least 32 blocks; when it holds at most
 * {@link FILLABLE_BLOCKS_MAX} blocks the capacity tests fill it to the limit, otherwise they are
 * skipped. Tests gate on `supports.*` and on the presence of `harness.reopen`.
 */
import { describe } from 'vitest'
import type { BlockStore } from '@torus/core'
import type { Harness } from '../harness.js'
import { argsTests } from './args.js'
import { capacityTests } from './capacity.js'
import { concurrencyTests } from './concurrency.js'
import { createContext } from './context.js'
import { deleteHasTests } from './delete-has.js'
import { iterateTests } from './iterate.js'
import { lifecycleTests } from './lifecycle.js'
import { persistenceTests } from './persistence.js'
import { putGetTests } from './put-get.js'
import { readWriteTests } from './read-write.js'

export { FILLABLE_BLOCKS_MAX } from './context.js'
export { withInstance, type Harness } from '../harness.js'

export function describeBlockStore(harness: Harness<BlockStore>): void {
  describe(`BlockStore conformance: ${harness.name}`, async () => {
    // One probe instance tells us what to gate on before the tests are collected.
    const probe = await harness.create()
    const facts = { supports: { ...probe.supports }, blockSizeBytes: probe.blockSizeBytes, capacityBytes: probe.usage().capacityBytes }
    await harness.destroy(probe)
    const ctx = createContext(harness, facts)

    describe('put and get', () => putGetTests(ctx))
    describe('partial read and write', () => readWriteTests(ctx))
    describe('delete and has', () => deleteHasTests(ctx))
    describe('iterate', () => iterateTests(ctx))
    describe('lifecycle', () => lifecycleTests(ctx))
    describe('arguments and signals', () => argsTests(ctx))
    describe('concurrency', () => concurrencyTests(ctx))
    describe('capacity', () => capacityTests(ctx))
    describe('persistence', () => persistenceTests(ctx))
  })
}
