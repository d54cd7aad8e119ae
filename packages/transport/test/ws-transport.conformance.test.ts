// Goal: WsTransport meets the Transport contract over real sockets. Method: the shared suite,
// each test on its own set of transports listening on 127.0.0.1 port 0.
import { describeTransport, type TransportNetwork } from '@torus/conformance/transport'
import type { Transport, TransportOptions } from '@torus/core'
import { WsTransport } from '../src/index.js'

function wsNetwork(): TransportNetwork {
  const made: Transport[] = []
  return {
    transport(options: TransportOptions) {
      const t = new WsTransport(options)
      made.push(t)
      return t
    },
    listenAddress: () => 'ws://127.0.0.1:0',
    // Port 1 (tcpmux) is privileged and unused here: connecting is refused at once.
    deadAddress: () => 'ws://127.0.0.1:1',
    close: async () => {
      await Promise.all(made.map((t) => t.close()))
    },
  }
}

describeTransport({ name: 'WsTransport', create: async () => wsNetwork(), destroy: (net) => net.close() })
