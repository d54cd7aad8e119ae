// Goal: crc32c computes CRC-32C (Castagnoli), not zlib's CRC-32.
// Method: compare with published check values, and check that continuing a checksum equals one pass.
import { describe, expect, it } from 'vitest'
import { crc32c } from '../src/index.js'
import { crc32cNative, crc32cPortable } from '../src/crc32c.js'

describe('crc32c', () => {
  it('matches the standard check value for "123456789"', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283)
  })

  it('gives 0 for no bytes and the RFC 3720 value for 32 zero bytes', () => {
    expect(crc32c(new Uint8Array(0))).toBe(0)
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa)
  })

  it('continues a checksum across chunks', () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff)
    expect(crc32c(bytes.subarray(300), crc32c(bytes.subarray(0, 300)))).toBe(crc32c(bytes))
  })

  it('uses the native implementation here, and it agrees with the portable one on odd lengths and offsets', () => {
    // The prebuilt binary exists for linux-x64 (this project's machines); elsewhere the portable one runs.
    if (process.platform === 'linux' && process.arch === 'x64') expect(crc32cNative).toBe(true)
    const bytes = Uint8Array.from({ length: 70_001 }, (_, i) => (i * 131 + (i >> 7)) & 0xff)
    for (const [start, end] of [[0, 0], [0, 1], [3, 4099], [17, 70_001], [4096, 8192]] as const) {
      const part = bytes.subarray(start, end)
      expect(crc32c(part), `${start}-${end}`).toBe(crc32cPortable(part))
      expect(crc32c(part, 0x12345678), `${start}-${end} continued`).toBe(crc32cPortable(part, 0x12345678))
    }
  })
})
