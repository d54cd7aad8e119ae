/**
 * How a suite gets fresh instances. `create()` is called per test and must return an isolated,
 * opened instance; `destroy()` closes it and removes its on-disk or remote state.
 */
export interface Harness<T> {
  /** Shown in test titles. */
  name: string
  create(): Promise<T>
  destroy(instance: T): Promise<void>
  /** Present when instances run on a ManualClock: moves their time forward. */
  advanceTime?(ms: number): Promise<void>
  /**
   * Present for persistent implementations: closes `instance` and opens a new instance over the
   * same state (as after a process restart).
   */
  reopen?(instance: T): Promise<T>
}

/** Runs `fn` with a fresh instance and always destroys it. */
export async function withInstance<T, R>(harness: Harness<T>, fn: (instance: T) => Promise<R>): Promise<R> {
  const instance = await harness.create()
  try {
    return await fn(instance)
  } finally {
    await harness.destroy(instance)
  }
}

/**
 * Re-runs `check` (which throws while its condition does not hold yet) every `stepMs` until it
 * passes or `ms` have gone by, then rethrows its last error. For asynchronous deliveries
 * (watches, heartbeats) whose timing a test must not guess.
 */
export async function eventually(check: () => void | Promise<void>, ms = 10_000, stepMs = 25): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      await check()
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, stepMs))
    }
  }
}
