import { Worker } from 'node:worker_threads'
import { mapFsError } from './fs-io.js'

// fdatasync runs on its own thread, not in libuv's threadpool. A flush can take milliseconds
// to seconds on a real disk; in the pool it would hold a thread that reads and writes need
// (and torusd sizes the pool small — one thread per spare core — because on few cores a
// bigger pool mostly adds context switches: see docs/benchmarks.md). File descriptors are
// process-wide, so the thread can sync the store's fds directly.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const fs = require('node:fs')
parentPort.on('message', ({ id, fd }) => {
  try {
    fs.fdatasyncSync(fd)
    parentPort.postMessage({ id })
  } catch (err) {
    parentPort.postMessage({ id, code: err.code, message: err.message })
  }
})
`

interface Pending {
  resolve(): void
  reject(err: Error): void
}

let worker: Worker | undefined
let nextId = 1
/** Outstanding syncs of each thread, so a dead thread fails only its own. */
const pendingByWorker = new WeakMap<Worker, Map<number, Pending>>()

function start(): Worker {
  const w = new Worker(WORKER_SOURCE, { eval: true })
  const pending = new Map<number, Pending>()
  pendingByWorker.set(w, pending)
  w.on('message', ({ id, code, message }: { id: number; code?: string; message?: string }) => {
    const p = pending.get(id)
    if (p === undefined) return
    pending.delete(id)
    if (pending.size === 0) w.unref()
    if (message === undefined) p.resolve()
    else p.reject(mapFsError(Object.assign(new Error(message), code === undefined ? {} : { code })))
  })
  const fail = (err: Error): void => {
    if (worker === w) worker = undefined
    for (const p of pending.values()) p.reject(err)
    pending.clear()
  }
  w.on('error', fail)
  w.on('exit', (code) => fail(new Error(`fdatasync thread exited with code ${code}`)))
  w.unref()
  return w
}

/** fdatasync(fd) on the dedicated sync thread. */
export function fdatasyncOffPool(fd: number): Promise<void> {
  worker ??= start()
  const w = worker
  const id = nextId++
  return new Promise<void>((resolve, reject) => {
    pendingByWorker.get(w)!.set(id, { resolve, reject })
    // Keep the process alive while a sync is outstanding; idle, the thread holds nothing.
    w.ref()
    w.postMessage({ id, fd })
  })
}
