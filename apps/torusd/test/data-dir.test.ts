// The data dir's own bookkeeping: the one-daemon lock and the journal of deletes in progress.
import net from 'node:net'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { lockDataDir, PendingDeletes } from '../src/data-dir.js'

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
