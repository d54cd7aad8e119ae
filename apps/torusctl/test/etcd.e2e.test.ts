// The built torusctl (apps/torusctl/dist/main.js, as bin/torusctl runs it) as a child process
// against the real etcd named by TORUS_ETCD_ENDPOINTS, each test under its own random
// --etcd-prefix. Peers and volume locks are written through an EtcdMetadataStore with real
// leases, exactly as torusd writes them; revoking a lease makes a peer DOWN. Skipped when
// TORUS_ETCD_ENDPOINTS is unset; run `pnpm build` first.
import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseSize, type PeerInfo } from '@torus/core'
import { verifySecretCheck } from '@torus/metadata'
import { EtcdMetadataStore } from '@torus/metadata-etcd'
import { freePort, hasCommand, run, type RunResult } from '@torus/testing'

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/main.js')
const endpoints = process.env.TORUS_ETCD_ENDPOINTS ?? ''
/** TORUS_ETCD_ENDPOINTS holds client URLs (`http://h:p,...`); torusctl takes etcd://h:p,... */
const hosts = endpoints
  .split(',')
  .map((h) => h.trim().replace(/^https?:\/\//, '').replace(/\/+$/, ''))
  .filter((h) => h !== '')
const ETCD = `etcd://${hosts.join(',')}`
const GiB = parseSize('1GiB')
const PEER_A = 'aaaaaaaa-0000-4000-8000-00000000000a'
const PEER_B = 'bbbbbbbb-0000-4000-8000-00000000000b'
const PEER_C = 'cccccccc-0000-4000-8000-00000000000c'

describe.skipIf(hosts.length === 0)('torusctl against etcd (built CLI)', () => {
  let home: string
  let prefix: string
  const stores: EtcdMetadataStore[] = []

  beforeAll(() => {
    if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`pnpm build\` first (scripts/test.sh does)`)
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'torusctl-e2e-'))
  })
  afterAll(() => {
    fs.rmSync(home, { recursive: true, force: true })
  })

  /** A fresh cluster prefix per test, removed afterwards (when etcdctl is at hand). */
  let prefixes: string[] = []
  function newPrefix(): string {
    prefix = `torusctl-test/${randomUUID()}/`
    prefixes.push(prefix)
    return prefix
  }
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()))
    if (hasCommand('etcdctl')) {
      for (const p of prefixes) {
        await run('etcdctl', ['--endpoints', endpoints, 'del', '--prefix', p], { env: { ...process.env, ETCDCTL_API: '3' }, timeoutMs: 10_000 })
      }
    }
    prefixes = []
  })

  function ctl(...args: string[]): Promise<RunResult> {
    return run(process.execPath, [MAIN, '-C', ETCD, '--etcd-prefix', prefix, ...args], {
      timeoutMs: 30_000,
      env: { ...process.env, HOME: home, TORUS_ENDPOINT: '', TORUS_ETCD_PREFIX: '', TORUS_CLUSTER_SECRET_FILE: '' },
    })
  }

  /** Where init keeps the secret of the current prefix by default. */
  function defaultSecretFile(): string {
    return path.join(home, '.torus', `${prefix.replaceAll('/', '_')}cluster-secret`)
  }

  async function ok(...args: string[]): Promise<string> {
    const r = await ctl(...args)
    expect(r.code, `torusctl ${args.join(' ')}: ${r.stderr}`).toBe(0)
    expect(r.stderr).toBe('')
    return r.stdout
  }

  async function json<T>(...args: string[]): Promise<T> {
    return JSON.parse(await ok('-o', 'json', ...args)) as T
  }

  /** What torusd will do: open the cluster's store and heartbeat under a lease. */
  async function store(): Promise<EtcdMetadataStore> {
    const s = new EtcdMetadataStore({ hosts, prefix, dialTimeoutMs: 3000 })
    await s.open()
    stores.push(s)
    return s
  }

  async function heartbeat(s: EtcdMetadataStore, id: string, fields: Partial<PeerInfo> = {}): Promise<string> {
    const lease = await s.grantLease(30_000)
    await s.putPeer(
      {
        id,
        address: `ws://10.0.0.${id.charCodeAt(0) - 96}:40000`,
        capacityBytes: 5 * GiB,
        usedBytes: 0,
        rebalanceBytesPerSec: 0,
        repairBytesPerSec: 0,
        ringVersion: 0,
        version: '0.1.0',
        updatedAt: new Date().toISOString(),
        ...fields,
      },
      lease,
    )
    return lease
  }

  it('init writes the cluster once; a second init changes nothing and exits 1', async () => {
    newPrefix()
    const secretFile = defaultSecretFile()
    expect(await ok('init')).toBe(
      'initialised cluster: block size 512.0 KiB, replication 2, ring ketama\n' +
        `cluster secret: ${secretFile} (give it to every torusd: --cluster-secret-file ${secretFile}, or TORUS_CLUSTER_SECRET_FILE)\n`,
    )
    const again = await ctl('init', '--replication', '3', '--ring-type', 'mod')
    expect(again.code).toBe(1)
    expect(again.stdout).toBe('')
    expect(again.stderr).toBe('torusctl: cluster already initialised (block size 512.0 KiB, replication 2, ring ketama); nothing changed\n')
    expect(await json('status')).toMatchObject({ cluster: { blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama' }, ring: { version: 0, members: 0 }, volumes: 0 })

    newPrefix()
    expect(await json('init', '--block-size', '1MiB', '--replication', '3', '--ring-type', 'mod')).toMatchObject({
      blockSizeBytes: 1024 * 1024,
      replication: 3,
      ringType: 'mod',
      secretFile: defaultSecretFile(),
    })
  })

  describe('cluster secret', () => {
    let dir: string
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(home, 'secrets-'))
    })

    async function storedCheck(): Promise<string | undefined> {
      return (await (await store()).getClusterConfig())?.secretCheck
    }

    it('init writes a new 0600 secret of 64 hex characters and stores a verifier of it, never the secret', async () => {
      newPrefix()
      const file = path.join(dir, 'new', 'cluster-secret')
      const out = await ok('init', '--secret-file', file)
      const secret = fs.readFileSync(file, 'utf8').trim()
      expect(secret).toMatch(/^[0-9a-f]{64}$/)
      expect(fs.statSync(file).mode & 0o777).toBe(0o600)
      expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700)
      expect(out).toContain(`cluster secret: ${file} (`)
      expect(out).not.toContain(secret)
      const check = await storedCheck()
      expect(verifySecretCheck(secret, check!)).toBe(true)
      expect(verifySecretCheck('0'.repeat(64), check!)).toBe(false)
      expect(await ok('-o', 'json', 'status')).not.toContain(secret)
    })

    it('init reuses an existing secret file, unchanged', async () => {
      newPrefix()
      const file = path.join(dir, 'existing')
      const secret = 'an operator-chosen secret of more than 32 characters'
      fs.writeFileSync(file, `${secret}\n`, { mode: 0o600 })
      expect(await json('init', '--secret-file', file)).toMatchObject({ secretFile: file })
      expect(fs.readFileSync(file, 'utf8')).toBe(`${secret}\n`)
      expect(verifySecretCheck(secret, (await storedCheck())!)).toBe(true)
    })

    it('a second init leaves the secret file untouched and creates none', async () => {
      newPrefix()
      const file = path.join(dir, 'second')
      await ok('init', '--secret-file', file)
      const before = fs.readFileSync(file, 'utf8')
      const { mtimeMs } = fs.statSync(file)
      const check = await storedCheck()
      for (const f of [file, path.join(dir, 'second-other')]) {
        const again = await ctl('init', '--secret-file', f)
        expect([again.code, again.stdout]).toEqual([1, ''])
        expect(again.stderr).toMatch(/^torusctl: cluster already initialised .*; nothing changed\n$/)
      }
      expect(fs.readFileSync(file, 'utf8')).toBe(before)
      expect(fs.statSync(file).mtimeMs).toBe(mtimeMs)
      expect(fs.existsSync(path.join(dir, 'second-other'))).toBe(false)
      expect(fs.readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([])
      expect(await storedCheck()).toBe(check)
    })

    it('refuses a secret file shorter than 32 characters (exit 2, nothing written)', async () => {
      newPrefix()
      const file = path.join(dir, 'short')
      fs.writeFileSync(file, 'too short\n', { mode: 0o600 })
      const r = await ctl('init', '--secret-file', file)
      expect([r.code, r.stdout, r.stderr]).toEqual([
        2,
        '',
        `torusctl: --secret-file: ${file} holds 9 characters; a cluster secret needs at least 32 (remove the file to have init generate one)\n`,
      ])
      expect(await (await store()).getClusterConfig()).toBeUndefined()
    })

    it('takes TORUS_CLUSTER_SECRET_FILE when --secret-file is absent', async () => {
      newPrefix()
      const file = path.join(dir, 'from-env')
      const r = await run(process.execPath, [MAIN, '-C', ETCD, '--etcd-prefix', prefix, '-o', 'json', 'init'], {
        timeoutMs: 30_000,
        env: { ...process.env, HOME: home, TORUS_ENDPOINT: '', TORUS_ETCD_PREFIX: '', TORUS_CLUSTER_SECRET_FILE: file },
      })
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({ secretFile: file })
      expect(verifySecretCheck(fs.readFileSync(file, 'utf8').trim(), (await storedCheck())!)).toBe(true)
    })
  })

  it('creates, lists and deletes volumes, and refuses to delete a locked one', async () => {
    newPrefix()
    await ok('init')
    // No peer is in the ring yet: the volume exists but can store nothing, and the output says so.
    expect(await ok('volume', 'create-block', 'pad', '1GiB')).toBe(
      'created block volume pad (1.0 GiB)\nnote: the ring has no members yet, so pad cannot store data: add peers with `torusctl peer add --all-peers` (or start torusd with --auto-join)\n',
    )
    expect(await ok('volume', 'list')).toBe('VOLUME NAME  SIZE     TYPE\npad          1.0 GiB  block\n')
    expect(await json('volume', 'list')).toEqual([expect.objectContaining({ name: 'pad', sizeBytes: GiB, type: 'block', blockSizeBytes: 512 * 1024, replication: 2 })])

    const s = await store()
    const lease = await s.grantLease(30_000)
    await s.lockVolume('pad', 'torusd@node-a', lease)
    const locked = await ctl('volume', 'delete', 'pad')
    expect(locked.code).toBe(1)
    expect(locked.stderr).toBe('torusctl: volume pad is locked by torusd@node-a\n')
    await s.revokeLease(lease)

    expect(await ok('volume', 'delete', 'pad')).toBe('deleted volume pad\n')
    expect(await json('volume', 'list')).toEqual([])
    const missing = await ctl('volume', 'delete', 'pad')
    expect([missing.code, missing.stderr]).toEqual([1, 'torusctl: volume pad does not exist\n'])
  })

  it('list-peers shows registered peers, adds them with peer add, and shows DOWN after a lease ends', async () => {
    newPrefix()
    await ok('init')
    const s = await store()
    await heartbeat(s, PEER_A, { usedBytes: GiB })
    const leaseB = await heartbeat(s, PEER_B)

    let out = (await ok('list-peers')).trimEnd().split('\n')
    expect(out[0]!.split(/\s{2,}/)).toEqual(['ADDRESS', 'UUID', 'SIZE', 'USED', 'MEMBER', 'UPDATED', 'REB/REP DATA'])
    expect(out[1]!.split(/\s{2,}/)).toEqual(['ws://10.0.0.1:40000', PEER_A, '5.0 GiB', '1.0 GiB', 'Avail', expect.stringMatching(/^(now|\d+ seconds? ago)$/), '0 B/s / 0 B/s'])
    expect(out[2]!.split(/\s{2,}/)[4]).toBe('Avail')
    expect(out[3]).toBe('Balanced: false Usage: 10.00%')

    // A volume created on the empty ring holds no data, so adding peers needs no --force.
    expect(await ok('volume', 'create-block', 'early', '1GiB')).toMatch(/^created block volume early .*\nnote: the ring has no members yet/)
    expect(await ok('peer', 'add', '--all-peers')).toMatch(/ring version 0 -> 1\n$/)
    expect(await ok('volume', 'create-block', 'later', '1GiB')).toBe('created block volume later (1.0 GiB)\n')
    const refused = await ctl('peer', 'remove', PEER_B)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/rebalance\) is not built yet/)
    // Peers catch up with the new ring version (torusd does this when it sees the ring change).
    await heartbeat(s, PEER_A, { usedBytes: GiB, ringVersion: 1 })
    await s.putPeer({ ...(await s.listPeers()).find((p) => p.id === PEER_B)!, ringVersion: 1 }, leaseB)
    out = (await ok('list-peers')).trimEnd().split('\n')
    expect(out.slice(1, 3).map((l) => l.split(/\s{2,}/)[4])).toEqual(['OK', 'OK'])
    expect(out[3]).toBe('Balanced: true Usage: 10.00%')

    await s.revokeLease(leaseB)
    const peers = await json<{ peers: Array<{ id: string; member: string; alive: boolean }>; balanced: boolean; usagePercent: number }>('list-peers')
    expect(peers.peers.map((p) => [p.id, p.member, p.alive])).toEqual([
      [PEER_A, 'OK', true],
      [PEER_B, 'DOWN', false],
    ])
    expect(peers).toMatchObject({ balanced: false, usagePercent: 20 })
  })

  it('peer add/remove and ring get/set-type/set-replication change the ring by compare-and-swap', async () => {
    newPrefix()
    await ok('init')
    const s = await store()
    await heartbeat(s, PEER_A)
    await heartbeat(s, PEER_B, { capacityBytes: 2 * GiB })

    expect(await ok('peer', 'add', PEER_A, PEER_B)).toBe(
      `adding peer ${PEER_A} (weight ${5 * GiB}: 5.0 GiB capacity)\nadding peer ${PEER_B} (weight ${2 * GiB}: 2.0 GiB capacity)\nring version 0 -> 1\n`,
    )
    expect(await ok('peer', 'add', PEER_A)).toBe(`peer ${PEER_A} is already a ring member\nnothing changed; the ring stays at version 1\n`)
    const unknown = await ctl('peer', 'add', PEER_C)
    expect([unknown.code, unknown.stderr]).toEqual([1, `torusctl: unknown peer ${PEER_C}: never reported to this cluster (see torusctl list-peers)\n`])
    const badUuid = await ctl('peer', 'add', 'peer-one')
    expect(badUuid.code).toBe(2)
    expect(badUuid.stderr).toMatch(/^torusctl: invalid peer UUID "peer-one"/)

    const get = (await ok('ring', 'get')).split('\n')
    expect(get.slice(0, 3)).toEqual(['Version: 1', 'Type: ketama', 'Replication: 2'])
    expect(get[3]!.split(/\s{2,}/)).toEqual(['UUID', 'WEIGHT', 'ADDRESS', 'STATE'])
    expect(get[4]!.split(/\s{2,}/)).toEqual([PEER_A, '5.0 GiB', 'ws://10.0.0.1:40000', 'OK'])

    expect(await ok('ring', 'set-type', 'mod')).toBe('type ketama -> mod\nring version 1 -> 2\n')
    expect(await ok('ring', 'set-replication', '3')).toMatch(/^replication 2 -> 3\n.*\nring version 2 -> 3\n$/)
    const single = await ctl('ring', 'set-type', 'single')
    expect(single.code).toBe(1)
    expect(single.stderr).toMatch(/^torusctl: a single ring holds one peer and this ring has 2/)
    const tooMany = await ctl('ring', 'set-replication', '17')
    expect(tooMany.code).toBe(2)

    expect(await json('peer', 'remove', PEER_B)).toMatchObject({ changed: true, previousVersion: 3, removed: [PEER_B], ring: { version: 4, members: [{ peer: PEER_A }] } })
    expect(await json('ring', 'get')).toEqual({ version: 4, type: 'mod', replication: 3, members: [{ peer: PEER_A, weight: 5 * GiB, address: 'ws://10.0.0.1:40000', state: 'OK' }] })
    expect(await s.getRing()).toMatchObject({ version: 4, type: 'mod', replication: 3 })
  })

  it('keeps clusters apart by prefix, and reads TORUS_ETCD_PREFIX', async () => {
    const first = newPrefix()
    await ok('init', '--replication', '1')
    newPrefix()
    await ok('init')
    const r = await run(process.execPath, [MAIN, '-C', ETCD, '-o', 'json', 'status'], { env: { ...process.env, HOME: home, TORUS_ETCD_PREFIX: first }, timeoutMs: 30_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ cluster: { replication: 1 } })
  })

  it('names etcd and the prefix when no cluster is there, for every command, volume list included', async () => {
    newPrefix() // never initialised
    const hint = `no Torus cluster in etcd ${hosts.join(',')} under prefix ${prefix}; run \`torusctl -C ${hosts.join(',')} --etcd-prefix ${prefix} init\` first, or check -C and --etcd-prefix`
    for (const args of [['status'], ['volume', 'list'], ['list-peers'], ['ring', 'get'], ['volume', 'create-block', 'pad', '1GiB'], ['volume', 'status', 'pad']]) {
      const r = await ctl(...args)
      expect(r.code, args.join(' ')).toBe(1)
      expect(r.stderr, args.join(' ')).toBe(`torusctl: ${hint}\n`)
      expect(r.stdout, args.join(' ')).toBe('')
    }
  })

  it('says clearly when etcd cannot be reached (exit 1, within seconds)', async () => {
    newPrefix()
    const port = await freePort()
    const started = Date.now()
    const r = await run(process.execPath, [MAIN, '-C', `127.0.0.1:${port}`, 'volume', 'list'], { env: { ...process.env, HOME: home }, timeoutMs: 30_000 })
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`torusctl: cannot reach etcd at 127.0.0.1:${port} (connection refused); is etcd running? Set -C/--endpoint or TORUS_ENDPOINT\n`)
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('treats bad endpoints and a prefix for a torusd as usage errors (exit 2)', async () => {
    for (const [endpoint, message] of [
      ['127.0.0.1:99999', /port "99999"/],
      ['etcd://', /empty host entry/],
      ['http://127.0.0.1:2379', /unknown scheme http:\/\//],
    ] as const) {
      const r = await run(process.execPath, [MAIN, '-C', endpoint, 'volume', 'list'], { env: { ...process.env, HOME: home }, timeoutMs: 30_000 })
      expect(r.code, endpoint).toBe(2)
      expect(r.stderr).toMatch(new RegExp(`^torusctl: invalid endpoint .*${message.source}`))
    }
    const r = await run(process.execPath, [MAIN, '-C', 'torus://127.0.0.1:1', '--etcd-prefix', 'x/', 'volume', 'list'], { env: { ...process.env, HOME: home }, timeoutMs: 30_000 })
    expect([r.code, r.stderr]).toEqual([2, 'torusctl: --etcd-prefix applies to etcd endpoints only; torus://127.0.0.1:1 is a torusd\n'])
    const s = await run(process.execPath, [MAIN, '-C', 'torus://127.0.0.1:1', 'init', '--secret-file', path.join(home, 'x')], { env: { ...process.env, HOME: home }, timeoutMs: 30_000 })
    expect([s.code, s.stderr]).toEqual([2, 'torusctl: --secret-file applies to etcd endpoints only; torus://127.0.0.1:1 is a single torusd, which has no peers and needs no secret\n'])
    expect(fs.existsSync(path.join(home, 'x'))).toBe(false)
  })
})
