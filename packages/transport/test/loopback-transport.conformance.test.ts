// Goal: LoopbackTransport meets the Transport contract, so tests that use it in place of
// WsTransport test the real semantics. Method: the shared suite on one LoopbackHub per test.
import { describeTransport, type TransportNetwork } from '@torus/conformance/transport'
import type { Transport, TransportOptions } from '@torus/core'
import { LoopbackHub, LoopbackTransport } from '../src/index.js'

function loopbackNetwork(): TransportNetwork {
  const hub = new LoopbackHub()
  const made: Transport[] = []
  let n = 0
  return {
    transport(options: TransportOptions) {
      const t = new LoopbackTransport({ ...options, hub })
      made.push(t)
      return t
    },
    listenAddress: () => `loopback://node-${++n}`,
    deadAddress: () => 'loopback://nobody-here',
    close: async () => {
      await Promise.all(made.map((t) => t.close()))
    },
  }
}

describeTransport({ name: 'LoopbackTransport', create: async () => loopbackNetwork(), destroy: (net) => net.close() })
