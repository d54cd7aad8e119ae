/** Lifecycle states shared by stores: only `open` accepts operations. */
export type LifecycleStatus = 'opening' | 'open' | 'closing' | 'closed'

/** Options every asynchronous call accepts. */
export interface AbortOptions {
  /** Aborting rejects the call with TORUS_ABORTED (work already on disk stays there). */
  signal?: AbortSignal
}
