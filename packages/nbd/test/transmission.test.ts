/**
 * Unit tests of the sans-IO request parser and request checks: hex fixtures and crafted
 * chunkings in, parsed requests and error values out. Checks the zero-copy path for WRITE
 * payloads that arrive in one chunk.
 */
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_BLOCK_SIZE,
  RequestParser,
  checkRequest,
  encodeRequest,
  encodeSimpleReply,
  nbdConstants as C,
  transmissionFlagsFor,
  type ExportLimits,
  type NbdRequest,
  type TransmissionProtocolError,
} from '../src/index.js'
import * as F from './fixtures/transmission.js'

type Parsed = NbdRequest | TransmissionProtocolError

function drain(p: RequestParser): Parsed[] {
  const out: Parsed[] = []
  for (let r = p.next(); r !== undefined; r = p.next()) out.push(r)
  return out
}

const ALL = { readOnly: false, flush: true, fua: true, trim: true, writeZeroes: true, fastZero: true, multiConn: false }
const limits = (o: Partial<ExportLimits> = {}, supports = ALL): ExportLimits => ({
  sizeBytes: 1 << 20,
  transmissionFlags: transmissionFlagsFor(supports),
  blockSize: DEFAULT_BLOCK_SIZE,
  ...o,
})
const req = (type: number, o: Partial<NbdRequest> = {}): NbdRequest => ({
  flags: 0, type, cookieHi: 0, cookieLo: 1, offset: 0, length: 512, data: undefined, payloadDiscarded: false, ...o,
})

describe('RequestParser', () => {
  it('parses a READ header field by field', () => {
    const p = new RequestParser()
    p.push(F.REQ_READ)
    expect(drain(p)).toEqual([
      { flags: 0, type: C.CMD_READ, cookieHi: 0x01020304, cookieLo: 0x05060708, offset: 1 << 20, length: 4096, data: undefined, payloadDiscarded: false },
    ])
  })

  it('hands out a WRITE payload that arrived in one chunk without copying', () => {
    const p = new RequestParser()
    const chunk = Buffer.concat([F.REQ_WRITE_FUA, F.REQ_READ])
    p.push(chunk)
    const [w, r] = drain(p) as NbdRequest[]
    expect(w).toMatchObject({ type: C.CMD_WRITE, flags: C.CMD_FLAG_FUA, cookieHi: 0xffffffff, cookieLo: 0xffffffff, offset: 512, length: 4 })
    expect(w!.data).toEqual(Buffer.from('deadbeef', 'hex'))
    expect(w!.data!.buffer).toBe(chunk.buffer) // a view, not a copy
    expect(r).toMatchObject({ type: C.CMD_READ, length: 4096 })
  })

  it('assembles a payload split over chunks into one buffer of the final size', () => {
    const data = Buffer.alloc(10_000, 7)
    const bytes = encodeRequest(C.CMD_WRITE, { cookie: 5n, offset: 0, data })
    const p = new RequestParser()
    p.push(bytes.subarray(0, 30))
    expect(drain(p)).toEqual([])
    expect(p.pendingPayloadBytes).toBe(10_000)
    p.push(bytes.subarray(30, 5000))
    p.push(bytes.subarray(5000))
    const [w] = drain(p) as NbdRequest[]
    expect(w!.data).toEqual(data)
    expect(w!.data!.buffer).not.toBe(bytes.buffer)
    expect(p.pendingPayloadBytes).toBe(0)
  })

  it('parses headers fed one byte at a time', () => {
    const p = new RequestParser()
    const all = Buffer.concat([F.REQ_READ, F.REQ_WRITE_FUA, F.REQ_READ])
    const got: Parsed[] = []
    for (const b of all) {
      p.push(Buffer.from([b]))
      got.push(...drain(p))
    }
    expect(got.map((r) => ('type' in r ? r.type : -1))).toEqual([C.CMD_READ, C.CMD_WRITE, C.CMD_READ])
    expect((got[1] as NbdRequest).data).toEqual(Buffer.from('deadbeef', 'hex'))
  })

  it('stops at a wrong magic', () => {
    const p = new RequestParser()
    p.push(Buffer.concat([F.REQ_READ, F.REQ_BAD_MAGIC, F.REQ_READ]))
    const out = drain(p)
    expect(out).toHaveLength(2)
    expect(out[1]).toEqual({ type: 'error', reason: 'bad-magic' })
    expect(p.dead).toBe(true)
    p.push(F.REQ_READ)
    expect(drain(p)).toEqual([])
  })

  it('skips an oversized WRITE payload up to the discard limit and stays in sync', () => {
    const p = new RequestParser({ maxPayloadBytes: 1024, maxDiscardBytes: 4096 })
    p.push(encodeRequest(C.CMD_WRITE, { data: Buffer.alloc(3000) }))
    p.push(F.REQ_READ)
    const [w, r] = drain(p) as NbdRequest[]
    expect(w).toMatchObject({ type: C.CMD_WRITE, length: 3000, data: undefined, payloadDiscarded: true })
    expect(r).toMatchObject({ type: C.CMD_READ })
    expect(p.pendingPayloadBytes).toBe(0)
  })

  it('reports payload-too-large beyond the discard limit without allocating', () => {
    const p = new RequestParser({ maxPayloadBytes: 1024 })
    p.push(encodeRequest(C.CMD_WRITE, { length: 0xffffffff }))
    const [e] = drain(p)
    expect(e).toMatchObject({ type: 'error', reason: 'payload-too-large', request: { length: 0xffffffff } })
    expect(p.pendingPayloadBytes).toBe(0)
  })

  it('keeps offsets near 2^64 above any export size', () => {
    const p = new RequestParser()
    p.push(F.REQ_READ_WRAPS)
    const [r] = drain(p) as NbdRequest[]
    expect(r!.offset).toBeGreaterThan(Number.MAX_SAFE_INTEGER)
    expect(checkRequest(r!, limits())).toBe(C.EINVAL)
  })
})

describe('checkRequest', () => {
  it('accepts valid requests', () => {
    const l = limits()
    expect(checkRequest(req(C.CMD_READ), l)).toBe(0)
    expect(checkRequest(req(C.CMD_WRITE, { flags: C.CMD_FLAG_FUA }), l)).toBe(0)
    expect(checkRequest(req(C.CMD_FLUSH, { length: 0 }), l)).toBe(0)
    expect(checkRequest(req(C.CMD_FLUSH, { length: 0, flags: C.CMD_FLAG_FUA }), l)).toBe(0)
    expect(checkRequest(req(C.CMD_WRITE_ZEROES, { flags: C.CMD_FLAG_NO_HOLE | C.CMD_FLAG_FAST_ZERO }), l)).toBe(0)
    expect(checkRequest(req(C.CMD_TRIM, { length: 1 << 20 }), l)).toBe(0)
    expect(checkRequest(req(C.CMD_READ, { offset: 1 << 20, length: 0 }), l)).toBe(0)
  })

  it('returns EINVAL for unknown commands, BLOCK_STATUS and unadvertised CACHE', () => {
    expect(checkRequest(req(99), limits())).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_BLOCK_STATUS), limits())).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_CACHE), limits())).toBe(C.EINVAL)
  })

  it('returns EINVAL for unknown, unnegotiated or misplaced flags', () => {
    const l = limits()
    expect(checkRequest(req(C.CMD_READ, { flags: 1 << 9 }), l)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_READ, { flags: C.CMD_FLAG_DF }), l)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_WRITE, { flags: C.CMD_FLAG_NO_HOLE }), l)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_TRIM, { flags: C.CMD_FLAG_FAST_ZERO }), l)).toBe(C.EINVAL)
    const noFast = limits({}, { ...ALL, fastZero: false, fua: false })
    expect(checkRequest(req(C.CMD_WRITE_ZEROES, { flags: C.CMD_FLAG_FAST_ZERO }), noFast)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_WRITE, { flags: C.CMD_FLAG_FUA }), noFast)).toBe(C.EINVAL)
  })

  it('returns EINVAL for commands whose flag was not advertised', () => {
    const l = limits({}, { ...ALL, flush: false, trim: false, writeZeroes: false })
    expect(checkRequest(req(C.CMD_FLUSH, { length: 0 }), l)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_TRIM), l)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_WRITE_ZEROES), l)).toBe(C.EINVAL)
  })

  it('returns EPERM for writes, trims and zeroes on a read-only export', () => {
    const l = limits({}, { ...ALL, readOnly: true })
    expect(checkRequest(req(C.CMD_WRITE), l)).toBe(C.EPERM)
    expect(checkRequest(req(C.CMD_TRIM), l)).toBe(C.EPERM)
    expect(checkRequest(req(C.CMD_WRITE_ZEROES), l)).toBe(C.EPERM)
    expect(checkRequest(req(C.CMD_READ), l)).toBe(0)
  })

  it('returns ENOSPC past the end for WRITE and WRITE_ZEROES, EINVAL for READ and TRIM', () => {
    const l = limits()
    const past = { offset: (1 << 20) - 256, length: 512 }
    expect(checkRequest(req(C.CMD_WRITE, past), l)).toBe(C.ENOSPC)
    expect(checkRequest(req(C.CMD_WRITE_ZEROES, past), l)).toBe(C.ENOSPC)
    expect(checkRequest(req(C.CMD_READ, past), l)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_TRIM, past), l)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_READ, { offset: (1 << 20) + 1, length: 0 }), l)).toBe(C.EINVAL)
  })

  it('returns EINVAL for READ/WRITE over the maximum payload, and accepts long TRIM/WRITE_ZEROES', () => {
    const l = limits({ sizeBytes: 2 ** 40 })
    expect(checkRequest(req(C.CMD_READ, { length: 32 * 1024 * 1024 + 1 }), l)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_WRITE, { length: 100, payloadDiscarded: true }), l)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_TRIM, { length: 0xffffffff }), l)).toBe(0)
    expect(checkRequest(req(C.CMD_WRITE_ZEROES, { length: 0xffffffff }), l)).toBe(0)
  })

  it('returns EINVAL for FLUSH with offset or length, and for misaligned requests', () => {
    expect(checkRequest(req(C.CMD_FLUSH, { offset: 512, length: 0 }), limits())).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_FLUSH, { length: 512 }), limits())).toBe(C.EINVAL)
    const aligned = limits({ blockSize: { minimumBytes: 512, preferredBytes: 4096, maximumPayloadBytes: 1 << 20 } })
    expect(checkRequest(req(C.CMD_READ, { offset: 100 }), aligned)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_READ, { length: 100 }), aligned)).toBe(C.EINVAL)
    expect(checkRequest(req(C.CMD_READ, { offset: 1024 }), aligned)).toBe(0)
  })
})

describe('encodeSimpleReply', () => {
  it('writes magic, error and cookie', () => {
    expect(encodeSimpleReply(C.EINVAL, 0x01020304, 0x05060708)).toEqual(F.REPLY_EINVAL)
  })
})

describe('RequestParser direct payload reads', () => {
  it('offers the unfilled payload as a read target and completes the request when it is full', () => {
    const p = new RequestParser()
    const data = Buffer.from('hello, direct world')
    const wire = encodeRequest(C.CMD_WRITE, { cookie: 9n, offset: 4096, length: data.length, data })
    expect(p.payloadTarget()).toBeUndefined() // no request yet
    p.push(wire.subarray(0, 28 + 5)) // header and the first 5 payload bytes
    expect(p.next()).toBeUndefined()
    expect(p.payloadTarget()!.length).toBe(data.length - 5)
    const t = p.payloadTarget()!
    data.copy(t, 0, 5) // as the kernel would
    p.payloadFilled(data.length - 5)
    const req = p.next() as { data: Buffer; offset: number }
    expect(req.offset).toBe(4096)
    expect(req.data.equals(data)).toBe(true)
    expect(p.payloadTarget()).toBeUndefined()
  })

  it('refuses a fill that does not match the target', () => {
    const p = new RequestParser()
    p.push(encodeRequest(C.CMD_WRITE, { offset: 0, length: 10, data: Buffer.alloc(10) }).subarray(0, 28))
    expect(p.next()).toBeUndefined()
    expect(() => p.payloadFilled(11)).toThrow()
    p.push(Buffer.alloc(1))
    expect(p.payloadTarget()).toBeUndefined() // buffered bytes come first
    expect(() => p.payloadFilled(1)).toThrow()
  })
})
