// The data dir's own bookkeeping: the one-daemon lock and the journal of deletes in progress.
import net from 'node:net'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigError } from '../src/config.js'
import { createDataDir, lockDataDir, PendingDeletes } from '../src/data-dir.js'

let dir: string
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'torusd-datadir-'))
})
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true })
})

describe('PendingDeletes', () => {
  it('keeps every id when adds and removes run concurrently', async () => {
    const j = new PendingDeletes(dir)
    await Promise.all([1, 2, 3, 4, 5, 6].map((id) => j.add(id)))
    expect((await j.read()).sort()).toEqual([1, 2, 3, 4, 5, 6])
    await Promise.all([j.remove(2), j.remove(4), j.add(7)])
    expect((await j.read()).sort()).toEqual([1, 3, 5, 6, 7])
    await Promise.all([1, 3, 5, 6, 7].map((id) => j.remove(id)))
    expect(await j.read()).toEqual([])
    await expect(fs.access(path.join(dir, 'pending-deletes.json'))).rejects.toThrow()
  })

  it('reports a damaged journal instead of guessing', async () => {
    await fs.writeFile(path.join(dir, 'pending-deletes.json'), '{"x":1}')
    await expect(new PendingDeletes(dir).read()).rejects.toMatchObject({ code: 'TORUS_CORRUPT' })
  })
})

describe('createDataDir', () => {
  it('creates missing parents and accepts a directory that is there', async () => {
    const deep = path.join(dir, 'a', 'b', 'c')
    await createDataDir(deep)
    expect((await fs.stat(deep)).isDirectory()).toBe(true)
    await createDataDir(deep)
  })

  it('refuses a path that is a file, or under one, naming it (ConfigError: exit 2)', async () => {
    const file = path.join(dir, 'f')
    await fs.writeFile(file, '')
    await expect(createDataDir(file)).rejects.toThrow(new ConfigError(`--data-dir ${file}: ${file} exists and is not a directory`))
    await expect(createDataDir(path.join(file, 'x'))).rejects.toThrow(new ConfigError(`--data-dir ${file}/x: ${file} exists and is not a directory`))
  })

  it('refuses a path under /proc at once (recursive mkdir spins there)', async () => {
    await expect(createDataDir('/proc/torus-no-such-dir/data')).rejects.toThrow(/^--data-dir \/proc\/torus-no-such-dir\/data: cannot create \/proc\/torus-no-such-dir: ENOENT/)
  })
})

describe('lockDataDir', () => {
  it('admits one holder, and a stray connection to the lock cannot hold up the release', async () => {
    const unlock = await lockDataDir(dir)
    await expect(lockDataDir(dir)).rejects.toMatchObject({ code: 'TORUS_LOCKED', message: expect.stringContaining(`pid ${process.pid}`) })
    const real = await fs.realpath(dir)
    const { createHash } = await import('node:crypto')
    const name = `\0torusd-data-dir:${createHash('sha256').update(real).digest('hex').slice(0, 40)}`
    const stray = net.connect(name)
    stray.on('error', () => {})
    await new Promise((r) => stray.once('close', r))
    await unlock()
    const again = await lockDataDir(dir)
    await again()
  })
})
