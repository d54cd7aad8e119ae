import { createHash, randomUUID } from 'node:crypto'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { peerId, TorusError, type PeerId } from '@torus/core'
import { ConfigError } from './config.js'

/**
 * Creates the data dir and any missing parents, one level at a time: Node 20's recursive mkdir
 * spins forever under /proc. A path that is not a directory, or cannot be created, is a
 * configuration mistake (ConfigError, exit 2) with a message naming it.
 */
export async function createDataDir(dataDir: string): Promise<void> {
  const dir = path.resolve(dataDir)
  const missing: string[] = []
  for (let at = dir; ; at = path.dirname(at)) {
    const stat = await fs.stat(at).catch((err: NodeJS.ErrnoException) => {
      // ENOTDIR: a parent is a file, named when the walk reaches it.
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined
      throw new ConfigError(`--data-dir ${dataDir}: cannot use ${at}: ${err.message}`)
    })
    if (stat !== undefined) {
      if (!stat.isDirectory()) throw new ConfigError(`--data-dir ${dataDir}: ${at} exists and is not a directory`)
      break
    }
    missing.unshift(at)
    if (path.dirname(at) === at) break
  }
  for (const at of missing) {
    await fs.mkdir(at).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') return
      throw new ConfigError(`--data-dir ${dataDir}: cannot create ${at}: ${err.message}`)
    })
  }
}

/** The peer's UUID lives in the data dir so a restarted daemon is the same peer. */
export async function loadOrCreatePeerId(dataDir: string): Promise<PeerId> {
  const file = path.join(dataDir, 'peer-id')
  try {
    const text = (await fs.readFile(file, 'utf8')).trim()
    try {
      return peerId(text)
    } catch {
      throw new TorusError('TORUS_CORRUPT', `${file} does not hold a peer UUID (found ${JSON.stringify(text.slice(0, 40))}); restore it or remove it to become a new peer`)
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const id = peerId(randomUUID())
  const tmp = `${file}.tmp`
  await fs.writeFile(tmp, `${id}\n`, { flush: true })
  await fs.rename(tmp, file)
  return id
}

/**
 * One daemon per data dir. The lock is a Linux abstract-namespace socket named after the data
 * dir's real path: binding it is atomic, and the kernel releases it when the process dies (even
 * by SIGKILL), so there is no stale-lock race and no pid reuse to guess about. `torusd.pid` is
 * written beside it for operators and for the error message only.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const real = await fs.realpath(dataDir)
  const name = `\0torusd-data-dir:${createHash('sha256').update(real).digest('hex').slice(0, 40)}`
  // Nobody is meant to connect; anyone who does (abstract sockets have no permissions) is
  // dropped at once so they cannot hold the daemon open at shutdown.
  const server = net.createServer((socket) => socket.destroy())
  server.maxConnections = 0
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(name, () => resolve())
    })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
    const other = (await fs.readFile(path.join(dataDir, 'torusd.pid'), 'utf8').catch(() => '')).trim()
    throw new TorusError('TORUS_LOCKED', `data dir ${dataDir} is in use by another torusd${/^\d+$/.test(other) ? ` (pid ${other})` : ''}`)
  }
  server.unref()
  const pidFile = path.join(dataDir, 'torusd.pid')
  await fs.writeFile(pidFile, `${process.pid}\n`)
  return async () => {
    await fs.rm(pidFile, { force: true })
    server.close()
  }
}

/**
 * Volume ids whose deletion has begun: written (durably) before a volume leaves the metadata
 * and cleared once its blocks are gone. At start-up only these ids are removed from the block
 * store; blocks of any other unknown id are left alone and reported, since they could just as
 * well mean the metadata was restored from an old copy.
 */
export class PendingDeletes {
  readonly #file: string
  /** Every read-modify-write runs after the previous one: concurrent deletes must not lose ids. */
  #queue: Promise<unknown> = Promise.resolve()

  constructor(dataDir: string) {
    this.#file = path.join(dataDir, 'pending-deletes.json')
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => {})
    return run
  }

  async read(): Promise<number[]> {
    let text: string
    try {
      text = await fs.readFile(this.#file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    let ids: unknown
    try {
      ids = JSON.parse(text)
    } catch {
      ids = undefined
    }
    if (!Array.isArray(ids) || !ids.every((n) => Number.isSafeInteger(n) && n > 0)) {
      throw new TorusError('TORUS_CORRUPT', `${this.#file} is not a list of volume ids; fix or remove it`)
    }
    return ids as number[]
  }

  add(id: number): Promise<void> {
    return this.#serial(async () => this.#write([...new Set([...(await this.read()), id])]))
  }

  remove(id: number): Promise<void> {
    return this.#serial(async () => {
      const ids = (await this.read()).filter((n) => n !== id)
      if (ids.length === 0) await fs.rm(this.#file, { force: true })
      else await this.#write(ids)
    })
  }

  async #write(ids: number[]): Promise<void> {
    const tmp = `${this.#file}.tmp`
    await fs.writeFile(tmp, `${JSON.stringify(ids)}\n`, { flush: true })
    await fs.rename(tmp, this.#file)
    const dir = await fs.open(path.dirname(this.#file), 'r')
    try {
      await dir.sync()
    } finally {
      await dir.close()
    }
  }
}

/** What a data dir remembers about the cluster it belongs to (`cluster.json`). */
export interface ClusterBinding {
  /** The cluster's id, or `created:<createdAt>` for clusters made before ids existed. */
  cluster: string
  /** Where its metadata lives, for the error message only. */
  metadata: string
}

export function clusterIdentity(config: { id?: string; createdAt: string }): string {
  return config.id ?? `created:${config.createdAt}`
}

/**
 * The cluster this data dir's blocks belong to, or `undefined` for a data dir that has never
 * been bound (new, or written by a release before bindings). Throws TORUS_CORRUPT on a
 * malformed file.
 */
export async function readClusterBinding(dataDir: string): Promise<ClusterBinding | undefined> {
  const file = path.join(dataDir, 'cluster.json')
  let text: string
  try {
    text = await fs.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = undefined
  }
  const b = parsed as Partial<ClusterBinding> | undefined
  if (typeof b?.cluster !== 'string' || typeof b.metadata !== 'string') {
    throw new TorusError('TORUS_CORRUPT', `${file} is not a cluster binding; restore it, or remove it if you are sure this data dir belongs to the cluster torusd is pointed at`)
  }
  return { cluster: b.cluster, metadata: b.metadata }
}

export async function writeClusterBinding(dataDir: string, binding: ClusterBinding): Promise<void> {
  const file = path.join(dataDir, 'cluster.json')
  const tmp = `${file}.tmp`
  await fs.writeFile(tmp, `${JSON.stringify(binding)}\n`, { flush: true })
  await fs.rename(tmp, file)
}
