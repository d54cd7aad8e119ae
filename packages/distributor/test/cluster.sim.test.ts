// Goal: the replicated data path keeps its promise through crashes, restarts, partitions and
// gateway takeovers: a read returns only bytes the model allows (never bytes that were never
// written, nor bytes an acknowledged write replaced), and it fails (TORUS_UNAVAILABLE) only when
// no current replica of the block was reachable; after a takeover the old gateway is fenced.
// Method: per seed, a 3-5 peer in-process cluster (replication 2, or 3 with 5 peers) of
// file-backed replicas with persistent replica state, sometimes plus a storage-less gateway, and a
// MemoryMetadataStore for the stale records. Seeded steps: batches of concurrent reads, writes,
// puts and deletes on distinct blocks through the volume's gateway, flushes, partitions
// (LoopbackHub.isolate), crashes (SIGKILL-like, see helpers/sim-cluster.ts) and restarts over the
// same directories, injected store errors, and takeovers (fenceVolume with generation g+1).
// Faults also strike with requests in flight. Every read is checked against a per-byte model.
// Prints TORUS_SEED=<n> on failure; setting it replays that seed's operation sequence (timing
// inside the in-process network can still differ).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { BlockRef, SeededRandom, TorusError, isTorusError, type PeerId, type VolumeId, type VolumeLock } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { blockKey } from '@torus/ring'
import { simulationSeeds } from '@torus/testing'
import { fenceVolume, recordStaleInMetadata, type RepairReport } from '../src/index.js'
import { SimCluster, type SimPeer } from './helpers/sim-cluster.js'

const B = 8192
const BLOCKS = 12
const STEPS = 260

/**
 * A replica that restarts after acknowledging writes and before the flush that covers them may
 * lose the unflushed ones (a new block's allocation, a delete). The gateway notices (the replica
 * answers as a new incarnation) and records it stale for those blocks, or, when no other replica
 * holds them durably, fails the flush ("writes were lost"); the model then keeps those losses
 * for good. TORUS_SIM_STRICT_RESTART=0 turns the check off (a crash's possible losses are then
 * kept after later flushes).
 */
const STRICT_RESTART = process.env.TORUS_SIM_STRICT_RESTART !== '0'

/**
 * A fifth of the degraded writes' stale records fail to be written (metadata unreachable): the
 * write fails, and the next write of the block must record the replica before it is acknowledged.
 * TORUS_SIM_METADATA_FAULTS=0 turns that off.
 */
const METADATA_FAULTS = process.env.TORUS_SIM_METADATA_FAULTS !== '0'

interface BlockModel {
  /** The latest value written to each byte (by an acknowledged or a failed mutation). */
  value: Uint8Array
  /** Bytes a failed mutation left uncertain: every value they may hold. */
  fail: Map<number, Set<number>>
  /** Bytes a replica crash may have rolled back: the values its copy may have gone back to. */
  loss: Map<number, Set<number>>
  /** Per byte, the generation of the gateway whose acknowledged mutation wrote it last (0: none). */
  ackedBy: Int32Array
  /** Per byte touched since the block was last known durable: every value it held since then. */
  touched: Map<number, Set<number>>
  /** Generations of the gateways that mutated the block since it was last known durable. */
  writers: Set<number>
  /** Those of them with an acknowledged mutation. */
  ackers: Set<number>
}

/**
 * Per byte, the values a read may return. Acknowledged mutations make a byte certain; failed ones
 * add their value to what it may hold (they may have landed on some replica). A crash of a
 * replica adds, for its blocks, every value a byte held since the block was last known durable;
 * a block is known durable once a gateway's flush succeeded after it acknowledged a mutation of
 * it (every current replica acked one, so every one flushed its whole store), or when only that
 * gateway mutated it since.
 */
class Model {
  /**
   * Blocks a replica of which crashed since they were last known durable. The gateway tracks
   * losses per block, not per byte: it may report a block lost although later acknowledged
   * writes covered every byte a crash could have rolled back.
   */
  readonly crashedSinceDurable = new Set<number>()
  /** Blocks a flush reported lost writes of: a crash's possible losses stay allowed for them. */
  readonly lostForGood = new Set<number>()
  readonly blocks: BlockModel[] = Array.from({ length: BLOCKS }, () => ({
    value: new Uint8Array(B),
    fail: new Map(),
    loss: new Map(),
    ackedBy: new Int32Array(B),
    touched: new Map(),
    writers: new Set(),
    ackers: new Set(),
  }))

  allowed(i: number, at: number): Set<number> {
    const b = this.blocks[i]!
    const out = new Set([b.value[at]!])
    for (const v of b.fail.get(at) ?? []) out.add(v)
    for (const v of b.loss.get(at) ?? []) out.add(v)
    return out
  }

  #touch(i: number, at: number, value: number): void {
    const b = this.blocks[i]!
    let t = b.touched.get(at)
    if (t === undefined) b.touched.set(at, (t = this.allowed(i, at)))
    t.add(value)
  }

  acked(i: number, offset: number, data: Uint8Array, generation: number): void {
    const b = this.blocks[i]!
    for (let k = 0; k < data.length; k++) {
      const at = offset + k
      this.#touch(i, at, data[k]!)
      b.value[at] = data[k]!
      b.fail.delete(at)
      b.loss.delete(at)
      b.ackedBy[at] = generation
    }
    b.writers.add(generation)
    b.ackers.add(generation)
  }

  failed(i: number, offset: number, data: Uint8Array, generation: number): void {
    const b = this.blocks[i]!
    for (let k = 0; k < data.length; k++) {
      const at = offset + k
      this.#touch(i, at, data[k]!)
      const set = b.fail.get(at) ?? new Set([b.value[at]!])
      set.add(data[k]!)
      b.fail.set(at, set)
      b.value[at] = data[k]!
    }
    b.writers.add(generation)
  }

  /** A replica of these blocks crashed: it may have lost what was not yet durable. */
  crashed(blocks: Iterable<number>): void {
    for (const i of blocks) {
      this.crashedSinceDurable.add(i)
      const b = this.blocks[i]!
      for (const [at, values] of b.touched) {
        const set = b.loss.get(at) ?? new Set<number>()
        for (const v of values) set.add(v)
        b.loss.set(at, set)
      }
    }
  }

  /** A flush through the gateway holding `generation` succeeded. */
  flushed(generation: number): void {
    for (const [i, b] of this.blocks.entries()) {
      if (STRICT_RESTART && !this.lostForGood.has(i)) for (const at of [...b.loss.keys()]) if (b.ackedBy[at] === generation) b.loss.delete(at)
      if (b.ackers.has(generation) || [...b.writers].every((g) => g === generation)) {
        b.touched.clear()
        this.crashedSinceDurable.delete(i)
        b.writers.clear()
        b.ackers.clear()
      }
    }
  }

  /** The first offset of `seen` (read at `offset`) that the model does not allow, or -1. */
  mismatch(i: number, offset: number, seen: Uint8Array): number {
    const b = this.blocks[i]!
    for (let k = 0; k < seen.length; k++) {
      const at = offset + k
      if (seen[k] === b.value[at] && !b.fail.has(at) && !b.loss.has(at)) continue
      if (!this.allowed(i, at).has(seen[k]!)) return at
    }
    return -1
  }
}

/** The outcome of a request the gateway never answered because it crashed. */
const LOST = Symbol('gateway crashed')

type Op = { kind: 'write' | 'put' | 'delete' | 'read' | 'get'; i: number; offset: number; data: Uint8Array }
type Outcome = { settled: false } | { settled: true; ok: true; value: unknown } | { settled: true; ok: false; error: unknown }

interface Counts {
  peers: number
  steps: number
  acked: number
  failedMutations: number
  reads: number
  failedReads: number
  flushes: number
  crashes: number
  gatewayCrashes: number
  isolations: number
  takeovers: number
  repairs: number
  repaired: number
  rejoined: number
  fencedWrites: number
  inFlightFaults: number
}

async function runOnce(seed: number): Promise<Counts> {
  const rng = new SeededRandom(seed)
  const peerCount = 3 + rng.int(3)
  const replication = peerCount === 5 ? 3 : 2
  const storageless = rng.next() < 0.4
  const faultRate = rng.next() < 0.5 ? 0.01 : 0
  const counts: Counts = {
    peers: peerCount,
    steps: 0,
    acked: 0,
    failedMutations: 0,
    reads: 0,
    failedReads: 0,
    flushes: 0,
    crashes: 0,
    gatewayCrashes: 0,
    isolations: 0,
    takeovers: 0,
    repairs: 0,
    repaired: 0,
    rejoined: 0,
    fencedWrites: 0,
    inFlightFaults: 0,
  }
  /** Blocks whose degraded write could not record its stale replicas (TORUS_SIM_METADATA_FAULTS). */
  const hookFailed = new Set<number>()
  const metadataRandom = new SeededRandom(seed ^ 0x3e7a)
  const log: string[] = [`seed ${seed}: ${peerCount} peers, replication ${replication}${storageless ? ', storage-less gateway' : ''}${faultRate > 0 ? `, store fault rate ${faultRate}` : ''}${STRICT_RESTART ? ', strict restart' : ''}${METADATA_FAULTS ? ', metadata faults' : ''}`]
  const dir = await mkdtemp(join(tmpdir(), 'torus-cluster-sim-'))
  const metadata = new MemoryMetadataStore()
  let cluster: SimCluster | undefined
  try {
    await metadata.open()
    await metadata.initCluster({ blockSizeBytes: B, replication, ringType: 'mod', createdAt: new Date(0).toISOString() })
    const V: VolumeId = (await metadata.createVolume({ name: 'sim', sizeBytes: 1024 * 1024 })).id
    const c = (cluster = await SimCluster.start({
      dir,
      peers: peerCount,
      replication,
      blockSizeBytes: B,
      capacityBytes: 4 * BLOCKS * B,
      storagelessGateway: storageless,
      requestTimeoutMs: 1_000,
      onDegraded: () => {
        const record = recordStaleInMetadata(metadata)
        return async (blockRef, peers, info) => {
          if (METADATA_FAULTS && metadataRandom.next() < 0.2) {
            hookFailed.add(blockRef.index)
            log.push(`   (the stale record for block ${blockRef.index} could not be written)`)
            throw new Error('injected metadata failure')
          }
          await record(blockRef, peers, info)
        }
      },
      seed,
    }))
    for (const p of c.storagePeers) p.local!.faultRate = faultRate
    const model = new Model()
    const ref = (i: number): BlockRef => new BlockRef(V, i)
    const replicasOf = (i: number): PeerId[] => c.ring.peersFor(blockKey(V, i))
    const blocksOn = (p: SimPeer): number[] => Array.from({ length: BLOCKS }, (_, i) => i).filter((i) => replicasOf(i).includes(p.peer))
    /** Replicas a crash may have left with a torn sector (TORUS_CORRUPT until a put repairs it). */
    const torn = new Map<PeerId, Set<number>>()
    /** Torn blocks a put or delete repaired since the last flush: a crash brings the tear back. */
    const repaired = new Map<PeerId, Set<number>>()
    let gw = storageless ? c.peers[c.peers.length - 1]! : c.peers[rng.int(peerCount)]!
    /**
     * The volume lock, held in metadata by the current gateway: repair clears records only while
     * it is held with the gateway's generation. A takeover revokes the old holder's lease (its
     * lock lapses) and takes a new lock; the old gateway keeps its generation in memory.
     */
    let lock: VolumeLock | undefined
    let generation = 0
    const newTenure = async (holder: SimPeer): Promise<void> => {
      if (lock !== undefined) await metadata.revokeLease(lock.leaseId)
      lock = await metadata.lockVolume('sim', holder.name, await metadata.grantLease(3_600_000))
      generation = lock.generation
    }

    const down = (): SimPeer[] => c.storagePeers.filter((p) => !p.up || p.isolated)
    const canFault = (): boolean => down().length < replication - 1
    const reachable = (p: SimPeer): boolean => p.up && (p.peer === gw.peer || !p.isolated)
    /** The block's replicas the gateway treats as current: not stale for it, nor for the volume. */
    const current = (i: number): PeerId[] => {
      const stale = new Set([...gw.store.staleReplicas(ref(i)), ...gw.store.volumeStaleReplicas(V)])
      return replicasOf(i).filter((p) => !stale.has(p))
    }
    /** Some current replica is up, reachable and intact: reads (and writes) of the block must work. */
    const servable = (i: number): boolean => current(i).some((p) => reachable(c.byPeer(p)) && torn.get(p)?.has(i) !== true)
    const fail = (what: string, cause?: unknown): never => {
      throw new Error(what, cause === undefined ? {} : { cause })
    }

    /**
     * A flush that reports writes lost: allowed only for a block a replica crash may have rolled
     * back (the model has possible losses for it); from then on those losses stay allowed.
     */
    const writesLost = (err: TorusError): boolean => {
      if (!/writes were lost/.test(err.message)) return false
      const blocks = (err.details as { blocks?: unknown } | undefined)?.blocks
      if (!Array.isArray(blocks) || blocks.length === 0) fail('a lost-writes flush error without its blocks', err)
      for (const [, index] of blocks as [number, number][]) {
        if (model.blocks[index] === undefined) fail(`a lost-writes flush error names block ${String(index)}`, err)
        if (model.blocks[index]!.loss.size === 0 && !model.crashedSinceDurable.has(index)) fail(`flush reported lost writes of block ${index}, which no crash could have rolled back`, err)
        model.lostForGood.add(index)
      }
      log.push(`  flush reported lost writes of blocks ${(blocks as [number, number][]).map(([, i]) => i).join(',')}`)
      return true
    }

    /**
     * A read refused because the replicas left restarted after acknowledging unflushed writes of
     * the block (they may lack them): allowed when a crash since the block was last durable could
     * have rolled it back.
     */
    const lostByRestart = (err: unknown, i: number): boolean => {
      const causes: unknown[] = []
      const walk = (e: unknown): void => {
        if (!(e instanceof Error)) return
        causes.push(e)
        if (e instanceof AggregateError) for (const x of e.errors) walk(x)
        walk(e.cause)
      }
      walk(err)
      return model.crashedSinceDurable.has(i) && causes.some((e) => e instanceof Error && /replica restarted since it acknowledged unflushed writes/.test(e.message))
    }

    /** Waits until the gateway's links to every up, unpartitioned peer are back (reconnects take a few ms). */
    const waitLinks = async (via: SimPeer = gw): Promise<void> => {
      const want = c.storagePeers.filter((p) => p.up && (p === via || !p.isolated)).map((p) => p.peer)
      for (let tries = 0; ; tries++) {
        try {
          const { confirmed } = await via.store.tryAnnounce(V, generation)
          if (want.every((p) => confirmed.includes(p))) return
        } catch (err) {
          if (!isTorusError(err, 'TORUS_UNAVAILABLE')) throw err
        }
        if (tries > 300) fail(`${via.name} could not reach every up peer`)
        await new Promise((resolve) => setTimeout(resolve, 3))
      }
    }

    const crash = async (p: SimPeer, step: number, inFlight: number[] = []): Promise<void> => {
      log.push(`${step}: crash ${p.name}${inFlight.length > 0 ? ` with mutations of ${inFlight.join(',')} in flight` : ''}`)
      counts.crashes++
      if (p.storage) {
        const t = torn.get(p.peer) ?? new Set<number>()
        for (const i of inFlight) if (replicasOf(i).includes(p.peer)) t.add(i)
        for (const i of repaired.get(p.peer) ?? []) t.add(i)
        repaired.delete(p.peer)
        torn.set(p.peer, t)
      }
      await c.crash(p)
    }

    const restart = async (p: SimPeer, step: number): Promise<void> => {
      log.push(`${step}: restart ${p.name}`)
      await c.restart(p)
      if (p.storage) p.local!.faultRate = faultRate
    }

    /**
     * `next` takes the volume over with a new lock (a newer generation; fenceVolume). The old gateway, if alive,
     * must then be refused (TORUS_LEASE_EXPIRED) wherever its writes reach a replica that saw the
     * new generation, and nothing it writes may become visible.
     */
    const takeover = async (next: SimPeer, step: number): Promise<void> => {
      const old = gw
      await newTenure(next)
      counts.takeovers++
      // Only real partitions and crashes may miss the announcement, not links still reconnecting.
      await waitLinks(next).catch(() => undefined)
      const { missed } = await fenceVolume(next.store, metadata, V, generation)
      log.push(`${step}: ${next.name} takes over at generation ${generation}${missed.length > 0 ? `, missed by ${missed.map((p) => c.byPeer(p as PeerId).name).join(',')}` : ''}`)
      gw = next
      if (old.up && old !== next) {
        for (let k = 0; k < 3; k++) {
          const i = rng.int(BLOCKS)
          const oldStale = new Set([...old.store.staleReplicas(ref(i)), ...old.store.volumeStaleReplicas(V)])
          const targets = replicasOf(i).filter((p) => !oldStale.has(p))
          const fenced = targets.filter((p) => !missed.includes(p) && c.byPeer(p).up && (p === old.peer || !c.byPeer(p).isolated))
          const data = Uint8Array.from({ length: 1 + rng.int(32) }, () => rng.int(256))
          const offset = rng.int(B - data.length)
          const outcome = await old.store.write(ref(i), offset, data).then(
            () => undefined,
            (err: unknown) => err,
          )
          log.push(`${step}: old gateway ${old.name} writes ${i} @${offset}+${data.length}: ${outcome === undefined ? 'ok' : isTorusError(outcome) ? outcome.code : String(outcome)}`)
          if (fenced.length > 0 && !isTorusError(outcome, 'TORUS_LEASE_EXPIRED')) {
            fail(`old gateway ${old.name}'s write of block ${i} reached fenced replicas ${fenced.map((p) => c.byPeer(p).name).join(',')} but was not refused with TORUS_LEASE_EXPIRED`, outcome)
          }
          if (outcome !== undefined && !isTorusError(outcome, 'TORUS_LEASE_EXPIRED') && !isTorusError(outcome, 'TORUS_UNAVAILABLE')) fail('old gateway write failed oddly', outcome)
          if (isTorusError(outcome, 'TORUS_LEASE_EXPIRED')) counts.fencedWrites++
        }
      }
      await waitLinks()
    }

    /** Picks the next gateway among the live processes (a restarted holder included), never `exclude`. */
    const chooseGateway = (exclude?: SimPeer): SimPeer => {
      const candidates = c.peers.filter((p) => p.up && p !== exclude)
      return candidates[rng.int(candidates.length)]!
    }

    /** A takeover marks every down or partitioned peer stale for the whole volume (until repair); keep enough replicas. */
    const takeoverKeepsReplicas = (): boolean => {
      const out = new Set<string>([...gw.store.volumeStaleReplicas(V), ...down().map((p) => p.peer)])
      return out.size <= replication - 1
    }

    /** Per storage peer, the blocks the gateway holds it stale for (all it owns when stale for the volume). */
    const staleNow = (): Map<PeerId, Set<number>> => {
      const out = new Map<PeerId, Set<number>>()
      const wide = new Set(gw.store.volumeStaleReplicas(V))
      for (let i = 0; i < BLOCKS; i++) {
        for (const p of replicasOf(i)) {
          if (!wide.has(p) && !gw.store.staleReplicas(ref(i)).includes(p)) continue
          out.set(p, (out.get(p) ?? new Set<number>()).add(i))
        }
      }
      return out
    }

    /**
     * Repair (as a lock holder runs it in the background). A replica it made current again got
     * the block whole and flushed it, so a tear a crash left there is gone for good.
     */
    const repair = async (step: number, report: (r: RepairReport) => void = () => {}): Promise<void> => {
      const before = staleNow()
      const r = await gw.store.repairVolume(V, { metadata, concurrency: 1 + rng.int(4), batchBlocks: 1 + rng.int(8) })
      const after = staleNow()
      counts.repairs++
      counts.repaired += r.repaired
      counts.rejoined += r.rejoined
      for (const [p, blocks] of before) for (const i of blocks) if (after.get(p)?.has(i) !== true) torn.get(p)?.delete(i)
      const show = (m: Map<PeerId, Set<number>>): string => [...m].map(([p, b]) => `${c.byPeer(p).name}[${[...b].join(',')}]`).join(' ')
      log.push(`${step}: repair: ${r.repaired} block(s) repaired, ${r.rejoined} peer(s) rejoined, ${r.remaining} mark(s) left (stale before: ${show(before)}; after: ${show(after)}; volume-wide now: ${gw.store.volumeStaleReplicas(V).map((p) => c.byPeer(p).name).join(',')})`)
      report(r)
    }

    const heal = async (step: number): Promise<void> => {
      for (const p of c.peers) {
        if (p.isolated) {
          c.restore(p)
          log.push(`${step}: restore ${p.name}`)
        }
        if (!p.up) await restart(p, step)
      }
    }

    const plan = (i: number): Op => {
      const roll = rng.next()
      if (roll < 0.4) {
        const data = Uint8Array.from({ length: 1 + rng.int(rng.next() < 0.7 ? 64 : B) }, () => rng.int(256))
        return { kind: 'write', i, offset: rng.int(B - data.length + 1), data }
      }
      if (roll < 0.5) return { kind: 'put', i, offset: 0, data: Uint8Array.from({ length: B }, () => rng.int(256)) }
      if (roll < 0.58) return { kind: 'delete', i, offset: 0, data: new Uint8Array(B) }
      if (roll < 0.65) return { kind: 'get', i, offset: 0, data: new Uint8Array(B) }
      const offset = rng.int(B)
      return { kind: 'read', i, offset, data: new Uint8Array(1 + rng.int(B - offset)) }
    }
    const run = (via: SimPeer, op: Op): Promise<unknown> => {
      switch (op.kind) {
        case 'write': return via.store.write(ref(op.i), op.offset, op.data)
        case 'put': return via.store.put(ref(op.i), op.data)
        case 'delete': return via.store.delete(ref(op.i))
        case 'read': return via.store.read(ref(op.i), op.offset, op.data)
        case 'get': return via.store.get(ref(op.i))
      }
    }
    const checkRead = (op: Op, value: unknown, what: string): void => {
      const seen = op.kind === 'get' ? ((value as Uint8Array | undefined) ?? new Uint8Array(B)) : op.data
      const bad = model.mismatch(op.i, op.offset, seen)
      if (bad >= 0) {
        const allowed = [...model.allowed(op.i, bad)].join(',')
        fail(`${what} of block ${op.i} returned ${seen[bad - op.offset]} at byte ${bad}; the model allows only ${allowed}`)
      }
    }

    await newTenure(gw)
    await fenceVolume(gw.store, metadata, V, generation)
    log.push(`0: ${gw.name} holds the volume at generation ${generation}`)

    for (let step = 0; step < STEPS; ) {
      counts.steps = step
      const roll = rng.next()
      if (roll < 0.05) {
        // Partition or heal a storage peer.
        step++
        const isolated = c.storagePeers.filter((p) => p.isolated)
        if (isolated.length > 0 && (rng.next() < 0.7 || !canFault())) {
          const p = isolated[rng.int(isolated.length)]!
          c.restore(p)
          log.push(`${step}: restore ${p.name}`)
          if (p.up) await waitLinks()
        } else if (canFault()) {
          const candidates = c.storagePeers.filter((p) => p.up && !p.isolated)
          const p = candidates[rng.int(candidates.length)]!
          c.isolate(p)
          counts.isolations++
          log.push(`${step}: isolate ${p.name}`)
        }
        continue
      }
      if (roll < 0.1) {
        // Crash or restart a peer other than the gateway.
        step++
        const crashed = c.peers.filter((p) => !p.up)
        if (crashed.length > 0 && (rng.next() < 0.7 || !canFault())) {
          const p = crashed[rng.int(crashed.length)]!
          await restart(p, step)
          await waitLinks()
        } else if (canFault()) {
          const candidates = c.storagePeers.filter((p) => p.up && !p.isolated && p !== gw)
          if (candidates.length === 0) continue
          const p = candidates[rng.int(candidates.length)]!
          await crash(p, step)
          model.crashed(blocksOn(p))
          // Often the process is back at once (a supervisor restarts it), before anyone noticed.
          if (rng.next() < 0.5) {
            await restart(p, step)
            await waitLinks()
          }
        }
        continue
      }
      if (roll < 0.12 || (roll < 0.15 && takeoverKeepsReplicas())) {
        // The gateway dies (and the volume moves), or the volume moves while the gateway lives on.
        step++
        if (!takeoverKeepsReplicas()) await heal(step).then(() => waitLinks())
        if (roll < 0.12 && (!gw.storage || canFault())) {
          const dead = gw
          counts.gatewayCrashes++
          await crash(dead, step)
          if (dead.storage) model.crashed(blocksOn(dead))
          // The same process after a restart, or another one.
          if (rng.next() < 0.5) await restart(dead, step)
          if (!takeoverKeepsReplicas()) await heal(step)
          await takeover(chooseGateway(), step)
        } else {
          await takeover(chooseGateway(gw), step)
        }
        continue
      }
      if (roll < 0.28 && roll >= 0.24) {
        step++
        // Nothing else runs, the holder is the gateway: repair must not fail.
        await repair(step).catch((err: unknown) => fail('repair failed', err))
        continue
      }
      if (roll < 0.24) {
        step++
        log.push(`${step}: flush`)
        counts.flushes++
        try {
          await gw.store.flush()
          model.flushed(generation)
          repaired.clear()
        } catch (err) {
          if (!isTorusError(err, 'TORUS_UNAVAILABLE')) fail('flush failed with something other than TORUS_UNAVAILABLE', err)
          if (writesLost(err as TorusError)) continue
          // A flush that had to record a restarted replica stale, and could not reach the metadata.
          if (METADATA_FAULTS && (err as Error).cause instanceof Error && ((err as Error).cause as Error).message === 'injected metadata failure') continue
          if (down().length === 0) fail('flush failed with every peer up and reachable', err)
        }
        continue
      }

      // A batch of concurrent operations on distinct blocks, now and then with a fault striking
      // while they are in flight: a partition, a peer crash, or the gateway's crash.
      const blocks = new Set<number>()
      const size = 1 + rng.int(4)
      while (blocks.size < size) blocks.add(rng.int(BLOCKS))
      const ops = [...blocks].map(plan)
      const servableBefore = ops.map((op) => servable(op.i))
      for (const p of c.storagePeers) p.local?.faulted.clear()
      hookFailed.clear()
      let fault: { kind: 'isolate' | 'crash' | 'crash-gateway'; peer: SimPeer } | undefined
      if (rng.next() < 0.1 && canFault()) {
        const kind = (['isolate', 'crash', 'crash-gateway'] as const)[rng.int(3)]!
        const others = c.storagePeers.filter((p) => p.up && !p.isolated && p !== gw)
        if (kind === 'crash-gateway' && takeoverKeepsReplicas()) fault = { kind, peer: gw }
        else if (kind !== 'crash-gateway' && others.length > 0) fault = { kind, peer: others[rng.int(others.length)]! }
      }
      log.push(`${step}: ${gw.name}: ${ops.map((op) => `${op.kind} ${op.i} @${op.offset}+${op.data.length}`).join(', ')}${fault === undefined ? '' : ` | ${fault.kind} ${fault.peer.name}`}`)
      step += ops.length
      const via = gw
      // Now and then repair runs while the batch's mutations are in flight.
      const repairing = fault === undefined && rng.next() < 0.15 ? repair(step).then(() => undefined, (err: unknown) => err) : undefined
      const outcomes: Outcome[] = ops.map(() => ({ settled: false }))
      const settled = Promise.all(
        ops.map((op, k) =>
          run(via, op).then(
            (value) => void (outcomes[k] = { settled: true, ok: true, value }),
            (error: unknown) => void (outcomes[k] = { settled: true, ok: false, error }),
          ),
        ),
      )
      // What had not answered when the gateway died never will, as far as its client knows.
      let final: Outcome[] | undefined
      if (fault !== undefined) {
        counts.inFlightFaults++
        await new Promise<void>((resolve) => setImmediate(resolve))
        const inFlight = ops.filter((op, k) => !outcomes[k]!.settled && op.kind !== 'read' && op.kind !== 'get').map((op) => op.i)
        if (fault.kind === 'isolate') {
          c.isolate(fault.peer)
          counts.isolations++
        } else if (fault.kind === 'crash') {
          await crash(fault.peer, step, inFlight)
        } else {
          counts.gatewayCrashes++
          final = outcomes.map((o) => (o.settled ? o : { settled: true, ok: false, error: LOST }))
          await crash(fault.peer, step, inFlight)
        }
      }
      const gatewayLost = final !== undefined
      final ??= (await settled, outcomes)
      const repairError = await repairing
      if (repairError !== undefined) fail('repair alongside a batch failed', repairError)
      for (const [k, op] of ops.entries()) {
        const o = final[k]!
        if (!o.settled) throw new Error('unsettled outcome')
        const mutation = op.kind !== 'read' && op.kind !== 'get'
        if (o.ok) {
          if (mutation) {
            counts.acked++
            model.acked(op.i, op.offset, op.data, generation)
            if (op.kind !== 'write') {
              for (const [peer, t] of torn) {
                if (!t.delete(op.i)) continue
                const r = repaired.get(peer) ?? new Set<number>()
                r.add(op.i)
                repaired.set(peer, r)
              }
            }
          } else {
            counts.reads++
            checkRead(op, o.value, op.kind)
          }
          continue
        }
        if (o.error !== LOST) {
          if (!isTorusError(o.error, 'TORUS_UNAVAILABLE')) fail(`${op.kind} of block ${op.i} failed with something other than TORUS_UNAVAILABLE`, o.error)
          const faulted = hookFailed.has(op.i) || c.storagePeers.some((p) => p.local?.faulted.has(ref(op.i).toString()) === true)
          if (servableBefore[k] === true && fault === undefined && !faulted && !lostByRestart(o.error, op.i)) {
            fail(`${op.kind} of block ${op.i} failed although current replica(s) ${current(op.i).map((p) => c.byPeer(p).name).join(',')} were reachable`, o.error)
          }
        }
        if (mutation) {
          counts.failedMutations++
          model.failed(op.i, op.offset, op.data, generation)
        } else counts.failedReads++
      }
      if (fault?.kind === 'crash' || fault?.kind === 'crash-gateway') {
        if (fault.peer.storage) model.crashed(blocksOn(fault.peer))
      }
      if (fault?.kind === 'crash' && rng.next() < 0.5) {
        await restart(fault.peer, step)
        await waitLinks()
      }
      if (gatewayLost) {
        if (rng.next() < 0.5) await restart(fault!.peer, step)
        if (!takeoverKeepsReplicas()) await heal(step)
        await takeover(chooseGateway(), step)
      }
    }

    // Heal everything; then every block must be readable where a current replica exists, and agree with the model.
    log.push(`${STEPS}: heal, flush, read every block`)
    await heal(STEPS)
    await waitLinks()
    for (let attempt = 0; ; attempt++) {
      try {
        await gw.store.flush()
        break
      } catch (err) {
        // Lost writes are reported once; the next flush covers what is left.
        if (attempt < 20 && isTorusError(err) && writesLost(err)) continue
        if (attempt < 20 && METADATA_FAULTS && err instanceof Error && err.cause instanceof Error && err.cause.message === 'injected metadata failure') continue
        fail('final flush failed with every peer up', err)
      }
    }
    model.flushed(generation)
    repaired.clear()
    for (const p of c.storagePeers) p.local?.faulted.clear()
    for (let i = 0; i < BLOCKS; i++) {
      const op: Op = { kind: 'get', i, offset: 0, data: new Uint8Array(B) }
      const outcome = await gw.store.get(ref(i)).then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      )
      if (outcome.ok) checkRead(op, outcome.value, 'final read')
      else if (servable(i) && !c.storagePeers.some((p) => p.local?.faulted.has(ref(i).toString()) === true) && !lostByRestart(outcome.error, i)) {
        fail(`final read of block ${i} failed although current replica(s) ${current(i).map((p) => c.byPeer(p).name).join(',')} are up`, outcome.error)
      }
    }
    // Repair with everything up (and no injected store faults) brings back every replica it can:
    // what is left is a mark whose record an injected metadata fault lost (it waits for the
    // block's next write), or a block no current replica holds intact (nothing to copy from).
    for (const p of c.storagePeers) p.local!.faultRate = 0
    const repairable = (): string[] => {
      const owed = new Set(gw.store.owedStale(V).map(({ peer, index }) => `${peer}:${index}`))
      const out: string[] = gw.store.volumeStaleReplicas(V).map((p) => `${c.byPeer(p).name} (volume)`)
      for (const [p, blocks] of staleNow()) {
        if (gw.store.volumeStaleReplicas(V).includes(p)) continue
        // Something to copy from: a current replica whose copy no crash tore.
        for (const i of blocks) {
          if (owed.has(`${p}:${i}`) || !current(i).some((q) => torn.get(q)?.has(i) !== true)) continue
          out.push(`${c.byPeer(p).name} [${i}] (current: ${current(i).map((q) => `${c.byPeer(q).name}${torn.get(q)?.has(i) === true ? ' torn' : ''}`).join(',')})`)
        }
      }
      return out
    }
    for (let attempt = 0; ; attempt++) {
      await repair(STEPS).catch((err: unknown) => fail('final repair failed', err))
      const left = repairable()
      if (left.length === 0) break
      if (attempt > 20) fail(`repair left stale marks it could repair, with every peer up: ${left.join('; ')}`)
      await waitLinks()
    }
    // Every replica the gateway now treats as current holds what the model allows: repair
    // never makes a replica current with bytes it lacks.
    for (let i = 0; i < BLOCKS; i++) {
      for (const p of current(i)) {
        const peer = c.byPeer(p)
        const data = new Uint8Array(B)
        const read = await peer.store.replica.read(ref(i), 0, data).then(
          () => undefined,
          (error: unknown) => error,
        )
        if (read !== undefined) {
          if (isTorusError(read, 'TORUS_CORRUPT') && torn.get(p)?.has(i) === true) continue
          fail(`replica ${peer.name} of block ${i} could not be read`, read)
        }
        checkRead({ kind: 'read', i, offset: 0, data }, undefined, `${peer.name}'s copy`)
      }
    }
    counts.steps = STEPS
    return counts
  } catch (err) {
    if (process.env.TORUS_SIM_VERBOSE) console.log(log.join('\n'))
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n  ${(log.length > 21 ? [log[0]!, '…', ...log.slice(-20)] : log).join('\n  ')}\nreplay with TORUS_SEED=${seed}`, { cause: err })
  } finally {
    await cluster?.close()
    await metadata.close()
    await rm(dir, { recursive: true, force: true })
  }
}

describe('a replicated cluster under crashes, restarts, partitions and takeovers', () => {
  for (const seed of simulationSeeds(4)) {
    it(`reads only what the model allows and fails only without a reachable current replica (seed ${seed})`, async () => {
      const counts = await runOnce(seed)
      if (process.env.TORUS_SIM_VERBOSE) console.log(seed, counts)
      expect(counts.acked).toBeGreaterThan(0)
      expect(counts.reads).toBeGreaterThan(0)
    })
  }
})
