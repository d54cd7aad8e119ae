/**
 * Unit tests of the sans-IO handshake: hex fixtures in, events and reply bytes out, with no
 * socket. Covers each option the server handles, malformed options, and split input.
 */
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_BLOCK_SIZE,
  ServerHandshake,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoReplies,
  encodeListReplies,
  nbdConstants as C,
  transmissionFlagsFor,
  validateBlockSizeConstraints,
  type HandshakeEvent,
} from '../src/index.js'
import * as F from './fixtures/handshake.js'
import { goData } from './helpers/raw-client.js'

function events(hs: ServerHandshake): HandshakeEvent[] {
  const out: HandshakeEvent[] = []
  for (let e = hs.next(); e !== undefined; e = hs.next()) out.push(e)
  return out
}

function started(): ServerHandshake {
  const hs = new ServerHandshake()
  hs.push(F.CLIENT_FLAGS)
  expect(events(hs)).toEqual([{ type: 'client-flags', flags: 3, fixedNewstyle: true, noZeroes: true }])
  return hs
}

const ALL = { readOnly: false, flush: true, fua: true, trim: true, writeZeroes: true, fastZero: true, multiConn: true }
const NONE = { readOnly: false, flush: false, fua: false, trim: false, writeZeroes: false, fastZero: false, multiConn: false }

describe('encodeGreeting', () => {
  it('sends NBDMAGIC, IHAVEOPT and FIXED_NEWSTYLE | NO_ZEROES', () => {
    expect(encodeGreeting()).toEqual(F.GREETING)
  })
})

describe('ServerHandshake', () => {
  it('accepts client flags and remembers NO_ZEROES', () => {
    const hs = started()
    expect(hs.noZeroes).toBe(true)
    expect(hs.phase).toBe('options')
  })

  it('closes on unknown client flags', () => {
    const hs = new ServerHandshake()
    hs.push(Buffer.from([0, 0, 0, 4]))
    expect(events(hs)).toEqual([{ type: 'close', reason: 'bad-client-flags' }])
    expect(hs.phase).toBe('closed')
  })

  it('parses NBD_OPT_GO with its information requests', () => {
    const hs = started()
    hs.push(F.OPT_GO_DISK)
    expect(events(hs)).toEqual([{ type: 'info', option: C.OPT_GO, name: 'disk', requests: [C.INFO_NAME, C.INFO_BLOCK_SIZE] }])
  })

  it('parses the same bytes fed one at a time', () => {
    const hs = new ServerHandshake()
    const all = Buffer.concat([F.CLIENT_FLAGS, F.OPT_UNKNOWN, F.OPT_GO_DISK])
    const got: HandshakeEvent[] = []
    for (const byte of all) {
      hs.push(Buffer.from([byte]))
      got.push(...events(hs))
    }
    expect(got.map((e) => e.type)).toEqual(['client-flags', 'reply', 'info'])
  })

  it('answers an unknown option with NBD_REP_ERR_UNSUP and parses the next option', () => {
    const hs = started()
    hs.push(Buffer.concat([F.OPT_UNKNOWN, F.OPT_LIST]))
    const [unsup, list] = events(hs)
    expect(unsup).toMatchObject({ type: 'reply', option: 0x1234, replyType: C.REP_ERR_UNSUP })
    expect(unsup?.type === 'reply' && unsup.bytes).toEqual(F.REPLY_UNSUP_1234)
    expect(list).toEqual({ type: 'list' })
  })

  it('answers NBD_OPT_GO with an inconsistent name length with NBD_REP_ERR_INVALID', () => {
    const hs = started()
    hs.push(F.OPT_GO_BAD_NAME_LENGTH)
    expect(events(hs)).toMatchObject([{ type: 'reply', option: C.OPT_GO, replyType: C.REP_ERR_INVALID }])
  })

  it('answers NBD_OPT_INFO whose request count disagrees with the length with NBD_REP_ERR_INVALID', () => {
    const hs = started()
    const data = goData('x', [1])
    data.writeUInt16BE(5, 5) // claims 5 requests, carries 1
    hs.push(optionBytes(C.OPT_INFO, data))
    expect(events(hs)).toMatchObject([{ type: 'reply', replyType: C.REP_ERR_INVALID }])
  })

  it('rejects NBD_OPT_LIST with data, STRUCTURED_REPLY and STARTTLS', () => {
    const hs = started()
    hs.push(optionBytes(C.OPT_LIST, Buffer.from([1])))
    hs.push(optionBytes(C.OPT_STRUCTURED_REPLY))
    hs.push(optionBytes(C.OPT_STARTTLS))
    expect(events(hs)).toMatchObject([
      { type: 'reply', option: C.OPT_LIST, replyType: C.REP_ERR_INVALID },
      { type: 'reply', option: C.OPT_STRUCTURED_REPLY, replyType: C.REP_ERR_UNSUP },
      { type: 'reply', option: C.OPT_STARTTLS, replyType: C.REP_ERR_UNSUP },
    ])
  })

  it('rejects export names longer than 4096 bytes or containing NUL', () => {
    const hs = started()
    hs.push(optionBytes(C.OPT_INFO, goData('a'.repeat(4097))))
    hs.push(optionBytes(C.OPT_GO, goData('a\0b')))
    expect(events(hs)).toMatchObject([
      { type: 'reply', replyType: C.REP_ERR_INVALID },
      { type: 'reply', replyType: C.REP_ERR_INVALID },
    ])
  })

  it('replies NBD_REP_ERR_TOO_BIG and closes on a huge option without waiting for its data', () => {
    const hs = started()
    hs.push(F.OPT_HUGE)
    const [ev] = events(hs)
    expect(ev).toMatchObject({ type: 'close', reason: 'option-too-big', option: C.OPT_GO })
    const bytes = ev?.type === 'close' ? ev.bytes! : Buffer.alloc(0)
    expect(bytes.readUInt32BE(12)).toBe(C.REP_ERR_TOO_BIG)
  })

  it('closes without a reply on a huge NBD_OPT_EXPORT_NAME', () => {
    const hs = started()
    hs.push(optionHeader(C.OPT_EXPORT_NAME, 1 << 20))
    expect(events(hs)).toEqual([{ type: 'close', reason: 'option-too-big', option: C.OPT_EXPORT_NAME }])
  })

  it('closes on a wrong option magic', () => {
    const hs = started()
    hs.push(Buffer.alloc(16, 0x41))
    expect(events(hs)).toEqual([{ type: 'close', reason: 'bad-magic' }])
  })

  it('acknowledges NBD_OPT_ABORT and ends the session', () => {
    const hs = started()
    hs.push(optionBytes(C.OPT_ABORT, Buffer.from('ignored')))
    const [ev] = events(hs)
    expect(ev).toMatchObject({ type: 'close', reason: 'abort' })
    expect(ev?.type === 'close' && ev.bytes!.readUInt32BE(12)).toBe(C.REP_ACK)
  })

  it('emits export-name and hands over the bytes that follow', () => {
    const hs = started()
    hs.push(Buffer.concat([optionBytes(C.OPT_EXPORT_NAME, Buffer.from('disk')), Buffer.from([9, 9])]))
    expect(events(hs)).toEqual([{ type: 'export-name', name: 'disk' }])
    expect(hs.finish()).toEqual(Buffer.from([9, 9]))
  })
})

describe('reply encoders', () => {
  it('encodes NBD_OPT_GO success with INFO_EXPORT, INFO_BLOCK_SIZE, INFO_NAME and ACK', () => {
    const bytes = encodeInfoReplies(
      C.OPT_GO,
      { name: 'disk', description: 'ignored: not requested', sizeBytes: 1 << 20, transmissionFlags: transmissionFlagsFor(ALL), blockSize: DEFAULT_BLOCK_SIZE },
      [C.INFO_NAME, C.INFO_BLOCK_SIZE],
    )
    expect(bytes).toEqual(F.REPLY_GO_DISK)
  })

  it('encodes NBD_OPT_LIST as NBD_REP_SERVER per export then ACK', () => {
    expect(encodeListReplies([{ name: 'disk', description: 'd' }])).toEqual(F.REPLY_LIST_DISK)
  })

  it('encodes the NBD_OPT_EXPORT_NAME reply with and without the 124 zeroes', () => {
    const flags = transmissionFlagsFor({ ...NONE, readOnly: true })
    expect(encodeExportNameReply(1 << 20, flags, true)).toEqual(F.REPLY_EXPORT_NAME_RO)
    const full = encodeExportNameReply(1 << 20, flags, false)
    expect(full.length).toBe(134)
    expect(full.subarray(0, 10)).toEqual(F.REPLY_EXPORT_NAME_RO)
    expect(full.subarray(10).every((b) => b === 0)).toBe(true)
  })

  it('encodes export sizes above 2^32 exactly', () => {
    const b = encodeExportNameReply(2 ** 40 + 512, 1, true)
    expect(b.readBigUInt64BE(0)).toBe(2n ** 40n + 512n)
  })
})

describe('transmissionFlagsFor', () => {
  it('maps supports to flags', () => {
    expect(transmissionFlagsFor(NONE)).toBe(C.FLAG_HAS_FLAGS)
    expect(transmissionFlagsFor(ALL)).toBe(0x096d)
    expect(transmissionFlagsFor({ ...NONE, writeZeroes: false, fastZero: true })).toBe(C.FLAG_HAS_FLAGS)
  })

  it('advertises only read-side capabilities on a read-only device', () => {
    expect(transmissionFlagsFor({ ...ALL, readOnly: true })).toBe(
      C.FLAG_HAS_FLAGS | C.FLAG_READ_ONLY | C.FLAG_SEND_FLUSH | C.FLAG_CAN_MULTI_CONN,
    )
  })
})

describe('validateBlockSizeConstraints', () => {
  it('accepts the defaults and rejects broken constraints', () => {
    expect(validateBlockSizeConstraints(DEFAULT_BLOCK_SIZE)).toBe(DEFAULT_BLOCK_SIZE)
    expect(() => validateBlockSizeConstraints({ ...DEFAULT_BLOCK_SIZE, minimumBytes: 3 })).toThrow(RangeError)
    expect(() => validateBlockSizeConstraints({ ...DEFAULT_BLOCK_SIZE, preferredBytes: 256 })).toThrow(RangeError)
    expect(() => validateBlockSizeConstraints({ ...DEFAULT_BLOCK_SIZE, maximumPayloadBytes: 1024 })).toThrow(RangeError)
  })
})

function optionHeader(option: number, length: number): Buffer {
  const h = Buffer.alloc(16)
  h.writeUInt32BE(C.IHAVEOPT_HI, 0)
  h.writeUInt32BE(C.IHAVEOPT_LO, 4)
  h.writeUInt32BE(option, 8)
  h.writeUInt32BE(length, 12)
  return h
}

function optionBytes(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([optionHeader(option, data.length), data])
}
