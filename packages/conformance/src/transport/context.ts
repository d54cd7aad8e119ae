// Shared plumbing for the Transport suite: a network per test (the harness instance), transports
// with test identities, connected pairs, a capturing logger, and small async helpers.
import type { Logger, PeerConnection, RequestHandler, Transport, TransportOptions } from '@torus/core'
import { withInstance, type Harness } from '../harness.js'

/**
 * What the transport suite gets from a harness: an isolated network in which it can create
 * transports that reach each other. `Harness<TransportNetwork>.create()` makes a network per
 * test; `destroy()` closes it.
 */
export interface TransportNetwork {
  /**
   * A new, open transport on this network (not yet listening). `options` carries the identity
   * (`clusterId`, `peerId`, `secret`) and any limits the test sets; the network adds what its
   * implementation needs (a hub, keep-alive settings).
   */
  transport(options: TransportOptions): Transport
  /** An address `listen()` accepts that nothing uses yet (`ws://127.0.0.1:0`, `loopback://n7`). */
  listenAddress(): string
  /** An address of the same scheme where nothing listens: `connect()` there must fail with TORUS_UNAVAILABLE. */
  deadAddress(): string
  /** Closes every transport this network made. */
  close(): Promise<void>
}

export const CLUSTER = 'conformance-cluster'
export const SECRET = 'conformance secret: 0123456789abcdef'
export const SERVER_ID = '5e5e5e5e-0000-4000-8000-000000000001'
export const CLIENT_ID = 'c1c1c1c1-0000-4000-8000-000000000002'

export interface SuiteContext {
  readonly harness: Harness<TransportNetwork>
  /** A test body that runs `fn` on a fresh network and always closes it. */
  run(fn: (net: TransportNetwork) => Promise<void>): () => Promise<void>
}

export function createContext(harness: Harness<TransportNetwork>): SuiteContext {
  return { harness, run: (fn) => () => withInstance(harness, fn) }
}

export interface PairOptions {
  server?: Partial<TransportOptions>
  client?: Partial<TransportOptions>
  handlers?: Record<string, RequestHandler>
}

export interface Pair {
  server: Transport
  client: Transport
  connection: PeerConnection
  address: string
}

/** A listening server with `handlers`, a client transport, and an open connection between them. */
export async function pair(net: TransportNetwork, options: PairOptions = {}): Promise<Pair> {
  const server = net.transport({ clusterId: CLUSTER, peerId: SERVER_ID, secret: SECRET, ...options.server })
  for (const [method, handler] of Object.entries(options.handlers ?? {})) server.handle(method, handler)
  const address = await server.listen(net.listenAddress())
  const client = net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: SECRET, ...options.client })
  const connection = await client.connect(address)
  return { server, client, connection, address }
}

export interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error'
  message: string
  fields: Record<string, unknown>
}

/** A logger that keeps what it is given, for asserting on warnings. */
export function captureLogger(records: LogRecord[] = [], base: Record<string, unknown> = {}): Logger & { records: LogRecord[] } {
  const at =
    (level: LogRecord['level']) =>
    (message: string, fields?: Record<string, unknown>): void => {
      records.push({ level, message, fields: { ...base, ...fields } })
    }
  return {
    records,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (fields) => captureLogger(records, { ...base, ...fields }),
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A promise with its resolve function, for handlers that wait for the test. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void
  const promise = new Promise<T>((resolve) => {
    open = resolve
  })
  return { promise, open }
}

/** Polls `condition` every 5 ms until it holds, failing after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** Deterministic bytes that differ per seed. */
export function pattern(lengthBytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(lengthBytes)
  let x = (seed * 2654435761 + 1) >>> 0
  for (let i = 0; i < lengthBytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = (x >>> 16) & 0xff
  }
  return out
}

/** Byte equality that keeps failure output small (no 1 MiB diffs). */
export function sameBytes(a: unknown, b: Uint8Array): boolean {
  if (!(a instanceof Uint8Array) || a.byteLength !== b.byteLength) return false
  for (let i = 0; i < b.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}
