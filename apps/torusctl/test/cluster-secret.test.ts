// The cluster secret `init` keeps for an etcd cluster: where it lives by default, how an existing
// file is read, and that a new one reaches its path only after the config is written. Runs
// `init` over a MemoryMetadataStore in a temporary directory; the real-etcd path is in
// etcd.e2e.test.ts.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { TorusError } from '@torus/core'
import { verifySecretCheck } from '@torus/metadata'
import type { ClusterBackend } from '../src/backend.js'
import { prepareSecret, resolveSecretFile } from '../src/cluster-secret.js'
import { init } from '../src/commands/init.js'
import { UsageError } from '../src/endpoint.js'
import { MemoryCluster } from './helpers/memory-cluster.js'

let dir: string
let c: MemoryCluster
beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torusctl-secret-'))
  c = await MemoryCluster.create({ init: false })
})
afterEach(async () => {
  await c.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

const mode = (file: string): number => fs.statSync(file).mode & 0o777

describe('resolveSecretFile', () => {
  it('defaults to ~/.torus/<prefix with / as _>cluster-secret', () => {
    expect(resolveSecretFile(undefined, 'torus/', { HOME: '/home/u' })).toBe('/home/u/.torus/torus_cluster-secret')
    expect(resolveSecretFile(undefined, 'a/b/', { HOME: '/home/u' })).toBe('/home/u/.torus/a_b_cluster-secret')
  })

  it('takes --secret-file, then TORUS_CLUSTER_SECRET_FILE, as absolute paths', () => {
    const env = { HOME: '/home/u', TORUS_CLUSTER_SECRET_FILE: '/etc/torus/env-secret' }
    expect(resolveSecretFile('/etc/torus/flag-secret', 'torus/', env)).toBe('/etc/torus/flag-secret')
    expect(resolveSecretFile(undefined, 'torus/', env)).toBe('/etc/torus/env-secret')
    expect(resolveSecretFile('rel/secret', 'torus/', env)).toBe(path.resolve('rel/secret'))
    expect(resolveSecretFile(undefined, 'torus/', { HOME: '/home/u', TORUS_CLUSTER_SECRET_FILE: ' ' })).toBe('/home/u/.torus/torus_cluster-secret')
  })

  it('refuses an empty --secret-file', () => {
    expect(() => resolveSecretFile('', 'torus/', {})).toThrow(UsageError)
  })
})

describe('init with a secret file', () => {
  it('generates 64 hex characters into a new 0600 file (parents 0700) and stores a verifier', async () => {
    const file = path.join(dir, 'new', 'deeper', 'secret')
    const out = await init(c.backend, { secretFile: file }, c.ctx())
    expect(out).toBe(
      'initialised cluster: block size 512.0 KiB, replication 2, ring ketama\n' +
        `cluster secret: ${file} (give it to every torusd: --cluster-secret-file ${file}, or TORUS_CLUSTER_SECRET_FILE)\n`,
    )
    const secret = fs.readFileSync(file, 'utf8').trim()
    expect(secret).toMatch(/^[0-9a-f]{64}$/)
    expect(out).not.toContain(secret)
    expect(mode(file)).toBe(0o600)
    expect(mode(path.join(dir, 'new'))).toBe(0o700)
    expect(fs.readdirSync(path.dirname(file))).toEqual(['secret'])
    const config = await c.store.getClusterConfig()
    expect(verifySecretCheck(secret, config!.secretCheck!)).toBe(true)
  })

  it('reuses an existing file, trimming surrounding whitespace as torusd does', async () => {
    const file = path.join(dir, 'secret')
    const secret = 'x'.repeat(40)
    fs.writeFileSync(file, `${secret}\n\n`, { mode: 0o640 })
    const json = JSON.parse(await init(c.backend, { secretFile: file }, c.ctx('json'))) as Record<string, unknown>
    expect(json).toMatchObject({ secretFile: file, secretCheck: expect.any(String) })
    expect(JSON.stringify(json)).not.toContain(secret)
    expect(fs.readFileSync(file, 'utf8')).toBe(`${secret}\n\n`)
    expect(mode(file)).toBe(0o640)
    expect(verifySecretCheck(secret, (await c.store.getClusterConfig())!.secretCheck!)).toBe(true)
  })

  it('refuses a file shorter than 32 characters before writing anything', async () => {
    const file = path.join(dir, 'secret')
    fs.writeFileSync(file, `${'y'.repeat(31)}  \n`)
    const err = await init(c.backend, { secretFile: file }, c.ctx()).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UsageError)
    expect((err as Error).message).toBe(`--secret-file: ${file} holds 31 characters; a cluster secret needs at least 32 (remove the file to have init generate one)`)
    expect(await c.store.getClusterConfig()).toBeUndefined()
  })

  it('a second init creates no secret file and leaves an existing one untouched', async () => {
    const first = path.join(dir, 'first')
    await init(c.backend, { secretFile: first }, c.ctx())
    const before = fs.readFileSync(first, 'utf8')
    const check = (await c.store.getClusterConfig())!.secretCheck
    await expect(init(c.backend, { secretFile: first }, c.ctx())).rejects.toMatchObject({ code: 'TORUS_ALREADY_EXISTS' })
    const other = path.join(dir, 'other')
    await expect(init(c.backend, { secretFile: other }, c.ctx())).rejects.toMatchObject({ code: 'TORUS_ALREADY_EXISTS' })
    expect(fs.readFileSync(first, 'utf8')).toBe(before)
    expect(fs.readdirSync(dir)).toEqual(['first'])
    expect((await c.store.getClusterConfig())!.secretCheck).toBe(check)
  })

  it('refuses bad options before it generates a secret', async () => {
    const file = path.join(dir, 'secret')
    await expect(init(c.backend, { replication: 0, secretFile: file }, c.ctx())).rejects.toThrow(UsageError)
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('stores no verifier without a secret file (a single torusd)', async () => {
    await init(c.backend, {}, c.ctx())
    expect((await c.store.getClusterConfig())!.secretCheck).toBeUndefined()
  })
})

describe('init when the write fails ambiguously', () => {
  /** The memory cluster's backend, with initCluster and getCluster replaced. */
  function flaky(fields: Partial<ClusterBackend>): ClusterBackend {
    return Object.assign(Object.create(c.backend) as ClusterBackend, fields)
  }
  const timeout = () => new TorusError('TORUS_TIMEOUT', 'etcd call timed out')

  it('keeps the new secret when the config was stored after all (a timeout after the commit)', async () => {
    const file = path.join(dir, 'secret')
    const backend = flaky({
      initCluster: async (r) => {
        await c.backend.initCluster(r)
        throw timeout()
      },
      getCluster: () => c.backend.getCluster(),
    })
    expect(await init(backend, { secretFile: file }, c.ctx())).toMatch(/^initialised cluster: .*\ncluster secret: /)
    expect(verifySecretCheck(fs.readFileSync(file, 'utf8').trim(), (await c.store.getClusterConfig())!.secretCheck!)).toBe(true)
    expect(fs.readdirSync(dir)).toEqual(['secret'])
  })

  it('drops the new secret when the config was not stored', async () => {
    const backend = flaky({ initCluster: () => Promise.reject(timeout()), getCluster: () => c.backend.getCluster() })
    await expect(init(backend, { secretFile: path.join(dir, 'secret') }, c.ctx())).rejects.toMatchObject({ code: 'TORUS_TIMEOUT', message: 'etcd call timed out' })
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('keeps the new secret in its temp file, and says so, when the config cannot be read back', async () => {
    const backend = flaky({ initCluster: () => Promise.reject(timeout()), getCluster: () => Promise.reject(timeout()) })
    const err = (await init(backend, { secretFile: path.join(dir, 'secret') }, c.ctx()).catch((e: unknown) => e)) as TorusError
    expect(err.code).toBe('TORUS_TIMEOUT')
    const [tmp] = fs.readdirSync(dir)
    expect(tmp).toMatch(/^\.secret\.[0-9a-f]+\.tmp$/)
    expect(err.message).toBe(`etcd call timed out; if the cluster was initialised nonetheless, its secret is in ${path.join(dir, tmp!)}: move it to ${path.join(dir, 'secret')}`)
  })
})

describe('prepareSecret', () => {
  it('never overwrites a file that appeared before install, and says where the secret is', () => {
    const file = path.join(dir, 'secret')
    const prepared = prepareSecret(file)
    fs.writeFileSync(file, 'someone else')
    let message = ''
    try {
      prepared.install()
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).toMatch(/^the cluster is initialised, but its secret could not be saved as .*secret \(EEXIST.*\); it is in .*\.tmp: move it there/)
    expect(fs.readFileSync(file, 'utf8')).toBe('someone else')
    const kept = fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))
    expect(kept).toHaveLength(1)
    expect(fs.readFileSync(path.join(dir, kept[0]!), 'utf8').trim()).toBe(prepared.secret)
  })

  it('reports an unwritable directory as a usage error', () => {
    const file = path.join(dir, 'not-a-dir', 'secret')
    fs.writeFileSync(path.join(dir, 'not-a-dir'), '')
    expect(() => prepareSecret(file)).toThrow(UsageError)
  })
})
