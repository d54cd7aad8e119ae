import { isTorusError, SeededRandom, type BlockDevice } from '@torus/core'

export type SimulationOp = 'write' | 'read' | 'trim' | 'writeZeroes' | 'flush' | 'reopen'

export interface SimulationOptions {
  /** The device under test; must be writable and the same size as `model`. */
  device: BlockDevice
  /** The oracle, usually a fresh `ModelBlockDevice`. */
  model: BlockDevice
  /** `TORUS_SEED` from the environment wins, so a printed seed replays; otherwise random. */
  seed?: number
  steps: number
  /** Largest single request. */
  maxIoBytes: number
  /** Largest batch of concurrent requests over disjoint ranges (1 = strictly sequential). Default 4. */
  concurrency?: number
  /**
   * Ranges snap to multiples of this (the device's block size) a third of the time, so whole-block
   * trims and zeroes happen. Default 4096.
   */
  alignBytes?: number
  /** Relative frequency of each operation. `reopen` only runs when `reopen` is given. */
  weights?: Partial<Record<SimulationOp, number>>
  /** Closes `device` and returns a new one over the same state (flushed data must survive). */
  reopen?: (device: BlockDevice) => Promise<BlockDevice>
}

export interface SimulationResult {
  seed: number
  steps: number
  /** Requests issued, by operation. */
  counts: Record<SimulationOp, number>
  /** The device at the end (a new instance when the run reopened it). */
  device: BlockDevice
}

const DEFAULT_WEIGHTS: Record<SimulationOp, number> = { write: 10, read: 8, trim: 2, writeZeroes: 3, flush: 2, reopen: 1 }
const PAGE_BYTES = 4096

/** The seed a run uses when none is given: `TORUS_SEED` when set, else a fresh random one. */
export function simulationSeed(): number {
  const env = process.env.TORUS_SEED
  if (env !== undefined && env !== '') {
    const n = Number(env)
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid TORUS_SEED: ${env}`)
    return n >>> 0
  }
  return Math.floor(Math.random() * 2 ** 32)
}

/**
 * The seeds a `*.sim.test.ts` file should run: just `TORUS_SEED` when it is set (replay);
 * otherwise `TORUS_SIM_SEEDS` (or `defaultCount`) fresh random seeds.
 */
export function simulationSeeds(defaultCount = 3): number[] {
  if (process.env.TORUS_SEED !== undefined && process.env.TORUS_SEED !== '') return [simulationSeed()]
  const raw = process.env.TORUS_SIM_SEEDS
  const count = raw === undefined || raw === '' ? defaultCount : Number(raw)
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`invalid TORUS_SIM_SEEDS: ${raw}`)
  return Array.from({ length: count }, () => simulationSeed())
}

interface Planned {
  op: 'write' | 'read' | 'trim' | 'writeZeroes'
  offsetBytes: number
  lengthBytes: number
  fua: boolean
  noHole: boolean
  fast: boolean
}

/**
 * Runs a seeded random sequence of write, read, trim, writeZeroes, flush (and reopen) against
 * `device` and `model`, comparing every read, then the whole device at the end. Batches of
 * requests over disjoint ranges run concurrently.
 *
 * Trim leaves a range's contents undefined, so the run marks trimmed bytes *unknown*: a read may
 * return the old byte or zero there, until the byte is written or zeroed again.
 *
 * Throws an Error naming the step, the recent operations and `TORUS_SEED=<seed>` on the first
 * mismatch or unexpected failure.
 */
export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  const envSeed = process.env.TORUS_SEED
  const seed = envSeed !== undefined && envSeed !== '' ? simulationSeed() : (options.seed ?? simulationSeed())
  const rng = new SeededRandom(seed)
  const { model, steps } = options
  let device = options.device
  const size = device.sizeBytes
  if (model.sizeBytes !== size) throw new RangeError(`model is ${model.sizeBytes} bytes, device ${size}`)
  if (device.supports.readOnly) throw new RangeError('runSimulation needs a writable device')
  const maxIo = Math.max(1, Math.min(options.maxIoBytes, size))
  const align = Math.max(1, options.alignBytes ?? 4096)
  const concurrency = Math.max(1, options.concurrency ?? 4)
  const weights = { ...DEFAULT_WEIGHTS, ...options.weights }
  if (options.reopen === undefined) weights.reopen = 0
  if (!device.supports.trim) weights.trim = 0
  if (!device.supports.writeZeroes) weights.writeZeroes = 0
  if (!device.supports.flush) weights.flush = 0
  const counts: Record<SimulationOp, number> = { write: 0, read: 0, trim: 0, writeZeroes: 0, flush: 0, reopen: 0 }
  const unknown = new Map<number, Uint8Array>()
  const history: string[] = []

  const fail = (step: number, what: string, cause?: unknown): never => {
    const recent = history.slice(-12).join('\n  ')
    throw new Error(`simulation failed at step ${step}: ${what}\n  recent operations:\n  ${recent}\nreplay with TORUS_SEED=${seed}`, {
      ...(cause === undefined ? {} : { cause }),
    })
  }

  const pick = (): SimulationOp => {
    const total = Object.values(weights).reduce((a, b) => a + b, 0)
    let r = rng.next() * total
    for (const [op, w] of Object.entries(weights) as [SimulationOp, number][]) {
      if (r < w) return op
      r -= w
    }
    return 'read'
  }

  const range = (): [number, number] => {
    let len: number
    const shape = rng.int(4)
    if (shape === 0) len = 1 + rng.int(Math.min(64, maxIo))
    else if (shape === 1 && align <= maxIo) len = align * (1 + rng.int(Math.floor(maxIo / align)))
    else len = 1 + rng.int(maxIo)
    let off = rng.int(size - len + 1)
    if (rng.int(3) === 0) off = Math.min(off - (off % align), size - len)
    return [off, len]
  }

  const setUnknown = (off: number, len: number, value: 0 | 1): void => {
    for (let pos = off; pos < off + len; ) {
      const page = Math.floor(pos / PAGE_BYTES)
      const start = pos - page * PAGE_BYTES
      const n = Math.min(PAGE_BYTES - start, off + len - pos)
      let flags = unknown.get(page)
      if (flags === undefined && value === 1) unknown.set(page, (flags = new Uint8Array(PAGE_BYTES)))
      flags?.fill(value, start, start + n)
      pos += n
    }
  }
  const isUnknown = (pos: number): boolean => unknown.get(Math.floor(pos / PAGE_BYTES))?.[pos % PAGE_BYTES] === 1

  const compare = (step: number, off: number, actual: Uint8Array, expected: Uint8Array): void => {
    for (let i = 0; i < actual.byteLength; i++) {
      const a = actual[i]!
      const e = expected[i]!
      if (a !== e && !(a === 0 && isUnknown(off + i))) {
        fail(step, `read at ${off} (+${actual.byteLength}): byte ${off + i} is ${a}, expected ${e}${isUnknown(off + i) ? ' or 0 (trimmed)' : ''}`)
      }
    }
  }

  const plan = (op: Planned['op']): Planned => {
    const [offsetBytes, lengthBytes] = range()
    return {
      op,
      offsetBytes,
      lengthBytes,
      fua: device.supports.fua && rng.int(8) === 0,
      noHole: rng.int(3) === 0,
      fast: device.supports.fastZero && rng.int(3) === 0,
    }
  }

  const describe = (p: Planned): string => {
    const flags = [p.fua ? 'fua' : '', p.op === 'writeZeroes' && p.noHole ? 'noHole' : '', p.op === 'writeZeroes' && p.fast ? 'fast' : '']
      .filter(Boolean)
      .join(',')
    return `${p.op}(${p.offsetBytes}, ${p.lengthBytes}${flags === '' ? '' : `, ${flags}`})`
  }

  /** Issues one request to the device; returns what the model must apply afterwards. */
  const issue = async (step: number, p: Planned): Promise<() => Promise<void>> => {
    counts[p.op]++
    try {
      switch (p.op) {
        case 'write': {
          const data = new Uint8Array(p.lengthBytes)
          // Never all zero, so a lost write cannot pass for a never-written range.
          for (let i = 0; i < data.length; i++) data[i] = 1 + rng.int(255)
          await device.write(p.offsetBytes, data, p.fua ? { fua: true } : {})
          return async () => {
            await model.write(p.offsetBytes, data)
            setUnknown(p.offsetBytes, p.lengthBytes, 0)
          }
        }
        case 'read': {
          const actual = new Uint8Array(p.lengthBytes)
          await device.read(p.offsetBytes, actual)
          return async () => {
            const expected = new Uint8Array(p.lengthBytes)
            await model.read(p.offsetBytes, expected)
            compare(step, p.offsetBytes, actual, expected)
          }
        }
        case 'trim':
          await device.trim(p.offsetBytes, p.lengthBytes, p.fua ? { fua: true } : {})
          // The model keeps the old bytes; reads there may now see them or zeros.
          return async () => setUnknown(p.offsetBytes, p.lengthBytes, 1)
        case 'writeZeroes':
          try {
            await device.writeZeroes(p.offsetBytes, p.lengthBytes, { fua: p.fua, noHole: p.noHole, fast: p.fast })
          } catch (err) {
            // A refused fast zero must leave the range as it was; later reads check that.
            if (p.fast && isTorusError(err, 'TORUS_NOT_SUPPORTED')) return async () => {}
            throw err
          }
          return async () => {
            await model.writeZeroes(p.offsetBytes, p.lengthBytes)
            setUnknown(p.offsetBytes, p.lengthBytes, 0)
          }
      }
    } catch (err) {
      return fail(step, `${describe(p)} failed: ${err instanceof Error ? err.message : String(err)}`, err)
    }
  }

  for (let step = 0; step < steps; step++) {
    const op = pick()
    if (op === 'flush' || op === 'reopen') {
      counts[op]++
      history.push(`#${step} ${op}`)
      try {
        await device.flush()
        if (op === 'reopen') device = await options.reopen!(device)
      } catch (err) {
        fail(step, `${op} failed: ${err instanceof Error ? err.message : String(err)}`, err)
      }
      continue
    }
    // Sometimes a batch: requests over disjoint ranges, issued together.
    const want = concurrency > 1 && rng.int(4) === 0 ? 2 + rng.int(concurrency - 1) : 1
    const batch: Planned[] = [plan(op)]
    for (let tries = 0; batch.length < want && tries < want * 4; tries++) {
      const ops: Planned['op'][] = ['write', 'read', 'trim', 'writeZeroes']
      const candidate = plan(ops.filter((o) => weights[o] > 0)[rng.int(ops.filter((o) => weights[o] > 0).length)]!)
      const overlaps = batch.some((b) => candidate.offsetBytes < b.offsetBytes + b.lengthBytes && b.offsetBytes < candidate.offsetBytes + candidate.lengthBytes)
      if (!overlaps) batch.push(candidate)
    }
    history.push(`#${step} ${batch.map(describe).join(' | ')}`)
    const applies = await Promise.all(batch.map((p) => issue(step, p)))
    for (const apply of applies) await apply()
  }

  // Final sweep: the whole device against the model.
  await device.flush().catch((err: unknown) => fail(steps, 'final flush failed', err))
  for (let off = 0; off < size; off += maxIo) {
    const len = Math.min(maxIo, size - off)
    const actual = new Uint8Array(len)
    const expected = new Uint8Array(len)
    await device.read(off, actual).catch((err: unknown) => fail(steps, `final read at ${off} failed`, err))
    await model.read(off, expected)
    compare(steps, off, actual, expected)
  }
  return { seed, steps, counts, device }
}
