// Goal: `torusblk nbdserver` turns flags and env vars into a config, or refuses with a message that
// names the flag and the bad value. Method: resolveNbdServerConfig with explicit env objects.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseEtcdEndpoint, resolveNbdServerConfig, UsageError } from '../src/config.js'

const SECRET = 'a1'.repeat(32)
let dir: string
let secretFile: string

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torusblk-config-'))
  secretFile = path.join(dir, 'cluster-secret')
  fs.writeFileSync(secretFile, `${SECRET}\n`)
})

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true })
})

function usageError(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError)
    return (err as Error).message
  }
  throw new Error('expected a UsageError')
}

describe('resolveNbdServerConfig', () => {
  it('applies the defaults', () => {
    const c = resolveNbdServerConfig({ endpoint: '10.0.0.1:2379', clusterSecretFile: secretFile }, {})
    expect(c).toMatchObject({ etcd: ['10.0.0.1:2379'], etcdPrefix: 'torus/', nbd: { host: '127.0.0.1', port: 10809 }, nbdMaxConnections: 64, leaseTtlMs: 10_000, lockGraceMs: 60_000, logLevel: 'info' })
    expect(new TextDecoder().decode(c.clusterSecret.bytes)).toBe(SECRET)
    expect(c.clusterSecret.source).toBe(secretFile)
  })

  it('reads the env vars torusd and torusctl read; flags win', () => {
    const env = {
      TORUS_ENDPOINT: 'etcd://a:2379,b:2380/',
      TORUS_ETCD_PREFIX: 'prod',
      TORUS_NBD_ADDRESS: '0.0.0.0:11000',
      TORUS_CLUSTER_SECRET: SECRET,
      TORUS_LEASE_TTL: '5',
      TORUS_LOCK_GRACE: '0',
      TORUS_LOG_LEVEL: 'debug',
      TORUS_NBD_MAX_CONNECTIONS: '200',
    }
    expect(resolveNbdServerConfig({}, env)).toMatchObject({
      nbdMaxConnections: 200,
      etcd: ['a:2379', 'b:2380'],
      etcdPrefix: 'prod/',
      nbd: { host: '0.0.0.0', port: 11000 },
      clusterSecret: { source: 'TORUS_CLUSTER_SECRET' },
      leaseTtlMs: 5000,
      lockGraceMs: 0,
      logLevel: 'debug',
    })
    const c = resolveNbdServerConfig({ endpoint: '[::1]:2379', nbdAddress: ':12000', clusterSecretFile: secretFile, leaseTtl: '2' }, { ...env, TORUS_CLUSTER_SECRET_FILE: '/nope' })
    expect(c).toMatchObject({ etcd: ['[::1]:2379'], nbd: { host: '127.0.0.1', port: 12000 }, clusterSecret: { source: secretFile }, leaseTtlMs: 2000 })
  })

  it('requires an endpoint and a secret, and says how to give them', () => {
    expect(usageError(() => resolveNbdServerConfig({ clusterSecretFile: secretFile }, {}))).toMatch(/needs the cluster's etcd: pass -C\/--endpoint .*TORUS_ENDPOINT/)
    expect(usageError(() => resolveNbdServerConfig({ endpoint: 'h:2379' }, {}))).toMatch(/needs the cluster secret .*--cluster-secret-file .*TORUS_CLUSTER_SECRET_FILE.*TORUS_CLUSTER_SECRET/)
    expect(usageError(() => resolveNbdServerConfig({ endpoint: 'h:2379', clusterSecretFile: path.join(dir, 'missing') }, {}))).toMatch(/--cluster-secret-file: cannot read/)
    expect(usageError(() => resolveNbdServerConfig({ endpoint: 'h:2379' }, { TORUS_CLUSTER_SECRET: 'short' }))).toMatch(/is 5 characters; it must be at least 32/)
    expect(usageError(() => resolveNbdServerConfig({ endpoint: 'h:2379', clusterSecretFile: secretFile, nbdMaxConnections: '0' }, {}))).toMatch(/--nbd-max-connections\/TORUS_NBD_MAX_CONNECTIONS must be a whole number from 1 to 65536, got "0"/)
    expect(usageError(() => resolveNbdServerConfig({ endpoint: 'h:2379', clusterSecretFile: '/dev/zero' }, {}))).toMatch(/--cluster-secret-file: cannot read "\/dev\/zero": it is longer than 4096 bytes/)
  })

  it('refuses bad values, naming the flag', () => {
    const ok = { endpoint: 'h:2379', clusterSecretFile: secretFile }
    expect(usageError(() => resolveNbdServerConfig({ ...ok, nbdAddress: 'localhost' }, {}))).toMatch(/--nbd-address.*expected HOST:PORT, got "localhost"/)
    expect(usageError(() => resolveNbdServerConfig({ ...ok, nbdAddress: 'h:99999' }, {}))).toMatch(/--nbd-address.*invalid port/)
    expect(usageError(() => resolveNbdServerConfig({ ...ok, leaseTtl: '0' }, {}))).toMatch(/--lease-ttl.*1 to 3600/)
    expect(usageError(() => resolveNbdServerConfig({ ...ok, leaseTtl: 'x' }, {}))).toMatch(/--lease-ttl/)
    expect(usageError(() => resolveNbdServerConfig({ ...ok, lockGrace: '-1' }, {}))).toMatch(/--lock-grace.*0 to 86400/)
    expect(usageError(() => resolveNbdServerConfig({ ...ok, logLevel: 'loud' }, {}))).toMatch(/--log-level/)
    expect(usageError(() => resolveNbdServerConfig({ ...ok, repairRate: 'fast' }, {}))).toMatch(/--repair-rate/)
    expect(resolveNbdServerConfig({ ...ok, repairRate: '16MiB/s' }, {}).repairRateBytes).toBe(16 * 1024 ** 2)
    expect(resolveNbdServerConfig({ ...ok }, { TORUS_REPAIR_RATE: '0' }).repairRateBytes).toBe(0)
    expect(resolveNbdServerConfig({ ...ok }, {}).repairRateBytes).toBe(64 * 1024 ** 2)
    expect(usageError(() => resolveNbdServerConfig({ ...ok, etcdPrefix: '/abs' }, {}))).toMatch(/--etcd-prefix/)
  })
})

describe('parseEtcdEndpoint', () => {
  it('accepts HOST:PORT lists with or without etcd://', () => {
    expect(parseEtcdEndpoint('10.0.0.1:2379')).toEqual(['10.0.0.1:2379'])
    expect(parseEtcdEndpoint(' etcd://a.example:2379, b:2380 ')).toEqual(['a.example:2379', 'b:2380'])
    expect(parseEtcdEndpoint('ETCD://[fe80::1]:2379')).toEqual(['[fe80::1]:2379'])
  })

  it('refuses anything else with a reason', () => {
    expect(usageError(() => parseEtcdEndpoint(''))).toMatch(/empty/)
    expect(usageError(() => parseEtcdEndpoint('localhost'))).toMatch(/"localhost" is not HOST:PORT/)
    expect(usageError(() => parseEtcdEndpoint(':2379'))).toMatch(/is not HOST:PORT/)
    expect(usageError(() => parseEtcdEndpoint('a:2379,'))).toMatch(/empty host entry/)
    expect(usageError(() => parseEtcdEndpoint('a:0'))).toMatch(/port 0/)
    expect(usageError(() => parseEtcdEndpoint('http://a:2379'))).toMatch(/unknown scheme http:\/\//)
    expect(usageError(() => parseEtcdEndpoint('torus://127.0.0.1:40000'))).toMatch(/torus:\/\/ names a single torusd .* needs a cluster in etcd/)
  })
})
