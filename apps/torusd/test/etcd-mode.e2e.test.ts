// Goal: torusd against a real etcd refuses an uninitialised cluster unless --debug-init,
// registers itself as a peer, joins the ring only when asked, and reconciles its local blocks
// with etcd at start-up (drops deleted volumes, refuses ids etcd never allocated). Method: the
// built daemon as a child process on the etcd named by TORUS_ETCD_ENDPOINTS (CI starts one),
// each test under its own random key prefix; the test reads and writes etcd directly through
// EtcdMetadataStore.
import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Etcd3 } from 'etcd3'
import { afterEach, describe, expect, it } from 'vitest'
import { FileBlockStore } from '@torus/blockstore'
import { BlockRef, blockIndex, volumeId } from '@torus/core'
import { makeSecretCheck } from '@torus/metadata'
import { EtcdMetadataStore } from '@torus/metadata-etcd'
import { hasCommand, run } from '@torus/testing'
import { canRun, Torusd, TORUSD_MAIN } from './helpers/torusd.js'

const endpoints = (process.env.TORUS_ETCD_ENDPOINTS ?? '').split(',').map((h) => h.trim()).filter((h) => h !== '')
const etcd = endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(',')
const SECRET = 'etcd-mode-test-secret-0123456789abcdef'
/** A child torusd's environment with the secret the daemons of these tests use. */
const withSecret = { ...process.env, TORUS_CLUSTER_SECRET: SECRET }

describe.skipIf(endpoints.length === 0)('torusd --etcd', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  async function store(prefix: string): Promise<EtcdMetadataStore> {
    const s = new EtcdMetadataStore({ hosts: endpoints, prefix })
    await s.open()
    cleanups.push(async () => {
      await s.close()
      const client = new Etcd3({ hosts: endpoints })
      try {
        await client.delete().prefix(prefix)
      } finally {
        client.close()
      }
    })
    return s
  }

  function tmpDir(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torusd-etcd-'))
    cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }))
    return dir
  }

  async function daemon(prefix: string, dataDir: string, extra: string[] = []): Promise<Torusd> {
    const d = await Torusd.start({ dataDir, size: '1GiB', extraArgs: ['--etcd', etcd, '--etcd-prefix', prefix, '--lease-ttl', '3', ...extra], env: { TORUS_CLUSTER_SECRET: SECRET } })
    cleanups.push(() => d.destroy())
    return d
  }

  it('refuses to start on an uninitialised cluster, naming etcd and the prefix (exit 1)', async () => {
    const prefix = `torus-test/${randomUUID()}/`
    const r = await run(process.execPath, [TORUSD_MAIN, '--etcd', etcd, '--etcd-prefix', prefix, '--data-dir', tmpDir(), '--nbd-address', 'off', '--port', '0', '--peer-address', 'ws://127.0.0.1:0'], { timeoutMs: 30_000 })
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`no Torus cluster in etcd ${etcd} (prefix ${prefix})`)
    expect(r.stderr).toContain(`run \`torusctl -C ${etcd} --etcd-prefix ${prefix} init\` first`)
  })

  it('refuses to start without the cluster secret, or with another one than init recorded (exit 2)', async () => {
    const prefix = `torus-test/${randomUUID()}/`
    const meta = await store(prefix)
    await meta.initCluster({ blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama', createdAt: new Date().toISOString(), secretCheck: makeSecretCheck('the-right-secret-0123456789abcdef') })
    const args = [TORUSD_MAIN, '--etcd', etcd, '--etcd-prefix', prefix, '--nbd-address', 'off', '--port', '0', '--peer-address', 'ws://127.0.0.1:0']
    const noneDir = tmpDir()
    const none = await run(process.execPath, [...args, '--data-dir', noneDir], { timeoutMs: 30_000, env: { ...process.env, TORUS_CLUSTER_SECRET: '', TORUS_CLUSTER_SECRET_FILE: '' } })
    expect(none.code, none.stderr).toBe(2)
    expect(none.stderr).toMatch(/needs the cluster secret that torusctl init wrote: pass --cluster-secret-file PATH/)
    const wrongDir = tmpDir()
    const wrong = await run(process.execPath, [...args, '--data-dir', wrongDir], { timeoutMs: 30_000, env: { ...process.env, TORUS_CLUSTER_SECRET: 'a-wrong-secret-0123456789abcdef0123' } })
    expect(wrong.code, wrong.stderr).toBe(2)
    expect(wrong.stderr).toMatch(/the cluster secret from TORUS_CLUSTER_SECRET is not the one this cluster was initialised with/)
    // Refused before the data dir was bound to the cluster or given a block store.
    for (const dir of [noneDir, wrongDir]) {
      expect(fs.existsSync(path.join(dir, 'cluster.json')), dir).toBe(false)
      expect(fs.existsSync(path.join(dir, 'blocks')), dir).toBe(false)
    }
  })

  it('initialises with --debug-init, registers as an alive peer, and stays out of the ring without --auto-join', async () => {
    const prefix = `torus-test/${randomUUID()}/`
    const d = await daemon(prefix, tmpDir(), ['--debug-init'])
    const meta = await store(prefix)
    expect(await meta.getClusterConfig()).toMatchObject({ blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama' })
    const peers = await meta.listPeers()
    expect(peers).toHaveLength(1)
    expect(peers[0]).toMatchObject({ alive: true, address: `ws://127.0.0.1:${d.ports.peer}`, nbdAddress: `127.0.0.1:${d.ports.nbd}`, capacityBytes: 1024 ** 3 })
    expect((await meta.getRing())?.members).toEqual([])
    // A clean stop revokes the peer's lease: it shows as down at once, not after the TTL.
    await d.kill('SIGTERM')
    expect((await meta.listPeers())[0]?.alive).toBe(false)
  })

  it('joins the ring with --auto-join, weighted by its size, and reports the ring version it uses', async () => {
    const prefix = `torus-test/${randomUUID()}/`
    const meta = await store(prefix)
    await meta.initCluster({ blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama', createdAt: new Date().toISOString() })
    await daemon(prefix, tmpDir(), ['--auto-join'])
    const ring = await meta.getRing()
    const [self] = await meta.listPeers()
    expect(ring?.members).toEqual([{ peer: self!.id, weight: 1024 ** 3 }])
    const deadline = Date.now() + 10_000
    while ((await meta.listPeers())[0]?.ringVersion !== ring?.version && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect((await meta.listPeers())[0]?.ringVersion).toBe(ring?.version)
  })

  it.skipIf(!canRun(hasCommand('qemu-io'), 'qemu-io'))('drops blocks of volumes deleted in etcd at start-up, and refuses to start against another cluster, deleting nothing', async () => {
    const prefix = `torus-test/${randomUUID()}/`
    const meta = await store(prefix)
    await meta.initCluster({ blockSizeBytes: 512 * 1024, replication: 1, ringType: 'ketama', createdAt: new Date().toISOString() })
    await meta.createVolume({ name: 'keep', sizeBytes: 64 * 1024 ** 2 })
    const gone = await meta.createVolume({ name: 'gone', sizeBytes: 64 * 1024 ** 2 })
    const dataDir = tmpDir()
    // A ring member: only ring members store blocks.
    const d = await daemon(prefix, dataDir, ['--auto-join'])
    for (const v of ['keep', 'gone']) {
      const w = await run('qemu-io', ['-f', 'raw', d.uri(v), '-c', 'write -P 0x5a 0 1M', '-c', 'flush'])
      expect(w.code, w.stderr).toBe(0)
    }
    await d.kill('SIGTERM')
    const blocks = path.join(dataDir, 'blocks')
    expect(fs.readdirSync(blocks).sort()).toContain(String(gone.id))
    await meta.deleteVolume('gone')

    await d.restart()
    expect(fs.readdirSync(blocks)).not.toContain(String(gone.id))
    expect(d.service!.lines.some((l) => l.includes('dropped blocks of a deleted volume'))).toBe(true)
    const r = await run('qemu-io', ['-f', 'raw', d.uri('keep'), '-c', 'read -P 0x5a 0 1M'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    await d.kill('SIGTERM')

    // The same data dir pointed at another cluster (a mistyped --etcd-prefix) whose ids have
    // moved past ours and whose volumes are all deleted: nothing may be dropped, the start is refused.
    const other = `torus-test/${randomUUID()}/`
    const meta2 = await store(other)
    await meta2.initCluster({ blockSizeBytes: 512 * 1024, replication: 1, ringType: 'ketama', createdAt: new Date().toISOString() })
    for (const name of ['a', 'b', 'c', 'd']) {
      await meta2.createVolume({ name, sizeBytes: 64 * 1024 ** 2 })
      await meta2.deleteVolume(name)
    }
    const refused = await run(process.execPath, [TORUSD_MAIN, ...d.args().map((a) => (a === prefix ? other : a))], { timeoutMs: 30_000, env: withSecret })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/data dir \S+ belongs to another cluster .* point torusd at the right --etcd\/--etcd-prefix/)
    const keepId = (await meta.getVolume('keep'))!.id
    expect(fs.readdirSync(blocks)).toContain(String(keepId))
    await d.restart()
    const again = await run('qemu-io', ['-f', 'raw', d.uri('keep'), '-c', 'read -P 0x5a 0 1M'])
    expect(again.code, again.stdout + again.stderr).toBe(0)
  })

  it.skipIf(!canRun(hasCommand('qemu-io'), 'qemu-io'))('started without --etcd, a data dir that served a cluster in etcd says how to start it, formatting nothing', async () => {
    const prefix = `torus-test/${randomUUID()}/`
    const meta = await store(prefix)
    await meta.initCluster({ blockSizeBytes: 512 * 1024, replication: 1, ringType: 'ketama', createdAt: new Date().toISOString(), secretCheck: makeSecretCheck(SECRET) })
    await meta.createVolume({ name: 'keep', sizeBytes: 64 * 1024 ** 2 })
    const dataDir = tmpDir()
    const d = await daemon(prefix, dataDir, ['--auto-join'])
    const w = await run('qemu-io', ['-f', 'raw', d.uri('keep'), '-c', 'write -P 0x5a 0 1M', '-c', 'flush'])
    expect(w.code, w.stderr).toBe(0)
    await d.kill('SIGTERM')
    const alone = await run(process.execPath, [TORUSD_MAIN, '--data-dir', dataDir, '--nbd-address', 'off', '--port', '0', '--peer-address', 'ws://127.0.0.1:0', '--size', '1GiB'], { timeoutMs: 30_000, env: withSecret })
    expect(alone.code, alone.stderr).toBe(1)
    expect(alone.stderr).toContain(`it serves a cluster in etcd: start torusd with --etcd ${etcd} --etcd-prefix ${prefix} --cluster-secret-file FILE`)
    expect(alone.stderr).not.toMatch(/remove .* to discard those blocks/)
    expect(fs.existsSync(path.join(dataDir, 'metadata'))).toBe(false)
    await d.restart()
    const r = await run('qemu-io', ['-f', 'raw', d.uri('keep'), '-c', 'read -P 0x5a 0 1M'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
  })

  it('refuses a data dir with blocks that was never bound to this cluster even when the ids match, deleting nothing', async () => {
    const prefix = `torus-test/${randomUUID()}/`
    const meta = await store(prefix)
    await meta.initCluster({ blockSizeBytes: 512 * 1024, replication: 1, ringType: 'ketama', createdAt: new Date().toISOString() })
    // Volume id 1 exists here too (every cluster numbers from 1): matching ids prove nothing.
    await meta.createVolume({ name: 'a', sizeBytes: 64 * 1024 ** 2 })
    await meta.createVolume({ name: 'b', sizeBytes: 64 * 1024 ** 2 })
    await meta.deleteVolume('b')
    // Blocks of volume id 1 from somewhere else, and no cluster.json.
    const dataDir = tmpDir()
    const foreign = new FileBlockStore({ dir: path.join(dataDir, 'blocks'), blockSizeBytes: 512 * 1024, capacityBytes: 1024 ** 3 })
    await foreign.open()
    await foreign.put(new BlockRef(volumeId(1), blockIndex(0)), new Uint8Array(512 * 1024).fill(7))
    await foreign.flush()
    await foreign.close()
    const r = await run(process.execPath, [TORUSD_MAIN, '--etcd', etcd, '--etcd-prefix', prefix, '--data-dir', dataDir, '--nbd-address', 'off', '--port', '0', '--peer-address', 'ws://127.0.0.1:0', '--size', '1GiB'], { timeoutMs: 30_000, env: withSecret })
    expect(r.code, r.stderr).toBe(1)
    expect(r.stderr).toMatch(/holds blocks but records no cluster, and etcd \S+ prefix \S+ has never seen its peer/)
    expect(fs.existsSync(path.join(dataDir, 'cluster.json'))).toBe(false)
    expect(fs.existsSync(path.join(dataDir, 'blocks', '1', 'index'))).toBe(true)
  })
})
