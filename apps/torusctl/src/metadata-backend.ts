import { isTorusError, normalizeRingDescriptor, parseSize, TorusError } from '@torus/core'
import type { ClusterConfig, MetadataStore, PeerStatus, RingDescriptor, VolumeInfo } from '@torus/core'
import type { ClusterBackend, InitRequest, VolumeHealth } from './backend.js'

/** What `torusctl init` writes to a multi-node (etcd) cluster unless told otherwise. */
export const CLUSTER_DEFAULTS = Object.freeze({
  blockSizeBytes: parseSize('512KiB'),
  replication: 2,
  ringType: 'ketama',
} as const)

export interface MetadataBackendOptions {
  /** The endpoint as the user wrote it, for messages. */
  endpoint: string
  /** The store's key prefix, for messages (a wrong --etcd-prefix looks like a missing cluster). */
  prefix?: string
  /** What the store talks to, for "cannot reach … at …" messages. Default `etcd`. */
  serviceName?: string
  /** Time source for `createdAt`. Default `Date.now`. */
  now?: () => number
  /** Called by `close()` after the store is closed (e.g. to drop a shared client). */
  onClose?: () => Promise<void>
}

/**
 * The backend of an etcd endpoint: commands act on the cluster's `MetadataStore` directly (the
 * same store torusd peers use), so they work with every daemon stopped. Unit tests run it over a
 * `MemoryMetadataStore`. The store must be open; `close()` closes it.
 */
export class MetadataBackend implements ClusterBackend {
  readonly endpoint: string
  readonly prefix: string | undefined
  readonly #store: MetadataStore
  readonly #serviceName: string
  readonly #now: () => number
  readonly #onClose: (() => Promise<void>) | undefined

  constructor(store: MetadataStore, options: MetadataBackendOptions) {
    this.#store = store
    this.endpoint = options.endpoint
    this.prefix = options.prefix
    this.#serviceName = options.serviceName ?? 'etcd'
    this.#now = options.now ?? Date.now
    this.#onClose = options.onClose
  }

  getCluster(): Promise<ClusterConfig | undefined> {
    return this.#call(() => this.#store.getClusterConfig())
  }

  initCluster(request: InitRequest): Promise<ClusterConfig> {
    const config: ClusterConfig = {
      blockSizeBytes: request.blockSizeBytes ?? CLUSTER_DEFAULTS.blockSizeBytes,
      replication: request.replication ?? CLUSTER_DEFAULTS.replication,
      ringType: request.ringType ?? CLUSTER_DEFAULTS.ringType,
      createdAt: new Date(this.#now()).toISOString(),
      ...(request.secretCheck === undefined ? {} : { secretCheck: request.secretCheck }),
    }
    return this.#call(async () => {
      await this.#store.initCluster(config)
      return config
    })
  }

  listVolumes(): Promise<VolumeInfo[]> {
    // An empty list would hide a wrong -C or --etcd-prefix: say there is no cluster instead.
    return this.#call(async () => {
      const [cluster, volumes] = await Promise.all([this.#store.getClusterConfig(), this.#store.listVolumes()])
      if (cluster === undefined) throw new TorusError('TORUS_NOT_INITIALIZED', 'cluster is not initialised')
      return volumes
    })
  }

  createVolume(name: string, sizeBytes: number): Promise<VolumeInfo> {
    return this.#call(() => this.#store.createVolume({ name, sizeBytes }))
  }

  deleteVolume(name: string): Promise<VolumeInfo> {
    return this.#call(() => this.#store.deleteVolume(name))
  }

  volumeHealth(name: string): Promise<VolumeHealth> {
    return this.#call(async () => {
      const [cluster, info] = await Promise.all([this.#store.getClusterConfig(), this.#store.getVolume(name)])
      // A wrong -C or --etcd-prefix finds no cluster at all: say that, not "not found".
      if (cluster === undefined) throw notInitialised(this)
      if (info === undefined) throw new TorusError('TORUS_NOT_FOUND', `volume ${name} not found`, { details: { volume: name } })
      const [lock, stale] = await Promise.all([this.#store.getVolumeLock(name), this.#store.listStaleReplicas(info.id)])
      return { info, lock, stale }
    })
  }

  listPeers(): Promise<PeerStatus[]> {
    return this.#call(() => this.#store.listPeers())
  }

  forgetPeer(id: string): Promise<void> {
    return this.#call(() => this.#store.forgetPeer(id))
  }

  getRing(): Promise<RingDescriptor> {
    return this.#call(async () => {
      const ring = await this.#store.getRing()
      if (ring === undefined) throw notInitialised(this)
      return ring
    })
  }

  setRing(next: RingDescriptor): Promise<RingDescriptor> {
    return this.#call(async () => {
      await this.#store.setRing(next)
      return normalizeRingDescriptor(next, { allowEmpty: true })
    })
  }

  async close(): Promise<void> {
    try {
      await this.#store.close()
    } finally {
      await this.#onClose?.()
    }
  }

  /** Runs one store call; an unreachable backend becomes one clear message. */
  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      if (isTorusError(err, 'TORUS_NOT_INITIALIZED')) throw notInitialised(this)
      throw unreachable(err, this.#serviceName, this.endpoint) ?? err
    }
  }
}

/** The error for a backend whose cluster has no config, naming where torusctl looked. */
export function notInitialised(backend: Pick<ClusterBackend, 'endpoint' | 'prefix'>): TorusError {
  if (backend.prefix === undefined) return new TorusError('TORUS_NOT_INITIALIZED', 'cluster is not initialised; run torusctl init')
  return new TorusError(
    'TORUS_NOT_INITIALIZED',
    `no Torus cluster in etcd ${backend.endpoint} under prefix ${backend.prefix}; run \`torusctl -C ${backend.endpoint} --etcd-prefix ${backend.prefix} init\` first, or check -C and --etcd-prefix`,
  )
}

/**
 * "cannot reach etcd at HOSTS (why)" for TORUS_UNAVAILABLE and TORUS_TIMEOUT, keeping the
 * original as `cause`; `undefined` for any other error.
 */
export function unreachable(err: unknown, serviceName: string, endpoint: string): TorusError | undefined {
  if (!isTorusError(err) || (err.code !== 'TORUS_UNAVAILABLE' && err.code !== 'TORUS_TIMEOUT')) return undefined
  const m = err.message
  const why = /ECONNREFUSED/.test(m)
    ? 'connection refused'
    : /Name resolution failed|ENOTFOUND|EAI_AGAIN/i.test(m)
      ? 'unknown host'
      : err.code === 'TORUS_TIMEOUT' || /deadline|timed? ?out/i.test(m)
        ? 'no answer in time'
        : m.replace(/^etcd is unavailable: /, '').split('. ')[0]!.trim()
  return new TorusError(err.code, `cannot reach ${serviceName} at ${endpoint} (${why}); is ${serviceName} running? Set -C/--endpoint or TORUS_ENDPOINT`, {
    cause: err,
  })
}
