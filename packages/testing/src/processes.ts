import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { accessSync, constants } from 'node:fs'

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs a command to completion (with a timeout that kills it), capturing output. */
export function run(command: string, args: string[], options: SpawnOptions & { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  const { timeoutMs = 120_000, input, ...spawnOptions } = options
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions })
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      stderr += `\n[killed after ${timeoutMs} ms]`
    }, timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    // A child that exits without reading its stdin (most do) closes the pipe: writing then
    // fails with EPIPE, which must not become an uncaught exception; the exit code tells.
    child.stdin?.on('error', () => {})
    if (input === undefined) child.stdin?.end()
    else child.stdin?.end(input)
  })
}

/** Whether a program is on `path` (default $PATH); interop tests skip when their client is missing. */
export function hasCommand(name: string, path: string = process.env.PATH ?? ''): boolean {
  const dirs = path.split(':')
  return dirs.some((d) => {
    try {
      accessSync(`${d}/${name}`, constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/**
 * A long-running child process with its output captured, for daemons under test. `lines`
 * collects stderr+stdout lines; `waitFor` resolves when a line matches.
 */
export class Service {
  readonly child: ChildProcess
  readonly lines: string[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  #waiters: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = []
  #partial = ''

  constructor(command: string, args: string[], options: SpawnOptions = {}) {
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
    const onData = (d: Buffer): void => {
      const text = this.#partial + d.toString()
      const parts = text.split('\n')
      this.#partial = parts.pop() ?? ''
      for (const line of parts) this.#line(line)
    }
    this.child.stdout?.on('data', onData)
    this.child.stderr?.on('data', onData)
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })))
    live.add(this)
    void this.exited.then(() => live.delete(this))
  }

  get pid(): number {
    return this.child.pid!
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  #line(line: string): void {
    this.lines.push(line)
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test(line)) return true
      w.resolve(line)
      return false
    })
  }

  /** Resolves with the first line (past or future) matching `test`; rejects on exit or timeout. */
  waitFor(test: RegExp | ((line: string) => boolean), timeoutMs = 30_000): Promise<string> {
    const fn = typeof test === 'function' ? test : (l: string) => test.test(l)
    const seen = this.lines.find(fn)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${String(test)}; output:\n${this.lines.join('\n')}`)), timeoutMs)
      const waiter = {
        test: fn,
        resolve: (line: string) => {
          clearTimeout(timer)
          resolve(line)
        },
      }
      this.#waiters.push(waiter)
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer)
        reject(new Error(`process exited (code ${code}, signal ${signal}) before ${String(test)}; output:\n${this.lines.join('\n')}`))
      })
    })
  }

  /** Sends `signal` and waits for exit; escalates to SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exited
    this.child.kill(signal)
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
    const result = await this.exited
    clearTimeout(timer)
    return result
  }
}

const live = new Set<Service>()

/** Kills every Service this process started that is still running (test teardown). */
export async function stopAllServices(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop('SIGKILL')))
}

/**
 * Whether an interop test can run. Tests skip (with the reason in their title) when a tool is
 * missing, but CI sets TORUS_REQUIRE_INTEROP=1 so a missing tool fails the run instead of
 * letting an acceptance test silently skip.
 */
export function canRun(available: boolean, what: string): boolean {
  if (!available && process.env.TORUS_REQUIRE_INTEROP === '1') {
    throw new Error(`TORUS_REQUIRE_INTEROP=1 but ${what} is not available on this machine`)
  }
  return available
}
