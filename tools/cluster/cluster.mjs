#!/usr/bin/env node
// Local cluster tool: a real etcd plus N torusd processes on free loopback ports, for trying a
// multi-node cluster by hand and for end-to-end tests (`import { startCluster }`). Runs the built
// apps (`pnpm build` first) with this Node; needs Debian's `etcd` on PATH.
//
// usage: node tools/cluster/cluster.mjs up [--nodes 3] [--size 5GiB] [--replication 2] [--ring-type ketama]
//                                          [--lease-ttl 10] [--prefix torus/] [--dir DIR] [--foreground] [--no-init]
//        node tools/cluster/cluster.mjs status [--dir DIR] [--json]
//        node tools/cluster/cluster.mjs down [--dir DIR]
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const TORUSD_BIN = path.join(root, 'apps/torusd/bin/torusd.cjs')
/** Node.js flags torusd runs with, as bin/torusd and torusd.cjs's shebang give them (see torusd.cjs). */
export const TORUSD_NODE_FLAGS = Object.freeze(['--single-threaded-gc'])
export const TORUSCTL_MAIN = path.join(root, 'apps/torusctl/dist/main.js')
const TORUSD_MAIN = path.join(root, 'apps/torusd/dist/main.js')
const STATE_FILE = 'cluster.json'
const SECRET_FILE = 'cluster-secret'
const STATE_KIND = 'torus-local-cluster'
export const DEFAULT_DIR = path.join(os.tmpdir(), 'torus-cluster')

export const DEFAULTS = Object.freeze({
  nodes: 3,
  size: '5GiB',
  replication: 2,
  ringType: 'ketama',
  leaseTtl: 10,
  prefix: 'torus/',
  logLevel: 'info',
  readyTimeoutMs: 30_000,
  graceMs: 10_000,
  waitBalancedMs: 0,
})

/** A failure the tool reports as one clear line (plus log excerpts), without a stack. */
export class ClusterError extends Error {
  name = 'ClusterError'
}

/** A bad option or command: the CLI exits 2 for it, like torusd and torusctl. */
export class UsageError extends ClusterError {
  name = 'UsageError'
}

// ---------------------------------------------------------------------------------------------
// Module API

/**
 * Starts etcd, runs `torusctl init --secret-file DIR/cluster-secret`, then starts `options.nodes`
 * torusd processes with `--cluster-secret-file DIR/cluster-secret`, each ready (it logged
 * "torusd ready") before the promise resolves. With `init: false` the tool writes that secret
 * file itself, so a later `torusctl init --secret-file <cluster.secretFile>` adopts it. On any
 * failure everything already started is torn down and the promise rejects with a ClusterError.
 *
 * `detached: true` (the CLI's `up`) leaves the processes running after this process exits;
 * otherwise they are torn down by `cluster.stop()`, or killed if this process exits first.
 */
export async function startCluster(options = {}) {
  const o = checkStart(options)
  const ownsDir = options.dir === undefined
  const dir = ownsDir ? fs.mkdtempSync(path.join(os.tmpdir(), 'torus-cluster-')) : prepareDir(path.resolve(options.dir))
  const cluster = new Cluster(dir, ownsDir || options.removeDir !== false, o)
  try {
    await cluster._start()
  } catch (err) {
    const started = [cluster.etcd, ...cluster.nodes].filter((p) => p?.running).map((p) => `${p.name} (pid ${p.pid})`)
    await cluster.stop({ graceMs: Math.min(o.graceMs, 5_000) }).catch(() => {})
    const removed = [...(cluster.removeDir ? [cluster.dir] : []), ...(cluster.etcd === undefined ? [] : [cluster.etcd.dataDir])]
    const undone = `torn down: ${started.length === 0 ? 'nothing was running' : `stopped ${started.join(', ')}`}; removed ${removed.join(' and ')}`
    if (err instanceof ClusterError) err.message += `\n${undone}`
    throw err
  }
  return cluster
}

class Cluster {
  #stopped = false
  #onExit = () => this.#killNow()

  constructor(dir, removeDir, options) {
    this.dir = dir
    this.removeDir = removeDir
    this.options = options
    this.prefix = options.prefix
    /** The cluster's transport secret (0600); torusctl init writes it, every torusd reads it. */
    this.secretFile = path.join(dir, SECRET_FILE)
    this.etcd = undefined
    this.nodes = []
    /** With `waitBalancedMs`: whether list-peers said Balanced in time (undefined when not waited for). */
    this.balanced = undefined
    if (!options.detached) process.on('exit', this.#onExit)
  }

  async _start() {
    const o = this.options
    const etcdDataDir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'torus-cluster-etcd-'))
    this.etcd = new Etcd({
      dataDir: etcdDataDir,
      logPath: path.join(this.dir, 'etcd.log'),
      ports: { client: await freePort(), peer: await freePort() },
      detached: o.detached,
      readyTimeoutMs: o.readyTimeoutMs,
      signal: o.signal,
    })
    this.#save()
    await this.etcd.start()
    this.#save()
    if (o.init) {
      const args = ['init', '--replication', String(o.replication), '--ring-type', o.ringType, '--secret-file', this.secretFile, ...(o.initArgs ?? [])]
      const r = await this.torusctl(...args)
      if (r.code !== 0) throw new ClusterError(`torusctl ${args.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`)
    } else {
      // As torusctl init would generate it: 32 random bytes, hex, readable by this user only.
      fs.writeFileSync(this.secretFile, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 })
    }
    for (let i = 0; i < o.nodes; i++) {
      const node = new TorusNode({
        index: i,
        dataDir: path.join(this.dir, `node${i}`),
        logPath: path.join(this.dir, `node${i}.log`),
        ports: { nbd: await freePort(), http: await freePort(), peer: await freePort() },
        etcdEndpoint: this.etcd.endpoint,
        prefix: this.prefix,
        secretFile: this.secretFile,
        size: o.size,
        leaseTtl: o.leaseTtl,
        logLevel: o.logLevel,
        extraArgs: [...(o.torusdArgs ?? []), ...(o.nodeArgs?.[i] ?? [])],
        execArgv: o.execArgv ?? [...TORUSD_NODE_FLAGS],
        detached: o.detached,
        readyTimeoutMs: o.readyTimeoutMs,
        env: o.env,
        signal: o.signal,
      })
      fs.mkdirSync(node.dataDir, { recursive: true })
      this.nodes.push(node)
      this.#save()
      await node.start()
      this.#save()
    }
    if (o.init && o.nodes > 0 && o.waitBalancedMs > 0) this.balanced = await this.waitBalanced({ timeoutMs: o.waitBalancedMs })
    if (o.detached) for (const p of [this.etcd, ...this.nodes]) p.detach()
  }

  /**
   * Polls `torusctl -o json list-peers` until it says `balanced` — every ring member alive, on the
   * current ring version, moving no data — so this uses torusctl's own definition. A node reports
   * a new ring version with its next heartbeat (every lease TTL / 3), so right after the nodes
   * joined it can lag a few seconds. Resolves true once balanced, false after `timeoutMs`.
   */
  async waitBalanced({ timeoutMs = 15_000, intervalMs = 250 } = {}) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const r = await this.torusctl('-o', 'json', 'list-peers')
      if (r.code === 0 && parseJson(r.stdout)?.balanced === true) return true
      if (Date.now() >= deadline) return false
      if (this.options.signal?.aborted) throw new ClusterError('interrupted while waiting for the ring to be balanced')
      await sleep(intervalMs)
    }
  }

  /** Runs the built torusctl against this cluster's etcd and prefix. */
  torusctl(...args) {
    return runCommand(process.execPath, [TORUSCTL_MAIN, '-C', this.etcd.endpoint, '--etcd-prefix', this.prefix, ...args], {
      timeoutMs: this.options.ctlTimeoutMs ?? 30_000,
      env: { ...process.env, ...this.options.env },
    })
  }

  /** The state written to DIR/cluster.json (and read by `status` and `down`). */
  toJSON() {
    const o = this.options
    return {
      kind: STATE_KIND,
      version: 1,
      dir: this.dir,
      prefix: this.prefix,
      secretFile: this.secretFile,
      toolPid: o.detached ? undefined : process.pid,
      options: { nodes: o.nodes, size: o.size, replication: o.replication, ringType: o.ringType, leaseTtl: o.leaseTtl },
      etcd: this.etcd?.toJSON(),
      nodes: this.nodes.map((n) => n.toJSON()),
    }
  }

  /** Stops every node (SIGTERM, then SIGKILL after graceMs), then etcd; removes the dirs. Safe twice. */
  async stop({ graceMs = this.options.graceMs } = {}) {
    if (this.#stopped) return
    this.#stopped = true
    await Promise.all(this.nodes.map((n) => n.stop({ graceMs }).catch(() => {})))
    await this.etcd?.stop({ graceMs: Math.min(graceMs, 5_000) }).catch(() => {})
    process.off('exit', this.#onExit)
    if (this.etcd !== undefined) fs.rmSync(this.etcd.dataDir, { recursive: true, force: true })
    if (this.removeDir) fs.rmSync(this.dir, { recursive: true, force: true })
  }

  async [Symbol.asyncDispose]() {
    await this.stop()
  }

  #save() {
    fs.writeFileSync(path.join(this.dir, STATE_FILE), `${JSON.stringify(this.toJSON(), null, 2)}\n`)
  }

  // Last resort when this process exits without stop(): never leave children behind.
  #killNow() {
    for (const p of [...this.nodes, this.etcd]) if (p?.running) p.killSync()
    if (this.etcd !== undefined) fs.rmSync(this.etcd.dataDir, { recursive: true, force: true })
    if (this.removeDir) fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

/** A child process whose output goes to a log file (appended across restarts). */
class Proc {
  #child = undefined
  #exited = undefined
  #done = true
  #logOffset = 0

  constructor(name, { logPath, detached, readyTimeoutMs, env, signal }) {
    this.name = name
    this.logPath = logPath
    this.detached = detached === true
    this.readyTimeoutMs = readyTimeoutMs
    this.env = env
    this.abortSignal = signal
  }

  /** The command line; `marker` (a unique path in it) identifies the process in /proc. */
  command() {
    throw new Error('not implemented')
  }

  get marker() {
    return this.dataDir
  }

  get pid() {
    return this.#child?.pid
  }

  get running() {
    return !this.#done
  }

  /** Resolves with { code, signal } when the current process exits. */
  get exited() {
    return this.#exited ?? Promise.resolve({ code: null, signal: null })
  }

  spawn() {
    if (this.running) throw new ClusterError(`${this.name} is still running (pid ${this.pid})`)
    const [cmd, args] = this.command()
    this.#logOffset = fs.existsSync(this.logPath) ? fs.statSync(this.logPath).size : 0
    const fd = fs.openSync(this.logPath, 'a')
    try {
      // Own process group: Ctrl-C in a terminal reaches only the tool, which stops nodes before etcd.
      const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, env: { ...process.env, ...this.env } })
      this.#child = child
      this.#done = false
      this.#exited = new Promise((resolve) => {
        child.once('exit', (code, signal) => {
          this.#done = true
          resolve({ code, signal })
        })
        child.once('error', (err) => {
          this.#done = true
          fs.appendFileSync(this.logPath, `cluster: cannot run ${cmd}: ${err.message}\n`)
          resolve({ code: null, signal: null, error: err })
        })
      })
    } finally {
      fs.closeSync(fd)
    }
  }

  /** Lets this process exit while the child keeps running (the CLI's `up`). */
  detach() {
    this.#child?.unref()
  }

  /** Output since the last (re)start, or the whole log with `all`. */
  logs({ all = false } = {}) {
    try {
      const text = fs.readFileSync(this.logPath)
      return text.subarray(all ? 0 : this.#logOffset).toString('utf8')
    } catch {
      return ''
    }
  }

  /** Resolves with the first log line since the last (re)start matching `re`; rejects on exit or timeout. */
  async waitForLog(re, timeoutMs = this.readyTimeoutMs) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const line = this.logs().split('\n').find((l) => re.test(l))
      if (line !== undefined) return line
      if (!this.running) throw new ClusterError(`${this.name} exited (${await describeExit(this.exited)}) before logging ${re}${this.#tail()}`)
      if (Date.now() > deadline) throw new ClusterError(`${this.name} did not log ${re} within ${timeoutMs} ms${this.#tail()}`)
      this.checkAborted()
      await sleep(100)
    }
  }

  checkAborted() {
    if (this.abortSignal?.aborted) throw new ClusterError(`interrupted while waiting for ${this.name}`)
  }

  #tail() {
    const lines = this.logs({ all: true }).trimEnd().split('\n').slice(-15)
    return `\n--- last lines of ${this.logPath} ---\n${lines.join('\n')}`
  }

  /** Sends `signal` and resolves with { code, signal } once the process has exited. */
  async kill(signal = 'SIGKILL') {
    if (!this.running) return this.exited
    this.#child.kill(signal)
    return this.exited
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop({ graceMs = DEFAULTS.graceMs } = {}) {
    if (!this.running) return this.exited
    this.#child.kill('SIGTERM')
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  killSync() {
    try {
      this.#child?.kill('SIGKILL')
    } catch {}
  }

  toJSON() {
    return { pid: this.pid, marker: this.marker, log: this.logPath }
  }
}

class Etcd extends Proc {
  constructor({ dataDir, logPath, ports, detached, readyTimeoutMs, signal }) {
    super('etcd', { logPath, detached, readyTimeoutMs, signal })
    this.dataDir = dataDir
    this.ports = ports
  }

  /** `127.0.0.1:PORT`, the form `torusd --etcd` and `torusctl -C` take. */
  get endpoint() {
    return `127.0.0.1:${this.ports.client}`
  }

  get url() {
    return `http://${this.endpoint}`
  }

  command() {
    const peerUrl = `http://127.0.0.1:${this.ports.peer}`
    return [
      'etcd',
      [
        '--name', 'torus-cluster',
        '--data-dir', this.dataDir,
        '--listen-client-urls', this.url, '--advertise-client-urls', this.url,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', `torus-cluster=${peerUrl}`,
        '--logger', 'zap', '--log-level', 'warn',
      ],
    ]
  }

  async start() {
    this.spawn()
    await this.#waitHealthy()
  }

  /** Starts etcd again on the same data dir and ports (after stop() or kill()). */
  async restart() {
    await this.start()
  }

  async #waitHealthy() {
    const deadline = Date.now() + this.readyTimeoutMs
    for (;;) {
      if (await etcdHealthy(this.url)) return
      if (!this.running) {
        const why = await describeExit(this.exited)
        throw new ClusterError(`etcd exited (${why}) before it became healthy on ${this.url}${/ENOENT/.test(this.logs()) ? ' — is etcd installed? (apt-get install etcd-server)' : ''}\n${this.logs({ all: true }).trimEnd().split('\n').slice(-15).join('\n')}`)
      }
      if (Date.now() > deadline) throw new ClusterError(`etcd did not become healthy on ${this.url} within ${this.readyTimeoutMs} ms`)
      this.checkAborted()
      await sleep(100)
    }
  }

  toJSON() {
    return { ...super.toJSON(), endpoint: this.endpoint, url: this.url, ports: this.ports, dataDir: this.dataDir }
  }
}

class TorusNode extends Proc {
  constructor(o) {
    super(`node${o.index}`, o)
    this.index = o.index
    this.dataDir = o.dataDir
    this.ports = o.ports
    this.o = o
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.ports.http}`
  }

  get peerAddress() {
    return `ws://127.0.0.1:${this.ports.peer}`
  }

  nbdUri(volume = '') {
    return `nbd://127.0.0.1:${this.ports.nbd}/${volume}`
  }

  command() {
    const o = this.o
    return [
      process.execPath,
      [
        ...(o.execArgv ?? []),
        TORUSD_BIN,
        '--etcd', o.etcdEndpoint,
        '--etcd-prefix', o.prefix,
        '--cluster-secret-file', o.secretFile,
        '--auto-join',
        '--size', String(o.size),
        '--data-dir', this.dataDir,
        '--host', '127.0.0.1',
        '--port', String(this.ports.http),
        '--peer-address', this.peerAddress,
        '--nbd-address', `127.0.0.1:${this.ports.nbd}`,
        '--lease-ttl', String(o.leaseTtl),
        '--log-level', o.logLevel,
        ...o.extraArgs,
      ],
    ]
  }

  async start() {
    this.spawn()
    await this.waitForLog(/"msg":"torusd ready"/)
  }

  /** Starts torusd again on the same data dir and ports; resolves when it is ready. */
  async restart() {
    await this.start()
  }

  toJSON() {
    const o = this.o
    return {
      index: this.index,
      ...super.toJSON(),
      ports: this.ports,
      dataDir: this.dataDir,
      nbd: this.nbdUri(),
      http: this.httpUrl,
      peer: this.peerAddress,
      // What `start`/`restart` need to run the same torusd again.
      spawn: { etcdEndpoint: o.etcdEndpoint, prefix: o.prefix, secretFile: o.secretFile, size: o.size, leaseTtl: o.leaseTtl, logLevel: o.logLevel, extraArgs: o.extraArgs, execArgv: o.execArgv, env: o.env },
    }
  }
}

/**
 * Starts node `index` of the cluster recorded in `dir` again (same data dir, ports and flags),
 * detached, once it is down — after `kill -9`, say; with `restart`, stops it first. Resolves when
 * it logs "torusd ready", with its new PID recorded in cluster.json.
 */
export async function startRecordedNode(dir, index, { restart = false, graceMs = DEFAULTS.graceMs, readyTimeoutMs = DEFAULTS.readyTimeoutMs } = {}) {
  const state = readState(dir)
  const n = state.nodes?.find((x) => x.index === index)
  if (n === undefined) throw new UsageError(`no node${index} in ${dir} (nodes: ${(state.nodes ?? []).map((x) => `node${x.index}`).join(', ') || 'none'})`)
  if (n.spawn === undefined) throw new ClusterError(`${path.join(dir, STATE_FILE)} was written by an older tool: it does not record how node${index} was started`)
  if (isOurs(n.pid, n.marker) && !isZombie(n.pid)) {
    if (!restart) throw new ClusterError(`node${index} is running (pid ${n.pid}); use restart, or stop it first`)
    await stopPid(n.pid, n.marker, graceMs)
  }
  const node = new TorusNode({ ...n.spawn, index, dataDir: n.dataDir, logPath: n.log, ports: n.ports, detached: true, readyTimeoutMs })
  await node.start()
  node.detach()
  // Read again: another start may have written meanwhile.
  const now = readState(dir)
  now.nodes = now.nodes.map((x) => (x.index === index ? { ...x, pid: node.pid } : x))
  fs.writeFileSync(path.join(dir, STATE_FILE), `${JSON.stringify(now, null, 2)}\n`)
  return { name: `node${index}`, pid: node.pid }
}

// ---------------------------------------------------------------------------------------------
// Helpers

const handedOut = new Set()

/** A free TCP port on 127.0.0.1 below 32768 (the ephemeral range starts there), probed by binding. */
export async function freePort(low = 20000, high = 32000) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low))
    if (handedOut.has(port)) continue
    handedOut.add(port)
    const ok = await new Promise((resolve) => {
      const s = net.createServer()
      s.once('error', () => resolve(false))
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
    if (ok) return port
  }
  throw new ClusterError(`no free port found in ${low}-${high}`)
}

async function etcdHealthy(url) {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })
    const body = await res.json()
    return res.ok && (body.health === true || body.health === 'true')
  } catch {
    return false
  }
}

/** Runs a command to completion; resolves with { code, stdout, stderr } (kills it after timeoutMs). */
export function runCommand(command, args, { timeoutMs = 30_000, env = process.env, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      stderr += `\n[killed after ${timeoutMs} ms]`
    }, timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
    // A child that exits without reading its stdin closes the pipe: EPIPE must not become an
    // uncaught exception (the exit code tells).
    child.stdin.on('error', () => {})
    if (input === undefined) child.stdin.end()
    else child.stdin.end(input)
  })
}

async function describeExit(exited) {
  const { code, signal, error } = await exited
  if (error !== undefined) return error.message
  return signal !== null ? `signal ${signal}` : `exit code ${code}`
}

function assertBuilt(needTorusd) {
  for (const f of [TORUSCTL_MAIN, ...(needTorusd ? [TORUSD_MAIN] : [])]) {
    if (!fs.existsSync(f)) throw new ClusterError(`${path.relative(root, f)} is missing: run \`pnpm build\` first`)
  }
}

function validate(o) {
  if (!Number.isInteger(o.nodes) || o.nodes < 0 || o.nodes > 64) throw new UsageError(`--nodes must be an integer from 0 to 64, got ${o.nodes}`)
  if (!Number.isInteger(o.replication) || o.replication < 1) throw new UsageError(`--replication must be a positive integer, got ${o.replication}`)
  if (!Number.isFinite(o.leaseTtl) || o.leaseTtl < 1) throw new UsageError(`--lease-ttl must be at least 1 (seconds), got ${o.leaseTtl}`)
  if (typeof o.prefix !== 'string' || o.prefix === '') throw new UsageError('--prefix must not be empty')
  o.init = o.init !== false
}

/**
 * Everything startCluster refuses before it starts a process — bad options, a missing build, a
 * --dir in use — so the CLI can refuse before it says "starting". Returns the merged options.
 */
function checkStart(options = {}) {
  const o = { ...DEFAULTS, ...withoutUndefined(options) }
  validate(o)
  assertBuilt(o.nodes > 0)
  if (options.dir !== undefined) checkDir(path.resolve(options.dir))
  return o
}

// The CLI's --dir must be new or empty: `down` removes it entirely.
function checkDir(dir) {
  if (fs.existsSync(dir)) {
    if (fs.existsSync(path.join(dir, STATE_FILE))) throw new ClusterError(`${dir} already holds a cluster (${STATE_FILE}); run \`down --dir ${dir}\` first`)
    if (fs.readdirSync(dir).length > 0) throw new ClusterError(`${dir} exists and is not empty; pick a new --dir (down removes it)`)
  }
}

function prepareDir(dir) {
  checkDir(dir)
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

function parseJson(text) {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function withoutUndefined(o) {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// ---------------------------------------------------------------------------------------------
// Recorded clusters (status, down): processes this tool started, found by PID and checked in /proc

function readState(dir) {
  const file = path.join(dir, STATE_FILE)
  let state
  try {
    state = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ClusterError(err.code === 'ENOENT' ? `no cluster recorded in ${dir} (${STATE_FILE} is missing)` : `cannot read ${file}: ${err.message}`)
  }
  if (state.kind !== STATE_KIND) throw new ClusterError(`${file} was not written by this tool`)
  return state
}

/** Whether `pid` is alive and is still the process we started (its command line holds `marker`). */
function isOurs(pid, marker) {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((arg) => arg.includes(marker))
  } catch {
    return false
  }
}

function recordedProcs(state) {
  const out = []
  if (state.etcd?.pid !== undefined) out.push({ name: 'etcd', ...state.etcd })
  for (const n of state.nodes ?? []) if (n.pid !== undefined) out.push({ name: `node${n.index}`, ...n })
  return out
}

async function stopPid(pid, marker, graceMs) {
  if (!isOurs(pid, marker)) return 'not running'
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return 'not running'
  }
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (!isOurs(pid, marker) || isZombie(pid)) return 'stopped'
    await sleep(100)
  }
  if (isOurs(pid, marker)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }
  for (let i = 0; i < 50 && isOurs(pid, marker) && !isZombie(pid); i++) await sleep(100)
  return 'killed'
}

function isZombie(pid) {
  try {
    return /^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}

/** Stops what `up` recorded in `dir` (nodes first, then etcd) and removes `dir` and etcd's data dir. */
export async function downCluster(dir, { graceMs = DEFAULTS.graceMs, log = () => {} } = {}) {
  const state = readState(dir)
  // A foreground `up` tears down itself: ask it, then mop up anything left.
  if (state.toolPid !== undefined && state.toolPid !== process.pid && isOurs(state.toolPid, 'cluster.mjs')) {
    log(`asking the foreground tool (pid ${state.toolPid}) to stop`)
    process.kill(state.toolPid, 'SIGTERM')
    for (let i = 0; i < (graceMs * 2) / 100 && isOurs(state.toolPid, 'cluster.mjs'); i++) await sleep(100)
  }
  const procs = recordedProcs(state)
  const nodes = procs.filter((p) => p.name !== 'etcd')
  const results = await Promise.all(nodes.map(async (p) => [p, await stopPid(p.pid, p.marker, graceMs)]))
  for (const p of procs.filter((p) => p.name === 'etcd')) results.push([p, await stopPid(p.pid, p.marker, Math.min(graceMs, 5_000))])
  for (const [p, result] of results) log(`${p.name.padEnd(6)} pid ${p.pid}: ${result}`)
  if (state.etcd?.dataDir !== undefined && path.basename(state.etcd.dataDir).startsWith('torus-cluster-etcd-')) fs.rmSync(state.etcd.dataDir, { recursive: true, force: true })
  fs.rmSync(dir, { recursive: true, force: true })
  return results.map(([p, result]) => ({ name: p.name, pid: p.pid, result }))
}

/** Which recorded processes are alive, and whether their HTTP endpoints answer. */
export async function clusterStatus(dir) {
  const state = readState(dir)
  const rows = await Promise.all(
    recordedProcs(state).map(async (p) => {
      const alive = isOurs(p.pid, p.marker) && !isZombie(p.pid)
      let healthy = false
      if (alive) healthy = p.name === 'etcd' ? await etcdHealthy(p.url) : await httpOk(`${p.http}/healthz`)
      return { name: p.name, pid: p.pid, alive, healthy, ...(p.name === 'etcd' ? { endpoint: p.endpoint } : { nbd: p.nbd, http: p.http, peer: p.peer }), log: p.log }
    }),
  )
  return { dir, prefix: state.prefix, etcd: state.etcd?.endpoint, processes: rows }
}

async function httpOk(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
    await res.arrayBuffer()
    return res.ok
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// CLI

const HELP = `usage: node tools/cluster/cluster.mjs <command> [options]

Runs a local Torus cluster: a real etcd (data dir under /dev/shm) and N torusd processes on free
ports of 127.0.0.1 below 32768, each with its own data dir. Needs \`pnpm build\` and Debian's etcd.

commands:
  up        start etcd, run \`torusctl init\` (the cluster secret goes to DIR/cluster-secret, 0600,
            and every torusd gets --cluster-secret-file DIR/cluster-secret), start the nodes,
            wait until each logs "torusd ready" and (up to 15 s) until \`torusctl list-peers\`
            says Balanced: true (every node reports the current ring version),
            write DIR/cluster.json and print how to use the cluster; then exit, leaving the
            processes running (logs in DIR/*.log) unless --foreground is given
  status    show which recorded processes are alive and answering (exit 0 if all are, 3 if not)
  down      stop the recorded processes (SIGTERM, then SIGKILL after --grace seconds; each PID is
            checked in /proc to still be ours) and remove DIR and etcd's data dir
  start     --node N: start node N again (same data dir, ports and flags) after it went down,
            e.g. after kill -9; waits until it logs "torusd ready" and records its new PID
  restart   --node N: the same, stopping it first if it runs

options for up:
  --nodes N          torusd processes (default ${DEFAULTS.nodes}; 0 runs etcd alone)
  --size SIZE        storage each node gives to the pool (default ${DEFAULTS.size})
  --replication R    \`torusctl init --replication\` (default ${DEFAULTS.replication})
  --ring-type T      \`torusctl init --ring-type\`: ketama, mod or single (default ${DEFAULTS.ringType})
  --lease-ttl S      torusd --lease-ttl in seconds: how soon a dead node shows DOWN and its
                     volume locks expire (default ${DEFAULTS.leaseTtl})
  --prefix P         etcd key prefix (--etcd-prefix) for torusd and torusctl (default ${DEFAULTS.prefix})
  --log-level L      torusd --log-level (default ${DEFAULTS.logLevel})
  --no-init          skip \`torusctl init\` (the cluster stays unformatted; the tool writes
                     DIR/cluster-secret itself, for a later init --secret-file to adopt)
  --foreground       stay attached; Ctrl-C or SIGTERM tears everything down
options for all commands:
  --dir DIR          where cluster.json, logs and node data dirs live (default ${DEFAULT_DIR});
                     up needs it new or empty, down removes it
  --grace S          seconds between SIGTERM and SIGKILL when stopping (default ${DEFAULTS.graceMs / 1000})
  --json             status: print JSON
  --node N           start, restart: which node (0 is node0)
  -h, --help         this text

example:
  node tools/cluster/cluster.mjs up --nodes 3 --size 5GiB
  node tools/cluster/cluster.mjs status
  node tools/cluster/cluster.mjs down
`

const FLAGS = {
  nodes: 'int', size: 'string', replication: 'int', 'ring-type': 'string', 'lease-ttl': 'number', prefix: 'string',
  'log-level': 'string', dir: 'string', grace: 'number', foreground: 'bool', 'no-init': 'bool', json: 'bool', help: 'bool', node: 'int',
}

/** How long `up` waits for `torusctl list-peers` to say Balanced: true before it prints the summary anyway. */
const UP_WAIT_BALANCED_MS = 15_000

function parseCli(argv) {
  const out = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]
    if (a === '-h') a = '--help'
    if (!a.startsWith('--')) {
      out._.push(a)
      continue
    }
    let [name, value] = a.slice(2).split(/=(.*)/s, 2)
    const kind = FLAGS[name]
    if (kind === undefined) throw new UsageError(`unknown option --${name} (see --help)`)
    if (kind === 'bool') {
      out[name] = true
      continue
    }
    if (value === undefined) {
      value = argv[++i]
      if (value === undefined) throw new UsageError(`--${name} needs a value`)
    }
    if (kind !== 'string') {
      const n = Number(value)
      if (!Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${kind === 'int' ? 'an integer' : 'a number'}, got ${JSON.stringify(value)}`)
      value = n
    }
    out[name] = value
  }
  return out
}

function summary(cluster) {
  const o = cluster.options
  const lines = [
    `Torus cluster up: etcd + ${o.nodes} torusd (${o.size} each, replication ${o.replication}, ring ${o.ringType}, lease TTL ${o.leaseTtl}s, prefix ${cluster.prefix})`,
    `  dir    ${cluster.dir}  (cluster.json, *.log, node data dirs)`,
    `  etcd   ${cluster.etcd.endpoint}  pid ${cluster.etcd.pid}  data ${cluster.etcd.dataDir}`,
    `  secret ${cluster.secretFile}  (every torusd: --cluster-secret-file)`,
    ...cluster.nodes.map((n) => `  node${n.index}  pid ${n.pid}  nbd 127.0.0.1:${n.ports.nbd}  http ${n.httpUrl}  peer ${n.peerAddress}`),
    '',
    'Try:',
    `  export TORUS_ENDPOINT=${cluster.etcd.endpoint} TORUS_ETCD_PREFIX=${cluster.prefix}`,
    `  export PATH=${path.join(root, 'bin')}:$PATH`,
    '  torusctl list-peers',
    '  torusctl volume create-block pad 1GiB',
    ...(cluster.nodes.length > 0 ? [`  nbdinfo ${cluster.nodes[0].nbdUri('pad')}`, `  curl -s ${cluster.nodes[0].httpUrl}/api/v1/status`] : []),
  ]
  const self = path.relative(process.cwd(), fileURLToPath(import.meta.url)) || fileURLToPath(import.meta.url)
  const dirFlag = cluster.dir === DEFAULT_DIR ? '' : ` --dir ${cluster.dir}`
  if (o.detached) lines.push(`  node ${self} status${dirFlag}`, `  node ${self} down${dirFlag}`)
  else lines.push('', 'Ctrl-C stops the cluster and removes its files.')
  return `${lines.join('\n')}\n`
}

async function cli(argv) {
  const args = parseCli(argv)
  const command = args._[0]
  if (args.help || command === undefined || command === 'help') {
    process.stdout.write(HELP)
    return command === undefined && !args.help ? 2 : 0
  }
  if (args._.length > 1) throw new UsageError(`unexpected argument ${args._[1]} (see --help)`)
  const dir = path.resolve(args.dir ?? DEFAULT_DIR)
  const graceMs = (args.grace ?? DEFAULTS.graceMs / 1000) * 1000
  const log = (s) => process.stderr.write(`cluster: ${s}\n`)

  switch (command) {
    case 'up': {
      const foreground = args.foreground === true
      // Ctrl-C while starting: startCluster's own failure path tears down what it started.
      const abort = new AbortController()
      let interrupted
      const interrupt = new Promise((resolve) => (interrupted = resolve))
      const onSignal = (signal) => {
        abort.abort()
        interrupted(signal)
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      const options = {
        dir,
        removeDir: true,
        detached: !foreground,
        nodes: args.nodes,
        size: args.size,
        replication: args.replication,
        ringType: args['ring-type'],
        leaseTtl: args['lease-ttl'],
        prefix: args.prefix,
        logLevel: args['log-level'],
        init: args['no-init'] !== true,
        graceMs,
        // "up" means `torusctl list-peers` already says Balanced: true.
        waitBalancedMs: UP_WAIT_BALANCED_MS,
        signal: abort.signal,
      }
      checkStart(options)
      log(`starting etcd${args.nodes === 0 ? '' : ` and ${args.nodes ?? DEFAULTS.nodes} torusd`} in ${dir}`)
      const starting = startCluster(options)
      const first = await Promise.race([starting.then((c) => ({ cluster: c })), interrupt.then((signal) => ({ signal }))])
      if (first.signal !== undefined) {
        log(`${first.signal} while starting; tearing down`)
        const c = await starting.catch(() => undefined)
        await c?.stop({ graceMs })
        return 130
      }
      // From here on the signal is ours to handle (only in the foreground).
      const cluster = first.cluster
      if (cluster.balanced === false) {
        log(`the ring is not balanced after ${UP_WAIT_BALANCED_MS / 1000} s (a node does not report the current ring version yet); see \`torusctl list-peers\``)
      }
      process.stdout.write(summary(cluster))
      if (!foreground) return 0
      let stopping = false
      for (const p of [cluster.etcd, ...cluster.nodes]) {
        const pid = p.pid
        void p.exited.then(async () => {
          if (!stopping) log(`${p.name} (pid ${pid}) exited: ${await describeExit(p.exited)}`)
        })
      }
      const signal = await interrupt
      stopping = true
      log(`${signal}: stopping the cluster`)
      await cluster.stop({ graceMs })
      log(`stopped; removed ${cluster.dir} and ${cluster.etcd.dataDir}`)
      return 0
    }
    case 'status': {
      const s = await clusterStatus(dir)
      if (args.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`)
      else {
        process.stdout.write(`cluster in ${s.dir}: etcd ${s.etcd}, prefix ${s.prefix}\n`)
        const rows = s.processes.map((p) => [p.name, String(p.pid), p.alive ? (p.healthy ? 'running' : 'running (not answering)') : 'DOWN', p.name === 'etcd' ? p.endpoint : `${p.nbd} ${p.http}`])
        const widths = [0, 1, 2].map((i) => Math.max(...[['NAME', 'PID', 'STATE'][i].length, ...rows.map((r) => r[i].length)]))
        for (const r of [['NAME', 'PID', 'STATE', 'ADDRESSES'], ...rows]) process.stdout.write(`${r.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c)).join('  ')}\n`)
      }
      return s.processes.every((p) => p.alive && p.healthy) ? 0 : 3
    }
    case 'down': {
      const results = await downCluster(dir, { graceMs, log })
      log(`down: ${results.length} process(es) handled; removed ${dir}`)
      return 0
    }
    case 'start':
    case 'restart': {
      if (args.node === undefined) throw new UsageError(`${command} needs --node N`)
      const started = await startRecordedNode(dir, args.node, { restart: command === 'restart', graceMs })
      log(`${started.name} started again: pid ${started.pid}`)
      return 0
    }
    default:
      throw new UsageError(`unknown command ${command} (up, status, down, start, restart; see --help)`)
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  cli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`cluster: ${err instanceof ClusterError ? err.message : (err?.stack ?? String(err))}\n`)
      process.exit(err instanceof UsageError ? 2 : 1)
    },
  )
}
