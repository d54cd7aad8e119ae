import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/** `ClusterConfig.secretCheck`: 32 hex digits of salt, a colon, 64 hex digits of HMAC-SHA256. */
export const SECRET_CHECK_RE = /^[0-9a-f]{32}:[0-9a-f]{64}$/

const DOMAIN = 'torus-secret-check:'

function mac(secret: Uint8Array | string, salt: string): Buffer {
  if (typeof secret !== 'string' && !(secret instanceof Uint8Array)) throw new TypeError('secret must be a Uint8Array or a string')
  if (secret.length === 0) throw new RangeError('secret must not be empty')
  return createHmac('sha256', secret).update(`${DOMAIN}${salt}`).digest()
}

/**
 * A verifier of the cluster's transport secret, safe to store in cluster metadata: a random
 * 16-byte salt and HMAC-SHA256(key = secret, data = `torus-secret-check:<salt hex>`). A string
 * secret is used as its UTF-8 bytes.
 */
export function makeSecretCheck(secret: Uint8Array | string): string {
  const salt = randomBytes(16).toString('hex')
  return `${salt}:${mac(secret, salt).toString('hex')}`
}

/** True when `check` was made from `secret`; false for another secret or a malformed check. Compares in constant time. */
export function verifySecretCheck(secret: Uint8Array | string, check: string): boolean {
  if (typeof check !== 'string' || !SECRET_CHECK_RE.test(check)) return false
  const [salt = '', expected = ''] = check.split(':')
  return timingSafeEqual(mac(secret, salt), Buffer.from(expected, 'hex'))
}
