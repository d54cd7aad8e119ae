// Goal: readSmallFileSync reads small files whole and refuses anything longer than its limit
// without reading more than one byte past it, keeping file-system error codes for callers.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { readSmallFileSync } from '../src/index.js'

describe('readSmallFileSync', () => {
  const dirs: string[] = []
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  })
  const file = (content: string | Buffer): string => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'small-file-'))
    dirs.push(dir)
    const p = path.join(dir, 'f')
    fs.writeFileSync(p, content)
    return p
  }

  it('reads a file up to exactly the limit, as UTF-8', () => {
    expect(readSmallFileSync(file('héllo\n'), 7)).toBe('héllo\n')
    expect(readSmallFileSync(file(''), 7)).toBe('')
  })

  it('refuses a file one byte over the limit, and a device that never ends', () => {
    expect(() => readSmallFileSync(file('12345678'), 7)).toThrow(new RangeError('it is longer than 7 bytes; is it the right file?'))
    expect(() => readSmallFileSync('/dev/zero', 4096)).toThrow(RangeError)
  })

  it('keeps the errno code of a missing file', () => {
    expect(() => readSmallFileSync('/nonexistent/secret', 10)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
  })
})
