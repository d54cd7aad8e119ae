// Durability: a FLUSH reply means the bytes survive SIGKILL. A libnbd client pipelines writes,
// flushes, and the moment it reports the flush reply torusd is killed with SIGKILL; after a
// restart every byte of the volume must equal what the client wrote.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasCommand, run, Service } from '@torus/testing'
import { canRun, HAVE_PYTHON_LIBNBD, Torusd } from './helpers/torusd.js'

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/flush-then-wait.py')
const python = '/usr/bin/python3'

describe.skipIf(!canRun(HAVE_PYTHON_LIBNBD && hasCommand('nbdcopy'), 'python3-libnbd and nbdcopy'))('SIGKILL right after a FLUSH reply (needs python3-libnbd, nbdcopy)', () => {
  let d: Torusd
  let tmp: string

  beforeAll(async () => {
    d = await Torusd.start({ size: '1GiB' })
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'torus-crash-'))
  })
  afterAll(async () => {
    await d?.destroy()
    if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true })
  })

  it('SIGTERM with a client attached flushes acknowledged writes and exits 0', async () => {
    const name = 'term'
    const size = 32 * 1024 * 1024
    expect((await d.ctl('volume', 'create-block', name, String(size))).code).toBe(0)
    const expected = path.join(tmp, `${name}.expected`)
    const client = new Service(python, [fixture, d.uri(name), String(size), '7', expected, 'noflush'])
    try {
      await client.waitFor(/^WRITTEN$/, 120_000)
      const stopped = await d.kill('SIGTERM')
      expect(stopped).toEqual({ code: 0, signal: null })
    } finally {
      await client.stop('SIGKILL')
    }
    expect(d.service!.lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true)
    await d.restart()
    const actual = path.join(tmp, `${name}.actual`)
    expect((await run('nbdcopy', [d.uri(name), actual])).code).toBe(0)
    expect(fs.readFileSync(actual).equals(fs.readFileSync(expected))).toBe(true)
  })

  for (const seed of [1, 2]) {
    it(`keeps every flushed byte (seed ${seed})`, async () => {
      const name = `crash${seed}`
      const size = 64 * 1024 * 1024
      expect((await d.ctl('volume', 'create-block', name, String(size))).code).toBe(0)
      const expected = path.join(tmp, `${name}.expected`)
      const client = new Service(python, [fixture, d.uri(name), String(size), String(seed), expected])
      try {
        await client.waitFor(/^FLUSHED$/, 120_000)
        const killed = await d.kill('SIGKILL')
        expect(killed.signal).toBe('SIGKILL')
      } finally {
        await client.stop('SIGKILL')
      }
      await d.restart()
      const actual = path.join(tmp, `${name}.actual`)
      const copy = await run('nbdcopy', [d.uri(name), actual])
      expect(copy.code, copy.stderr).toBe(0)
      const want = fs.readFileSync(expected)
      const got = fs.readFileSync(actual)
      expect(got.length).toBe(want.length)
      if (!want.equals(got)) {
        const firstDiff = want.findIndex((b, i) => got[i] !== b)
        expect.fail(`volume differs from what was flushed, first at byte ${firstDiff}`)
      }
    })
  }
})
