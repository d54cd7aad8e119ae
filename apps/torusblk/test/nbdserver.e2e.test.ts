// Goal: `torusblk nbdserver` is the NBD gateway torusd runs, without local storage (issue 4,
// deliverable 3). Method: a real etcd and three torusd processes (tools/cluster, replication 2),
// and the built torusblk started against them on a free port below 32768 with an empty working
// directory, HOME and TMPDIR; qemu-io writes through the gateway and reads back through the
// torusd NBD exports; interactive qemu-io sessions hold a volume open to check the one-writer
// lock in both directions; SIGTERM must flush, unlock and exit 0.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { canRun, freePort, hasCommand, run, Service } from '@torus/testing'
import { startCluster, type Cluster } from '../../../tools/cluster/cluster.mjs'
import { assertBuilt, QemuIoSession, TORUSBLK_MAIN, torusblk } from './helpers/torusblk.js'

const LEASE_TTL_S = 3
const haveTools = canRun(hasCommand('etcd'), 'etcd (apt-get install etcd-server)') && canRun(hasCommand('qemu-io'), 'qemu-io (apt-get install qemu-utils)')

/** Polls `check` until it returns a value other than undefined; fails after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, gapMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `; last error: ${String(last)}`}`)
    await new Promise((r) => setTimeout(r, gapMs))
  }
}

function qemuIo(uri: string, ...commands: string[]): ReturnType<typeof run> {
  return run('qemu-io', ['-f', 'raw', uri, ...commands.flatMap((c) => ['-c', c])], { timeoutMs: 60_000 })
}

/** Runs qemu-io commands until they succeed (a volume just released may still be locked for a moment). */
async function qemuIoOk(uri: string, ...commands: string[]): Promise<string> {
  return until(`qemu-io ${commands.join('; ')} on ${uri}`, 20_000, async () => {
    const r = await qemuIo(uri, ...commands)
    if (r.code !== 0 || /Pattern verification failed|error/i.test(r.stdout)) throw new Error(`exit ${r.code}: ${r.stdout}${r.stderr}`)
    return r.stdout
  })
}

interface Gateway {
  service: Service
  port: number
  id: string
  holder: string
  uri(volume: string): string
}

describe.skipIf(!haveTools)('torusblk nbdserver against a 3-node cluster (needs etcd, qemu-io)', () => {
  let cluster: Cluster
  /** The gateway's working directory, HOME and TMPDIR: it must leave them empty. */
  let scratch: string
  let dirs: { cwd: string; home: string; tmp: string }

  beforeAll(async () => {
    assertBuilt('apps/torusd/dist/main.js', 'apps/torusctl/dist/main.js')
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'torusblk-e2e-'))
    dirs = { cwd: path.join(scratch, 'cwd'), home: path.join(scratch, 'home'), tmp: path.join(scratch, 'tmp') }
    for (const d of Object.values(dirs)) fs.mkdirSync(d)
    // No idle-volume repair: a torusd opening a volume to repair it would refuse the opens these tests make.
    cluster = await startCluster({ nodes: 3, size: '1GiB', replication: 2, leaseTtl: LEASE_TTL_S, prefix: 'torusblk-e2e/', torusdArgs: ['--idle-repair-interval', '0'] })
    for (const name of ['pad', 'held', 'term']) {
      const r = await cluster.torusctl('volume', 'create-block', name, '64MiB')
      if (r.code !== 0) throw new Error(`create-block ${name}: ${r.stderr}`)
    }
  }, 120_000)

  afterAll(async () => {
    await cluster?.stop({ graceMs: 5_000 })
    if (scratch !== undefined) fs.rmSync(scratch, { recursive: true, force: true })
  })

  /** Starts the built gateway with empty cwd/HOME/TMPDIR; resolves once it logged "nbdserver ready". */
  async function startGateway(extra: string[] = []): Promise<Gateway> {
    const port = await freePort()
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: dirs.home, TMPDIR: dirs.tmp }
    for (const k of Object.keys(env)) if (k.startsWith('TORUS_')) delete env[k]
    const args = ['nbdserver', '-C', cluster.etcd.endpoint, '--etcd-prefix', cluster.prefix, '--cluster-secret-file', cluster.secretFile, '--nbd-address', `127.0.0.1:${port}`, ...extra]
    const service = new Service(process.execPath, ['--single-threaded-gc', TORUSBLK_MAIN, ...args], { cwd: dirs.cwd, env })
    const ready = JSON.parse(await service.waitFor(/"msg":"nbdserver ready"/, 30_000)) as { address: string; gateway: string }
    expect(ready.address).toBe(`127.0.0.1:${port}`)
    const starting = JSON.parse(await service.waitFor(/"msg":"starting"/)) as { holder: string }
    expect(starting.holder).toBe(`torusblk/${ready.gateway}@${os.hostname()}`)
    expect(ready.gateway).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    return { service, port, id: ready.gateway, holder: starting.holder, uri: (volume) => `nbd://127.0.0.1:${port}/${volume}` }
  }

  function expectNoFiles(): void {
    for (const [what, dir] of Object.entries(dirs)) expect(fs.readdirSync(dir), `gateway created files in its ${what}`).toEqual([])
  }

  it('writes through the gateway land on the cluster: read back through two torusd exports after it disconnects', async () => {
    const gw = await startGateway()
    try {
      // 1 MiB over two 512 KiB blocks, a 4 KiB write, and one across a block boundary.
      const wrote = await qemuIo(gw.uri('pad'), 'write -P 0xab 0 1M', 'write -P 0xcd 1M 4k', 'write -P 0x5a 511k 2k', 'flush')
      expect(wrote.code, wrote.stdout + wrote.stderr).toBe(0)
      expect(wrote.stdout).not.toMatch(/error/i)
      expect(gw.service.lines.join('\n')).toMatch(/"msg":"volume opened".*"volume":"pad"/)
      await gw.service.waitFor(/"msg":"volume closed".*"volume":"pad"/, 10_000)

      const checks = ['read -P 0xab 0 511k', 'read -P 0x5a 511k 2k', 'read -P 0xab 513k 511k', 'read -P 0xcd 1M 4k', 'read -P 0 1028k 4k']
      for (const node of [cluster.nodes[1]!, cluster.nodes[2]!]) {
        const out = await qemuIoOk(node.nbdUri('pad'), ...checks)
        expect(out).not.toMatch(/Pattern verification failed/)
      }
      // The gateway is a client of the cluster, not a member: list-peers shows only the three daemons.
      const peers = await cluster.torusctl('list-peers')
      expect(peers.stdout).not.toContain(gw.id)
      expectNoFiles()
    } finally {
      await gw.service.stop('SIGKILL')
    }
  }, 120_000)

  it('holds the volume lock: a torusd refuses a volume the gateway has open, and the gateway refuses one a torusd has open', async () => {
    const gw = await startGateway()
    const node = cluster.nodes[0]!
    const viaGateway = new QemuIoSession(gw.uri('held'))
    try {
      await viaGateway.command('write -P 0x11 0 64k', /wrote 65536\/65536 bytes/)
      const refused = await qemuIo(node.nbdUri('held'), 'read 0 4k')
      expect(refused.code).not.toBe(0)
      expect(refused.stdout + refused.stderr).toContain(`volume held is locked by ${gw.holder}`)
      await viaGateway.quit()
      await gw.service.waitFor(/"msg":"volume closed".*"volume":"held"/, 10_000)

      // Released on disconnect, so the node opens it at once (no lease expiry needed).
      const viaNode = new QemuIoSession(node.nbdUri('held'))
      try {
        await viaNode.command('read -P 0x11 0 64k', /read 65536\/65536 bytes/)
        const other = await qemuIo(gw.uri('held'), 'read 0 4k')
        expect(other.code).not.toBe(0)
        expect(other.stdout + other.stderr).toMatch(/volume held is locked by torusd\//)
      } finally {
        await viaNode.quit()
      }
      expectNoFiles()
    } finally {
      await viaGateway.quit()
      await gw.service.stop('SIGKILL')
    }
  }, 120_000)

  it('SIGTERM with a client attached flushes, unlocks and exits 0; the data is readable through a torusd at once', async () => {
    // A long lease: the node can only open the volume soon after if the gateway unlocked it.
    const gw = await startGateway(['--lease-ttl', '60'])
    const viaGateway = new QemuIoSession(gw.uri('term'))
    try {
      await viaGateway.command('write -P 0x77 0 256k', /wrote 262144\/262144 bytes/)
      const started = Date.now()
      const exit = await gw.service.stop('SIGTERM', 20_000)
      expect(exit).toEqual({ code: 0, signal: null })
      expect(gw.service.lines.join('\n')).toMatch(/"msg":"volume closed".*"volume":"term"/)
      expect(gw.service.lines.join('\n')).toContain('"msg":"stopped"')
      await qemuIoOk(cluster.nodes[2]!.nbdUri('term'), 'read -P 0x77 0 256k')
      expect(Date.now() - started).toBeLessThan(30_000)
      expectNoFiles()
    } finally {
      await viaGateway.quit()
      await gw.service.stop('SIGKILL')
    }
  }, 120_000)

  it('refuses a wrong cluster secret (exit 2) and an uninitialised cluster (exit 1), saying why', async () => {
    const wrong = path.join(scratch, 'wrong-secret')
    fs.writeFileSync(wrong, `${'0f'.repeat(32)}\n`, { mode: 0o600 })
    const port = await freePort()
    const bad = await torusblk(['nbdserver', '-C', cluster.etcd.endpoint, '--etcd-prefix', cluster.prefix, '--cluster-secret-file', wrong, '--nbd-address', `127.0.0.1:${port}`], {}, dirs.cwd)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('is not the one the cluster')

    const none = await torusblk(['nbdserver', '-C', `etcd://${cluster.etcd.endpoint}`, '--etcd-prefix', 'torusblk-nothing-here/', '--cluster-secret-file', cluster.secretFile, '--nbd-address', `127.0.0.1:${port}`], {}, dirs.cwd)
    expect(none.code).toBe(1)
    expect(none.stderr).toContain('no Torus cluster in etcd')
    expect(none.stderr).toContain('torusctl')
    fs.rmSync(wrong)
    expectNoFiles()
  }, 60_000)
})
