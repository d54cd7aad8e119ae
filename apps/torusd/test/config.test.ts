// torusd's configuration: flags over the original image's env vars over defaults, and every
// bad value is a ConfigError that names the flag (torusd exits 2 with it).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import yargs from 'yargs'
import { repeatedOption, type DeclaredOptions } from '@torus/core'
import { ConfigError, hostPort, resolveConfig } from '../src/config.js'

describe('resolveConfig', () => {
  it('uses defaults when nothing is given', () => {
    const c = resolveConfig({}, { HOME: '/home/x' })
    expect(c).toMatchObject({
      sizeBytes: 2 * 1024 ** 3,
      http: { host: '127.0.0.1', port: 4321 },
      peerAddress: 'ws://127.0.0.1:40000',
      peerListen: { host: '127.0.0.1', port: 40000 },
      nbd: { host: '127.0.0.1', port: 10809 },
      nbdMaxConnections: 64,
      blockSizeBytes: 512 * 1024,
      leaseTtlMs: 10_000,
      logLevel: 'info',
      etcd: undefined,
      etcdPrefix: 'torus/',
      autoJoin: false,
      debugInit: false,
      lockGraceMs: 60_000,
      repairRateBytes: 64 * 1024 ** 2,
    })
  })

  it('reads the repair rate as a size per second, 0 for off', () => {
    expect(resolveConfig({ repairRate: '8MiB/s' }, {}).repairRateBytes).toBe(8 * 1024 ** 2)
    expect(resolveConfig({}, { TORUS_REPAIR_RATE: '1GiB' }).repairRateBytes).toBe(1024 ** 3)
    expect(resolveConfig({ repairRate: '0' }, { TORUS_REPAIR_RATE: '1GiB' }).repairRateBytes).toBe(0)
    expect(resolveConfig({}, {}).idleRepairIntervalMs).toBe(10_000)
    expect(resolveConfig({}, { TORUS_IDLE_REPAIR_INTERVAL: '0' }).idleRepairIntervalMs).toBe(0)
    expect(resolveConfig({ idleRepairInterval: '2.5' }, { TORUS_IDLE_REPAIR_INTERVAL: '0' }).idleRepairIntervalMs).toBe(2500)
  })

  it('reads the cluster settings: etcd endpoints, prefix, AUTO_JOIN, DEBUG_INIT, lock grace', () => {
    const env = { AUTO_JOIN: '1', DEBUG_INIT: 'true', TORUS_ETCD_PREFIX: 'prod', TORUS_LOCK_GRACE: '0' }
    expect(resolveConfig({ etcd: 'http://10.0.0.1:2379,10.0.0.2:2379/' }, env)).toMatchObject({
      etcd: ['10.0.0.1:2379', '10.0.0.2:2379'],
      etcdPrefix: 'prod/',
      autoJoin: true,
      debugInit: true,
      lockGraceMs: 0,
    })
    expect(resolveConfig({ autoJoin: false, debugInit: false, etcdPrefix: 'a/b/', lockGrace: '2.5' }, env)).toMatchObject({
      autoJoin: false,
      debugInit: false,
      etcdPrefix: 'a/b/',
      lockGraceMs: 2500,
    })
    expect(resolveConfig({}, { ETCD_HOST: '[::1]' }).etcd).toEqual(['[::1]:2379'])
  })

  it('reads the original env vars, and flags win over them', () => {
    const env = { STORAGE_SIZE: '5GiB', LISTEN_HOST: '0.0.0.0', LISTEN_HTTP_PORT: '4000', PEER_ADDRESS: 'ws://10.1.2.3:41000', ETCD_HOST: 'etcd', ETCD_PORT: '2389' }
    const c = resolveConfig({}, env)
    expect(c).toMatchObject({ sizeBytes: 5 * 1024 ** 3, http: { host: '0.0.0.0', port: 4000 }, peerListen: { host: '10.1.2.3', port: 41000 }, etcd: ['etcd:2389'] })
    expect(resolveConfig({ size: '3GiB', port: '5000' }, env)).toMatchObject({ sizeBytes: 3 * 1024 ** 3, http: { port: 5000 } })
  })

  it('turns NBD off with "off"', () => {
    expect(resolveConfig({ nbdAddress: 'off' }, {}).nbd).toBeUndefined()
  })

  it('rejects bad values with the flag in the message', () => {
    const cases: Array<[Parameters<typeof resolveConfig>[0], NodeJS.ProcessEnv, RegExp]> = [
      [{ size: 'abc' }, {}, /--size/],
      [{ size: '1MiB' }, {}, /too small/],
      [{}, { STORAGE_SIZE: '-1' }, /STORAGE_SIZE/],
      [{ port: '70000' }, {}, /--port/],
      [{}, { LISTEN_HTTP_PORT: 'x' }, /LISTEN_HTTP_PORT/],
      [{ peerAddress: 'http://h:1' }, {}, /--peer-address/],
      [{ peerAddress: 'not a url' }, {}, /--peer-address/],
      [{ nbdAddress: 'nowhere' }, {}, /--nbd-address/],
      [{ blockSize: '3KiB' }, {}, /--block-size/],
      [{ leaseTtl: '0' }, {}, /--lease-ttl/],
      [{ logLevel: 'loud' }, {}, /--log-level/],
      [{ etcd: 'etcd' }, {}, /--etcd/],
      [{ etcd: '127.0.0.1:2379,' }, {}, /--etcd/],
      [{ etcd: '127.0.0.1:0' }, {}, /--etcd/],
      [{}, { ETCD_HOST: 'etcd', ETCD_PORT: 'x' }, /ETCD_PORT/],
      [{}, { ETCD_PORT: '2379' }, /ETCD_PORT="?2379"? is set without ETCD_HOST/],
      [{ etcdPrefix: 'a b' }, {}, /--etcd-prefix/],
      [{ lockGrace: '-1' }, {}, /--lock-grace/],
      [{}, { TORUS_LOCK_GRACE: 'soon' }, /TORUS_LOCK_GRACE/],
      [{ repairRate: 'fast' }, {}, /--repair-rate/],
      [{}, { TORUS_REPAIR_RATE: '-5MiB' }, /TORUS_REPAIR_RATE/],
      [{ idleRepairInterval: 'often' }, {}, /--idle-repair-interval/],
      [{}, { TORUS_IDLE_REPAIR_INTERVAL: '-1' }, /TORUS_IDLE_REPAIR_INTERVAL/],
      [{ nbdMaxConnections: '0' }, {}, /--nbd-max-connections/],
      [{ nbdMaxConnections: '1.5' }, {}, /--nbd-max-connections/],
      [{}, { TORUS_NBD_MAX_CONNECTIONS: 'lots' }, /TORUS_NBD_MAX_CONNECTIONS/],
    ]
    for (const [flags, env, message] of cases) {
      expect(() => resolveConfig(flags, env), JSON.stringify(flags) + JSON.stringify(env)).toThrow(ConfigError)
      expect(() => resolveConfig(flags, env)).toThrow(message)
    }
  })
})

describe('the cluster secret', () => {
  const secret = 'a'.repeat(64)
  it('reads it from --cluster-secret-file (trimmed), over TORUS_CLUSTER_SECRET_FILE, over TORUS_CLUSTER_SECRET', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torusd-config-'))
    try {
      const file = path.join(dir, 'secret')
      const other = path.join(dir, 'other')
      fs.writeFileSync(file, `${secret}\n`)
      fs.writeFileSync(other, 'b'.repeat(64))
      const fromFlag = resolveConfig({ clusterSecretFile: file }, { TORUS_CLUSTER_SECRET_FILE: other, TORUS_CLUSTER_SECRET: 'c'.repeat(64) }).clusterSecret
      expect(Buffer.from(fromFlag!.bytes).toString()).toBe(secret)
      expect(fromFlag!.source).toBe(file)
      expect(Buffer.from(resolveConfig({}, { TORUS_CLUSTER_SECRET_FILE: other }).clusterSecret!.bytes).toString()).toBe('b'.repeat(64))
      const fromEnv = resolveConfig({}, { TORUS_CLUSTER_SECRET: 'c'.repeat(64) }).clusterSecret
      expect(fromEnv).toMatchObject({ source: 'TORUS_CLUSTER_SECRET' })
      expect(resolveConfig({}, {}).clusterSecret).toBeUndefined()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a missing file and a short secret, naming where it came from', () => {
    expect(() => resolveConfig({ clusterSecretFile: '/nonexistent/secret' }, {})).toThrow(/--cluster-secret-file: cannot read "\/nonexistent\/secret"/)
    expect(() => resolveConfig({}, { TORUS_CLUSTER_SECRET: 'short' })).toThrow(ConfigError)
    expect(() => resolveConfig({}, { TORUS_CLUSTER_SECRET: 'short' })).toThrow(/TORUS_CLUSTER_SECRET is 5 characters; it must be at least 32/)
  })
})

describe('hostPort', () => {
  it('parses HOST:PORT, [v6]:PORT and :PORT', () => {
    expect(hostPort('x', '0.0.0.0:10809')).toEqual({ host: '0.0.0.0', port: 10809 })
    expect(hostPort('x', '[::1]:10809')).toEqual({ host: '::1', port: 10809 })
    expect(hostPort('x', ':10809')).toEqual({ host: '127.0.0.1', port: 10809 })
    expect(() => hostPort('x', '10809')).toThrow(ConfigError)
  })
})

describe('repeatedOption', () => {
  /** Parses args as main.ts declares options (single strings, one alias, one array) and returns what the check saw. */
  async function check(args: string[]): Promise<string | undefined> {
    let seen: string | undefined
    await yargs(args)
      .option('nbd-address', { type: 'string' })
      .option('size', { alias: 's', type: 'string' })
      .option('tag', { type: 'string', array: true })
      .option('auto-join', { type: 'boolean' })
      .check((argv, declared) => {
        seen = repeatedOption(argv, declared as unknown as DeclaredOptions)
        return true
      })
      .parseAsync()
    return seen
  }

  it('names a single-valued option given twice, instead of letting yargs join the values', async () => {
    expect(await check(['--nbd-address', '127.0.0.1:18811', '--nbd-address', 'nope'])).toBe('--nbd-address given more than once')
    expect(await check(['--nbd-address=127.0.0.1:1', '--nbd-address=127.0.0.1:1'])).toBe('--nbd-address given more than once')
    expect(await check(['-s', '1GiB', '--size', '2GiB'])).toBe('-s/--size given more than once')
  })

  it('accepts each option once, an array option many times, and a repeated boolean', async () => {
    expect(await check(['--nbd-address', '127.0.0.1:1', '--size', '1GiB'])).toBeUndefined()
    expect(await check(['--tag', 'a', '--tag', 'b'])).toBeUndefined()
    expect(await check(['--auto-join', '--auto-join'])).toBeUndefined()
    expect(await check([])).toBeUndefined()
  })
})
