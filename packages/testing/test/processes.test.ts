// Goal: run() reports a child that exits without reading its stdin by its exit status, never by
// an uncaught EPIPE (which vitest counts as an error of whatever test runs then).
// Method: real children (`true`, `cat`) and an input larger than a pipe holds.
import { describe, expect, it } from 'vitest'
import { run } from '../src/index.js'

describe('run', () => {
  it('survives a child that exits without reading a large input', async () => {
    const uncaught: unknown[] = []
    const onUncaught = (err: unknown): void => void uncaught.push(err)
    process.on('uncaughtException', onUncaught)
    try {
      for (let i = 0; i < 5; i++) expect((await run('true', [], { input: 'x'.repeat(1 << 20) })).code).toBe(0)
      await new Promise((r) => setTimeout(r, 50))
    } finally {
      process.off('uncaughtException', onUncaught)
    }
    expect(uncaught).toEqual([])
  })

  it('passes its input to a child that reads it', async () => {
    expect(await run('cat', [], { input: 'hello' })).toMatchObject({ code: 0, stdout: 'hello' })
    expect(await run('cat', [])).toMatchObject({ code: 0, stdout: '' })
  })
})
