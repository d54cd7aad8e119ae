// Types for cluster.mjs, so TypeScript tests can `import { startCluster } from '…/tools/cluster/cluster.mjs'`.

export interface ClusterOptions {
  /** torusd processes (default 3; 0 runs etcd alone). */
  nodes?: number
  /** Storage each node gives to the pool, as torusd's --size takes it (default '5GiB'). */
  size?: string
  /** `torusctl init --replication` (default 2). */
  replication?: number
  /** `torusctl init --ring-type` (default 'ketama'). */
  ringType?: string
  /** torusd --lease-ttl in seconds (default 10). */
  leaseTtl?: number
  /** etcd key prefix for torusd and torusctl (default 'torus/'). */
  prefix?: string
  /** torusd --log-level (default 'info'; tests read `volume opened` and lock messages at info). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error'
  /**
   * Run `torusctl init --secret-file <dir>/cluster-secret` (default true). When false the tool
   * writes that secret file itself (64 hex characters, 0600); torusd gets it either way.
   */
  init?: boolean
  /** Extra `torusctl init` arguments (the tool already passes --replication, --ring-type and --secret-file). */
  initArgs?: string[]
  /** Extra torusd arguments for every node, and per node index. */
  torusdArgs?: string[]
  nodeArgs?: Record<number, string[]>
  /**
   * Node.js flags for every torusd, before its script (e.g. `--cpu-prof`, which NODE_OPTIONS refuses).
   * Default: TORUSD_NODE_FLAGS (what bin/torusd uses); include them when adding flags.
   */
  execArgv?: string[]
  /** Extra environment for torusd and torusctl. */
  env?: Record<string, string>
  /** Where cluster.json, logs and node data dirs go. Default: a new temp dir, removed by stop(). Must be new or empty. */
  dir?: string
  /** Whether stop() removes `dir` when it was given (default true). */
  removeDir?: boolean
  /** Leave the processes running when this process exits (the CLI's `up`). Default false. */
  detached?: boolean
  /** How long etcd and each torusd may take to become ready (default 30 000). */
  readyTimeoutMs?: number
  /** Time between SIGTERM and SIGKILL in stop() (default 10 000). */
  graceMs?: number
  /**
   * After the nodes are ready (and only with init and nodes > 0), wait up to this many ms until
   * `torusctl list-peers` says Balanced: true, and record the outcome in `cluster.balanced`; a
   * timeout is not a failure. Default 0: do not wait (the CLI's `up` waits 15 000).
   */
  waitBalancedMs?: number
  /** torusctl timeout (default 30 000). */
  ctlTimeoutMs?: number
  /** Aborts start-up (what was started is torn down). */
  signal?: AbortSignal
}

export interface ExitStatus {
  code: number | null
  signal: NodeJS.Signals | null
  error?: Error
}

export interface CommandResult {
  code: number | null
  stdout: string
  stderr: string
}

interface ClusterProcess {
  readonly name: string
  /** PID of the current (or last) process. */
  readonly pid: number | undefined
  readonly running: boolean
  readonly dataDir: string
  /** Output goes here, appended across restarts. */
  readonly logPath: string
  /** Resolves when the current process exits. */
  readonly exited: Promise<ExitStatus>
  /** Sends `signal` (default SIGKILL) and resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<ExitStatus>
  /** SIGTERM, then SIGKILL after graceMs. */
  stop(options?: { graceMs?: number }): Promise<ExitStatus>
  /** Log text since the last (re)start, or all of it. */
  logs(options?: { all?: boolean }): string
  /** First log line since the last (re)start matching `re`; rejects if the process exits or time runs out. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>
}

export interface ClusterEtcd extends ClusterProcess {
  /** `127.0.0.1:PORT`, as `torusd --etcd` and `torusctl -C` take it. */
  readonly endpoint: string
  /** `http://127.0.0.1:PORT`. */
  readonly url: string
  readonly ports: { client: number; peer: number }
  /** Starts etcd again on the same data dir and ports; resolves when it is healthy. */
  restart(): Promise<void>
}

export interface ClusterNode extends ClusterProcess {
  readonly index: number
  readonly ports: { nbd: number; http: number; peer: number }
  /** `http://127.0.0.1:HTTP` (/healthz, /metrics, /api/v1/status). */
  readonly httpUrl: string
  /** `ws://127.0.0.1:PEER`. */
  readonly peerAddress: string
  /** `nbd://127.0.0.1:NBD/VOLUME`. */
  nbdUri(volume?: string): string
  /** Starts torusd again on the same data dir and ports; resolves when it logs "torusd ready". */
  restart(): Promise<void>
}

export interface Cluster {
  readonly dir: string
  readonly prefix: string
  /**
   * `<dir>/cluster-secret` (0600): the cluster's transport secret. Every node runs with
   * `--cluster-secret-file` this path; give it to any torusd you start by hand.
   */
  readonly secretFile: string
  readonly etcd: ClusterEtcd
  readonly nodes: ClusterNode[]
  /** Runs the built torusctl with `-C <etcd endpoint> --etcd-prefix <prefix>` before `args`. */
  torusctl(...args: string[]): Promise<CommandResult>
  /** With `waitBalancedMs`: whether `list-peers` said Balanced in time; undefined when start-up did not wait. */
  readonly balanced: boolean | undefined
  /**
   * Polls `torusctl -o json list-peers` (every `intervalMs`, default 250) until it says balanced:
   * every ring member alive and on the current ring version. Resolves false after `timeoutMs` (default 15 000).
   */
  waitBalanced(options?: { timeoutMs?: number; intervalMs?: number }): Promise<boolean>
  /** Stops every node (SIGTERM, SIGKILL after graceMs), then etcd; removes the data dirs. Safe twice. */
  stop(options?: { graceMs?: number }): Promise<void>
  toJSON(): unknown
  [Symbol.asyncDispose](): Promise<void>
}

export class ClusterError extends Error {}
/** A bad option or command (the CLI exits 2). */
export class UsageError extends ClusterError {}

export const DEFAULTS: Readonly<Required<Pick<ClusterOptions, 'nodes' | 'size' | 'replication' | 'ringType' | 'leaseTtl' | 'prefix' | 'logLevel' | 'readyTimeoutMs' | 'graceMs' | 'waitBalancedMs'>>>
export const DEFAULT_DIR: string
export const TORUSD_BIN: string
export const TORUSCTL_MAIN: string
/** `['--single-threaded-gc']`: the Node.js flags bin/torusd runs torusd with. */
export const TORUSD_NODE_FLAGS: readonly string[]

/** Starts etcd, runs `torusctl init`, starts the nodes and waits until each is ready; tears down and rejects on failure. */
export function startCluster(options?: ClusterOptions): Promise<Cluster>
/** Stops the processes recorded in `dir`/cluster.json by the CLI's `up` and removes `dir`. */
export function downCluster(dir: string, options?: { graceMs?: number; log?: (line: string) => void }): Promise<Array<{ name: string; pid: number; result: string }>>
/** Starts node `index` recorded in `dir` again (same data dir, ports, flags), detached; `restart` stops it first if it runs. */
export function startRecordedNode(dir: string, index: number, options?: { restart?: boolean; graceMs?: number; readyTimeoutMs?: number }): Promise<{ name: string; pid: number }>
/** Which processes recorded in `dir` are alive and answering. */
export function clusterStatus(dir: string): Promise<{
  dir: string
  prefix: string
  etcd: string
  processes: Array<{ name: string; pid: number; alive: boolean; healthy: boolean; endpoint?: string; nbd?: string; http?: string; peer?: string; log: string }>
}>
/** A free TCP port on 127.0.0.1 below 32768. */
export function freePort(low?: number, high?: number): Promise<number>
/** Runs a command to completion, capturing its output. */
export function runCommand(command: string, args: string[], options?: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string }): Promise<CommandResult>
