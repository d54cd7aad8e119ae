// Human sizes are user input everywhere (CLI, env, config): parse and format must round-trip
// the original torusctl's output and reject junk with a readable message.
import { describe, expect, it } from 'vitest'
import { formatSize, parseSize } from '../src/index.js'

describe('parseSize', () => {
  it('accepts binary and decimal units, case-insensitively', () => {
    expect(parseSize('1GiB')).toBe(1024 ** 3)
    expect(parseSize('256MiB')).toBe(256 * 1024 ** 2)
    expect(parseSize('512kib')).toBe(512 * 1024)
    expect(parseSize('5GB')).toBe(5e9)
    expect(parseSize('4096')).toBe(4096)
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3)
    expect(parseSize(' 2 G ')).toBe(2 * 1024 ** 3)
  })
  it('reads a single-letter unit K, M, G, T or P as binary', () => {
    expect(parseSize('100k')).toBe(100 * 1024)
    expect(parseSize('1M')).toBe(1024 ** 2)
    expect(parseSize('3g')).toBe(3 * 1024 ** 3)
    expect(parseSize('1T')).toBe(1024 ** 4)
    expect(parseSize('1P')).toBe(1024 ** 5)
  })
  it('names every accepted unit when the unit is unknown', () => {
    expect(() => parseSize('1XB')).toThrow(
      'invalid size unit in "1XB" (units, case-insensitive: B or none; KiB, MiB, GiB, TiB, PiB or K, M, G, T, P (powers of 1024); KB, MB, GB, TB, PB (powers of 1000))',
    )
  })
  it('rejects junk, negatives, fractions of a byte and unknown units', () => {
    for (const bad of ['', 'abc', '-1GiB', '1XB', '0.3B', '1e3', '99999999999PiB']) {
      expect(() => parseSize(bad), bad).toThrow(RangeError)
    }
  })
})

describe('formatSize', () => {
  it('prints like the original torusctl', () => {
    expect(formatSize(1024 ** 3)).toBe('1.0 GiB')
    expect(formatSize(5 * 1024 ** 3)).toBe('5.0 GiB')
    expect(formatSize(512 * 1024)).toBe('512.0 KiB')
    expect(formatSize(100)).toBe('100 B')
  })
})
