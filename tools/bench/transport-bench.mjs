#!/usr/bin/env node
// Throughput sanity check for the peer transport: WsTransport over 127.0.0.1, the server in a
// child process (as between two daemons), the client here. For 4 KiB and 1 MiB payloads it runs
// "write" (payload in the request, empty reply) and "read" (small request, payload in the reply)
// with a fixed number of requests in flight, and prints requests/s and MiB/s. Not a test:
// nothing here asserts a speed, and numbers depend on the machine and on what else runs on it.
//
// usage: pnpm --filter @torus/core --filter @torus/transport build
//        node tools/bench/transport-bench.mjs [--seconds 5] [--only 4k-write,1m-read,...]
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const { WsTransport } = await import(path.join(root, 'packages/transport/dist/index.js'))

const identity = { clusterId: 'bench', secret: 'transport bench secret 0123456789' }
const args = Object.fromEntries(
  process.argv.slice(2).flatMap((a, i, all) => (a.startsWith('--') ? [[a.slice(2), all[i + 1]]] : [])),
)

if (process.argv[2] === '--serve') {
  // Child: a replica-like server that accepts writes and serves reads from one buffer.
  const server = new WsTransport({ ...identity, peerId: 'bench-server', maxConcurrentHandlers: 256 })
  const blocks = { '4k': new Uint8Array(4096).fill(7), '1m': new Uint8Array(1024 * 1024).fill(9) }
  server.handle('block.write', (body) => {
    if (!(body.bytes instanceof Uint8Array)) throw new TypeError('no bytes')
    return null
  })
  server.handle('block.read', (body) => ({ version: 1, bytes: blocks[body.size] }))
  const address = await server.listen('ws://127.0.0.1:0')
  process.send({ address })
  process.on('message', async (m) => {
    if (m === 'stop') {
      await server.close()
      process.exit(0)
    }
  })
} else {
  const seconds = Number(args.seconds ?? 5)
  const only = args.only?.split(',')
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const { address } = await new Promise((resolve) => child.once('message', resolve))
  const client = new WsTransport({ ...identity, peerId: 'bench-client' })
  const connection = await client.connect(address)

  const cases = [
    { name: '4k-write', method: 'block.write', size: '4k', bytes: 4096, inFlight: 64 },
    { name: '4k-read', method: 'block.read', size: '4k', bytes: 4096, inFlight: 64 },
    { name: '1m-write', method: 'block.write', size: '1m', bytes: 1024 * 1024, inFlight: 8 },
    { name: '1m-read', method: 'block.read', size: '1m', bytes: 1024 * 1024, inFlight: 8 },
  ].filter((c) => only === undefined || only.includes(c.name))

  console.log(`transport bench: WsTransport, 127.0.0.1, server in a child process, ${seconds} s per case, node ${process.version}`)
  console.log('case        in-flight   requests/s      MiB/s')
  for (const c of cases) {
    const payload = new Uint8Array(c.bytes).fill(3)
    const body = (seq) =>
      c.method === 'block.write'
        ? { volumeId: 7, index: seq & 1023, offset: 0, bytes: payload, generation: 1, seq }
        : { volumeId: 7, index: seq & 1023, size: c.size }
    // Warm-up, then the timed run.
    await run(connection, c, body, 0.5)
    const { done, elapsedMs } = await run(connection, c, body, seconds)
    const rps = (done * 1000) / elapsedMs
    const mibs = (rps * c.bytes) / (1024 * 1024)
    console.log(`${c.name.padEnd(12)}${String(c.inFlight).padStart(9)}${rps.toFixed(0).padStart(13)}${mibs.toFixed(1).padStart(11)}`)
  }
  await client.close()
  child.send('stop')
}

async function run(connection, c, body, seconds) {
  let seq = 0
  let done = 0
  const started = performance.now()
  const until = started + seconds * 1000
  const worker = async () => {
    while (performance.now() < until) {
      const reply = await connection.request(c.method, body(seq++))
      if (c.method === 'block.read' && reply.bytes.byteLength !== c.bytes) throw new Error('short read')
      done++
    }
  }
  await Promise.all(Array.from({ length: c.inFlight }, worker))
  return { done, elapsedMs: performance.now() - started }
}
