/** The errno table: each Torus code the spec cares about, RangeError, and everything else. */
import { TorusError } from '@torus/core'
import { describe, expect, it } from 'vitest'
import { nbdConstants as C, nbdErrnoFor } from '../src/index.js'

describe('nbdErrnoFor', () => {
  it('maps Torus codes through the table', () => {
    expect(nbdErrnoFor(new TorusError('TORUS_OUT_OF_SPACE', 'full'))).toBe(C.ENOSPC)
    expect(nbdErrnoFor(new TorusError('TORUS_NOT_SUPPORTED', 'no'))).toBe(C.EINVAL)
    expect(nbdErrnoFor(new TorusError('TORUS_ABORTED', 'gone'))).toBe(C.ESHUTDOWN)
    expect(nbdErrnoFor(new TorusError('TORUS_READ_ONLY', 'ro'))).toBe(C.EPERM)
    expect(nbdErrnoFor(new TorusError('TORUS_UNAVAILABLE', 'down'))).toBe(C.EIO)
    expect(nbdErrnoFor(new TorusError('TORUS_CORRUPT', 'bad'))).toBe(C.EIO)
  })

  it('maps TORUS_NOT_SUPPORTED on a FAST_ZERO request to ENOTSUP', () => {
    expect(nbdErrnoFor(new TorusError('TORUS_NOT_SUPPORTED', 'slow'), true)).toBe(C.ENOTSUP)
    expect(nbdErrnoFor(new TorusError('TORUS_OUT_OF_SPACE', 'full'), true)).toBe(C.ENOSPC)
  })

  it('maps RangeError to EINVAL and anything else to EIO', () => {
    expect(nbdErrnoFor(new RangeError('x'))).toBe(C.EINVAL)
    expect(nbdErrnoFor(new Error('x'))).toBe(C.EIO)
    expect(nbdErrnoFor('a string')).toBe(C.EIO)
    expect(nbdErrnoFor(undefined)).toBe(C.EIO)
  })

  it('compares codes, not classes', () => {
    expect(nbdErrnoFor({ code: 'TORUS_OUT_OF_SPACE' })).toBe(C.ENOSPC)
    expect(nbdErrnoFor({ code: 'ENOSPC' })).toBe(C.EIO)
  })
})
