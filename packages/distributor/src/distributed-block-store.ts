import { AbstractBlockStore } from '@torus/blockstore'
import { blockKey } from '@torus/ring'
import {
  BlockRef,
  TorusError,
  isTorusError,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type BlockStore,
  type BlockStoreSupports,
  type BlockStoreUsage,
  type Logger,
  type MetadataStore,
  type PeerConnection,
  type PeerId,
  type Ring,
  type Transport,
  type TransportValue,
  type VolumeId,
} from '@torus/core'
import { LIST_LIMIT_MAX, REPLICA_METHODS, Replica, serveReplica } from './replica.js'

/**
 * Called when a write reached some replicas of a block but not all of them, before the write is
 * acknowledged. It must durably record (in metadata) that the `stale` peers missed this write of
 * `ref`, and resolve only once that record is safe; if it rejects, the write fails with
 * TORUS_UNAVAILABLE. Without a hook a partial write always fails.
 */
export type DegradedHook = (ref: BlockRef, stale: readonly PeerId[], info: { generation: number }) => Promise<void>

export interface DistributedBlockStoreOptions {
  /** This peer's id, as it appears in the ring. */
  peerId: PeerId | string
  /** Placement; replace it with `setRing()` when the ring changes. */
  ring: Ring
  /**
   * The peer's own store; it holds this peer's replicas and is owned (opened, closed) by this
   * store. Absent for a storage-less gateway (`torusblk nbdserver`), which is never a ring member.
   */
  local?: BlockStore
  /** Block size; required without `local` (else it is the local store's). */
  blockSizeBytes?: number
  /**
   * Where this peer's replica keeps its fencing generations and per-sector checksums (see
   * `ReplicaOptions.stateDir`). Without it they live in memory only: fine for tests, not for a
   * daemon, whose replicas must refuse old generations and detect corruption after a restart.
   */
  replicaStateDir?: string
  /** Peer RPC. This store registers the `replica.*` handlers on it and dials other peers through it. */
  transport: Transport
  /** Where a peer listens (`ws://…`, `loopback://…`); `undefined` when unknown (the replica counts as failed). */
  peerAddress: (peer: PeerId) => string | undefined
  /** See {@link DegradedHook}. */
  onDegraded?: DegradedHook
  /** Per-request deadline for replica calls. Default: the transport's. */
  requestTimeoutMs?: number
  /**
   * Told when this gateway holds a stale mark no write is about to record (a copy failing its
   * checksums, a replica restarted since it took unflushed writes, a record that failed): the
   * mark is in memory only until repair records it, so a daemon runs repair soon. At most once
   * a second per volume; not for the degraded writes that record their own marks.
   */
  onStaleFound?: (volumeId: VolumeId) => void
  logger?: Logger
}

/** Longest an announce waits for a redial of a peer in reconnect back-off (see #redialIfWaiting). */
const REDIAL_WAIT_MS = 1_000

/** Marks a dirty block whose loss on a restarted replica is still to be recorded. */
const LOST_INCARNATION = 'lost'

/** How long a peer whose read failed for want of an answer is tried last. */
const SUSPECT_MS = 10_000

/** A replica's acknowledgements since the last flush, and which run of it gave them. */
interface DirtyPeer {
  volumes: Set<VolumeId>
  /** Per block: the replica incarnation of its first acknowledgement; `mixed` if a later one differed. */
  blocks: Map<string, { ref: BlockRef; incarnation: string; mixed: boolean }>
}

type Outcome = { peer: PeerId; ok: true } | { peer: PeerId; ok: false; error: unknown }

export interface RepairOptions extends AbortOptions {
  /**
   * Where the volume's stale-replica records live: repaired ones are cleared there, each time on
   * the condition that the volume's lock is still held with this gateway's generation.
   */
  metadata: Pick<MetadataStore, 'clearStaleReplicas' | 'listStaleReplicas' | 'addStaleReplicas'>
  /** Upper bound on the bytes copied per second (default: none). */
  bytesPerSecond?: number
  /** Blocks copied at once (default 4). */
  concurrency?: number
  /** Blocks copied before a flush makes them durable and their records are cleared (default 64). */
  batchBlocks?: number
  /** Told the bytes of each copy as it lands (progress for metrics and heartbeats). */
  onProgress?: (bytes: number) => void
}

export interface RepairReport {
  /** Per-block stale records cleared: the replica got the block (or lost it) and made that durable. */
  repaired: number
  /** Peers that were stale for the whole volume and are current replicas again. */
  rejoined: number
  /** Bytes copied to stale replicas. */
  bytes: number
  /** Stale marks of the volume this gateway still holds (a peer unreachable, a copy failed): run again later. */
  remaining: number
}

/** The tenure a repair runs in: `check()` throws once the gateway no longer holds the volume with `generation`. */
interface Tenure {
  volumeId: VolumeId
  generation: number
  check(): void
}

/**
 * A peer stale for a whole volume that repair is bringing back (see `repairVolume`). While it
 * runs, mutations of a block the peer owns go to the peer too once its copy of the block is
 * current, and skip it (adding the block to `pending`) before that.
 */
interface Rejoin {
  /** False until every member listed its blocks: until then every mutation adds to `pending`. */
  listed: boolean
  /** Blocks whose copy on the peer is not current yet. */
  pending: Set<number>
  /** The peer's incarnation at its first answer: a restart may lose unflushed copies. */
  incarnation: string | undefined
  broken: boolean
}

/**
 * A `BlockStore` for one peer of a cluster: the gateway half of the data path (DESIGN.md "Data
 * path", points 1-5), plus the replica half for the blocks this peer holds (see {@link Replica}).
 *
 * - Writes and puts go to every replica `ring.peersFor(blockKey(ref))` names, in parallel: the
 *   local one directly, remote ones over `replica.write` / `replica.put`. A sub-block write sends
 *   only its bytes. Writes to one block are serialised here, so every replica applies them in the
 *   same order.
 * - All replicas acked: done. Some acked: the missing ones are recorded stale for the block, and
 *   the write is acknowledged only if `onDegraded` resolves (else TORUS_UNAVAILABLE). None acked:
 *   TORUS_UNAVAILABLE (TORUS_OUT_OF_SPACE when every replica is full). A replica that
 *   refuses the generation fails the write with TORUS_LEASE_EXPIRED.
 * - Stale replicas serve no reads of that block and get no sub-block writes (they would still
 *   lack the missed bytes); a whole-block `put` or a `delete` that reaches one makes it current.
 * - `flush()` flushes the local store and sends `replica.flush` to every peer that acked a write
 *   since the last flush; it resolves when all are durable and rejects if any fails.
 * - Reads try the local replica first when this peer holds one, then the others in ring order,
 *   skipping stale ones, moving on after any error (timeout, unreachable, TORUS_CORRUPT).
 *
 * `usage()` is synchronous, so it cannot ask the cluster: it counts the blocks this gateway has
 * seen allocated (written, or found present by a read) since it opened, and reports the local
 * store's capacity. `supports.iterate` is false.
 */
export class DistributedBlockStore extends AbstractBlockStore {
  readonly supports: BlockStoreSupports
  readonly peerId: PeerId
  readonly #replica: Replica | undefined
  readonly #transport: Transport
  readonly #peerAddress: (peer: PeerId) => string | undefined
  readonly #onDegraded: DegradedHook | undefined
  readonly #onStaleFound: ((volumeId: VolumeId) => void) | undefined
  /** When #notifyStale last told `onStaleFound`, per volume. */
  readonly #notified = new Map<VolumeId, number>()
  readonly #timeoutMs: number | undefined
  readonly #log: Logger
  #ring: Ring
  readonly #generations = new Map<VolumeId, number>()
  readonly #stale = new Map<string, Set<PeerId>>()
  /** Peers that missed a takeover of the volume: they serve and get nothing of it until repaired. */
  readonly #volumeStale = new Map<VolumeId, Set<PeerId>>()
  readonly #connections = new Map<PeerId, Promise<PeerConnection>>()
  /** Per peer (this one included), what it acknowledged since the last flush. */
  readonly #dirty = new Map<PeerId, DirtyPeer>()
  /**
   * Stale marks not (yet) durable in metadata: a degraded write whose hook failed. The next
   * mutation of the block must record them before it may be acknowledged, or a later holder,
   * which knows only the metadata, would read that replica.
   */
  readonly #unrecorded = new Map<string, Set<PeerId>>()
  /**
   * Stale replicas that acknowledged a whole-block put or delete, with the incarnation that did:
   * they become current once a flush shows that incarnation made it durable. Until then a
   * restart could bring back their old, stale copy.
   */
  readonly #pendingCurrent = new Map<string, Map<PeerId, { incarnation: string; round: number }>>()
  /** The flush in progress (flushes are serialised) and the number of flush rounds started. */
  #flushing: Promise<void> = Promise.resolve()
  #round = 0
  readonly #allocated = new Set<string>()
  /** Peers whose last read request failed (timeout, unreachable), until when: reads try them last. */
  readonly #suspect = new Map<PeerId, number>()
  readonly #blockLocks = new Map<string, Promise<void>>()
  #seq = 0
  /** Volume-wide stale peers being brought back by repair, by `volumeId:peer`. */
  readonly #rejoining = new Map<string, Rejoin>()
  /** Per volume, repairs this tenure confirmed whose records are still to be cleared (see #clearConfirmed). */
  readonly #toClear = new Map<VolumeId, { generation: number; items: Map<string, { peer: PeerId; index: number | 'all' }> }>()
  /** Told-once flush errors a repair's flush met, per volume, for the next client flush (see #serialFlush). */
  readonly #untold = new Map<VolumeId, TorusError>()
  /** Rate limits of #warnThrottled, by key. */
  readonly #throttle = new Map<string, { until: number; suppressed: number }>()
  /** The repair running per volume (repairs of one volume run one after another). */
  readonly #repairs = new Map<VolumeId, Promise<RepairReport>>()

  constructor(options: DistributedBlockStoreOptions) {
    const blockSizeBytes = options.local?.blockSizeBytes ?? options.blockSizeBytes
    if (blockSizeBytes === undefined) throw new TypeError('blockSizeBytes is required without a local store')
    if (options.local !== undefined && options.blockSizeBytes !== undefined && options.blockSizeBytes !== blockSizeBytes) {
      throw new RangeError(`blockSizeBytes ${options.blockSizeBytes} differs from the local store's ${blockSizeBytes}`)
    }
    super({ blockSizeBytes })
    this.peerId = options.peerId as PeerId
    this.#ring = options.ring
    this.#transport = options.transport
    this.#peerAddress = options.peerAddress
    this.#onDegraded = options.onDegraded
    this.#onStaleFound = options.onStaleFound
    this.#timeoutMs = options.requestTimeoutMs
    this.#log = (options.logger ?? silentLogger).child({ component: 'distributor', peer: this.peerId })
    this.#replica =
      options.local === undefined ? undefined : new Replica({ store: options.local, ...(options.replicaStateDir === undefined ? {} : { stateDir: options.replicaStateDir }) })
    // Without a local store, what the replicas promise is what counts: they persist and trim.
    this.supports = { persistent: options.local?.supports.persistent ?? true, trim: options.local?.supports.trim ?? true, iterate: false }
  }

  /** This peer's replicas, served to other peers over the transport. TypeError on a storage-less gateway. */
  get replica(): Replica {
    if (this.#replica === undefined) throw new TypeError('a storage-less gateway holds no replicas')
    return this.#replica
  }

  /** False for a storage-less gateway (`torusblk nbdserver`). */
  get hasReplica(): boolean {
    return this.#replica !== undefined
  }

  get ring(): Ring {
    return this.#ring
  }

  /**
   * Applies a new ring to later operations (operations in flight keep the ring they started
   * with). Nothing moves blocks to their new owners yet, so until rebalance exists a block the
   * new owners never received reads as absent from them.
   */
  setRing(ring: Ring): void {
    this.#ring = ring
  }

  /** The lock generation this gateway sends for `volumeId` (0 until set). */
  generation(volumeId: VolumeId): number {
    return this.#generations.get(volumeId) ?? 0
  }

  /** Sets the generation sent with writes, deletes and flushes of `volumeId` (from the volume lock). */
  setGeneration(volumeId: VolumeId, generation: number): void {
    if (!Number.isSafeInteger(generation) || generation < 0) throw new RangeError(`invalid generation: ${String(generation)}`)
    this.#generations.set(volumeId, generation)
  }

  /**
   * Sets the generation and raises it on every ring member, so no older holder can write
   * there any more. Call it after taking the volume lock and before serving I/O. Rejects with
   * TORUS_UNAVAILABLE unless every member confirmed, or TORUS_LEASE_EXPIRED if one has seen a
   * newer generation.
   */
  async announce(volumeId: VolumeId, generation: number, options?: AbortOptions): Promise<void> {
    const outcomes = await this.#announce(volumeId, generation, options)
    this.#throwUnlessAll(outcomes, 'announce')
  }

  /**
   * Like {@link announce}, but a member that cannot be reached does not fail it: it is returned
   * in `missed`, and the caller must record it stale for the whole volume (durably, in metadata)
   * and call {@link markVolumeStale} before serving I/O. Rejects with TORUS_LEASE_EXPIRED if a
   * member has seen a newer generation, and TORUS_UNAVAILABLE if no member confirmed.
   */
  async tryAnnounce(volumeId: VolumeId, generation: number, options?: AbortOptions): Promise<{ confirmed: PeerId[]; missed: PeerId[] }> {
    const outcomes = await this.#announce(volumeId, generation, options)
    const fenced = outcomes.find((o) => !o.ok && isTorusError(o.error, 'TORUS_LEASE_EXPIRED'))
    if (fenced !== undefined && !fenced.ok) throw fenced.error
    const confirmed = outcomes.filter((o) => o.ok).map((o) => o.peer)
    const missed = outcomes.filter((o) => !o.ok).map((o) => o.peer)
    if (confirmed.length === 0 && outcomes.length > 0) this.#throwUnlessAll(outcomes, 'announce')
    return { confirmed, missed }
  }

  async #announce(volumeId: VolumeId, generation: number, options?: AbortOptions): Promise<Outcome[]> {
    this.setGeneration(volumeId, generation)
    const members = this.#ring.descriptor.members.map((m) => m.peer as PeerId)
    return this.#fanOut(members, async (peer) => {
      if (peer === this.peerId && this.#replica !== undefined) await this.#replica.announce(volumeId, generation)
      else {
        await this.#redialIfWaiting(peer)
        await this.#request(peer, REPLICA_METHODS.announce, { volumeId, generation }, options)
      }
    })
  }

  /** Peers recorded stale for all of `volumeId` (they missed a takeover). */
  volumeStaleReplicas(volumeId: VolumeId): PeerId[] {
    return [...(this.#volumeStale.get(volumeId) ?? [])]
  }

  /** Records `peers` stale for every block of `volumeId`: no reads from them, no writes to them. */
  markVolumeStale(volumeId: VolumeId, peers: Iterable<PeerId>): void {
    const set = this.#volumeStale.get(volumeId) ?? new Set<PeerId>()
    for (const p of peers) set.add(p)
    if (set.size > 0) this.#volumeStale.set(volumeId, set)
  }

  /**
   * Stale marks of `volumeId` this gateway holds but could not yet record in metadata (their
   * record failed). A new tenure must record them before it forgets them.
   */
  owedStale(volumeId: VolumeId): { peer: PeerId; index: number }[] {
    const prefix = `${volumeId}:`
    const out: { peer: PeerId; index: number }[] = []
    for (const [key, peers] of this.#unrecorded) {
      if (!key.startsWith(prefix)) continue
      const index = Number(key.slice(prefix.length))
      for (const peer of peers) out.push({ peer, index })
    }
    return out
  }

  /** Forgets this gateway's stale marks for `volumeId` (before loading them afresh from metadata). */
  resetStale(volumeId: VolumeId): void {
    // An earlier tenure's repair is not this tenure's.
    this.#dropRepairState(volumeId)
    this.#volumeStale.delete(volumeId)
    const prefix = `${volumeId}:`
    for (const key of [...this.#stale.keys()]) if (key.startsWith(prefix)) this.#stale.delete(key)
    for (const key of [...this.#unrecorded.keys()]) if (key.startsWith(prefix)) this.#unrecorded.delete(key)
    for (const key of [...this.#pendingCurrent.keys()]) if (key.startsWith(prefix)) this.#pendingCurrent.delete(key)
    // Writes from an earlier tenure that were never flushed are not this tenure's to vouch for:
    // whoever held the volume in between wrote over them and flushed what it acknowledged.
    for (const d of this.#dirty.values()) {
      d.volumes.delete(volumeId)
      for (const key of [...d.blocks.keys()]) if (key.startsWith(prefix)) d.blocks.delete(key)
    }
  }

  /** The peers recorded stale for `ref` (they must not serve it until repaired). */
  staleReplicas(ref: BlockRef): PeerId[] {
    return [...(this.#stale.get(ref.toString()) ?? [])]
  }

  /** Records `peers` stale for `ref`, e.g. when loading what metadata says after a restart. */
  markStale(ref: BlockRef, peers: Iterable<PeerId>): void {
    const key = ref.toString()
    const set = this.#stale.get(key) ?? new Set<PeerId>()
    for (const p of peers) set.add(p)
    if (set.size > 0) this.#stale.set(key, set)
  }

  /** Forgets that `peer` is stale for `ref` (after a repair). */
  clearStale(ref: BlockRef, peer: PeerId): void {
    const owed = this.#unrecorded.get(ref.toString())
    owed?.delete(peer)
    if (owed?.size === 0) this.#unrecorded.delete(ref.toString())
    const set = this.#stale.get(ref.toString())
    set?.delete(peer)
    if (set?.size === 0) this.#stale.delete(ref.toString())
  }

  /**
   * Repairs the stale replicas of `volumeId` this gateway knows of (DESIGN.md, data path point
   * 6, for stale records): run it while holding the volume's lock, after `fenceVolume`. Safe to
   * run alongside I/O and to run again; it copies each block under the block's mutation lock.
   *
   * - A peer stale for one block gets that block (a whole-block put from a current replica, or a
   *   delete when no current replica holds it); once a flush shows the same run of the peer made
   *   that durable and nothing failed on it since, the record is cleared in metadata (only as
   *   this generation or an older one wrote it) and the peer serves the block again.
   * - A peer stale for the whole volume is first told this generation (so an older holder can
   *   no longer write there), then every ring member lists the blocks of the volume it holds; the
   *   peer gets every one of them it owns (or loses it), while mutations reach it for blocks
   *   already copied; then a flush on the peer, and it is a replica of the volume again. Every
   *   member must answer, else the peer stays out until the next run.
   *
   * Rejects with TORUS_LEASE_EXPIRED when another holder has taken the volume over; any other
   * failure is logged and left for the next run (see `remaining`).
   */
  async repairVolume(volumeId: VolumeId, options: RepairOptions): Promise<RepairReport> {
    if (this.status !== 'open') throw new TorusError('TORUS_NOT_OPEN', `block store is ${this.status}`)
    // One repair of a volume at a time: a second call waits for the first, then runs.
    const previous = this.#repairs.get(volumeId)
    const run = (previous ?? Promise.resolve()).catch(() => {}).then(() => this.#repair(volumeId, options))
    this.#repairs.set(volumeId, run)
    try {
      return await run
    } finally {
      if (this.#repairs.get(volumeId) === run) this.#repairs.delete(volumeId)
    }
  }

  /** Whether this gateway holds a stale mark of `volumeId` that repair could act on. */
  hasStaleReplicas(volumeId: VolumeId): boolean {
    return this.#staleCount(volumeId) > 0
  }

  /** How many stale marks of `volumeId` repair could act on (see `RepairReport.remaining`). */
  staleMarkCount(volumeId: VolumeId): number {
    return this.#staleCount(volumeId)
  }

  /**
   * Ends this gateway's tenure of `volumeId` (its lock was released or lost): no generation to
   * send any more, and a repair in progress stops at its next step. Stale marks stay (a later
   * tenure records the ones still owed, see `owedStale`).
   */
  endTenure(volumeId: VolumeId): void {
    this.#generations.delete(volumeId)
    this.#dropRepairState(volumeId)
  }

  #dropRepairState(volumeId: VolumeId): void {
    this.#untold.delete(volumeId)
    const prefix = `${volumeId}:`
    for (const key of [...this.#rejoining.keys()]) if (key.startsWith(prefix)) this.#rejoining.delete(key)
    this.#toClear.delete(volumeId)
  }

  async #repair(volumeId: VolumeId, options: RepairOptions): Promise<RepairReport> {
    const generation = this.generation(volumeId)
    if (generation === 0) throw new TorusError('TORUS_INVALID_ARGUMENT', `repair of volume ${volumeId} needs its lock generation: announce it first`)
    const tenure: Tenure = {
      volumeId,
      generation,
      check: () => {
        throwIfAborted(options.signal)
        if (this.generation(volumeId) !== generation || this.status !== 'open') {
          throw new TorusError('TORUS_LEASE_EXPIRED', `repair of volume ${volumeId} stopped: this gateway no longer holds it with generation ${generation}`, { details: { volumeId, generation } })
        }
      },
    }
    const report: RepairReport = { repaired: 0, rejoined: 0, bytes: 0, remaining: 0 }
    const pace = pacer(options.bytesPerSecond, options.signal)
    await this.#recordOwed(tenure, options)
    await this.#clearConfirmed(tenure, options, report)
    for (const peer of this.volumeStaleReplicas(volumeId)) {
      if (!this.#ring.descriptor.members.some((m) => m.peer === peer)) continue
      try {
        if (await this.#rejoin(tenure, peer, options, report, pace)) report.rejoined++
      } catch (err) {
        if (this.#endsRepair(err, volumeId)) throw err
        // Once per peer per 10 s: while the peer is down every pass says the same.
        this.#warnThrottled(`rejoin:${volumeId}:${peer}`, 'repair: a peer stale for the whole volume could not rejoin it yet', { volume: volumeId, peer, err })
      }
    }
    await this.#repairBlocks(tenure, options, report, pace)
    await this.#clearConfirmed(tenure, options, report)
    report.remaining = this.#staleCount(volumeId)
    return report
  }

  /**
   * Stale marks this gateway holds but has not recorded (a failed record, a corrupt copy found by
   * a read): recorded first, since repair works only on recorded marks (a clear must never
   * race the record it would clear).
   */
  async #recordOwed(tenure: Tenure, options: RepairOptions): Promise<void> {
    try {
      await this.#writeOwed(tenure.volumeId, tenure.generation, options.metadata, options.signal === undefined ? {} : { signal: options.signal }, tenure.check)
    } catch (err) {
      if (this.#endsRepair(err, tenure.volumeId)) throw err
      this.#log.warn('repair: stale marks could not be recorded yet', { volume: tenure.volumeId, code: isTorusError(err) ? err.code : undefined })
    }
  }

  /**
   * Records in `metadata` the stale marks of `volumeId` this gateway holds but has not recorded
   * (see `owedStale`), as this tenure's generation. A daemon calls it before it gives the
   * volume's lock up, so the next holder, and `torusctl volume status`, know of them.
   */
  async recordOwedStale(volumeId: VolumeId, metadata: Pick<MetadataStore, 'addStaleReplicas'>, options?: AbortOptions): Promise<number> {
    const generation = this.generation(volumeId)
    return generation === 0 ? 0 : this.#writeOwed(volumeId, generation, metadata, options)
  }

  /**
   * Writes the owed marks of `volumeId` as `generation`, then (after `written`, which may throw
   * to keep them owed) stops owing them. Resolves with how many were written.
   */
  async #writeOwed(volumeId: VolumeId, generation: number, metadata: Pick<MetadataStore, 'addStaleReplicas'>, options?: AbortOptions, written?: () => void): Promise<number> {
    const owed = this.owedStale(volumeId)
    if (owed.length === 0) return 0
    await metadata.addStaleReplicas(owed.map(({ peer, index }) => ({ volumeId, peer, index, generation })), options)
    written?.()
    for (const { peer, index } of owed) {
      const key = `${volumeId}:${index}`
      const set = this.#unrecorded.get(key)
      set?.delete(peer)
      if (set?.size === 0) this.#unrecorded.delete(key)
    }
    return owed.length
  }

  /** Errors that end a repair: aborted, or the volume fenced (for this volume, not another one a global flush met). */
  #endsRepair(err: unknown, volumeId: VolumeId): boolean {
    if (isTorusError(err, 'TORUS_ABORTED')) return true
    if (!isTorusError(err, 'TORUS_LEASE_EXPIRED')) return false
    const fenced = (err.details as { volumeId?: unknown } | undefined)?.volumeId
    return fenced === undefined || fenced === volumeId
  }

  /**
   * Stale marks of `volumeId` repair could act on: per block and volume-wide, on peers that are
   * owners under the current ring (a mark on a peer the ring no longer places the block on has
   * no effect until rebalance exists, and is kept), plus copies whose records are not cleared yet.
   */
  #staleCount(volumeId: VolumeId): number {
    const prefix = `${volumeId}:`
    const members = new Set(this.#ring.descriptor.members.map((m) => m.peer))
    let n = [...(this.#volumeStale.get(volumeId) ?? [])].filter((p) => members.has(p)).length + (this.#toClear.get(volumeId)?.items.size ?? 0)
    for (const [key, peers] of this.#stale) {
      if (!key.startsWith(prefix)) continue
      const owners = this.#ring.peersFor(blockKey(volumeId, Number(key.slice(prefix.length))))
      for (const p of peers) if (owners.includes(p)) n++
    }
    return n
  }

  async #repairBlocks(tenure: Tenure, options: RepairOptions, report: RepairReport, pace: (bytes: number) => Promise<void>): Promise<void> {
    const { volumeId } = tenure
    const prefix = `${volumeId}:`
    const out = this.#volumeStale.get(volumeId)
    const todo: { ref: BlockRef; peer: PeerId }[] = []
    for (const [key, peers] of this.#stale) {
      if (!key.startsWith(prefix)) continue
      const ref = new BlockRef(volumeId, Number(key.slice(prefix.length)))
      for (const peer of peers) if (out?.has(peer) !== true) todo.push({ ref, peer })
    }
    const batch = Math.max(1, options.batchBlocks ?? 64)
    // A peer that cannot be reached is left for the next pass after its first failure (one log
    // line per peer per pass, not one per block).
    const unreachable = new Set<PeerId>()
    for (let start = 0; start < todo.length; start += batch) {
      const copied: { ref: BlockRef; peer: PeerId }[] = []
      await eachLimited(todo.slice(start, start + batch), options.concurrency ?? 4, async (item) => {
        tenure.check()
        if (unreachable.has(item.peer)) return
        try {
          const sent = await this.#repairCopy(tenure, item.ref, item.peer)
          if (sent === undefined) return
          for (const peer of sent.peers) copied.push({ ref: item.ref, peer })
          report.bytes += sent.bytes
          options.onProgress?.(sent.bytes)
          await pace(sent.bytes)
        } catch (err) {
          if (this.#endsRepair(err, volumeId)) throw err
          const code = isTorusError(err) ? err.code : undefined
          if (code === 'TORUS_UNAVAILABLE' || code === 'TORUS_TIMEOUT') {
            if (unreachable.has(item.peer)) return
            unreachable.add(item.peer)
            this.#log.warn('repair: a stale peer cannot be reached; its blocks wait for the next pass', { volume: volumeId, peer: item.peer, code })
            return
          }
          this.#log.warn('repair: block copy failed', { volume: volumeId, index: item.ref.index, peer: item.peer, code })
        }
      })
      if (copied.length === 0) continue
      try {
        // Without the repair's signal: an aborted flush request would count as a replica that
        // cannot flush and be recorded stale. The signal is checked around it instead.
        await this.#serialFlush(undefined, true)
        throwIfAborted(options.signal)
      } catch (err) {
        if (this.#endsRepair(err, volumeId)) throw err
        // Replicas that did flush are current again (the flush confirmed them); the rest wait.
        this.#log.warn('repair: flush after copying failed', { volume: volumeId, code: isTorusError(err) ? err.code : undefined })
      }
      // Copies a flush confirmed (the peer is current again in memory) await their clear.
      for (const { ref, peer } of copied) {
        if (this.#stale.get(ref.toString())?.has(peer) === true) continue
        this.#clearLater(tenure, peer, ref.index)
      }
      await this.#clearConfirmed(tenure, options, report)
    }
  }

  #clearLater(tenure: Pick<Tenure, 'volumeId' | 'generation'>, peer: PeerId, index: number | 'all'): void {
    let pending = this.#toClear.get(tenure.volumeId)
    if (pending === undefined || pending.generation !== tenure.generation) this.#toClear.set(tenure.volumeId, (pending = { generation: tenure.generation, items: new Map() }))
    pending.items.set(`${peer}:${index}`, { peer, index })
  }

  /**
   * Copies the current content of `ref` to `peer`, which is stale for it, under the block's
   * mutation lock; resolves with the bytes sent, or `undefined` when there was nothing to do
   * (no longer stale, not yet recorded, no longer an owner). The next flush that the peer
   * answers as the same run makes it current (see #confirmCurrent).
   */
  async #repairCopy(tenure: Tenure, ref: BlockRef, peer: PeerId): Promise<{ bytes: number; peers: PeerId[] } | undefined> {
    let sent: { bytes: number; peers: PeerId[] } | undefined
    await this.#lockBlock(ref, async () => {
      tenure.check()
      const key = ref.toString()
      if (this.#stale.get(key)?.has(peer) !== true || this.#unrecorded.get(key)?.has(peer) === true) return
      if (!this.#replicasFor(ref).includes(peer)) return
      if (this.#pendingCurrent.get(key)?.has(peer) === true) {
        sent = { bytes: 0, peers: [peer] }
        return
      }
      const read = await this.#readCurrent(ref).catch((err: unknown) => {
        if (!isTorusError(err, 'TORUS_UNAVAILABLE')) throw err
        return undefined
      })
      let targets = [peer]
      let source = read
      if (source === undefined) {
        // No current replica can give the block now. When every owner is stale for it and all
        // hold the same bytes, those bytes are the block (see #readAgreed): each owner gets
        // them back as a repair copy and becomes current once a flush confirms it.
        const agreed = await this.#readAgreed(ref)
        if (agreed === undefined) {
          // Nothing to copy from (an owner down, or copies that differ): says nothing about
          // `peer` — its other blocks are still worth trying.
          this.#warnThrottled(`repair-no-copy:${ref.volumeId}`, 'repair: a block has no current copy to repair from; it stays unreadable until a replica holding it is back', {
            volume: ref.volumeId,
            index: ref.index,
            owners: this.#ring.peersFor(blockKey(ref.volumeId, ref.index)),
          })
          return
        }
        source = agreed
        targets = [peer, ...agreed.owners.filter((p) => p !== peer && this.#pendingCurrent.get(key)?.has(p) !== true)]
        this.#log.info('repair: every copy of a block was stale but all agree; they are the block again', { volume: ref.volumeId, index: ref.index, owners: agreed.owners })
      }
      // `peer` first: if its copy fails, the item fails as any copy would. Another owner's
      // failure leaves that owner stale for its own item to retry, and the copies that landed
      // are still reported, so their records get cleared once a flush confirms them.
      const done: { bytes: number; peers: PeerId[] } = { bytes: 0, peers: [] }
      for (const target of targets) {
        let copy: { bytes: number; incarnation: string }
        try {
          copy = await this.#copyBlock(tenure, ref, target, source)
        } catch (err) {
          if (target === peer || this.#endsRepair(err, ref.volumeId)) throw err
          this.#log.warn('repair: block copy failed', { volume: ref.volumeId, index: ref.index, peer: target, code: isTorusError(err) ? err.code : undefined })
          continue
        }
        done.bytes += copy.bytes
        done.peers.push(target)
        this.#pendingCurrent.set(key, (this.#pendingCurrent.get(key) ?? new Map()).set(target, { incarnation: copy.incarnation, round: this.#round }))
      }
      sent = done
    })
    return sent
  }

  /**
   * The content of `ref` when every owner of it under the ring is recorded stale for it (per
   * block, durably) and every one of them answers with the same bytes (checksums verified,
   * absent reading as zeros); `undefined` otherwise. Those bytes are the block: the gateway
   * refuses writes to a block with no current replica, so the last write any client had
   * acknowledged reached some owner that was current then, and a stale mark never takes bytes
   * away from a copy. That owner still holds them, or a later write a client was never told
   * about; either way all owners hold them. A rolling restart leaves blocks this way: each
   * peer missed a takeover while it was down, though no write changed anything. An owner that
   * does not answer, a restart that may have lost unflushed writes of the block, or copies
   * that differ leave it undecided: they could hide the newest bytes.
   * The caller holds the block lock.
   */
  async #readAgreed(ref: BlockRef): Promise<{ present: boolean; block: Uint8Array; owners: PeerId[] } | undefined> {
    const key = ref.toString()
    const owners = this.#ring.peersFor(blockKey(ref.volumeId, ref.index))
    const volumeStale = this.#volumeStale.get(ref.volumeId)
    const stale = this.#stale.get(key)
    const unrecorded = this.#unrecorded.get(key)
    if (owners.length === 0 || owners.some((p) => volumeStale?.has(p) === true || stale?.has(p) !== true || unrecorded?.has(p) === true)) return undefined
    let agreed: { present: boolean; block: Uint8Array } | undefined
    for (const peer of owners) {
      let copy: { present: boolean; block: Uint8Array }
      try {
        copy = await this.#readWholeFrom(peer, ref)
      } catch (err) {
        if (isTorusError(err, 'TORUS_ABORTED') || !isTorusError(err)) throw err
        return undefined
      }
      if (agreed === undefined) agreed = copy
      else if (!Buffer.from(agreed.block.buffer, agreed.block.byteOffset, agreed.block.byteLength).equals(copy.block)) {
        this.#warnThrottled(`repair-disagree:${ref.volumeId}`, 'repair: the stale copies of a block differ; it stays unreadable until a current copy is back', { volume: ref.volumeId, index: ref.index, owners })
        return undefined
      } else agreed = { present: agreed.present || copy.present, block: agreed.block }
    }
    return agreed === undefined ? undefined : { ...agreed, owners }
  }

  /**
   * Reads `ref` from its current replicas and puts it on `peer` (or deletes it there when none
   * holds it), with the tenure's generation; marks the peer dirty. The caller holds the block
   * lock. Resolves with the bytes sent and the incarnation of the peer that took them.
   */
  async #copyBlock(tenure: Tenure, ref: BlockRef, peer: PeerId, read?: { present: boolean; block: Uint8Array }): Promise<{ bytes: number; incarnation: string }> {
    const { present, block } = read ?? (await this.#readCurrent(ref))
    tenure.check()
    const { generation } = tenure
    const local = peer === this.peerId && this.#replica !== undefined
    const incarnation = present
      ? local
        ? await this.#local((r) => r.put(ref, block, generation))
        : await this.#remote(peer, REPLICA_METHODS.put, { volumeId: ref.volumeId, index: ref.index, bytes: block, generation, seq: ++this.#seq })
      : local
        ? await this.#local((r) => r.delete(ref, generation))
        : await this.#remote(peer, REPLICA_METHODS.delete, { volumeId: ref.volumeId, index: ref.index, generation })
    this.#markDirty(peer, ref, incarnation, true)
    return { bytes: present ? block.byteLength : 0, incarnation }
  }

  /** The block as its current replicas hold it (TORUS_UNAVAILABLE when none could answer). */
  async #readCurrent(ref: BlockRef): Promise<{ present: boolean; block: Uint8Array }> {
    const block = new Uint8Array(this.blockSizeBytes)
    return { present: await this._read(ref, 0, block), block }
  }

  /**
   * Clears the metadata records of repairs this tenure confirmed: per-block copies a flush made
   * current, and peers that rejoined the volume. It runs between flush rounds (a round may mark a
   * peer stale again and record that) and under each block's lock (so may a mutation): a record
   * is cleared only while the peer is still current in memory, only while the volume's lock is
   * held with the tenure's generation (checked by the metadata store in the same step), and only
   * as that generation or an older one wrote it. A clear that fails is tried again at the next
   * repair of this tenure; the metadata store is asked first whether it answers at all, so an
   * outage does not hold flushes and writes of those blocks for its timeout.
   */
  async #clearConfirmed(tenure: Tenure, options: RepairOptions, report: RepairReport): Promise<void> {
    const { volumeId, generation } = tenure
    const pending = this.#toClear.get(volumeId)
    if (pending === undefined) return
    if (pending.generation !== generation) {
      this.#toClear.delete(volumeId)
      return
    }
    try {
      await options.metadata.listStaleReplicas(volumeId, options.signal === undefined ? {} : { signal: options.signal })
    } catch (err) {
      this.#log.warn('repair: metadata unreachable; clearing repaired records later', { volume: volumeId, code: isTorusError(err) ? err.code : undefined })
      return
    }
    const items = [...pending.items.values()]
    const refs = items.flatMap((i) => (i.index === 'all' ? [] : [new BlockRef(volumeId, i.index)]))
    const run = async (): Promise<void> => {
      await this.#withBlockLocks(refs, async () => {
        tenure.check()
        const current = items.filter(({ peer, index }) => {
          if (index === 'all') return this.#volumeStale.get(volumeId)?.has(peer) !== true
          const key = `${volumeId}:${index}`
          return this.#stale.get(key)?.has(peer) !== true && this.#unrecorded.get(key)?.has(peer) !== true
        })
        // Marked stale again since: its record is needed again, and repair starts over for it.
        for (const i of items) if (!current.includes(i)) pending.items.delete(`${i.peer}:${i.index}`)
        if (current.length === 0) return
        await options.metadata.clearStaleReplicas(
          current.map(({ peer, index }) => ({ volumeId, peer, index, upToGeneration: generation })),
          options.signal === undefined ? { lockGeneration: generation } : { signal: options.signal, lockGeneration: generation },
        )
        for (const i of current) pending.items.delete(`${i.peer}:${i.index}`)
        const blocks = current.filter((i) => i.index !== 'all').length
        report.repaired += blocks
        if (blocks > 0) this.#log.info('repair: stale replicas caught up', { volume: volumeId, blocks })
      })
    }
    const next = this.#flushing.then(run, run)
    this.#flushing = next.catch(() => {})
    try {
      await next
    } catch (err) {
      if (this.#endsRepair(err, volumeId)) throw err
      this.#log.warn('repair: repaired records could not be cleared yet', { volume: volumeId, code: isTorusError(err) ? err.code : undefined })
    } finally {
      if (pending.items.size === 0 && this.#toClear.get(volumeId) === pending) this.#toClear.delete(volumeId)
    }
  }

  /**
   * Brings a peer stale for the whole volume back (see repairVolume). Resolves true when it is a
   * replica of the volume again; false when it could not be completed this time.
   */
  async #rejoin(tenure: Tenure, peer: PeerId, options: RepairOptions, report: RepairReport, pace: (bytes: number) => Promise<void>): Promise<boolean> {
    const { volumeId, generation } = tenure
    tenure.check()
    // Fence any older holder out of the peer before reading what it holds.
    if (peer !== this.peerId) await this.#redialIfWaiting(peer)
    const confirmed = peer === this.peerId && this.#replica !== undefined
      ? this.#replica.announce(volumeId, generation)
      : ((await this.#request(peer, REPLICA_METHODS.announce, { volumeId, generation }, options)) as { generation?: unknown } | null)?.generation
    if (typeof confirmed === 'number' && confirmed > generation) {
      throw new TorusError('TORUS_LEASE_EXPIRED', `volume ${volumeId} was taken over: a peer has seen generation ${confirmed}`, { details: { volumeId, generation: confirmed } })
    }
    const key = `${volumeId}:${peer}`
    const rejoin: Rejoin = { listed: false, pending: new Set(), incarnation: undefined, broken: false }
    this.#rejoining.set(key, rejoin)
    const live = (): void => {
      tenure.check()
      if (this.#rejoining.get(key) !== rejoin) throw new TorusError('TORUS_ABORTED', 'rejoin cancelled')
      if (rejoin.broken) throw new TorusError('TORUS_UNAVAILABLE', 'the peer restarted, or could not flush, while it was being repaired', { details: { peer } })
    }
    let done = false
    try {
      // Mutations that chose their replicas before the rejoin began must land before listing.
      await this.#drainBlockLocks(volumeId)
      for (const member of this.#ring.descriptor.members) {
        for (let after = -1; ; ) {
          const page = await this.#list(member.peer as PeerId, volumeId, after, options)
          // The peer's own listing pins the run every copy must reach: a restart after it may
          // bring back blocks it had deleted without flushing, which no listing would name.
          if (member.peer === peer) {
            rejoin.incarnation ??= page.incarnation
            if (rejoin.incarnation !== page.incarnation) rejoin.broken = true
          }
          for (const index of page.indexes) if (this.#ring.peersFor(blockKey(volumeId, index)).includes(peer)) rejoin.pending.add(index)
          if (!page.more || page.indexes.length === 0) break
          after = page.indexes[page.indexes.length - 1]!
        }
      }
      rejoin.listed = true
      live()
      this.#log.info('repair: bringing back a peer stale for the whole volume', { volume: volumeId, peer, blocks: rejoin.pending.size })
      const batchSize = Math.max(1, options.batchBlocks ?? 64)
      for (;;) {
        while (rejoin.pending.size > 0) {
          const batch: number[] = []
          for (const index of rejoin.pending) {
            batch.push(index)
            if (batch.length === batchSize) break
          }
          await eachLimited(batch, options.concurrency ?? 4, async (index) => {
            live()
            const ref = new BlockRef(volumeId, index)
            let bytes = 0
            await this.#lockBlock(ref, async () => {
              if (!rejoin.pending.has(index)) return
              live()
              const read = await this.#readCurrent(ref).catch((err: unknown) => {
                if (!isTorusError(err, 'TORUS_UNAVAILABLE')) throw err
                return undefined
              })
              if (read === undefined) {
                // No current replica could give the block (down, or none is current): the peer
                // rejoins without it, stale for that block alone (recorded first), so one
                // unreadable block does not keep it out of the whole volume.
                this.#markStaleUnrecorded(ref, [peer])
                await this.#record(ref, [peer], 'repair')
                rejoin.pending.delete(index)
                return
              }
              const copy = await this.#copyBlock(tenure, ref, peer, read)
              if (rejoin.incarnation !== copy.incarnation) rejoin.broken = true
              rejoin.pending.delete(index)
              bytes = copy.bytes
              report.bytes += copy.bytes
              options.onProgress?.(copy.bytes)
            })
            await pace(bytes)
          })
          live()
          // Flush as we go: the copies must be durable, and flushed dirty entries are dropped,
          // so a long rejoin does not pile them up. Every flush round checks a rejoining peer's
          // run (see #flushRound). Without the repair's signal (see #repairBlocks).
          await this.#serialFlush(undefined, true)
          live()
        }
        // A block may have been put back on `pending` by a mutation that failed on the peer
        // while the last batch flushed: copy it again.
        if (rejoin.pending.size > 0) continue
        // Everything copied is durable on the run listed. No await from this check to the
        // switch: a mutation that fails on the peer before it adds to `pending` (and the copy is
        // made again next time); after it, the peer is a replica and a failure marks it stale
        // for the block like any other.
        live()
        break
      }
      this.#rejoining.delete(key)
      done = true
      const set = this.#volumeStale.get(volumeId)
      set?.delete(peer)
      if (set?.size === 0) this.#volumeStale.delete(volumeId)
      this.#clearLater(tenure, peer, 'all')
      this.#log.info('repair: peer is a replica of the volume again', { volume: volumeId, peer })
      return true
    } finally {
      if (!done && this.#rejoining.get(key) === rejoin) this.#rejoining.delete(key)
    }
  }

  /**
   * One page of the blocks of `volumeId` that `peer` holds. A listing from a run of the peer
   * other than the one that acknowledged unflushed writes of the volume is refused
   * (TORUS_UNAVAILABLE): those writes may be gone from it, and a rejoining replica must not be
   * made current on the word of a listing that lost them.
   */
  async #list(peer: PeerId, volumeId: VolumeId, after: number, options: AbortOptions): Promise<{ indexes: number[]; more: boolean; incarnation: string }> {
    let page: { indexes: number[]; more: boolean }
    let incarnation: string
    if (peer === this.peerId && this.#replica !== undefined) {
      page = await this.#replica.list(volumeId, after, LIST_LIMIT_MAX)
      incarnation = this.#replica.incarnation
    } else {
      const reply = (await this.#request(peer, REPLICA_METHODS.list, { volumeId, after, limit: LIST_LIMIT_MAX }, options)) as { indexes?: unknown; more?: unknown } | null
      if (typeof reply !== 'object' || reply === null || !Array.isArray(reply.indexes) || typeof reply.more !== 'boolean' || !reply.indexes.every((i) => Number.isSafeInteger(i) && (i as number) > after)) {
        throw new TorusError('TORUS_PROTOCOL', 'malformed replica.list reply', { details: { peer } })
      }
      page = { indexes: reply.indexes as number[], more: reply.more }
      incarnation = incarnationOf(reply as TransportValue)
    }
    const prefix = `${volumeId}:`
    for (const [key, b] of this.#dirty.get(peer)?.blocks ?? []) {
      if (key.startsWith(prefix) && (b.mixed || b.incarnation !== incarnation)) {
        throw new TorusError('TORUS_UNAVAILABLE', 'the peer restarted since it acknowledged unflushed writes of the volume; a flush must settle them first', { details: { peer, volumeId } })
      }
    }
    return { ...page, incarnation }
  }

  /** Waits for the mutations of `volumeId` queued or running now. */
  async #drainBlockLocks(volumeId: VolumeId): Promise<void> {
    const prefix = `${volumeId}:`
    await Promise.all([...this.#blockLocks].filter(([key]) => key.startsWith(prefix)).map(([, tail]) => tail))
  }

  /** Runs `fn` holding the mutation locks of every block in `refs` (taken one after another). */
  async #withBlockLocks(refs: BlockRef[], fn: () => Promise<void>): Promise<void> {
    const unique = [...new Map(refs.map((r) => [r.toString(), r])).values()]
    const take = async (i: number): Promise<void> => {
      if (i === unique.length) return fn()
      await this.#lockBlock(unique[i]!, () => take(i + 1))
    }
    await take(0)
  }

  protected override async _open(options?: AbortOptions): Promise<void> {
    if (this.#replica !== undefined) {
      await this.#replica.store.open(options)
      await this.#replica.open()
      serveReplica(this.#transport, this.#replica)
    }
    this.#log.info('distributor open', { ringVersion: this.#ring.descriptor.version })
  }

  protected override async _close(): Promise<void> {
    const connections = [...this.#connections.values()]
    this.#connections.clear()
    await Promise.all(connections.map(async (c) => (await c.catch(() => undefined))?.close()))
    await this.#replica?.close()
    await this.#replica?.store.close()
  }

  protected async _get(ref: BlockRef, options?: AbortOptions): Promise<Uint8Array | undefined> {
    const block = new Uint8Array(this.blockSizeBytes)
    return (await this._read(ref, 0, block, options)) ? block : undefined
  }

  protected async _put(ref: BlockRef, block: Uint8Array): Promise<void> {
    await this.#mutate(ref, 'put', (peer, generation, seq) =>
      peer === this.peerId && this.#replica !== undefined
        ? this.#local((r) => r.put(ref, block, generation))
        : this.#remote(peer, REPLICA_METHODS.put, { volumeId: ref.volumeId, index: ref.index, bytes: block, generation, seq }),
    )
  }

  protected async _write(ref: BlockRef, offsetBytes: number, data: Uint8Array): Promise<void> {
    await this.#mutate(ref, 'write', (peer, generation, seq) =>
      peer === this.peerId && this.#replica !== undefined
        ? this.#local((r) => r.write(ref, offsetBytes, data, generation))
        : this.#remote(peer, REPLICA_METHODS.write, { volumeId: ref.volumeId, index: ref.index, offset: offsetBytes, bytes: data, generation, seq }),
    )
  }

  protected async _delete(ref: BlockRef): Promise<void> {
    await this.#mutate(ref, 'delete', (peer, generation) =>
      peer === this.peerId && this.#replica !== undefined
        ? this.#local((r) => r.delete(ref, generation))
        : this.#remote(peer, REPLICA_METHODS.delete, { volumeId: ref.volumeId, index: ref.index, generation }),
    )
    this.#allocated.delete(ref.toString())
  }

  protected async _read(ref: BlockRef, offsetBytes: number, target: Uint8Array, options?: AbortOptions): Promise<boolean> {
    const errors: unknown[] = []
    let corrupt: PeerId[] | undefined
    let restarted: PeerId[] | undefined
    for (const peer of this.#readOrder(ref)) {
      try {
        let allocated: boolean
        if (peer === this.peerId && this.#replica !== undefined) {
          allocated = await this.#replica.read(ref, offsetBytes, target)
        } else {
          const reply = await this.#request(peer, REPLICA_METHODS.read, { volumeId: ref.volumeId, index: ref.index, offset: offsetBytes, length: target.byteLength }, options)
          this.#checkNotRestarted(ref, peer, incarnationOf(reply))
          allocated = parseRead(reply, target)
        }
        this.#noteAllocated(ref, allocated)
        this.#suspect.delete(peer)
        if (restarted !== undefined) {
          const lost = restarted.filter((p) => this.#dirty.get(p)?.blocks.has(ref.toString()) === true)
          this.#markStaleUnrecorded(ref, lost)
          if (lost.length > 0) this.#notifyStale(ref.volumeId)
        }
        if (corrupt !== undefined) this.#reportCorrupt(ref, corrupt, peer, offsetBytes === 0 && target.byteLength === this.blockSizeBytes)
        return allocated
      } catch (err) {
        if (isTorusError(err, 'TORUS_ABORTED') || !isTorusError(err)) throw err
        this.#warnThrottled(`read:${peer}:${err.code}`, 'replica read failed', { volume: ref.volumeId, index: ref.index, replica: peer, code: err.code })
        if (err.code === 'TORUS_CORRUPT') (corrupt ??= []).push(peer)
        // A replica that may have lost unflushed writes of the block serves no read of it; once
        // another replica served the block it serves none until repaired (the next flush records
        // it, or finds the writes lost everywhere). Not before: the last copy is never shut out.
        if (/^replica restarted since it acknowledged/.test(err.message)) (restarted ??= []).push(peer)
        this.#noteSuspect(peer, err)
        errors.push(err)
      }
    }
    throw unavailable('no replica could serve the read', ref, errors)
  }

  protected async _has(ref: BlockRef, options?: AbortOptions): Promise<boolean> {
    const errors: unknown[] = []
    for (const peer of this.#readOrder(ref)) {
      try {
        const present = peer === this.peerId && this.#replica !== undefined
          ? await this.#replica.has(ref)
          : (await this.#request(peer, REPLICA_METHODS.has, { volumeId: ref.volumeId, index: ref.index }, options)) === true
        this.#noteAllocated(ref, present)
        this.#suspect.delete(peer)
        return present
      } catch (err) {
        if (isTorusError(err, 'TORUS_ABORTED') || !isTorusError(err)) throw err
        this.#noteSuspect(peer, err)
        errors.push(err)
      }
    }
    throw unavailable('no replica could answer has()', ref, errors)
  }

  /** Sent to every ring member (any may hold blocks of the volume); all must confirm. */
  protected async _deleteVolume(volumeId: VolumeId, options?: AbortOptions): Promise<void> {
    const generation = this.generation(volumeId)
    const members = this.#ring.descriptor.members.map((m) => m.peer as PeerId)
    const outcomes = await this.#fanOut(members, (peer) =>
      peer === this.peerId && this.#replica !== undefined
        ? this.#replica.deleteVolume(volumeId, generation)
        : this.#request(peer, REPLICA_METHODS.deleteVolume, { volumeId, generation }, options),
    )
    this.#throwUnlessAll(outcomes, 'deleteVolume')
    const prefix = `${volumeId}:`
    for (const key of [...this.#allocated]) if (key.startsWith(prefix)) this.#allocated.delete(key)
    for (const key of [...this.#stale.keys()]) if (key.startsWith(prefix)) this.#stale.delete(key)
    for (const key of [...this.#pendingCurrent.keys()]) if (key.startsWith(prefix)) this.#pendingCurrent.delete(key)
    this.#volumeStale.delete(volumeId)
  }

  /**
   * Flushes run one after another: a flush that found nothing dirty because another one had
   * just taken the list must not be acknowledged before that one's replicas are durable.
   */
  protected override _flush(options?: AbortOptions): Promise<void> {
    return this.#serialFlush(options, false)
  }

  /**
   * `internal`: a flush of repair's, not a client's. Some flush errors are told once and then
   * forgotten: writes a restarted replica lost, and a volume fenced for good. An internal flush
   * settles them as a client's would (drops what is gone, so later rounds and reads are not held
   * up by it) and keeps the error for the client's next flush.
   */
  #serialFlush(options: AbortOptions | undefined, internal: boolean): Promise<void> {
    const run = async (): Promise<void> => {
      await this.#flushRound(options, internal)
      if (internal) return
      // Flushes cover every volume of this store, so whichever client flushes next hears it.
      for (const [volumeId, err] of this.#untold) {
        this.#untold.delete(volumeId)
        throw err
      }
    }
    const next = this.#flushing.then(run, run)
    this.#flushing = next.catch(() => {})
    return next
  }

  async #flushRound(options: AbortOptions | undefined, internal: boolean): Promise<void> {
    const round = ++this.#round
    const dirty = new Map(this.#dirty)
    this.#dirty.clear()
    // Each peer checks the generations of the volumes it holds unflushed writes for.
    const generationsFor = (peer: PeerId): [VolumeId, number][] => [...(dirty.get(peer)?.volumes ?? [])].map((v) => [v, this.generation(v)])
    const remote = [...dirty.keys()].filter((p) => p !== this.peerId)
    const peers = this.#replica === undefined ? remote : [this.peerId, ...remote]
    const incarnations = new Map<PeerId, string>()
    const outcomes = await this.#fanOut(peers, async (peer) => {
      if (peer === this.peerId && this.#replica !== undefined) {
        await this.#replica.flush(generationsFor(peer))
        incarnations.set(peer, this.#replica.incarnation)
      } else {
        incarnations.set(peer, incarnationOf(await this.#request(peer, REPLICA_METHODS.flush, { generations: generationsFor(peer) }, options)))
      }
    })
    const unreachable: PeerId[] = []
    for (const o of outcomes) {
      if (o.ok) continue
      const owed = dirty.get(o.peer)!
      if (!isTorusError(o.error, 'TORUS_LEASE_EXPIRED')) {
        unreachable.push(o.peer)
        continue
      }
      // A volume another holder took over: its writes here are fenced for good, and asking again
      // would fail every later flush of this gateway's other volumes. This flush still fails.
      const fenced = (o.error.details as { volumeId?: unknown } | undefined)?.volumeId
      if (typeof fenced === 'number') {
        this.#dropVolume(owed, fenced as VolumeId)
        if (internal && isTorusError(o.error) && !this.#untold.has(fenced as VolumeId)) this.#untold.set(fenced as VolumeId, o.error)
      }
      this.#restoreDirty(o.peer, owed)
    }
    this.#checkRejoiners(dirty, incarnations)
    const settled = await this.#settleUnreachable(unreachable, dirty, incarnations)
    await this.#settleRestartedReplicas(dirty, incarnations, round, internal)
    this.#throwUnlessAll(
      outcomes.filter((o) => o.ok || !settled.has(o.peer)),
      'flush',
    )
  }

  /**
   * A rejoining peer (see #rejoin) must make every copy durable as the run that listed its
   * blocks: a round it failed, or answered as another run, while it owed writes of that volume
   * breaks the rejoin (it starts over later).
   */
  #checkRejoiners(dirty: Map<PeerId, DirtyPeer>, incarnations: Map<PeerId, string>): void {
    if (this.#rejoining.size === 0) return
    for (const [key, rejoin] of this.#rejoining) {
      const split = key.indexOf(':')
      const volumeId = Number(key.slice(0, split)) as VolumeId
      const peer = key.slice(split + 1) as PeerId
      const owed = dirty.get(peer)
      if (owed === undefined || !owed.volumes.has(volumeId)) continue
      const now = incarnations.get(peer)
      if (now === undefined || now !== rejoin.incarnation) rejoin.broken = true
    }
  }

  /**
   * A replica that could not flush (unreachable, timed out, or its disk failed) may never make
   * the writes it acknowledged durable. As for a degraded write (DESIGN.md, data path 2), the
   * flush may still complete: each such block is recorded stale on it — durably, in metadata,
   * before the flush is acknowledged — when another current replica made the block durable in
   * this round. Blocks no other replica holds durably stay owed by it (the next flush asks it
   * again) and fail this flush, as does a record that cannot be written. Returns the peers
   * whose failure is fully settled that way.
   */
  async #settleUnreachable(peers: readonly PeerId[], dirty: Map<PeerId, DirtyPeer>, incarnations: Map<PeerId, string>): Promise<Set<PeerId>> {
    const settled = new Set<PeerId>()
    for (const peer of peers) {
      const owed = dirty.get(peer)!
      const left: DirtyPeer = { volumes: new Set(), blocks: new Map() }
      for (const [key, b] of owed.blocks) {
        // A peer stale for the whole volume (rejoining, or a write it took as an extra) counts
        // for nothing: the volume-wide record covers it, and its repair sees the failure.
        if (this.#volumeStale.get(b.ref.volumeId)?.has(peer) === true) continue
        if (this.#onDegraded !== undefined && this.#durableElsewhere(b.ref, [peer], dirty, incarnations)) {
          this.#markStaleUnrecorded(b.ref, [peer])
          try {
            await this.#record(b.ref, [peer], 'flush')
            this.#log.warn('replica could not flush; recorded stale for the block', { volume: b.ref.volumeId, index: b.ref.index, peer })
            continue
          } catch (err) {
            this.#log.warn('replica could not flush, and its stale mark could not be recorded', { volume: b.ref.volumeId, index: b.ref.index, peer, err })
          }
        }
        left.blocks.set(key, b)
        left.volumes.add(b.ref.volumeId)
      }
      if (left.blocks.size === 0) settled.add(peer)
      // Failed peers still owe durability for what is not settled: the next flush asks again.
      else this.#restoreDirty(peer, left)
    }
    return settled
  }

  #dropVolume(d: DirtyPeer, volumeId: VolumeId): void {
    d.volumes.delete(volumeId)
    const prefix = `${volumeId}:`
    for (const key of [...d.blocks.keys()]) if (key.startsWith(prefix)) d.blocks.delete(key)
  }

  /**
   * A replica that answers the flush as another incarnation than the one that acknowledged a
   * write restarted in between, and may have lost that write (it was not durable yet). Each such
   * block is recorded stale on it — durably, before the flush is acknowledged — as long as some
   * other replica made the block durable; if none did, the write is lost and the flush fails.
   */
  async #settleRestartedReplicas(dirty: Map<PeerId, DirtyPeer>, incarnations: Map<PeerId, string>, round: number, internal: boolean): Promise<void> {
    const lost = new Map<string, { ref: BlockRef; peers: PeerId[] }>()
    for (const [peer, d] of dirty) {
      const now = incarnations.get(peer)
      if (now === undefined) continue
      for (const [key, b] of d.blocks) {
        if (!b.mixed && b.incarnation === now) continue
        if (this.#volumeStale.get(b.ref.volumeId)?.has(peer) === true) continue // see #settleUnreachable
        const entry = lost.get(key) ?? { ref: b.ref, peers: [] }
        entry.peers.push(peer)
        lost.set(key, entry)
      }
    }
    this.#confirmCurrent(incarnations, lost, round)
    const gone: BlockRef[] = []
    let recordError: unknown
    for (const { ref, peers } of lost.values()) {
      const durable = this.#durableElsewhere(ref, peers, dirty, incarnations)
      this.#log.warn('replica restarted before writes were durable', { volume: ref.volumeId, index: ref.index, replicas: peers, durableElsewhere: durable })
      if (!durable) {
        // A replica that may still hold the block durably did not answer this flush: decide at
        // the next one. Meanwhile the restarted ones serve nothing of it.
        const key = ref.toString()
        const stale = this.#stale.get(key)
        const undecided = this.#replicasFor(ref).some((q) => !peers.includes(q) && stale?.has(q) !== true && dirty.get(q)?.blocks.has(key) === true && !incarnations.has(q))
        if (undecided) {
          this.#markStaleUnrecorded(ref, peers)
          this.#owe(ref, peers)
          continue
        }
        gone.push(ref)
        continue
      }
      this.#markStaleUnrecorded(ref, peers)
      try {
        await this.#record(ref, peers, 'flush')
      } catch (err) {
        recordError ??= err
        // Until the record is durable no flush may succeed: a later holder, which knows only the
        // metadata, would read the block from these replicas. Ask again at the next flush.
        this.#owe(ref, peers)
      }
    }
    if (gone.length > 0) {
      const error = new TorusError('TORUS_UNAVAILABLE', `writes were lost: every replica that acknowledged them restarted before making them durable (${gone.length} block(s))`, {
        details: { volumeId: gone[0]!.volumeId, index: gone[0]!.index, blocks: gone.map((r) => [r.volumeId, r.index]) },
      })
      // Told once, to a client: repair's own flush keeps it for the client's next flush.
      if (internal && !this.#untold.has(gone[0]!.volumeId)) this.#untold.set(gone[0]!.volumeId, error)
      throw error
    }
    if (recordError !== undefined) throw recordError
  }

  /** Stale replicas whose put or delete this flush made durable (same incarnation) are current again. */
  #confirmCurrent(incarnations: Map<PeerId, string>, lost: Map<string, { peers: PeerId[] }>, round: number): void {
    for (const [key, pending] of [...this.#pendingCurrent]) {
      for (const [peer, { incarnation, round: since }] of [...pending]) {
        const now = incarnations.get(peer)
        if (now === undefined || since >= round) continue
        pending.delete(peer)
        if (now !== incarnation || lost.get(key)?.peers.includes(peer) === true) continue
        const set = this.#stale.get(key)
        set?.delete(peer)
        if (set?.size === 0) this.#stale.delete(key)
        const owed = this.#unrecorded.get(key)
        const recorded = owed?.has(peer) !== true
        owed?.delete(peer)
        if (owed?.size === 0) this.#unrecorded.delete(key)
        // Its record goes too (at the next repair pass, if this gateway still holds the volume
        // then): left behind, it would make a later holder shut a current copy out.
        const [volumeId, index] = key.split(':').map(Number) as [VolumeId, number]
        const generation = this.generation(volumeId)
        if (recorded && generation !== 0) this.#clearLater({ volumeId, generation }, peer, index)
      }
      if (pending.size === 0) this.#pendingCurrent.delete(key)
    }
  }

  /**
   * Whether a current replica of `ref` other than `lost` holds its acknowledged writes durably:
   * it flushed them in this round as the incarnation that acknowledged them, or it owes no flush
   * for the block at all (a current replica got every write, and its dirty entries go only
   * when a flush succeeded).
   */
  #durableElsewhere(ref: BlockRef, lost: readonly PeerId[], dirty: Map<PeerId, DirtyPeer>, incarnations: Map<PeerId, string>): boolean {
    const key = ref.toString()
    const stale = this.#stale.get(key)
    return this.#replicasFor(ref).some((q) => {
      if (lost.includes(q) || stale?.has(q) === true) return false
      const round = dirty.get(q)?.blocks.get(key)
      if (round !== undefined) return incarnations.get(q) === round.incarnation && !round.mixed
      return this.#dirty.get(q)?.blocks.has(key) !== true
    })
  }

  /** `whole`: a put or delete, which replaces whatever earlier acknowledgements of the block held. */
  #markDirty(peer: PeerId, ref: BlockRef, incarnation: string, whole = false): void {
    let d = this.#dirty.get(peer)
    if (d === undefined) this.#dirty.set(peer, (d = { volumes: new Set(), blocks: new Map() }))
    d.volumes.add(ref.volumeId)
    const key = ref.toString()
    const b = d.blocks.get(key)
    if (b === undefined || whole) d.blocks.set(key, { ref, incarnation, mixed: false })
    else if (b.incarnation !== incarnation) b.mixed = true
  }

  #restoreDirty(peer: PeerId, from: DirtyPeer): void {
    for (const b of from.blocks.values()) {
      this.#markDirty(peer, b.ref, b.incarnation)
      if (b.mixed) this.#dirty.get(peer)!.blocks.get(b.ref.toString())!.mixed = true
    }
    for (const v of from.volumes) this.#dirty.get(peer)?.volumes.add(v)
  }

  /**
   * A replica that answers as another incarnation than the one that acknowledged unflushed
   * writes of `ref` restarted in between and may lack them: it serves nothing of the block from
   * now on (the next flush records that, or finds the writes lost everywhere).
   */
  #checkNotRestarted(ref: BlockRef, peer: PeerId, incarnation: string): void {
    const acked = this.#dirty.get(peer)?.blocks.get(ref.toString())
    if (acked === undefined || (!acked.mixed && acked.incarnation === incarnation)) return
    throw new TorusError('TORUS_UNAVAILABLE', 'replica restarted since it acknowledged unflushed writes of the block', {
      details: { volumeId: ref.volumeId, index: ref.index, peer },
    })
  }

  /** Makes the next flush look at `ref` on `peers` again, as a possible loss. */
  #owe(ref: BlockRef, peers: readonly PeerId[]): void {
    for (const p of peers) {
      this.#markDirty(p, ref, LOST_INCARNATION, true)
      this.#dirty.get(p)!.blocks.get(ref.toString())!.mixed = true
    }
  }

  #markStaleUnrecorded(ref: BlockRef, peers: readonly PeerId[]): void {
    if (peers.length === 0) return
    this.markStale(ref, peers)
    const key = ref.toString()
    const owed = this.#unrecorded.get(key) ?? new Set<PeerId>()
    for (const p of peers) owed.add(p)
    this.#unrecorded.set(key, owed)
  }

  /**
   * Tells `onStaleFound` of a mark no write is about to record (at most once a second per
   * volume: a failing etcd or a peer that keeps failing must not make repair run back to back).
   */
  #notifyStale(volumeId: VolumeId): void {
    if (this.#onStaleFound === undefined) return
    const now = Date.now()
    if ((this.#notified.get(volumeId) ?? 0) > now - 1000) return
    this.#notified.set(volumeId, now)
    this.#onStaleFound(volumeId)
  }

  /** Makes `peers`' stale marks for `ref` durable through `onDegraded`; TORUS_UNAVAILABLE if it cannot. */
  async #record(ref: BlockRef, peers: readonly PeerId[], what: string): Promise<void> {
    if (this.#onDegraded === undefined) throw unavailable(`the ${what} reached only some replicas`, ref, [])
    try {
      await this.#onDegraded(ref, peers, { generation: this.generation(ref.volumeId) })
    } catch (err) {
      this.#notifyStale(ref.volumeId)
      throw new TorusError('TORUS_UNAVAILABLE', `the ${what} reached only some replicas and the stale ones could not be recorded`, {
        cause: err,
        details: { volumeId: ref.volumeId, index: ref.index, stale: [...peers] },
      })
    }
    const owed = this.#unrecorded.get(ref.toString())
    for (const p of peers) owed?.delete(p)
    if (owed?.size === 0) this.#unrecorded.delete(ref.toString())
  }

  protected _usage(): BlockStoreUsage {
    const blocks = this.#allocated.size
    return { blocks, usedBytes: blocks * this.blockSizeBytes, capacityBytes: this.#replica?.store.usage().capacityBytes ?? 0 }
  }

  /**
   * Runs one mutation of `ref` on its replicas, serialised per block, and settles acknowledgement.
   * It takes no signal: the base class checked it before we got here, and a fan-out cut short by
   * an abort would leave the replicas disagreeing.
   */
  async #mutate(
    ref: BlockRef,
    kind: 'write' | 'put' | 'delete',
    send: (peer: PeerId, generation: number, seq: number) => Promise<string>,
  ): Promise<void> {
    await this.#lockBlock(ref, async () => {
      const replicas = this.#replicasFor(ref)
      const stale = this.#stale.get(ref.toString())
      // A stale replica lacks earlier bytes: a partial write cannot fix it, a whole put or delete can.
      const targets = kind === 'write' ? replicas.filter((p) => stale?.has(p) !== true) : replicas
      if (targets.length === 0) throw unavailable('no current replica of the block', ref, [])
      // Replicas skipped as stale whose marks are not durable yet must be recorded by this write.
      const owed = this.#unrecorded.get(ref.toString())
      const unrecorded = replicas.filter((p) => !targets.includes(p) && owed?.has(p) === true)
      // A replica waiting for a flush to confirm its put or delete (see #confirmCurrent) that
      // this mutation skips lacks it: it must not be confirmed by a flush that runs while this
      // mutation is in flight, so it stops waiting now, not after the fan-out.
      const waiting = this.#pendingCurrent.get(ref.toString())
      for (const p of replicas) if (!targets.includes(p)) waiting?.delete(p)
      if (waiting?.size === 0) this.#pendingCurrent.delete(ref.toString())
      const generation = this.generation(ref.volumeId)
      const seq = ++this.#seq
      const incarnations = new Map<PeerId, string>()
      const rejoiners = this.#rejoinersFor(ref)
      const sent = await this.#fanOut([...targets, ...rejoiners], async (peer) => {
        incarnations.set(peer, await send(peer, generation, seq))
      })
      // A rejoining peer's answer only tells its repair whether its copy is still current; one
      // whose repair finished meanwhile is a replica like the others.
      const outcomes = sent.filter((o) => !rejoiners.includes(o.peer) || !this.#settleRejoiner(ref, o, incarnations, kind))
      const acked = outcomes.filter((o) => o.ok).map((o) => o.peer)
      const failed = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok)
      for (const p of acked) this.#markDirty(p, ref, incarnations.get(p)!, kind !== 'write')
      const key = ref.toString()
      // A pending replica that failed this mutation lacks it again (a flush that confirmed it
      // meanwhile is undone below: it is marked stale again).
      const pending = this.#pendingCurrent.get(key)
      for (const p of replicas) if (!acked.includes(p)) pending?.delete(p)
      if (pending?.size === 0) this.#pendingCurrent.delete(key)
      const fenced = failed.find((o) => isTorusError(o.error, 'TORUS_LEASE_EXPIRED'))
      if (fenced !== undefined) throw fenced.error
      if (acked.length === 0) {
        // Nothing is marked stale here: no replica is known to hold the new bytes, and one that
        // runs this request late still runs it before our next request to it on that
        // connection, so later writes land on top of it.
        if (failed.every((o) => isTorusError(o.error, 'TORUS_OUT_OF_SPACE'))) throw failed[0]!.error
        throw unavailable(`no replica acknowledged the ${kind}`, ref, failed.map((o) => o.error))
      }
      if (kind !== 'write') {
        for (const p of acked) {
          if (this.#stale.get(key)?.has(p) !== true) continue
          const pending = this.#pendingCurrent.get(key) ?? new Map<PeerId, { incarnation: string; round: number }>()
          // Only a flush round that starts after this put may vouch for it.
          pending.set(p, { incarnation: incarnations.get(p)!, round: this.#round })
          this.#pendingCurrent.set(key, pending)
        }
      }
      if (failed.length > 0) {
        // Whatever happens next, these replicas may lack this mutation: never read the block from them.
        this.#markStaleUnrecorded(ref, failed.map((o) => o.peer))
        this.#warnThrottled(`write:${failed.map((o) => o.peer).join(',')}`, 'replica write failed', { volume: ref.volumeId, index: ref.index, replicas: failed.map((o) => o.peer) })
        if (this.#onDegraded === undefined) throw unavailable(`the ${kind} reached only some replicas`, ref, failed.map((o) => o.error))
      }
      const missed = [...failed.map((o) => o.peer), ...unrecorded.filter((p) => owed?.has(p) === true)]
      if (missed.length > 0) await this.#record(ref, missed, kind)
      this.#noteAllocated(ref, kind !== 'delete')
    })
  }

  /**
   * Rejoining owners of `ref` (see `repairVolume`) whose copy of the block is current, so they
   * take this mutation too; the others skip it, and their copy of the block is made again.
   */
  #rejoinersFor(ref: BlockRef): PeerId[] {
    if (this.#rejoining.size === 0) return []
    const out: PeerId[] = []
    for (const peer of this.#ring.peersFor(blockKey(ref.volumeId, ref.index))) {
      const rejoin = this.#rejoining.get(`${ref.volumeId}:${peer}`)
      if (rejoin === undefined) continue
      if (!rejoin.listed || rejoin.pending.has(ref.index)) rejoin.pending.add(ref.index)
      else out.push(peer)
    }
    return out
  }

  /** Takes a rejoining peer's outcome; false when its repair is over and it counts as a replica. */
  #settleRejoiner(ref: BlockRef, o: Outcome, incarnations: Map<PeerId, string>, kind: 'write' | 'put' | 'delete'): boolean {
    const rejoin = this.#rejoining.get(`${ref.volumeId}:${o.peer}`)
    // The rejoin ended while this was in flight: a peer that rejoined is a replica like the
    // others; one still stale for the whole volume (the rejoin failed or was stopped) counts for
    // nothing — its acknowledgement must not be the one that lets the write complete.
    if (rejoin === undefined) return this.#volumeStale.get(ref.volumeId)?.has(o.peer) === true
    // A newer holder fenced the peer: that fails the mutation, like any replica's refusal.
    if (!o.ok && isTorusError(o.error, 'TORUS_LEASE_EXPIRED')) return false
    if (!o.ok) {
      rejoin.pending.add(ref.index)
      return true
    }
    const incarnation = incarnations.get(o.peer)!
    this.#markDirty(o.peer, ref, incarnation, kind !== 'write')
    rejoin.incarnation ??= incarnation
    if (rejoin.incarnation !== incarnation) rejoin.broken = true
    return true
  }

  /** The ring's replicas of `ref`, less those that missed a takeover of its volume. */
  #replicasFor(ref: BlockRef): PeerId[] {
    const replicas = this.#ring.peersFor(blockKey(ref.volumeId, ref.index))
    const out = this.#volumeStale.get(ref.volumeId)
    return out === undefined ? replicas : replicas.filter((p) => !out.has(p))
  }

  #readOrder(ref: BlockRef): PeerId[] {
    const replicas = this.#replicasFor(ref)
    const stale = this.#stale.get(ref.toString())
    const usable = replicas.filter((p) => stale?.has(p) !== true)
    const local = usable.indexOf(this.peerId)
    if (local > 0) usable.unshift(...usable.splice(local, 1))
    if (this.#suspect.size === 0) return usable
    // A peer that just timed out or was unreachable goes last for a while, so a hung peer costs
    // one timeout rather than one per block; it is still tried when nothing else answers.
    const now = Date.now()
    const suspect = (p: PeerId): boolean => (this.#suspect.get(p) ?? 0) > now
    return [...usable.filter((p) => !suspect(p)), ...usable.filter(suspect)]
  }

  /**
   * Logs `msg` at most once per 10 s per `key` (a peer that is down fails every write sent to it),
   * with the number of occurrences left out since the last line.
   */
  #warnThrottled(key: string, msg: string, fields: Record<string, unknown>): void {
    const now = Date.now()
    const seen = this.#throttle.get(key)
    if (seen !== undefined && now < seen.until) {
      seen.suppressed++
      return
    }
    this.#log.warn(msg, seen === undefined || seen.suppressed === 0 ? fields : { ...fields, alsoSince: seen.suppressed })
    this.#throttle.set(key, { until: now + 10_000, suppressed: 0 })
    if (this.#throttle.size > 1000) this.#throttle.clear()
  }

  /**
   * Replicas whose copy of `ref` failed its checksums (or could not be read from disk) while
   * another replica served the block: they serve it no more, and the next mutation of the block,
   * a new tenure or repair records that and repair puts a good copy there. Only when another
   * replica served it: the last readable copy is never shut out.
   */
  #reportCorrupt(ref: BlockRef, peers: readonly PeerId[], servedBy: PeerId, wholeBlock: boolean): void {
    const mark = (): void => {
      const owners = this.#replicasFor(ref)
      const bad = peers.filter((p) => owners.includes(p) && this.#stale.get(ref.toString())?.has(p) !== true)
      if (bad.length === 0) return
      this.#markStaleUnrecorded(ref, bad)
      this.#notifyStale(ref.volumeId)
      this.#log.warn('replica copy failed its checksums; it serves the block no more until repaired', { volume: ref.volumeId, index: ref.index, replicas: bad })
    }
    if (wholeBlock) return mark()
    // The read covered part of the block: another sector of the bad copy may be the only good
    // one. Shut it out only once the replica that served reads the whole block back intact.
    void this.#readWholeFrom(servedBy, ref).then(mark, () => {})
  }

  /** The whole block from one replica (checksums verified; zeros when it holds none), or a rejection. */
  async #readWholeFrom(peer: PeerId, ref: BlockRef): Promise<{ present: boolean; block: Uint8Array }> {
    const block = new Uint8Array(this.blockSizeBytes)
    if (peer === this.peerId && this.#replica !== undefined) return { present: await this.#replica.read(ref, 0, block), block }
    const reply = await this.#request(peer, REPLICA_METHODS.read, { volumeId: ref.volumeId, index: ref.index, offset: 0, length: block.byteLength })
    this.#checkNotRestarted(ref, peer, incarnationOf(reply))
    return { present: parseRead(reply, block), block }
  }

  #noteSuspect(peer: PeerId, err: TorusError): void {
    if (peer === this.peerId) return
    if (err.code === 'TORUS_TIMEOUT' || err.code === 'TORUS_UNAVAILABLE') this.#suspect.set(peer, Date.now() + SUSPECT_MS)
  }

  #noteAllocated(ref: BlockRef, allocated: boolean): void {
    if (allocated) this.#allocated.add(ref.toString())
    else this.#allocated.delete(ref.toString())
  }

  async #fanOut(peers: readonly PeerId[], fn: (peer: PeerId) => Promise<unknown> | void): Promise<Outcome[]> {
    return Promise.all(
      peers.map(async (peer): Promise<Outcome> => {
        try {
          await fn(peer)
          return { peer, ok: true }
        } catch (error) {
          if (!isTorusError(error)) throw error
          return { peer, ok: false, error }
        }
      }),
    )
  }

  #throwUnlessAll(outcomes: Outcome[], what: string): void {
    const failed = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok)
    if (failed.length === 0) return
    const fenced = failed.find((o) => isTorusError(o.error, 'TORUS_LEASE_EXPIRED'))
    if (fenced !== undefined) throw fenced.error
    throw new TorusError('TORUS_UNAVAILABLE', `${what} failed on ${failed.length} of ${outcomes.length} peers`, {
      cause: failed[0]!.error,
      details: { peers: failed.map((o) => o.peer) },
    })
  }

  /** Runs a mutation on this peer's replica; resolves with its incarnation. */
  async #local(op: (replica: Replica) => Promise<void>): Promise<string> {
    await op(this.#replica!)
    return this.#replica!.incarnation
  }

  /** Sends a mutation to `peer`'s replica; resolves with the incarnation that applied it. */
  async #remote(peer: PeerId, method: string, body: TransportValue): Promise<string> {
    return incarnationOf(await this.#request(peer, method, body))
  }

  async #request(peer: PeerId, method: string, body: TransportValue, options?: AbortOptions): Promise<TransportValue> {
    const connection = await this.#connect(peer, options)
    const requestOptions: { signal?: AbortSignal; timeoutMs?: number } = {}
    if (options?.signal !== undefined) requestOptions.signal = options.signal
    if (this.#timeoutMs !== undefined) requestOptions.timeoutMs = this.#timeoutMs
    return connection.request(method, body, requestOptions)
  }

  /**
   * A peer back from a restart can sit in the transport's reconnect back-off for seconds after it
   * is up; a takeover that announced to it then would record it stale for the whole volume. So
   * before an announce, a connection waiting to reconnect dials at once (a peer still down fails
   * fast: connection refused).
   */
  async #redialIfWaiting(peer: PeerId): Promise<void> {
    const connection = await this.#connections.get(peer)?.catch(() => undefined)
    if (connection?.state !== 'reconnecting') return
    // At most REDIAL_WAIT_MS: a host that is off or cut off lets a dial hang until the hello
    // timeout, and the caller's own retries are the place to wait longer.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([connection.reconnectNow(), new Promise<void>((resolve) => (timer = setTimeout(resolve, REDIAL_WAIT_MS)))])
    clearTimeout(timer)
  }

  /**
   * Whether this gateway has an open connection to every one of `peers` (itself counts as
   * reachable), dialling those it has none to, or redialling those waiting to reconnect, for at
   * most `timeoutMs` each. For a background task about to take a volume over: a takeover that
   * misses a peer records it stale for the whole volume.
   */
  async reachesAll(peers: Iterable<string>, timeoutMs = 2_000): Promise<boolean> {
    const outcomes = await Promise.all(
      [...peers].map(async (peer) => {
        if (peer === this.peerId) return true
        try {
          await this.#redialIfWaiting(peer as PeerId)
          const connection = await this.#connect(peer as PeerId, { signal: AbortSignal.timeout(timeoutMs) })
          return connection.state === 'open'
        } catch {
          return false
        }
      }),
    )
    return outcomes.every(Boolean)
  }

  async #connect(peer: PeerId, options?: AbortOptions): Promise<PeerConnection> {
    const cached = this.#connections.get(peer)
    if (cached !== undefined) {
      const connection = await cached.catch(() => undefined)
      if (connection !== undefined && connection.state !== 'closed') return connection
      if (this.#connections.get(peer) === cached) this.#connections.delete(peer)
    }
    const address = this.#peerAddress(peer)
    if (address === undefined) throw new TorusError('TORUS_UNAVAILABLE', 'no address for peer', { details: { peer } })
    const connectOptions: { expectedPeerId: string; timeoutMs?: number; signal?: AbortSignal } = { expectedPeerId: peer }
    if (this.#timeoutMs !== undefined) connectOptions.timeoutMs = this.#timeoutMs
    if (options?.signal !== undefined) connectOptions.signal = options.signal
    const dialing = this.#transport.connect(address, connectOptions)
    this.#connections.set(peer, dialing)
    try {
      return await dialing
    } catch (err) {
      if (this.#connections.get(peer) === dialing) this.#connections.delete(peer)
      throw err
    }
  }

  async #lockBlock(ref: BlockRef, fn: () => Promise<void>): Promise<void> {
    const key = ref.toString()
    const prev = this.#blockLocks.get(key)
    let release!: () => void
    const mine = new Promise<void>((resolve) => (release = resolve))
    const tail = prev === undefined ? mine : prev.then(() => mine)
    this.#blockLocks.set(key, tail)
    if (prev !== undefined) await prev
    try {
      await fn()
    } finally {
      release()
      if (this.#blockLocks.get(key) === tail) this.#blockLocks.delete(key)
    }
  }
}

function incarnationOf(reply: TransportValue): string {
  const r = reply as { incarnation?: unknown } | null
  if (typeof r !== 'object' || r === null || typeof r.incarnation !== 'string' || r.incarnation === '') {
    throw new TorusError('TORUS_PROTOCOL', 'replica reply carries no incarnation')
  }
  return r.incarnation
}

function parseRead(reply: TransportValue, target: Uint8Array): boolean {
  const r = reply as { allocated?: unknown; bytes?: unknown } | null
  if (typeof r !== 'object' || r === null || typeof r.allocated !== 'boolean' || !(r.bytes instanceof Uint8Array)) {
    throw new TorusError('TORUS_PROTOCOL', 'malformed replica.read reply')
  }
  if (!r.allocated) {
    target.fill(0)
    return false
  }
  if (r.bytes.byteLength !== target.byteLength) throw new TorusError('TORUS_PROTOCOL', 'replica.read reply has the wrong length')
  target.set(r.bytes)
  return true
}

function unavailable(message: string, ref: BlockRef, errors: unknown[]): TorusError {
  return new TorusError('TORUS_UNAVAILABLE', message, {
    ...(errors.length > 0 ? { cause: errors.length === 1 ? errors[0] : new AggregateError(errors, message) } : {}),
    details: { volumeId: ref.volumeId, index: ref.index, codes: errors.map((e) => (isTorusError(e) ? e.code : 'unknown')) },
  })
}

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first error once all settled. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  let first: { error: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!
      try {
        await fn(item)
      } catch (error) {
        first ??= { error }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker))
  if (first !== undefined) throw first.error
}

/** Sleeps as needed to keep the bytes reported under `bytesPerSecond` (no bound when undefined). */
function pacer(bytesPerSecond: number | undefined, signal: AbortSignal | undefined): (bytes: number) => Promise<void> {
  if (bytesPerSecond === undefined || !(bytesPerSecond > 0)) return async () => throwIfAborted(signal)
  const start = Date.now()
  let total = 0
  return async (bytes) => {
    total += bytes
    const due = start + (total / bytesPerSecond) * 1000 - Date.now()
    if (due > 0) await new Promise((resolve) => setTimeout(resolve, due))
    throwIfAborted(signal)
  }
}
