/**
 * FrameBufferPool and pooled encoding: a pooled frame has the very bytes of a plain one, buffers
 * come back only through release, and msgpackr's shared output buffer never stays inside a
 * pooled buffer (a plain frame packed after a pooled one must not share its memory).
 */
import { describe, expect, it } from 'vitest'
import { SeededRandom } from '@torus/core'
import { decodeFrame, encodeReply, encodeRequest, POOLED_BYTES_MIN } from '../src/frame-codec.js'
import { FRAME_POOL_GRANULE, FrameBufferPool } from '../src/frame-pool.js'

const KiB = 1024
const random = new SeededRandom(7)
const bytesOf = (n: number): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = random.int(256)
  return b
}

describe('FrameBufferPool', () => {
  it('rounds sizes up to 64 KiB and reuses a released buffer of the same size', () => {
    const pool = new FrameBufferPool()
    const a = pool.acquire(100 * KiB)
    expect(a.byteLength).toBe(2 * FRAME_POOL_GRANULE)
    expect(pool.owns(a)).toBe(true)
    pool.release(a)
    expect(pool.owns(a)).toBe(false)
    expect(pool.freeBytes).toBe(a.byteLength)
    const b = pool.acquire(128 * KiB)
    expect(b).toBe(a)
    expect(pool.freeBytes).toBe(0)
    expect(pool.acquire(129 * KiB)).not.toBe(a)
  })

  it('takes a buffer back only from its current holder: the frame it was lent to', () => {
    const pool = new FrameBufferPool()
    const buf = pool.acquire(1)
    const frame = buf.subarray(0, 100)
    expect(pool.lend(buf, frame)).toBe(true)
    expect(pool.owns(frame)).toBe(true)
    expect(pool.owns(buf)).toBe(false)
    pool.release(buf) // the buffer itself no longer holds it
    pool.release(buf.subarray(0, 100)) // nor does another view of the same bytes
    expect(pool.freeBytes).toBe(0)
    pool.release(frame)
    expect(pool.freeBytes).toBe(FRAME_POOL_GRANULE)
    expect(pool.lend(buf, frame)).toBe(false) // not lent any more
  })

  it('ignores a stale second release after the buffer was lent to a new frame', () => {
    const pool = new FrameBufferPool()
    const buf = pool.acquire(1)
    const first = buf.subarray(0, 10)
    pool.lend(buf, first)
    pool.release(first)
    const again = pool.acquire(1)
    expect(again).toBe(buf)
    const second = again.subarray(0, 20)
    pool.lend(again, second)
    pool.release(first) // a slip elsewhere must not free the buffer under `second`
    expect(pool.owns(second)).toBe(true)
    expect(pool.freeBytes).toBe(0)
    expect(pool.acquire(1)).not.toBe(buf)
  })

  it('refuses to lend a buffer to a frame in other memory, and ignores frames it did not lend', () => {
    const pool = new FrameBufferPool()
    const a = pool.acquire(1)
    expect(pool.lend(a, new Uint8Array(8))).toBe(false)
    expect(pool.owns(a)).toBe(true)
    pool.release(new Uint8Array(FRAME_POOL_GRANULE))
    pool.release(Buffer.from('x'))
    expect(pool.freeBytes).toBe(0)
  })

  it('keeps at most maxFreeBytes idle', () => {
    const pool = new FrameBufferPool(3 * FRAME_POOL_GRANULE)
    const lent = [1, 2, 3, 4].map(() => pool.acquire(FRAME_POOL_GRANULE))
    for (const b of lent) pool.release(b)
    expect(pool.freeBytes).toBe(3 * FRAME_POOL_GRANULE)
  })
})

describe('pooled encoding', () => {
  it('encodes a large request and reply to the same bytes as without a pool, inside a pooled buffer', () => {
    const pool = new FrameBufferPool()
    const body = { volumeId: 7, index: 3, offset: 0, bytes: bytesOf(512 * KiB), generation: 12, seq: 99 }
    const plain = encodeRequest(41, 'replica.write', body)
    const pooled = encodeRequest(41, 'replica.write', body, pool)
    expect(pool.owns(pooled)).toBe(true)
    expect(Buffer.from(pooled).equals(Buffer.from(plain))).toBe(true)
    const reply = { allocated: true, bytes: bytesOf(POOLED_BYTES_MIN) }
    const pooledReply = encodeReply(5, reply, pool)
    expect(pool.owns(pooledReply)).toBe(true)
    expect(Buffer.from(pooledReply).equals(Buffer.from(encodeReply(5, reply)))).toBe(true)
    expect(decodeFrame(pooledReply, 1 << 20)).toEqual({ type: 6, id: 5, body: { allocated: true, bytes: Buffer.from(reply.bytes) } })
  })

  it('leaves small bodies, and every call without a pool, out of the pool', () => {
    const pool = new FrameBufferPool()
    expect(pool.owns(encodeRequest(1, 'm', { bytes: bytesOf(POOLED_BYTES_MIN - 1) }, pool))).toBe(false)
    expect(pool.owns(encodeRequest(1, 'm', { bytes: bytesOf(POOLED_BYTES_MIN) }))).toBe(false)
  })

  it('never packs a later plain frame into a pooled buffer, so reusing it cannot overwrite that frame', () => {
    const pool = new FrameBufferPool()
    const big = encodeRequest(1, 'm', { bytes: bytesOf(200 * KiB) }, pool)
    const small = encodeReply(2, { ok: 'still here' })
    expect(small.buffer).not.toBe(big.buffer)
    const copy = Buffer.from(small)
    pool.release(big)
    const again = encodeRequest(3, 'm', { bytes: new Uint8Array(200 * KiB).fill(0xee) }, pool)
    expect(again.buffer).toBe(big.buffer) // the same buffer, reused
    expect(Buffer.from(small).equals(copy)).toBe(true)
    expect(decodeFrame(small, 1 << 20)).toEqual({ type: 6, id: 2, body: { ok: 'still here' } })
  })

  it('still encodes a body that outgrows the pooled buffer, and hands that buffer back', () => {
    const pool = new FrameBufferPool()
    // 64 KiB of bytes, plus a 100 KiB string the size estimate does not count.
    const body = { bytes: bytesOf(POOLED_BYTES_MIN), note: 'n'.repeat(100 * KiB) }
    const frame = encodeRequest(9, 'm', body, pool)
    expect(pool.owns(frame)).toBe(false)
    expect(pool.freeBytes).toBeGreaterThan(0)
    expect(Buffer.from(frame).equals(Buffer.from(encodeRequest(9, 'm', body)))).toBe(true)
  })

  it('refuses a body that is not plain data before taking a buffer', () => {
    const pool = new FrameBufferPool()
    expect(() => encodeRequest(1, 'm', { bytes: bytesOf(POOLED_BYTES_MIN), bad: new Date() as never }, pool)).toThrow(TypeError)
    expect(pool.freeBytes).toBe(0) // nothing was lent, so nothing came back
    expect(pool.owns(encodeRequest(1, 'm', { bytes: bytesOf(POOLED_BYTES_MIN) }, pool))).toBe(true)
  })
})
