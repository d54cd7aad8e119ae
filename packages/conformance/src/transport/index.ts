/**
 * The Transport conformance suite. Every transport (ws, loopback) and every wrapper runs it
 * through a harness whose instances are *networks*: each test gets a fresh network, makes the
 * transports it needs on it, and the harness closes them all afterwards.
 *
 * ```ts
 * describeTransport({
 *   name: 'loopback',
 *   create: async () => loopbackNetwork(),          // a TransportNetwork over one LoopbackHub
 *   destroy: (net) => net.close(),
 * })
 * ```
 *
 * Tests use short real timeouts (tens of milliseconds), so implementations must use real time
 * by default; a harness must not inject a ManualClock.
 */
import { describe } from 'vitest'
import type { Harness } from '../harness.js'
import { describeAuth } from './auth.js'
import { describeCloseAbort } from './close-abort.js'
import { createContext, type TransportNetwork } from './context.js'
import { describeErrors } from './errors.js'
import { describeLargeFrames } from './large-frames.js'
import { describeOrdering } from './ordering.js'
import { describeRoundtrip } from './roundtrip.js'

export { withInstance, type Harness } from '../harness.js'
export { captureLogger, CLIENT_ID, CLUSTER, pair, SECRET, SERVER_ID, type LogRecord, type Pair, type PairOptions, type TransportNetwork } from './context.js'

export function describeTransport(harness: Harness<TransportNetwork>): void {
  describe(`Transport conformance: ${harness.name}`, () => {
    const ctx = createContext(harness)
    describeRoundtrip(ctx)
    describeOrdering(ctx)
    describeLargeFrames(ctx)
    describeErrors(ctx)
    describeCloseAbort(ctx)
    describeAuth(ctx)
  })
}
