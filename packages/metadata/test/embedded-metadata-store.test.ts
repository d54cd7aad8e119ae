// Goal: the embedded store's file handling beyond the contract: validation on open, atomic
// writes, failed writes, the format version, and the lease policy across restarts. Method: real
// files in a temp dir, a ManualClock, and files written or damaged by hand.
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ManualClock } from '@torus/core'
import type { ClusterConfig } from '@torus/core'
import { EmbeddedMetadataStore, METADATA_FILE_NAME, METADATA_FORMAT_VERSION } from '../src/index.js'

const CLUSTER: ClusterConfig = { blockSizeBytes: 512 * 1024, replication: 1, ringType: 'ketama', createdAt: '2016-06-01T00:00:00.000Z' }
const MiB = 1024 * 1024
const TTL_MS = 10_000

let dir: string
let clock: ManualClock
const opened: EmbeddedMetadataStore[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'torus-embedded-'))
  clock = new ManualClock()
})

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close()
  await rm(dir, { recursive: true, force: true })
})

async function openStore(at = dir): Promise<EmbeddedMetadataStore> {
  const store = new EmbeddedMetadataStore({ dir: at, clock })
  opened.push(store)
  await store.open()
  return store
}

async function readDoc(): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, METADATA_FILE_NAME), 'utf8')) as Record<string, unknown>
}

async function writeDoc(doc: unknown): Promise<void> {
  await writeFile(join(dir, METADATA_FILE_NAME), typeof doc === 'string' ? doc : JSON.stringify(doc))
}

async function validDoc(): Promise<Record<string, unknown>> {
  const store = await openStore()
  await store.initCluster(CLUSTER)
  await store.createVolume({ name: 'pad', sizeBytes: MiB })
  await store.lockVolume('pad', 'node-a', await store.grantLease(TTL_MS))
  await store.close()
  return readDoc()
}

describe('EmbeddedMetadataStore file', () => {
  it('creates a missing data dir and writes nothing until the first mutation', async () => {
    const nested = join(dir, 'a', 'b')
    const store = await openStore(nested)
    expect(await readdir(nested)).toEqual([])
    await store.initCluster(CLUSTER)
    expect(await readdir(nested)).toEqual([METADATA_FILE_NAME])
  })

  it('writes the format name and version, the revision and the id counter', async () => {
    const doc = await validDoc()
    expect(doc).toMatchObject({ format: 'torus-metadata', version: METADATA_FORMAT_VERSION, nextVolumeId: 2, cluster: CLUSTER })
    expect(doc['revision']).toBeGreaterThanOrEqual((doc['locks'] as { generation: number }[])[0]!.generation)
    expect(doc['leases']).toEqual([{ id: expect.any(String), ttlMs: TTL_MS }])
  })

  it('leaves only metadata.json in the dir after many concurrent mutations', async () => {
    const store = await openStore()
    await store.initCluster(CLUSTER)
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.createVolume({ name: `v${i}`, sizeBytes: MiB })))
    expect(await readdir(dir)).toEqual([METADATA_FILE_NAME])
    expect((await readDoc())['volumes']).toHaveLength(20)
  })

  it('has every mutation on disk by the time it resolves', async () => {
    const store = await openStore()
    await store.initCluster(CLUSTER)
    const info = await store.createVolume({ name: 'pad', sizeBytes: MiB })
    expect((await readDoc())['volumes']).toEqual([info])
    await store.deleteVolume('pad')
    expect((await readDoc())['volumes']).toEqual([])
  })

  it('removes a temp file left by a crash and keeps the committed state', async () => {
    await validDoc()
    await writeFile(join(dir, `${METADATA_FILE_NAME}.tmp`), '{"half": ')
    const store = await openStore()
    expect(await readdir(dir)).toEqual([METADATA_FILE_NAME])
    expect(await store.getVolume('pad')).toMatchObject({ name: 'pad' })
  })

  it('rejects a failed write with a code and leaves memory and disk at the previous state', async () => {
    const store = await openStore()
    await store.initCluster(CLUSTER)
    const before = await readFile(join(dir, METADATA_FILE_NAME), 'utf8')
    // A directory where the temp file goes makes the next write fail without mocking fs.
    await mkdir(join(dir, `${METADATA_FILE_NAME}.tmp`))
    await expect(store.createVolume({ name: 'pad', sizeBytes: MiB })).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    expect(await store.getVolume('pad')).toBeUndefined()
    expect(await readFile(join(dir, METADATA_FILE_NAME), 'utf8')).toBe(before)
    await rm(join(dir, `${METADATA_FILE_NAME}.tmp`), { recursive: true })
    const info = await store.createVolume({ name: 'pad', sizeBytes: MiB })
    expect(info.id).toBe(1)
  })

  it('does not rewrite the file on keepAlive', async () => {
    const store = await openStore()
    const lease = await store.grantLease(TTL_MS)
    const before = await readFile(join(dir, METADATA_FILE_NAME), 'utf8')
    clock.advance(TTL_MS / 2)
    await store.keepAlive(lease)
    expect(await readFile(join(dir, METADATA_FILE_NAME), 'utf8')).toBe(before)
  })
})

describe('EmbeddedMetadataStore open validation', () => {
  async function expectCorrupt(content: unknown, reason?: RegExp): Promise<void> {
    await writeDoc(content)
    const store = new EmbeddedMetadataStore({ dir, clock })
    const err: unknown = await store.open().catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'TORUS_CORRUPT', details: { file: join(dir, METADATA_FILE_NAME) } })
    expect((err as Error).message).toContain(join(dir, METADATA_FILE_NAME))
    if (reason !== undefined) expect((err as Error).message).toMatch(reason)
    expect(store.status).toBe('closed')
  }

  it('reports a file that is not JSON as TORUS_CORRUPT naming the file', async () => {
    await expectCorrupt('{"format": "torus-metadata", ', /not valid JSON/)
  })

  it('reports an empty file as TORUS_CORRUPT', async () => {
    await expectCorrupt('')
  })

  it('reports JSON of the wrong shape as TORUS_CORRUPT with the offending path', async () => {
    const doc = await validDoc()
    await expectCorrupt([], /\$: expected an object/)
    await expectCorrupt({ ...doc, volumes: {} }, /\$\.volumes: expected an array/)
    await expectCorrupt({ ...doc, volumes: [{ ...(doc['volumes'] as object[])[0], sizeBytes: '1MiB' }] }, /\$\.volumes\[0\]\.sizeBytes/)
  })

  it('reports inconsistent contents as TORUS_CORRUPT', async () => {
    const doc = await validDoc()
    await expectCorrupt({ ...doc, volumes: [] }, /no such volume/)
    await expectCorrupt({ ...doc, nextVolumeId: 1 }, /nextVolumeId/)
    await expectCorrupt({ ...doc, leases: [] }, /no such lease/)
  })

  it('reports malformed, duplicate or orphaned stale-replica records and secretChecks as TORUS_CORRUPT', async () => {
    const doc = await validDoc()
    const volumeId = (doc['volumes'] as { id: number }[])[0]!.id
    const record = { volumeId, peer: '00000000-0000-4000-8000-00000000000a', index: 0, generation: 1, recordedAt: '2026-01-01T00:00:00.000Z' }
    await expectCorrupt({ ...doc, stale: {} }, /\$\.stale: expected an array/)
    await expectCorrupt({ ...doc, stale: [{ ...record, index: 'some' }] }, /\$\.stale\[0\]: invalid stale replica: index/)
    await expectCorrupt({ ...doc, stale: [{ ...record, recordedAt: undefined }] }, /\$\.stale\[0\]\.recordedAt/)
    await expectCorrupt({ ...doc, stale: [record, { ...record, generation: 2 }] }, /\$\.stale\[1\]: duplicate/)
    await expectCorrupt({ ...doc, stale: [{ ...record, volumeId: volumeId + 1 }] }, /no such volume/)
    await expectCorrupt({ ...doc, cluster: { ...(doc['cluster'] as object), secretCheck: 'ab:cd' } }, /\$\.cluster\.secretCheck/)
    await writeDoc({ ...doc, stale: [record] })
    const store = await openStore()
    expect(await store.listStaleReplicas(volumeId as never)).toEqual([record])
  })

  it('reports an unknown format version as TORUS_CORRUPT with the version in details', async () => {
    const doc = await validDoc()
    await writeDoc({ ...doc, version: METADATA_FORMAT_VERSION + 1 })
    const err: unknown = await new EmbeddedMetadataStore({ dir, clock }).open().catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'TORUS_CORRUPT',
      details: { version: METADATA_FORMAT_VERSION + 1, supportedVersion: METADATA_FORMAT_VERSION },
    })
    expect((err as Error).message).toMatch(/format version 2 is not supported/)
  })

  it('opens again once the file is repaired', async () => {
    const doc = await validDoc()
    await expectCorrupt('garbage')
    await writeDoc(doc)
    const store = await openStore()
    expect(await store.getVolume('pad')).toMatchObject({ name: 'pad' })
  })
})

describe('EmbeddedMetadataStore leases across restarts', () => {
  it('gives a lease from the previous process a full TTL from reopen, even past its old deadline', async () => {
    const first = await openStore()
    await first.initCluster(CLUSTER)
    await first.createVolume({ name: 'pad', sizeBytes: MiB })
    const lease = await first.grantLease(TTL_MS)
    const lock = await first.lockVolume('pad', 'node-a', lease)
    await first.close()
    clock.advance(TTL_MS * 3) // down for three TTLs
    const second = await openStore()
    clock.advance(TTL_MS - 1)
    expect(await second.getVolumeLock('pad')).toEqual(lock)
    clock.advance(1)
    expect(await second.getVolumeLock('pad')).toBeUndefined()
    await expect(second.keepAlive(lease)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
  })

  it('persists an expiry noticed by its timer, so the lock does not come back after a restart', async () => {
    const first = await openStore()
    await first.initCluster(CLUSTER)
    await first.createVolume({ name: 'pad', sizeBytes: MiB })
    await first.lockVolume('pad', 'node-a', await first.grantLease(TTL_MS))
    clock.advance(TTL_MS)
    await first.close() // waits for the expiry write queued by the timer
    expect((await readDoc())['locks']).toEqual([])
    const second = await openStore()
    expect(await second.getVolumeLock('pad')).toBeUndefined()
  })
})
