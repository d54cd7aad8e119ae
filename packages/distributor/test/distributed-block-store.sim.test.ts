// Goal: with one of three peers cut off for stretches, the gateway never returns bytes other
// than the latest acknowledged write of a range; when it cannot, it fails cleanly with
// TORUS_UNAVAILABLE, and only when no current (non-stale) replica of the block is reachable.
// Method: seeded random writes, puts, deletes, reads and flushes through node 0 of a 3-peer
// loopback cluster (replication 2), isolating node 1 or 2 now and then, checked against a
// per-byte model. A failed write leaves its range "old or new" in the model (a write that
// errors may have landed on some replica). Prints TORUS_SEED=<n> on failure; setting it replays.
import { describe, expect, it } from 'vitest'
import { BlockRef, SeededRandom, isTorusError, type PeerId } from '@torus/core'
import { blockKey } from '@torus/ring'
import { simulationSeeds } from '@torus/testing'
import type { DegradedHook } from '../src/index.js'
import { startCluster, type Cluster, type ClusterNode } from './helpers/cluster.js'

const B = 8192
const BLOCKS = 24
const STEPS = 300

/** Per block: the bytes of the latest acknowledged writes, and the bytes a failed write left uncertain. */
class Model {
  readonly blocks = Array.from({ length: BLOCKS }, () => ({ bytes: new Uint8Array(B), maybe: new Map<number, Set<number>>() }))

  applied(index: number, offset: number, data: Uint8Array): void {
    const b = this.blocks[index]!
    b.bytes.set(data, offset)
    for (let i = 0; i < data.length; i++) b.maybe.delete(offset + i)
  }

  failed(index: number, offset: number, data: Uint8Array): void {
    const b = this.blocks[index]!
    for (let i = 0; i < data.length; i++) {
      const at = offset + i
      const set = b.maybe.get(at) ?? new Set([b.bytes[at]!])
      set.add(data[i]!)
      b.maybe.set(at, set)
      b.bytes[at] = data[i]!
    }
  }

  /** The first offset where `seen` is impossible, or -1. */
  mismatch(index: number, offset: number, seen: Uint8Array): number {
    const b = this.blocks[index]!
    for (let i = 0; i < seen.length; i++) {
      const at = offset + i
      const maybe = b.maybe.get(at)
      if (maybe === undefined ? seen[i] !== b.bytes[at] : !maybe.has(seen[i]!)) return at
    }
    return -1
  }
}

async function runOnce(seed: number): Promise<{ writes: number; reads: number; failures: number; isolations: number }> {
  const rng = new SeededRandom(seed)
  const degraded: { ref: string; stale: PeerId[] }[] = []
  const hook: DegradedHook = async (ref, stale) => void degraded.push({ ref: ref.toString(), stale: [...stale] })
  const cluster: Cluster = await startCluster({ blockSizeBytes: B, onDegraded: hook, requestTimeoutMs: 1_000 })
  const gateway = cluster.nodes[0]!.store
  const model = new Model()
  const counts = { writes: 0, reads: 0, failures: 0, isolations: 0 }
  let isolated: ClusterNode | undefined
  const log: string[] = []
  const ref = (i: number) => new BlockRef(1, i)

  /** True when some replica of block `i` is current (not stale) and not cut off. */
  const servable = (i: number): boolean => {
    const stale = new Set(gateway.staleReplicas(ref(i)))
    return gateway.ring.peersFor(blockKey(1, i)).some((p) => !stale.has(p) && p !== isolated?.peer)
  }
  const expectClean = (err: unknown, i: number, what: string): void => {
    if (!isTorusError(err, 'TORUS_UNAVAILABLE')) throw new Error(`${what} failed with something other than TORUS_UNAVAILABLE`, { cause: err })
    if (i >= 0 && servable(i)) throw new Error(`${what} of block ${i} failed although a current replica is reachable`, { cause: err })
    counts.failures++
  }
  const reconnect = async (): Promise<void> => {
    // Every member answers announce only once the gateway's links are all back.
    for (let tries = 0; ; tries++) {
      try {
        await gateway.announce(ref(0).volumeId, 0)
        return
      } catch (err) {
        if (tries > 200) throw err
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
  }

  try {
    for (let step = 0; step < STEPS; step++) {
      const roll = rng.next()
      const i = rng.int(BLOCKS)
      if (roll < 0.06) {
        if (isolated === undefined) {
          isolated = cluster.nodes[1 + rng.int(2)]!
          cluster.isolate(isolated)
          counts.isolations++
          log.push(`${step}: isolate ${isolated.address}`)
        } else {
          cluster.restore(isolated)
          log.push(`${step}: restore ${isolated.address}`)
          isolated = undefined
          await reconnect()
        }
      } else if (roll < 0.5) {
        const whole = rng.next() < 0.15
        const offset = whole ? 0 : rng.int(B)
        const length = whole ? B : 1 + rng.int(Math.min(B - offset, rng.next() < 0.7 ? 64 : B))
        const data = Uint8Array.from({ length }, () => rng.int(256))
        log.push(`${step}: ${whole ? 'put' : 'write'} ${i} @${offset}+${length}`)
        const before = servable(i)
        try {
          await (whole ? gateway.put(ref(i), data) : gateway.write(ref(i), offset, data))
          model.applied(i, offset, data)
          counts.writes++
        } catch (err) {
          // A put may reach a stale replica too, so judge it by what was servable before.
          if (!isTorusError(err, 'TORUS_UNAVAILABLE') || before) expectClean(err, before ? i : -1, 'write')
          else counts.failures++
          model.failed(i, offset, data)
        }
      } else if (roll < 0.55) {
        log.push(`${step}: delete ${i}`)
        try {
          await gateway.delete(ref(i))
          model.applied(i, 0, new Uint8Array(B))
        } catch (err) {
          expectClean(err, i, 'delete')
          model.failed(i, 0, new Uint8Array(B))
        }
      } else if (roll < 0.93) {
        const offset = rng.int(B)
        const length = 1 + rng.int(B - offset)
        log.push(`${step}: read ${i} @${offset}+${length}`)
        const target = new Uint8Array(length)
        try {
          await gateway.read(ref(i), offset, target)
          counts.reads++
          const bad = model.mismatch(i, offset, target)
          if (bad >= 0) throw new Error(`read of block ${i} returned a wrong byte at ${bad}`)
        } catch (err) {
          if (err instanceof Error && err.message.includes('wrong byte')) throw err
          expectClean(err, i, 'read')
        }
      } else {
        log.push(`${step}: flush`)
        try {
          await gateway.flush()
        } catch (err) {
          if (isolated === undefined) throw new Error('flush failed with every peer reachable', { cause: err })
          expectClean(err, -1, 'flush')
        }
      }
    }
    // Heal, then every block must read back as the model says.
    if (isolated !== undefined) {
      cluster.restore(isolated)
      isolated = undefined
      await reconnect()
    }
    await gateway.flush()
    for (let i = 0; i < BLOCKS; i++) {
      const block = (await gateway.get(ref(i))) ?? new Uint8Array(B)
      const bad = model.mismatch(i, 0, block)
      if (bad >= 0) throw new Error(`final read of block ${i} differs at ${bad}`)
    }
    // Every stale replica the gateway avoids was reported to the hook or came from a failed write.
    expect(degraded.every((d) => d.stale.length > 0)).toBe(true)
    return counts
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n  recent:\n  ${log.slice(-12).join('\n  ')}\nreplay with TORUS_SEED=${seed}`, { cause: err })
  } finally {
    await cluster.close()
  }
}

describe('DistributedBlockStore simulation with a peer isolated at times', () => {
  for (const seed of simulationSeeds(3)) {
    it(`never returns bytes other than the latest acknowledged write (seed ${seed})`, async () => {
      const counts = await runOnce(seed)
      if (process.env.TORUS_SIM_VERBOSE) console.log(seed, counts)
      expect(counts.writes).toBeGreaterThan(0)
      expect(counts.reads).toBeGreaterThan(0)
    })
  }
})
