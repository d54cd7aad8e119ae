// CAN_MULTI_CONN promises that a FLUSH on one connection covers writes acknowledged on any
// other connection to the same export. Method: the daemon's own wiring (VolumeManager, Volume,
// FileBlockStore, NbdServer) in process, with fdatasync recorded; a libnbd client writes on
// connection A, then flushes on connection B, and B's flush must have synced A's data file.
import { spawn } from 'node:child_process'
import { readlinkSync } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FileBlockStore } from '@torus/blockstore'
import { silentLogger } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { NbdServer } from '@torus/nbd'
import { freePort } from '@torus/testing'
import { VolumeManager } from '@torus/volume'
import { canRun, HAVE_PYTHON_LIBNBD } from './helpers/torusd.js'

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/multi-conn.py')

describe.skipIf(!canRun(HAVE_PYTHON_LIBNBD, 'python3-libnbd'))('CAN_MULTI_CONN', () => {
  let dir: string
  let store: FileBlockStore
  let metadata: MemoryMetadataStore
  let server: NbdServer
  let volumes: VolumeManager
  let port: number
  const synced: string[] = []

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'torus-multiconn-'))
    const { fdatasync } = await import('node:fs')
    store = new FileBlockStore({
      dir,
      blockSizeBytes: 512 * 1024,
      capacityBytes: 64 * 1024 * 1024,
      fdatasync: (fd) =>
        new Promise((resolve, reject) => {
          const file = readlinkSync(`/proc/self/fd/${fd}`).slice(dir.length + 1)
          fdatasync(fd, (err) => (err ? reject(err) : (synced.push(file), resolve())))
        }),
    })
    await store.open()
    metadata = new MemoryMetadataStore()
    await metadata.open()
    await metadata.initCluster({ blockSizeBytes: 512 * 1024, replication: 1, ringType: 'single', createdAt: new Date().toISOString() })
    const info = await metadata.createVolume({ name: 'shared', sizeBytes: 16 * 1024 * 1024 })
    expect(info.id).toBe(1)
    volumes = new VolumeManager({ metadata, store, holder: 'test', leaseTtlMs: 10_000, logger: silentLogger })
    server = new NbdServer({
      listExports: () => [{ name: 'shared' }],
      openExport: async (name) => {
        const h = await volumes.acquire(name)
        return h && { device: h.volume, close: () => h.release() }
      },
    })
    port = await freePort()
    await server.listen({ host: '127.0.0.1', port })
  })
  afterAll(async () => {
    await server?.close()
    await volumes?.closeAll()
    await store?.close()
    await metadata?.close()
    if (dir !== undefined) await fs.rm(dir, { recursive: true, force: true })
  })

  it('a FLUSH on one connection makes a write acknowledged on another durable', async () => {
    const child = spawn('/usr/bin/python3', [fixture, `nbd://127.0.0.1:${port}/shared`], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines: string[] = []
    const next = (want: string): Promise<void> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (lines.includes(want)) resolve()
        }
        child.stdout.on('data', (d: Buffer) => {
          lines.push(...d.toString().trim().split('\n'))
          check()
        })
        child.on('exit', (code) => reject(new Error(`client exited ${code} before ${want}: ${lines.join(' ')}`)))
        check()
      })
    await next('WROTE')
    synced.length = 0 // whatever was synced before the write is acknowledged does not count
    expect(synced).toEqual([])
    child.stdin.write('go\n')
    await next('FLUSHED')
    expect(synced).toContain('1/data')
    expect(synced).toContain('1/index')
    child.kill()
  })
})
