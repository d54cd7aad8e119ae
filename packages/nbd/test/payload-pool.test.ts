// The WRITE payload pool recycles large buffers by size class and never hands out a buffer
// that is still in use; small or foreign buffers are not pooled.
import { describe, expect, it } from 'vitest'
import { PayloadPool } from '../src/payload-pool.js'

describe('PayloadPool', () => {
  it('returns views of exactly the requested length, recycled after release', () => {
    const pool = new PayloadPool()
    const a = pool.acquire(1_000_000)
    expect(a.length).toBe(1_000_000)
    expect(a.buffer.byteLength).toBe(2 ** 20)
    pool.release(a)
    expect(pool.idleBytes).toBe(2 ** 20)
    const b = pool.acquire(700_000)
    expect(b.buffer).toBe(a.buffer)
    expect(pool.idleBytes).toBe(0)
    // Not released yet: a second acquire gets a different buffer.
    const c = pool.acquire(700_000)
    expect(c.buffer).not.toBe(b.buffer)
  })

  it('does not pool small buffers, foreign buffers or more than its limit', () => {
    const pool = new PayloadPool(2 ** 20)
    pool.release(pool.acquire(1000))
    pool.release(Buffer.alloc(2 ** 20))
    pool.release(Buffer.alloc(3 * 2 ** 20).subarray(2 ** 20))
    expect(pool.idleBytes).toBe(0)
    const x = pool.acquire(2 ** 20)
    const y = pool.acquire(2 ** 20)
    pool.release(x)
    pool.release(y)
    expect(pool.idleBytes).toBe(2 ** 20)
  })
})
