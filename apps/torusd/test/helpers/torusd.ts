import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, run, Service, type RunResult } from '@torus/testing'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..')
export const TORUSD_MAIN = path.join(root, 'apps/torusd/bin/torusd.cjs')
export const TORUSCTL_MAIN = path.join(root, 'apps/torusctl/dist/main.js')
/** bin/torusd, the launcher users run (it adds TORUSD_NODE_FLAGS). */
export const TORUSD_LAUNCHER = path.join(root, 'bin/torusd')
/** The Node.js flags bin/torusd gives torusd; long-running test daemons get them too. */
export const TORUSD_NODE_FLAGS = ['--single-threaded-gc']

/** The daemon tests run the built apps, exactly what bin/ runs. */
export function assertBuilt(): void {
  for (const f of [path.join(root, 'apps/torusd/dist/main.js'), TORUSCTL_MAIN]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run \`pnpm build\` first (scripts/test.sh does)`)
  }
}

export interface TorusdOptions {
  dataDir?: string
  size?: string
  extraArgs?: string[]
  env?: NodeJS.ProcessEnv
}

/** A torusd child process on free loopback ports, with a data dir it removes on `destroy()`. */
export class Torusd {
  service: Service | undefined
  readonly dataDir: string
  readonly ownsDataDir: boolean
  readonly ports: { nbd: number; http: number; peer: number }
  readonly options: TorusdOptions

  private constructor(dataDir: string, ownsDataDir: boolean, ports: Torusd['ports'], options: TorusdOptions) {
    this.dataDir = dataDir
    this.ownsDataDir = ownsDataDir
    this.ports = ports
    this.options = options
  }

  static async start(options: TorusdOptions = {}): Promise<Torusd> {
    assertBuilt()
    const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'torusd-test-'))
    const ports = { nbd: await freePort(), http: await freePort(), peer: await freePort() }
    const d = new Torusd(dataDir, options.dataDir === undefined, ports, options)
    await d.restart()
    return d
  }

  get endpoint(): string {
    return `torus://127.0.0.1:${this.ports.peer}`
  }

  uri(volume: string): string {
    return `nbd://127.0.0.1:${this.ports.nbd}/${volume}`
  }

  /** Starts (again) on the same data dir and ports; resolves when it logs "torusd ready". */
  async restart(): Promise<void> {
    if (this.service?.running === true) throw new Error('torusd is still running')
    this.service = new Service(process.execPath, [...TORUSD_NODE_FLAGS, TORUSD_MAIN, ...this.args()], {
      env: { ...process.env, ...this.options.env },
    })
    await this.service.waitFor(/"msg":"torusd ready"/, 30_000)
  }

  args(): string[] {
    return [
      '--data-dir', this.dataDir,
      '--size', this.options.size ?? '2GiB',
      '--nbd-address', `127.0.0.1:${this.ports.nbd}`,
      '--host', '127.0.0.1',
      '--port', String(this.ports.http),
      '--peer-address', `ws://127.0.0.1:${this.ports.peer}`,
      ...(this.options.extraArgs ?? []),
    ]
  }

  /** Runs torusctl against this daemon. */
  ctl(...args: string[]): Promise<RunResult> {
    return run(process.execPath, [TORUSCTL_MAIN, '-C', this.endpoint, ...args], { timeoutMs: 30_000, env: { ...process.env, HOME: this.dataDir } })
  }

  async ctlJson<T>(...args: string[]): Promise<T> {
    const r = await this.ctl('--output', 'json', ...args)
    if (r.code !== 0) throw new Error(`torusctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }

  async http(pathname: string): Promise<Response> {
    return fetch(`http://127.0.0.1:${this.ports.http}${pathname}`)
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.service === undefined) throw new Error('not started')
    return this.service.stop(signal)
  }

  async destroy(): Promise<void> {
    await this.service?.stop('SIGKILL')
    if (this.ownsDataDir) fs.rmSync(this.dataDir, { recursive: true, force: true })
  }
}

export const HAVE_PYTHON_LIBNBD = fs.existsSync('/usr/bin/python3') && fs.existsSync('/usr/lib/python3/dist-packages/nbd.py')

export { canRun } from '@torus/testing'
