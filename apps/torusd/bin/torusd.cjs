#!/usr/bin/env -S node --single-threaded-gc
'use strict'
// Entry point of torusd. libuv sizes its threadpool (which runs every block read and write)
// the first time it is used, and loading an ES module already uses it, so the size has to be
// chosen here, in a CommonJS file, before dist/main.js is imported. Default: one thread per
// core beyond the one the event loop needs (measured in docs/benchmarks.md: on 2 cores, one
// I/O thread served 4 KiB reads ~1.6x faster than libuv's default of 4).
// The shebang runs V8's garbage collector on the main thread only (--single-threaded-gc; bin/torusd
// passes it too, TORUS_NODE_FLAGS overrides it there). Replication churns ArrayBuffers (socket
// reads, frames), which starts a collection every few tens of MiB; with helper threads those
// collections cost more CPU than the I/O on a small machine. Measured on 2 vCPUs in
// docs/benchmarks.md: 1 MiB sequential writes at replication 2 +52 %, single-node sequential
// reads +93 %, 4 KiB QD1 unchanged.
const os = require('node:os')
const path = require('node:path')
const url = require('node:url')

let ioThreads
const argv = process.argv
for (let i = 2; i < argv.length; i++) {
  if (argv[i] === '--io-threads') ioThreads = argv[i + 1]
  else if (argv[i].startsWith('--io-threads=')) ioThreads = argv[i].slice('--io-threads='.length)
}
if (ioThreads !== undefined) {
  const n = Number(ioThreads)
  if (!Number.isInteger(n) || n < 1 || n > 1024) {
    process.stderr.write(`torusd: --io-threads must be an integer from 1 to 1024, got ${JSON.stringify(ioThreads)}\n`)
    process.exit(2)
  }
  process.env.UV_THREADPOOL_SIZE = String(n)
} else if (!process.env.UV_THREADPOOL_SIZE) {
  process.env.UV_THREADPOOL_SIZE = String(Math.max(1, Math.min(16, os.availableParallelism() - 1)))
} else {
  // libuv ignores a value it cannot read; say so instead of running with a pool nobody chose.
  const n = Number(process.env.UV_THREADPOOL_SIZE)
  if (!/^[0-9]+$/.test(process.env.UV_THREADPOOL_SIZE.trim()) || n < 1 || n > 1024) {
    process.stderr.write(`torusd: UV_THREADPOOL_SIZE must be an integer from 1 to 1024, got ${JSON.stringify(process.env.UV_THREADPOOL_SIZE)}\n`)
    process.exit(2)
  }
}
import(url.pathToFileURL(path.join(__dirname, '..', 'dist', 'main.js')).href).catch((err) => {
  process.stderr.write(`torusd: cannot load ${path.join(__dirname, '..', 'dist', 'main.js')}: ${err.message}\nRun pnpm build first.\n`)
  process.exit(1)
})
