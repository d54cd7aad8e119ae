// The local cluster tool leaves nothing behind. Runs the CLI as a user would (`up`, `status`,
// `down`, `up --foreground` + Ctrl-C, and an `up` that fails half-way) and then checks that no
// recorded process is alive and that neither its --dir nor etcd's /dev/shm data dir is left.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { runCommand, TORUSCTL_MAIN } from '../cluster.mjs'

const tool = path.join(path.dirname(fileURLToPath(import.meta.url)), '../cluster.mjs')
const haveEtcd = (process.env.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, 'etcd')))
if (!haveEtcd && process.env.TORUS_REQUIRE_INTEROP === '1') throw new Error('TORUS_REQUIRE_INTEROP=1 but etcd is not installed (apt-get install etcd-server)')

interface State {
  dir: string
  secretFile: string
  etcd: { pid: number; dataDir: string; marker: string }
  nodes: Array<{ pid: number; dataDir: string; marker: string }>
}

const cli = (...args: string[]) => runCommand(process.execPath, [tool, ...args], { timeoutMs: 90_000 })

/** Whether `pid` still runs with `marker` in its command line (a reused PID does not count). */
function alive(pid: number, marker: string): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    if (/^\S+ \(.*\) Z/.test(stat)) return false
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)
  } catch {
    return false
  }
}

function expectGone(state: State): void {
  for (const p of [state.etcd, ...state.nodes]) expect(alive(p.pid, p.marker), `pid ${p.pid} (${p.marker}) still running`).toBe(false)
  expect(fs.existsSync(state.dir), state.dir).toBe(false)
  expect(fs.existsSync(state.etcd.dataDir), state.etcd.dataDir).toBe(false)
  for (const n of state.nodes) expect(fs.existsSync(n.dataDir)).toBe(false)
}

const parents: string[] = []
const leftovers: string[] = []
afterEach(async () => {
  // A failed test must not leave a cluster running: `down` whatever is still recorded.
  for (const dir of leftovers.splice(0)) if (fs.existsSync(path.join(dir, 'cluster.json'))) await cli('down', '--dir', dir, '--grace', '2')
  for (const parent of parents.splice(0)) fs.rmSync(parent, { recursive: true, force: true })
})

function newDir(): string {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'torus-cluster-tool-'))
  parents.push(parent)
  const dir = path.join(parent, 'c')
  leftovers.push(dir)
  return dir
}

describe.skipIf(!haveEtcd)('tools/cluster CLI (needs etcd)', () => {
  it('up --nodes 1 starts a ready node; status reports it; down leaves no process, dir or /dev/shm dir', async () => {
    const dir = newDir()
    const up = await cli('up', '--nodes', '1', '--size', '256MiB', '--lease-ttl', '3', '--dir', dir)
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout).toMatch(/export TORUS_ENDPOINT=127\.0\.0\.1:\d+/)
    expect(up.stdout).toMatch(/nbdinfo nbd:\/\/127\.0\.0\.1:\d+\/pad/)
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8')) as State
    expect(state.nodes).toHaveLength(1)
    expect(state.etcd.dataDir.startsWith('/dev/shm/')).toBe(true)
    expect(alive(state.etcd.pid, state.etcd.marker)).toBe(true)
    expect(alive(state.nodes[0]!.pid, state.nodes[0]!.marker)).toBe(true)
    expect(fs.readFileSync(path.join(dir, 'node0.log'), 'utf8')).toMatch(/"msg":"torusd ready"/)
    // torusctl init wrote the cluster secret; the node runs with it.
    expect(state.secretFile).toBe(path.join(dir, 'cluster-secret'))
    expect(fs.readFileSync(state.secretFile, 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/)
    expect(fs.statSync(state.secretFile).mode & 0o777).toBe(0o600)
    expect(up.stdout).toContain(`secret ${state.secretFile}`)
    expect(fs.readFileSync(`/proc/${state.nodes[0]!.pid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining(['--cluster-secret-file', state.secretFile]))

    const status = await cli('status', '--dir', dir, '--json')
    expect(status.code, status.stdout + status.stderr).toBe(0)
    const s = JSON.parse(status.stdout) as { processes: Array<{ name: string; alive: boolean; healthy: boolean }> }
    expect(s.processes.map((p) => [p.name, p.alive, p.healthy])).toEqual([['etcd', true, true], ['node0', true, true]])

    const down = await cli('down', '--dir', dir)
    expect(down.code, down.stderr).toBe(0)
    expectGone(state)
    // Nothing recorded any more.
    const after = await cli('status', '--dir', dir)
    expect(after.code).toBe(1)
    expect(after.stderr).toMatch(/no cluster recorded/)
  })

  it('status exits 3 when a recorded process died (after up --no-init, which writes the secret file itself)', async () => {
    const dir = newDir()
    expect((await cli('up', '--nodes', '0', '--no-init', '--dir', dir)).code).toBe(0)
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8')) as State
    // Without init the tool writes the secret itself, for a later init --secret-file to adopt.
    expect(fs.readFileSync(state.secretFile, 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/)
    process.kill(state.etcd.pid, 'SIGKILL')
    for (let i = 0; i < 50 && alive(state.etcd.pid, state.etcd.marker); i++) await new Promise((r) => setTimeout(r, 100))
    const status = await cli('status', '--dir', dir)
    expect(status.code).toBe(3)
    expect(status.stdout).toMatch(/etcd\s+\d+\s+DOWN/)
    expect((await cli('down', '--dir', dir)).code).toBe(0)
    expectGone(state)
  })

  it('start --node N runs a node that was SIGKILLed again, with its data dir and ports; down stops the new process', async () => {
    const dir = newDir()
    const up = await cli('up', '--nodes', '2', '--size', '256MiB', '--lease-ttl', '3', '--dir', dir)
    expect(up.code, up.stderr).toBe(0)
    const before = JSON.parse(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8')) as State & { nodes: Array<{ ports: unknown }>; prefix: string; etcd: { endpoint: string } }
    // "up" waited until every node reports the current ring: list-peers is balanced at once.
    expect(up.stderr).not.toMatch(/not balanced/)
    const peers = await runCommand(process.execPath, [TORUSCTL_MAIN, '-C', before.etcd.endpoint, '--etcd-prefix', before.prefix, '-o', 'json', 'list-peers'])
    expect(peers.code, peers.stderr).toBe(0)
    expect(JSON.parse(peers.stdout)).toMatchObject({ balanced: true })
    const victim = before.nodes[1]!
    expect((await cli('start', '--node', '1', '--dir', dir)).stderr).toMatch(/node1 is running \(pid \d+\); use restart/)
    process.kill(victim.pid, 'SIGKILL')
    for (let i = 0; i < 50 && alive(victim.pid, victim.marker); i++) await new Promise((r) => setTimeout(r, 100))
    expect((await cli('status', '--dir', dir)).code).toBe(3)
    const started = await cli('start', '--node', '1', '--dir', dir)
    expect(started.code, started.stderr).toBe(0)
    expect(started.stderr).toMatch(/node1 started again: pid \d+/)
    const after = JSON.parse(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8')) as State & { nodes: Array<{ ports: unknown }> }
    expect(after.nodes[1]!.pid).not.toBe(victim.pid)
    expect(after.nodes[1]!.ports).toEqual(victim.ports)
    expect(alive(after.nodes[1]!.pid, victim.marker)).toBe(true)
    expect((await cli('status', '--dir', dir)).code).toBe(0)
    // restart stops the running one first.
    const restarted = await cli('restart', '--node', '1', '--dir', dir)
    expect(restarted.code, restarted.stderr).toBe(0)
    const third = JSON.parse(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8')) as State
    expect(alive(after.nodes[1]!.pid, victim.marker)).toBe(false)
    expect((await cli('start', '--dir', dir)).code).toBe(2)
    expect((await cli('start', '--node', '7', '--dir', dir)).code).toBe(2)
    expect((await cli('down', '--dir', dir)).code).toBe(0)
    expectGone(third)
  })

  /** Starts `up --foreground` and resolves once it printed its summary. */
  async function foreground(dir: string) {
    const child = spawn(process.execPath, [tool, 'up', '--foreground', '--nodes', '1', '--size', '256MiB', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    for (let i = 0; i < 600 && !out.includes('Ctrl-C stops the cluster') && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100))
    return { child, exited, output: () => out }
  }

  it('up --foreground tears everything down on SIGINT', async () => {
    const dir = newDir()
    const { child, exited, output } = await foreground(dir)
    try {
      expect(output()).toContain('Ctrl-C stops the cluster')
      const state = JSON.parse(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8')) as State
      child.kill('SIGINT')
      expect(await exited, output()).toBe(0)
      expect(output()).toMatch(/SIGINT: stopping the cluster/)
      expectGone(state)
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('down stops a cluster that up --foreground runs, through the foreground tool', async () => {
    const dir = newDir()
    const { child, exited, output } = await foreground(dir)
    try {
      expect(output()).toContain('Ctrl-C stops the cluster')
      const state = JSON.parse(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8')) as State
      const down = await cli('down', '--dir', dir)
      expect(down.code, down.stderr).toBe(0)
      expect(down.stderr).toMatch(/asking the foreground tool/)
      expect(await exited, output()).toBe(0)
      expectGone(state)
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('a failing step tears down what it started and exits 1 with the reason', async () => {
    const dir = newDir()
    // torusd refuses a 1 MiB pool, after etcd is up and the cluster is formatted.
    const up = await cli('up', '--nodes', '1', '--size', '1MiB', '--dir', dir)
    expect(up.code).toBe(1)
    expect(up.stderr).toMatch(/cluster: node0 exited \(exit code 2\) before logging/)
    expect(up.stderr).toMatch(/too small/)
    const torn = /torn down: stopped etcd \(pid (\d+)\); removed (\S+) and (\/dev\/shm\/torus-cluster-etcd-\w+)/.exec(up.stderr)
    expect(torn, up.stderr).not.toBeNull()
    expect(alive(Number(torn![1]), torn![3]!)).toBe(false)
    expect(fs.existsSync(torn![2]!)).toBe(false)
    expect(fs.existsSync(torn![3]!)).toBe(false)
    expect(fs.existsSync(dir)).toBe(false)
  })

  it('exits 2 on a bad option or command, before starting anything', async () => {
    for (const args of [['up', '--nodes', 'abc'], ['up', '--bogus'], ['sideways'], ['up', '--replication', '0']]) {
      const dir = newDir()
      const r = await cli(...args, '--dir', dir)
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toMatch(/^cluster: /)
      expect(r.stderr).not.toMatch(/starting/)
      expect(fs.existsSync(dir)).toBe(false)
    }
  })

  it('up refuses a non-empty --dir it did not create', async () => {
    const dir = newDir()
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, 'precious.txt'), 'keep me')
    const up = await cli('up', '--nodes', '0', '--dir', dir)
    expect(up.code).toBe(1)
    expect(up.stderr).toMatch(/exists and is not empty/)
    expect(up.stderr).not.toMatch(/starting/)
    expect(fs.readFileSync(path.join(dir, 'precious.txt'), 'utf8')).toBe('keep me')
  })

  it('up refuses a --dir that already holds a cluster before saying it starts one', async () => {
    const dir = newDir()
    fs.mkdirSync(dir, { recursive: true })
    const recorded = JSON.stringify({ kind: 'torus-local-cluster', version: 1, dir, nodes: [] })
    fs.writeFileSync(path.join(dir, 'cluster.json'), recorded)
    const up = await cli('up', '--dir', dir)
    expect(up.code).toBe(1)
    expect(up.stderr).toBe(`cluster: ${dir} already holds a cluster (cluster.json); run \`down --dir ${dir}\` first\n`)
    expect(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8')).toBe(recorded)
  })
})
