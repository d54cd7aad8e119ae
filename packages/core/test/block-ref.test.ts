// BlockRef is the key of every block: its byte form must round-trip and reject malformed input.
import { describe, expect, it } from 'vitest'
import { BlockRef, ManualClock, SeededRandom, TorusError, isTorusError } from '../src/index.js'

describe('BlockRef', () => {
  it('round-trips through bytes', () => {
    const ref = new BlockRef(7, 123456789)
    const back = BlockRef.fromBytes(ref.toBytes())
    expect(back.equals(ref)).toBe(true)
    expect(back.toString()).toBe('7:123456789')
  })
  it('rejects wrong lengths and invalid ids', () => {
    expect(() => BlockRef.fromBytes(new Uint8Array(15))).toThrow(RangeError)
    expect(() => new BlockRef(0, 1)).toThrow(RangeError)
    expect(() => new BlockRef(1, -1)).toThrow(RangeError)
    expect(() => new BlockRef(1, 1.5)).toThrow(RangeError)
  })
})

describe('TorusError', () => {
  it('carries a stable code and marks transient codes retryable', () => {
    const err = new TorusError('TORUS_UNAVAILABLE', 'peer down')
    expect(isTorusError(err, 'TORUS_UNAVAILABLE')).toBe(true)
    expect(err.retryable).toBe(true)
    expect(new TorusError('TORUS_CORRUPT', 'x').retryable).toBe(false)
  })
})

describe('ManualClock', () => {
  it('fires timers in due order only when advanced', () => {
    const clock = new ManualClock(0)
    const fired: number[] = []
    clock.setTimeout(() => fired.push(2), 20)
    clock.setTimeout(() => fired.push(1), 10)
    const t = clock.setTimeout(() => fired.push(3), 15)
    clock.clearTimeout(t)
    clock.advance(9)
    expect(fired).toEqual([])
    clock.advance(11)
    expect(fired).toEqual([1, 2])
    expect(clock.now()).toBe(20)
  })
})

describe('SeededRandom', () => {
  it('replays the same sequence from the same seed', () => {
    const a = new SeededRandom(42)
    const b = new SeededRandom(42)
    expect(Array.from({ length: 5 }, () => a.int(1000))).toEqual(Array.from({ length: 5 }, () => b.int(1000)))
  })
})
