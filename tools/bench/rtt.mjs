#!/usr/bin/env node
// Round-trip floor between two Node processes on 127.0.0.1: a bare TCP ping-pong (net, no
// framing) and the same exchange through WsTransport, one request in flight. A replicated write
// adds at least one such round trip to the single-node path, so this bounds what the 4 KiB QD1
// goal can reach on a given machine (docs/benchmarks.md). Prints p50/p99 in µs. Not a test.
//
// usage: pnpm build && node tools/bench/rtt.mjs [--count 20000] [--bytes 4096]
import { fork } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const { WsTransport } = await import(path.join(root, 'packages/transport/dist/index.js'))
const identity = { clusterId: 'rtt', secret: 'round trip bench secret 0123456789' }
const REPLY_BYTES = 16

if (process.argv[2] === '--serve') {
  const tcp = net.createServer((c) => {
    c.setNoDelay(true)
    let got = 0
    c.on('data', (d) => {
      got += d.length
      while (got >= Number(process.argv[3])) {
        got -= Number(process.argv[3])
        c.write(Buffer.alloc(REPLY_BYTES))
      }
    })
  })
  await new Promise((r) => tcp.listen(0, '127.0.0.1', r))
  const ws = new WsTransport({ ...identity, peerId: 'rtt-server' })
  ws.handle('echo', () => ({ ok: true }))
  const wsAddress = await ws.listen('ws://127.0.0.1:0')
  process.send({ tcpPort: tcp.address().port, wsAddress })
} else {
  const args = Object.fromEntries(process.argv.slice(2).flatMap((a, i, all) => (a.startsWith('--') ? [[a.slice(2), all[i + 1]]] : [])))
  const count = Number(args.count ?? 20000)
  const bytes = Number(args.bytes ?? 4096)
  const child = fork(fileURLToPath(import.meta.url), ['--serve', String(bytes)])
  const { tcpPort, wsAddress } = await new Promise((r) => child.once('message', r))
  const payload = Buffer.alloc(bytes, 7)
  const report = (name, lat) => {
    lat.sort((a, b) => a - b)
    const at = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(0)
    console.log(`${name.padEnd(12)} ${bytes} B out, ${count} round trips: p50 ${at(0.5)} µs  p99 ${at(0.99)} µs`)
  }
  try {
    const socket = net.connect(tcpPort, '127.0.0.1')
    socket.setNoDelay(true)
    await new Promise((r) => socket.once('connect', r))
    let got = 0
    let wake
    socket.on('data', (d) => {
      got += d.length
      if (got >= REPLY_BYTES) {
        got -= REPLY_BYTES
        wake()
      }
    })
    const tcpLat = []
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint()
      await new Promise((r) => {
        wake = r
        socket.write(payload)
      })
      tcpLat.push(Number(process.hrtime.bigint() - t0) / 1000)
    }
    socket.destroy()
    report('tcp', tcpLat)

    const client = new WsTransport({ ...identity, peerId: 'rtt-client' })
    const conn = await client.connect(wsAddress)
    const wsLat = []
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint()
      await conn.request('echo', { volumeId: 1, index: i, offset: 0, generation: 1, bytes: payload })
      wsLat.push(Number(process.hrtime.bigint() - t0) / 1000)
    }
    await client.close()
    report('WsTransport', wsLat)
  } finally {
    child.kill()
  }
}
