import { createRing } from '@torus/ring'
import { silentLogger, TorusError, type Logger, type MetadataStore, type MetadataWatch, type PeerId, type Ring, type RingDescriptor } from '@torus/core'

export interface ClusterViewOptions {
  metadata: MetadataStore
  logger?: Logger
  /** How often the peer address book is re-read anyway. Default 30 s. */
  refreshMs?: number
}

/** Re-reading the peer list because of an unknown peer happens at most this often. */
const UNKNOWN_PEER_REFRESH_MS = 1000

/**
 * What a gateway needs to know about the cluster to place blocks: the ring (kept current by a
 * metadata watch) and where each peer listens (from the peers' heartbeat records). Metadata is
 * read on start, on ring changes and now and again, never per I/O.
 */
export class ClusterView {
  readonly #metadata: MetadataStore
  readonly #log: Logger
  readonly #refreshMs: number
  #ring: Ring | undefined
  #addresses = new Map<string, string>()
  #watch: MetadataWatch | undefined
  #timer: NodeJS.Timeout | undefined
  #lastRefresh = 0
  #refreshing: Promise<void> | undefined
  readonly #listeners = new Set<(ring: Ring) => void>()

  constructor(options: ClusterViewOptions) {
    this.#metadata = options.metadata
    this.#log = options.logger ?? silentLogger
    this.#refreshMs = options.refreshMs ?? 30_000
  }

  /** Reads the ring and the peers, and starts watching. TORUS_NOT_INITIALIZED without a cluster. */
  async start(): Promise<Ring> {
    const descriptor = await this.#metadata.getRing()
    if (descriptor === undefined) {
      throw new TorusError('TORUS_NOT_INITIALIZED', 'the cluster is not initialised; run torusctl init')
    }
    this.#ring = placement(descriptor)
    await this.refreshPeers()
    this.#watch = await this.#metadata.watchRing((next) => {
      if (this.#ring !== undefined && next.version === this.#ring.descriptor.version) return
      try {
        this.#ring = placement(next)
      } catch (err) {
        this.#log.error('ignoring a ring the metadata holds but that cannot be placed', { version: next.version, err })
        return
      }
      this.#log.info('ring changed', { version: next.version, type: next.type, replication: next.replication, members: next.members.length })
      void this.refreshPeers().catch(() => {})
      for (const listener of this.#listeners) listener(this.#ring)
    })
    this.#timer = setInterval(() => void this.refreshPeers().catch(() => {}), this.#refreshMs)
    this.#timer.unref()
    return this.#ring
  }

  get ring(): Ring {
    if (this.#ring === undefined) throw new TypeError('ClusterView not started')
    return this.#ring
  }

  /** Calls `listener` with every new ring. */
  onRing(listener: (ring: Ring) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** The peer's advertised address; unknown peers trigger a (rate-limited) re-read. */
  peerAddress(peer: PeerId): string | undefined {
    const address = this.#addresses.get(peer)
    if (address === undefined && Date.now() - this.#lastRefresh > UNKNOWN_PEER_REFRESH_MS) void this.refreshPeers().catch(() => {})
    return address
  }

  /** Re-reads every peer's address (one call in flight at a time). */
  refreshPeers(): Promise<void> {
    this.#refreshing ??= (async () => {
      this.#lastRefresh = Date.now()
      try {
        const peers = await this.#metadata.listPeers()
        this.#addresses = new Map(peers.map((p) => [p.id, p.address]))
      } catch (err) {
        this.#log.warn('could not read the peer list; keeping the last one', { err })
        throw err
      } finally {
        this.#refreshing = undefined
      }
    })()
    return this.#refreshing
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#listeners.clear()
    await this.#watch?.close()
  }
}

/**
 * A ring with no members places nothing (every block then has no replica, so I/O fails with
 * TORUS_UNAVAILABLE) rather than being an error: a fresh cluster has one until peers join.
 */
function placement(descriptor: RingDescriptor): Ring {
  if (descriptor.members.length === 0) return { descriptor, peersFor: () => [] }
  return createRing(descriptor)
}
