// Issue 4's acceptance tests: the replicated data path across real processes. A real etcd and
// three torusd (tools/cluster, --size 5GiB --auto-join, replication 2), driven by real clients:
// ext4 through node A's NBD export, SIGKILL of A, the same filesystem attached through node B;
// fio verify=crc32c through one gateway while another peer is SIGKILLed; and a gateway frozen
// with SIGSTOP past its lease, whose volume is taken over, woken with SIGCONT.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { hasCommand, run, Service, stopAllServices } from '@torus/testing'
import { startCluster, type Cluster, type ClusterNode } from '../../../tools/cluster/cluster.mjs'
import { FuseAttachment, isMounted } from './helpers/fuse-attach.js'
import { canRun, HAVE_PYTHON_LIBNBD } from './helpers/torusd.js'

const LEASE_TTL_S = 3
const session = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/nbd-session.py')
const python = '/usr/bin/python3'
const haveEtcd = canRun(hasCommand('etcd'), 'etcd (apt-get install etcd-server)')
const haveFs = haveEtcd && canRun(FuseAttachment.available(), 'root, qemu-storage-daemon, /dev/fuse and e2fsprogs')
const haveFio = haveEtcd && canRun(hasCommand('fio') && hasCommand('qemu-io'), 'fio and qemu-io')
const haveSession = haveEtcd && canRun(HAVE_PYTHON_LIBNBD && hasCommand('qemu-io'), 'python3-libnbd and qemu-io')

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {})
  await stopAllServices()
})

/**
 * `idleRepairInterval`: torusd --idle-repair-interval; 0 (off) unless a test is about it, since
 * a node that opens a volume to repair it would refuse the opens the other tests make.
 */
async function cluster(idleRepairInterval = 0): Promise<Cluster> {
  const c = await startCluster({ nodes: 3, size: '5GiB', leaseTtl: LEASE_TTL_S, replication: 2, prefix: 'e2e-replication/', torusdArgs: ['--idle-repair-interval', String(idleRepairInterval)] })
  cleanups.push(() => c.stop({ graceMs: 5_000 }))
  return c
}

async function ctl(c: Cluster, ...args: string[]): Promise<string> {
  const r = await c.torusctl(...args)
  if (r.code !== 0) throw new Error(`torusctl ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return r.stdout
}

function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Polls `check` until it returns something other than undefined; fails after `timeoutMs`. */
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

/** Bytes of block files under a node's data dir (its replicas). */
function storedBytes(node: ClusterNode): number {
  let total = 0
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else total += fs.statSync(p).blocks * 512
    }
  }
  const blocks = path.join(node.dataDir, 'blocks')
  if (fs.existsSync(blocks)) walk(blocks)
  return total
}

/** Runs qemu-io commands on `volume` through `node`; fails on an error or a pattern mismatch. */
async function qemuIo(node: ClusterNode, volume: string, ...cmds: string[]): Promise<void> {
  const r = await run('qemu-io', ['-f', 'raw', node.nbdUri(volume), ...cmds.flatMap((x) => ['-c', x])], { timeoutMs: 120_000 })
  expect(r.code, r.stdout + r.stderr).toBe(0)
  expect(r.stdout).not.toMatch(/Pattern verification failed|error/i)
}

/** The stale-replica records of the cluster in etcd, as keys. */
async function staleRecordKeys(c: Cluster): Promise<string[]> {
  const r = await run('etcdctl', ['--endpoints', c.etcd.endpoint, 'get', '--prefix', '--keys-only', 'e2e-replication/stale/'])
  expect(r.code, r.stderr).toBe(0)
  return r.stdout.split('\n').filter((l) => l.trim() !== '')
}

/** Waits until `node` serves `volume` for writing (the previous holder's lease has run out). */
async function waitForTakeover(node: ClusterNode, volume: string): Promise<void> {
  await until(`${volume} to open through ${node.name}`, (LEASE_TTL_S + 20) * 1000, async () => {
    const r = await run('qemu-io', ['-f', 'raw', node.nbdUri(volume), '-c', 'read 0 4k'], { timeoutMs: 30_000 })
    return r.code === 0 ? true : undefined
  })
}

describe.skipIf(!haveFs)('the original demo: ext4 through node A, A SIGKILLed, attached through node B (needs etcd, root, qemu-storage-daemon, /dev/fuse, e2fsprogs)', () => {
  it('keeps every synced file: e2fsck clean, every checksum intact', async () => {
    const c = await cluster()
    const [a, b] = [c.nodes[0]!, c.nodes[1]!]
    expect(await ctl(c, 'volume', 'create-block', 'pad', '1GiB')).toMatch(/pad/)
    const dir = tmpDir('torus-demo-')
    const mnt = path.join(dir, 'mnt')
    fs.mkdirSync(mnt)
    const viaA = new FuseAttachment(fs.mkdtempSync(path.join(dir, 'a-')), '127.0.0.1', a.ports.nbd, 'pad')
    cleanups.push(async () => {
      if (await isMounted(mnt)) await run('umount', ['-l', mnt])
      await viaA.detach()
    })
    await viaA.attach()
    const mkfs = await run('mkfs.ext4', ['-F', '-q', '-E', 'nodiscard', viaA.image], { timeoutMs: 120_000 })
    expect(mkfs.code, mkfs.stderr).toBe(0)
    expect((await run('mount', ['-o', 'loop', viaA.image, mnt])).code).toBe(0)
    const sums = new Map<string, string>()
    const write = (rel: string, data: Buffer): void => {
      fs.mkdirSync(path.dirname(path.join(mnt, rel)), { recursive: true })
      fs.writeFileSync(path.join(mnt, rel), data)
      sums.set(rel, crypto.createHash('sha256').update(data).digest('hex'))
    }
    write('blob.bin', crypto.randomBytes(40 * 1024 * 1024))
    for (let i = 0; i < 200; i++) write(`dir${i % 5}/f${i}.txt`, Buffer.from(`file ${i}\n`.repeat(1 + (i % 40))))
    expect((await run('sync', [])).code).toBe(0)
    expect((await run('umount', [mnt])).code).toBe(0)
    await viaA.detach()

    // Every node holds replicas: the data is spread by the ring, and each block is on two peers.
    const stored = c.nodes.map(storedBytes)
    for (const [i, s] of stored.entries()) expect(s, `node${i} stored ${s} bytes`).toBeGreaterThan(4 * 1024 * 1024)
    expect(stored.reduce((x, y) => x + y, 0)).toBeGreaterThan(2 * 40 * 1024 * 1024)

    await a.kill('SIGKILL')
    await waitForTakeover(b, 'pad')
    expect(b.logs()).toMatch(/"msg":"peers missed the new generation: recorded stale for the whole volume; they serve nothing of it until repair brings them back".*"volume":"pad"/)

    const viaB = new FuseAttachment(fs.mkdtempSync(path.join(dir, 'b-')), '127.0.0.1', b.ports.nbd, 'pad')
    cleanups.push(() => viaB.detach())
    await viaB.attach()
    const fsck = await run('e2fsck', ['-fn', viaB.image], { timeoutMs: 120_000 })
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0)
    expect((await run('mount', ['-o', 'loop,ro', viaB.image, mnt])).code).toBe(0)
    try {
      for (const [rel, sum] of sums) {
        const got = crypto.createHash('sha256').update(fs.readFileSync(path.join(mnt, rel))).digest('hex')
        expect(got, rel).toBe(sum)
      }
    } finally {
      await run('umount', [mnt])
      await viaB.detach()
    }
    // A missed B's generation: it is recorded stale for the whole volume (one record), which
    // repair clears once A is back and the volume is served.
    const records = await run('etcdctl', ['--endpoints', c.etcd.endpoint, 'get', '--prefix', '--keys-only', 'e2e-replication/stale/'])
    expect(records.code, records.stderr).toBe(0)
    expect(records.stdout.trim().split('\n').filter((l) => l !== '')).toEqual([expect.stringMatching(/^e2e-replication\/stale\/\d+\/[0-9a-f-]{36}\/all$/)])
    // SIGTERM of a node other peers are connected to: it flushes, unlocks and exits 0 by itself.
    const third = c.nodes[2]!
    const stopping = Date.now()
    expect(await third.stop({ graceMs: 20_000 })).toEqual({ code: 0, signal: null })
    expect(Date.now() - stopping).toBeLessThan(15_000)
    expect(await b.stop({ graceMs: 20_000 })).toEqual({ code: 0, signal: null })
  })
})

describe.skipIf(!haveFio)('a peer SIGKILLed during a long fio verify write through another gateway (needs etcd, fio)', () => {
  it('the client sees no error and verification passes', async () => {
    const c = await cluster()
    const [gateway, victim] = [c.nodes[0]!, c.nodes[2]!]
    await ctl(c, 'volume', 'create-block', 'pad', '1GiB')
    const fio = new Service('fio', [
      '--name=kill-during-write',
      '--ioengine=nbd',
      `--uri=${gateway.nbdUri('pad')}`,
      '--rw=write',
      '--bs=64k',
      '--iodepth=8',
      '--size=384m',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
      '--fsync=64',
      '--verify_state_save=0',
      '--output-format=terse',
    ], { cwd: tmpDir('torus-fio-') })
    // Let fio get going, then kill a peer in the middle of the write phase.
    await until('fio to write through the gateway', 30_000, async () => (storedBytes(victim) > 16 * 1024 * 1024 ? true : undefined), 100)
    expect(fio.running).toBe(true)
    await victim.kill('SIGKILL')
    const result = await Promise.race([fio.exited, new Promise((_, reject) => setTimeout(() => reject(new Error(`fio still running after 300 s:\n${fio.lines.join('\n')}`)), 300_000))])
    const out = fio.lines.join('\n')
    expect(result, out).toEqual({ code: 0, signal: null })
    // Terse v3: field 5 is the error count.
    const terse = fio.lines.find((l) => l.startsWith('3;'))
    expect(terse, out).toBeDefined()
    expect(terse!.split(';')[4], out).toBe('0')
    expect(gateway.logs()).toContain('"msg":"replica write failed"')
  })
})

describe.skipIf(!haveSession)('a stale gateway after a partition (SIGSTOP past the lease, then SIGCONT) (needs etcd, python3-libnbd)', () => {
  it('cannot change data: its writes are refused, it reports the volume lost, and the new holder\'s data stands', async () => {
    const c = await cluster()
    const [a, b, other] = [c.nodes[0]!, c.nodes[1]!, c.nodes[2]!]
    await ctl(c, 'volume', 'create-block', 'pad', '256MiB')
    // A client holds pad open through A; it writes when told to (on stdin).
    const staleClient = new Service(python, ['-c', staleWriter, a.nbdUri('pad')], { stdio: ['pipe', 'pipe', 'pipe'] })
    expect(await staleClient.waitFor(/^(OPENED|ERROR)/, 30_000), staleClient.lines.join('\n')).toBe('OPENED')

    process.kill(a.pid!, 'SIGSTOP')
    cleanups.push(async () => {
      if (a.running) process.kill(a.pid!, 'SIGCONT')
    })
    // B takes pad over once A's lease has run out, and keeps holding it.
    const holderB = await until('an open through node B to succeed', (LEASE_TTL_S + 30) * 1000, async () => {
      const s = new Service(python, [session, 'hold', b.nbdUri('pad')])
      if ((await s.waitFor(/^(OPENED|ERROR)/, 30_000)) === 'OPENED') return s
      await s.stop('SIGKILL')
      return undefined
    })
    const wrote = await run('qemu-io', ['-f', 'raw', b.nbdUri('pad'), '-c', 'write -P 0xbb 0 1M', '-c', 'flush'], { timeoutMs: 60_000 })
    expect(wrote.code, wrote.stderr).toBe(0)

    // A wakes up, and its client writes over the same range on the connection it had.
    process.kill(a.pid!, 'SIGCONT')
    staleClient.child.stdin!.write('go\n')
    const outcome = await staleClient.waitFor(/^(WROTE|REFUSED)/, 60_000)
    expect(outcome, staleClient.lines.join('\n')).toMatch(/^REFUSED/)
    await until('A to report the volume lost', 20_000, async () => (a.logs().includes('"msg":"volume lock lost"') ? true : undefined))
    // A new connection through A is refused: B holds the lock.
    const refused = await run('qemu-io', ['-f', 'raw', a.nbdUri('pad'), '-c', 'read 0 4k'], { timeoutMs: 30_000 })
    expect(refused.code).not.toBe(0)
    expect(refused.stdout + refused.stderr).toMatch(/volume pad is locked by torusd\//)

    // The new holder's bytes stand: through B now, and through the third node once B lets go.
    const viaB = await run('qemu-io', ['-f', 'raw', b.nbdUri('pad'), '-c', 'read -P 0xbb 0 1M'], { timeoutMs: 60_000 })
    expect(viaB.code, viaB.stdout + viaB.stderr).toBe(0)
    await holderB.stop('SIGKILL')
    await staleClient.stop('SIGKILL')
    await until('pad to open through the third node', 30_000, async () => {
      const r = await run('qemu-io', ['-f', 'raw', other.nbdUri('pad'), '-c', 'read -P 0xbb 0 1M'], { timeoutMs: 60_000 })
      return r.code === 0 ? true : undefined
    })
  })
})

describe.skipIf(!haveSession)('a peer that was down while the volume was written catches up (repair) (needs etcd, python3-libnbd, qemu-io)', () => {
  it('the gateway copies what it missed, the stale records go, and it serves the volume alone with the other holder dead', async () => {
    const c = await cluster()
    const [a, b, late] = [c.nodes[0]!, c.nodes[1]!, c.nodes[2]!]
    await ctl(c, 'volume', 'create-block', 'pad', '256MiB')
    const io = (node: ClusterNode, ...cmds: string[]): Promise<void> => qemuIo(node, 'pad', ...cmds)
    const staleKeys = (): Promise<string[]> => staleRecordKeys(c)
    /** Keeps pad open through A (one open, one lock generation, for every connection meanwhile). */
    const hold = async (): Promise<Service> => {
      const s = new Service(python, [session, 'hold', a.nbdUri('pad')])
      cleanups.push(() => s.stop('SIGKILL').then(() => undefined))
      expect(await s.waitFor(/^(OPENED|ERROR)/, 30_000), s.lines.join('\n')).toBe('OPENED')
      return s
    }

    // 1. Within one open: `late` dies, writes go on — its blocks are recorded stale one by one.
    let holder = await hold()
    await io(a, 'write -P 0x11 4k 64508k', 'flush')
    await late.kill('SIGKILL')
    await io(a, 'write -P 0x22 4k 64508k', 'flush')
    await holder.stop('SIGKILL')
    const perBlock = await staleKeys()
    expect(perBlock.length).toBeGreaterThan(1)
    expect(perBlock.every((k) => !k.endsWith('/all'))).toBe(true)
    // 2. A new open while `late` is still down: it missed that generation, so it is stale for the whole volume.
    await io(a, 'write -P 0x33 64M 32M', 'flush')
    expect(await staleKeys()).toContainEqual(expect.stringMatching(/\/all$/))
    const degraded = await ctl(c, 'volume', 'status', 'pad')
    expect(degraded).toMatch(/^REPLICAS {3}degraded: 1 peer\(s\) hold stale copies/m)
    expect(await ctl(c, 'list-peers')).toMatch(/^Stale copies in 1 volume\(s\), repaired in the background: pad \(torusctl volume status NAME\)$/m)
    // (down) once its lease has run out, which may take up to the TTL after the kill.
    expect(degraded).toMatch(/^ {2}[0-9a-f-]{36} ws:\/\/127\.0\.0\.1:\d+( \(down\))?: the whole volume, and \d+ block\(s\) recorded before$/m)

    // 3. `late` comes back; repair runs where the volume is served.
    await late.restart()
    holder = await hold()
    await until('repair to clear every stale record', 60_000, async () => ((await staleKeys()).length === 0 ? true : undefined), 500)
    expect(await ctl(c, 'volume', 'status', 'pad')).toMatch(/^REPLICAS {3}complete: no stale copies$/m)
    expect(await ctl(c, 'list-peers')).not.toMatch(/Stale copies/)
    const repairLog = a.logs().split('\n').filter((l) => /"msg":"repair/.test(l)).join('\n')
    expect(repairLog).toContain('"msg":"repair: peer is a replica of the volume again"')
    expect(repairLog).toContain('"msg":"repair: stale replicas caught up"')
    const metrics = await (await fetch(`${a.httpUrl}/metrics`)).text()
    expect(Number(/^torus_repair_blocks_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0)
    expect(Number(/^torus_repair_rejoined_peers_total (\d+)$/m.exec(metrics)?.[1])).toBe(1)
    expect(Number(/^torus_repair_bytes_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0)
    await holder.stop('SIGKILL')

    // 4. The other holder of late's blocks dies: late serves them itself, and they are the new bytes.
    await a.kill('SIGKILL')
    await waitForTakeover(late, 'pad')
    await io(late, 'read -P 0xa5 0 4k', 'read -P 0x22 4k 64508k', 'read -P 0x33 64M 32M', 'read -P 0 96M 1M')
    expect(b.running).toBe(true)
  })
})

describe.skipIf(!haveSession)('a volume nobody has open is repaired once every peer is back (idle-volume repair) (needs etcd, python3-libnbd, qemu-io)', () => {
  it('one node opens it, copies what the restarted peer missed, clears the records and lets it go', async () => {
    const c = await cluster(1)
    const [a, b, late] = [c.nodes[0]!, c.nodes[1]!, c.nodes[2]!]
    await ctl(c, 'volume', 'create-block', 'pad', '64MiB')
    const io = (node: ClusterNode, ...cmds: string[]): Promise<void> => qemuIo(node, 'pad', ...cmds)
    const staleKeys = (): Promise<string[]> => staleRecordKeys(c)
    await io(a, 'write -P 0x11 0 64M', 'flush')
    // One open through A while `late` dies: its blocks written after are recorded stale one by one.
    const holder = new Service(python, [session, 'hold', a.nbdUri('pad')])
    cleanups.push(() => holder.stop('SIGKILL').then(() => undefined))
    expect(await holder.waitFor(/^(OPENED|ERROR)/, 30_000), holder.lines.join('\n')).toBe('OPENED')
    await late.kill('SIGKILL')
    await io(a, 'write -P 0x44 0 64M', 'flush')
    await holder.stop('SIGKILL')
    await until('A to let pad go', 30_000, async () => ((await ctl(c, 'volume', 'status', 'pad')).match(/^SERVED BY {2}nobody/m) ? true : undefined))
    expect((await staleKeys()).length).toBeGreaterThan(1)
    expect((await staleKeys()).every((k) => !k.endsWith('/all'))).toBe(true)

    // `late` is back and nobody opens pad: a node repairs it on its own.
    await late.restart()
    await until('idle-volume repair to clear every stale record', 90_000, async () => ((await staleKeys()).length === 0 ? true : undefined), 500)
    const repairer = c.nodes.find((n) => n.logs().includes('"msg":"idle-volume repair: holding a volume nobody has open to repair its stale copies"'))
    expect(repairer, 'no node logged an idle-volume repair').toBeDefined()
    await until('the repairer to let pad go', 30_000, async () => (repairer!.logs().includes('"msg":"idle-volume repair: let the volume go"') ? true : undefined))
    expect(await ctl(c, 'volume', 'status', 'pad')).toMatch(/^REPLICAS {3}complete: no stale copies$/m)

    // `late` holds the new bytes: with A gone, every block A shared with it is read from it.
    await a.kill('SIGKILL')
    await io(late, 'read -P 0x44 0 64M')
    expect(b.running).toBe(true)
  })
})

/**
 * Connects to the URI given and prints OPENED; on a line on stdin writes 0xaa over the first
 * 64 KiB and flushes, printing WROTE if both succeed and REFUSED (with the error) otherwise.
 */
const staleWriter = `
import sys, nbd
h = nbd.NBD()
try:
    h.connect_uri(sys.argv[1])
except nbd.Error as e:
    print(f"ERROR connect: {e}", flush=True)
    sys.exit(1)
print("OPENED", flush=True)
sys.stdin.readline()
try:
    h.pwrite(b"\\xaa" * 65536, 0)
    h.flush()
    print("WROTE", flush=True)
except nbd.Error as e:
    print(f"REFUSED {e}", flush=True)
sys.stdin.readline()
`
