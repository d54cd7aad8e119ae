/** Source of randomness, injected so simulations replay from a seed. */
export interface Random {
  /** A float in [0, 1). */
  next(): number
  /** An integer in [0, max). */
  int(max: number): number
}

export const systemRandom: Random = {
  next: () => Math.random(),
  int: (max) => Math.floor(Math.random() * max),
}

/** Deterministic PRNG (mulberry32). Same seed, same sequence. */
export class SeededRandom implements Random {
  #state: number
  readonly seed: number

  constructor(seed: number) {
    this.seed = seed >>> 0
    this.#state = this.seed
  }

  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  int(max: number): number {
    return Math.floor(this.next() * max)
  }
}
