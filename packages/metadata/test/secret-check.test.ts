// Goal: a secret check verifies the secret it was made from and nothing else, and never
// throws on a malformed check. Method: make checks from string and byte secrets and verify them.
import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { SECRET_CHECK_RE, makeSecretCheck, verifySecretCheck } from '../src/index.js'

describe('makeSecretCheck / verifySecretCheck', () => {
  it('makes "<32 hex salt>:<64 hex HMAC-SHA256>" with a fresh salt each time', () => {
    const a = makeSecretCheck('s3cret')
    const b = makeSecretCheck('s3cret')
    expect(a).toMatch(SECRET_CHECK_RE)
    expect(a).not.toBe(b)
    const [salt, mac] = a.split(':')
    expect(mac).toBe(createHmac('sha256', 's3cret').update(`torus-secret-check:${salt}`).digest('hex'))
  })

  it('verifies the secret it was made from, as a string or as its UTF-8 bytes', () => {
    const check = makeSecretCheck('pässword')
    expect(verifySecretCheck('pässword', check)).toBe(true)
    expect(verifySecretCheck(new TextEncoder().encode('pässword'), check)).toBe(true)
    const bytes = new Uint8Array([0, 1, 2, 255])
    expect(verifySecretCheck(bytes, makeSecretCheck(bytes))).toBe(true)
  })

  it('rejects another secret, a tampered check and a malformed check', () => {
    const check = makeSecretCheck('right')
    expect(verifySecretCheck('wrong', check)).toBe(false)
    expect(verifySecretCheck('right', `${check.slice(0, -1)}${check.endsWith('0') ? '1' : '0'}`)).toBe(false)
    expect(verifySecretCheck('right', `${'0'.repeat(32)}${check.slice(32)}`)).toBe(false)
    for (const bad of ['', 'abc:def', check.toUpperCase(), `${check}0`, 42 as unknown as string]) expect(verifySecretCheck('right', bad)).toBe(false)
  })

  it('refuses an empty or non-byte secret', () => {
    expect(() => makeSecretCheck('')).toThrow(RangeError)
    expect(() => makeSecretCheck(42 as unknown as string)).toThrow(TypeError)
  })
})
