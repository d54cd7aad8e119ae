/**
 * The frame codec against hand-built bytes: valid frames decode to exactly the documented
 * fields and encode back to the same bytes; hostile frames (truncated, oversized, wrong types,
 * unknown types, MessagePack extensions, deep nesting, random garbage) throw TORUS_PROTOCOL and
 * nothing else, and leave the decoder working.
 */
import { describe, expect, it } from 'vitest'
import { SeededRandom, TorusError } from '@torus/core'
import {
  decodeFrame,
  encodeChallenge,
  encodeError,
  encodeHello,
  encodeHelloOk,
  encodeProof,
  encodeReply,
  encodeRequest,
  FrameType,
  isTransportValue,
  type Frame,
} from '../src/frame-codec.js'
import { ERROR_CONFLICT, ERROR_UNKNOWN_CODE, HELLO, HELLO_OK, hex, REPLY_OK, REQUEST_PING, REQUEST_WRITE } from './fixtures/frames.js'

const MAX = 1024 * 1024

function protocolError(bytes: Uint8Array, max = MAX): TorusError {
  try {
    decodeFrame(bytes, max)
  } catch (err) {
    expect(err).toBeInstanceOf(TorusError)
    expect((err as TorusError).code).toBe('TORUS_PROTOCOL')
    return err as TorusError
  }
  throw new Error(`decoded without error: ${Buffer.from(bytes).toString('hex')}`)
}

/** Header + body hex, for hostile variations. */
function frame(type: number, id: number, rest: string): Uint8Array {
  return hex(`01 ${type.toString(16).padStart(2, '0')} ${id.toString(16).padStart(8, '0')} ${rest}`)
}

describe('decodeFrame on hand-built frames', () => {
  it('decodes a REQUEST with method and nil body', () => {
    expect(decodeFrame(REQUEST_PING, MAX)).toEqual({ type: FrameType.REQUEST, id: 1, method: 'ping', body: null })
  })

  it('decodes a REQUEST body with bytes as a view into the frame (no copy)', () => {
    const f = decodeFrame(REQUEST_WRITE, MAX) as Frame & { type: 5 }
    expect(f.id).toBe(0x01020304)
    expect(f.method).toBe('block.write')
    const { bytes, seq } = f.body as { bytes: Uint8Array; seq: number }
    expect(seq).toBe(7)
    expect([...bytes]).toEqual([0xaa, 0xbb, 0xcc])
    expect(bytes.buffer).toBe(REQUEST_WRITE.buffer)
  })

  it('decodes a REPLY to the largest id', () => {
    expect(decodeFrame(REPLY_OK, MAX)).toEqual({ type: FrameType.REPLY, id: 0xffffffff, body: 'ok' })
  })

  it('decodes an ERROR with code, message and details', () => {
    expect(decodeFrame(ERROR_CONFLICT, MAX)).toEqual({
      type: FrameType.ERROR,
      id: 9,
      error: { code: 'TORUS_CONFLICT', message: 'stale', details: { current: 5 } },
    })
  })

  it('maps an error code it does not know to TORUS_INTERNAL and keeps the original', () => {
    expect(decodeFrame(ERROR_UNKNOWN_CODE, MAX)).toEqual({
      type: FrameType.ERROR,
      id: 1,
      error: { code: 'TORUS_INTERNAL', message: 'x', details: { remoteCode: 'TORUS_NEW' } },
    })
  })

  it('decodes a HELLO and a HELLO_OK', () => {
    const hello = decodeFrame(HELLO, MAX) as Frame & { type: 1 }
    expect(hello.hello).toMatchObject({ cluster: 'c', peer: 'p1', maxFrameBytes: 65536 })
    expect([...hello.hello.nonce]).toEqual(new Array(32).fill(0x11))
    const ok = decodeFrame(HELLO_OK, MAX) as Frame & { type: 4 }
    expect([...ok.proof]).toEqual(new Array(32).fill(0x22))
  })
})

describe('encoders produce the documented bytes', () => {
  it('REQUEST, REPLY and ERROR encode to the hand-built fixtures', () => {
    expect(Buffer.from(encodeRequest(1, 'ping', null))).toEqual(Buffer.from(REQUEST_PING))
    expect(Buffer.from(encodeRequest(0x01020304, 'block.write', { bytes: Uint8Array.of(0xaa, 0xbb, 0xcc), seq: 7 }))).toEqual(Buffer.from(REQUEST_WRITE))
    expect(Buffer.from(encodeReply(0xffffffff, 'ok'))).toEqual(Buffer.from(REPLY_OK))
    expect(Buffer.from(encodeError(9, { code: 'TORUS_CONFLICT', message: 'stale', details: { current: 5 } }))).toEqual(Buffer.from(ERROR_CONFLICT))
  })

  it('HELLO and HELLO_OK encode to the hand-built fixtures', () => {
    const nonce = new Uint8Array(32).fill(0x11)
    expect(Buffer.from(encodeHello({ cluster: 'c', peer: 'p1', nonce, maxFrameBytes: 65536 }))).toEqual(Buffer.from(HELLO))
    expect(Buffer.from(encodeHelloOk(new Uint8Array(32).fill(0x22)))).toEqual(Buffer.from(HELLO_OK))
  })

  it('every frame type round-trips', () => {
    const nonce = new Uint8Array(32).fill(3)
    const proof = new Uint8Array(32).fill(4)
    const cases: [Uint8Array, Frame][] = [
      [encodeHello({ cluster: 'c1', peer: 'p', nonce, maxFrameBytes: 2048 }), { type: 1, id: 0, hello: { cluster: 'c1', peer: 'p', nonce, maxFrameBytes: 2048 } }],
      [encodeChallenge({ cluster: 'c1', peer: 'q', nonce, maxFrameBytes: 4096 }), { type: 2, id: 0, challenge: { cluster: 'c1', peer: 'q', nonce, maxFrameBytes: 4096 } }],
      [encodeProof(proof), { type: 3, id: 0, proof }],
      [encodeHelloOk(proof), { type: 4, id: 0, proof }],
      [encodeRequest(77, 'a:b/c-d_e.f', [1, 'x', { y: 2n ** 60n }]), { type: 5, id: 77, method: 'a:b/c-d_e.f', body: [1, 'x', { y: 2n ** 60n }] }],
      [encodeReply(78, { ok: true }), { type: 6, id: 78, body: { ok: true } }],
      [encodeError(0, { code: 'TORUS_PROTOCOL', message: 'bye' }), { type: 7, id: 0, error: { code: 'TORUS_PROTOCOL', message: 'bye' } }],
    ]
    for (const [bytes, expected] of cases) {
      const decoded = decodeFrame(bytes, MAX)
      expect(JSON.parse(JSON.stringify(decoded, replacer))).toEqual(JSON.parse(JSON.stringify(expected, replacer)))
    }
  })

  it('drops error details that are not plain data instead of failing', () => {
    const f = decodeFrame(encodeError(3, { code: 'TORUS_INTERNAL', message: 'm', details: { when: new Date() } as never }), MAX)
    expect(f).toEqual({ type: 7, id: 3, error: { code: 'TORUS_INTERNAL', message: 'm' } })
  })

  it('refuses bodies that are not plain data with TypeError', () => {
    for (const body of [new Date(), new Map(), new Set(), new Float32Array(1), new Uint8ClampedArray(1), () => 1, Symbol('x'), [[new Date()]], Object.create({ inherited: 1 })]) {
      expect(() => encodeReply(1, body as never)).toThrow(TypeError)
    }
    let deep: unknown = 1
    for (let i = 0; i < 40; i++) deep = [deep]
    expect(() => encodeReply(1, deep as never)).toThrow(TypeError)
    expect(() => encodeReply(1, 2n ** 70n)).toThrow(TypeError)
  })

  it('accepts null-prototype objects and Buffers', () => {
    const o = Object.assign(Object.create(null) as Record<string, unknown>, { a: Buffer.from('hi') })
    expect(isTransportValue(o, 0)).toBe(true)
    const f = decodeFrame(encodeReply(5, o as never), MAX) as Frame & { type: 6 }
    expect(Buffer.from((f.body as { a: Uint8Array }).a).toString()).toBe('hi')
  })
})

describe('decodeFrame refuses hostile frames with TORUS_PROTOCOL', () => {
  const hostile: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['header only', hex('01 05 00000001')],
    ['version 0', hex('00 06 00000001 c0')],
    ['version 2', hex('02 06 00000001 c0')],
    ['type 0', frame(0, 1, 'c0')],
    ['type 8', frame(8, 1, 'c0')],
    ['type 255', frame(255, 1, 'c0')],
    ['REQUEST id 0', frame(5, 0, '01 61 c0')],
    ['REPLY id 0', frame(6, 0, 'c0')],
    ['method length 0', frame(5, 1, '00 c0')],
    ['method length 65', frame(5, 1, `41 ${'61'.repeat(65)} c0`)],
    ['method longer than the frame', frame(5, 1, '10 6161')],
    ['method without body', frame(5, 1, '02 6161')],
    ['method with a space', frame(5, 1, '03 612062 c0')],
    ['method with NUL', frame(5, 1, '02 6100 c0')],
    ['method with UTF-8', frame(5, 1, '02 c3bc c0')],
    ['truncated bin', frame(6, 1, 'c5 0010 aabb')],
    ['truncated map', frame(6, 1, '82 a1 61 01')],
    ['huge array header', frame(6, 1, 'dd ffffffff c0')],
    ['huge str header', frame(6, 1, 'db ffffffff 61')],
    ['trailing bytes', frame(6, 1, 'c0 c0')],
    ['never-used byte 0xc1', frame(6, 1, 'c1')],
    ['timestamp ext (Date)', frame(6, 1, 'd6 ff 00000000')],
    ['broken timestamp ext', frame(6, 1, 'd4 ff 00')],
    ['Set ext', frame(6, 1, 'd4 73 90')],
    ['RegExp ext', frame(6, 1, 'd4 78 92 a1 61 a0')],
    ['Error ext', frame(6, 1, 'd4 65 92 a5 4572726f72 a1 78')],
    ['typed array ext (Float32Array)', frame(6, 1, 'c7 05 74 07 00000000')],
    ['unknown ext 0x7f', frame(6, 1, 'd4 7f 00')],
    ['nesting deeper than 32', frame(6, 1, `${'91'.repeat(33)} c0`)],
    ['nesting deep enough to overflow the stack', frame(6, 1, `${'91'.repeat(200_000)} c0`)],
    ['HELLO with id 1', hex('01 01 00000001 80')],
    ['HELLO body not a map', frame(1, 0, '90')],
    ['HELLO without nonce', frame(1, 0, '83 a7 636c7573746572 a1 63 a4 70656572 a1 70 ad 6d61784672616d654279746573 cd 1000')],
    ['HELLO nonce of 31 bytes', frame(1, 0, `84 a7 636c7573746572 a1 63 a4 70656572 a1 70 a5 6e6f6e6365 c4 1f ${'00'.repeat(31)} ad 6d61784672616d654279746573 cd 1000`)],
    ['HELLO cluster with a space', frame(1, 0, `84 a7 636c7573746572 a3 612062 a4 70656572 a1 70 a5 6e6f6e6365 c4 20 ${'00'.repeat(32)} ad 6d61784672616d654279746573 cd 1000`)],
    ['HELLO peer is a number', frame(1, 0, `84 a7 636c7573746572 a1 63 a4 70656572 07 a5 6e6f6e6365 c4 20 ${'00'.repeat(32)} ad 6d61784672616d654279746573 cd 1000`)],
    ['HELLO maxFrameBytes 16', frame(1, 0, `84 a7 636c7573746572 a1 63 a4 70656572 a1 70 a5 6e6f6e6365 c4 20 ${'00'.repeat(32)} ad 6d61784672616d654279746573 10`)],
    ['HELLO maxFrameBytes 15000.5', frame(1, 0, `84 a7 636c7573746572 a1 63 a4 70656572 a1 70 a5 6e6f6e6365 c4 20 ${'00'.repeat(32)} ad 6d61784672616d654279746573 cb 40cd4c4000000000`)],
    ['HELLO_OK without proof', frame(4, 0, 'c0')],
    ['PROOF of 33 bytes', frame(3, 0, `81 a5 70726f6f66 c4 21 ${'00'.repeat(33)}`)],
    ['ERROR body not a map', frame(7, 1, 'a1 78')],
    ['ERROR without message', frame(7, 1, '81 a4 636f6465 a1 78')],
    ['ERROR code not a string', frame(7, 1, '82 a4 636f6465 01 a7 6d657373616765 a1 78')],
    ['ERROR details an array', frame(7, 1, '83 a4 636f6465 a1 78 a7 6d657373616765 a1 78 a7 64657461696c73 90')],
  ]

  it.each(hostile)('%s', (_name, bytes) => {
    protocolError(bytes)
  })

  it('keeps a msgpackr record definition inside its own frame', () => {
    // Records are a msgpackr extension we do not use; one that arrives decodes to a plain map
    // and must not change how the next frame reads (0x40 is a record reference only while a
    // record 0 is defined).
    expect(decodeFrame(frame(6, 1, 'd4 72 40 91 a1 61 01'), MAX)).toEqual({ type: 6, id: 1, body: { a: 1 } })
    expect(decodeFrame(frame(6, 2, '40'), MAX)).toEqual({ type: 6, id: 2, body: 64 })
  })

  it('refuses a frame larger than maxFrameBytes before decoding it', () => {
    const big = encodeReply(1, new Uint8Array(5000))
    expect(protocolError(big, 4096).details).toMatchObject({ frameBytes: big.byteLength, maxFrameBytes: 4096 })
    expect(decodeFrame(big, big.byteLength).type).toBe(FrameType.REPLY)
  })

  it('still decodes valid frames after every hostile one', () => {
    for (const [, bytes] of hostile) {
      protocolError(bytes)
      expect(decodeFrame(REQUEST_WRITE, MAX)).toMatchObject({ id: 0x01020304, method: 'block.write' })
    }
  })

  it('throws only TORUS_PROTOCOL for random garbage and for mutations of valid frames (seeded)', () => {
    const random = new SeededRandom(20261203)
    const valid = [REQUEST_PING, REQUEST_WRITE, REPLY_OK, ERROR_CONFLICT, HELLO, HELLO_OK, encodeRequest(5, 'm', { a: [1, 2, { b: new Uint8Array(40) }], s: 'text' })]
    let decoded = 0
    for (let i = 0; i < 3000; i++) {
      let bytes: Uint8Array
      if (i % 2 === 0) {
        bytes = new Uint8Array(random.int(64))
        for (let j = 0; j < bytes.length; j++) bytes[j] = random.int(256)
        if (bytes.length > 1 && random.next() < 0.7) bytes[0] = 1
      } else {
        bytes = Uint8Array.from(valid[random.int(valid.length)]!)
        const flips = 1 + random.int(4)
        for (let j = 0; j < flips; j++) bytes[random.int(bytes.length)] = random.int(256)
        if (random.next() < 0.3) bytes = bytes.subarray(0, random.int(bytes.length))
      }
      try {
        decodeFrame(bytes, MAX)
        decoded++
      } catch (err) {
        if (!(err instanceof TorusError) || err.code !== 'TORUS_PROTOCOL') throw new Error(`unexpected ${String(err)} for ${Buffer.from(bytes).toString('hex')}`)
      }
    }
    // Some mutations stay valid (a flipped payload byte); most do not.
    expect(decoded).toBeGreaterThan(0)
    expect(decoded).toBeLessThan(3000)
  })
})

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return `${value}n`
  if (value instanceof Uint8Array) return { bytes: [...value] }
  if (value !== null && typeof value === 'object' && (value as { type?: string }).type === 'Buffer') return { bytes: (value as { data: number[] }).data }
  return value
}
