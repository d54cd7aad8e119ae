import { describe, expect, it } from 'vitest'
import type { RingDescriptor } from '@torus/core'
import { descriptor, members, peerIds, type RingHarness } from './context.js'

const invalid = expect.objectContaining({ code: 'TORUS_INVALID_ARGUMENT' })

export function describeArgs(harness: RingHarness): void {
  const type = harness.type
  const [a, b] = peerIds(2, 51) as [string, string]
  const bad = (d: unknown): void => {
    expect(() => harness.create(d as RingDescriptor)).toThrow(invalid)
  }

  describe('invalid descriptors', () => {
    it.runIf(type !== 'single')('no members', () => bad(descriptor(type, [])))
    it.runIf(type === 'single')('more than one member', () => bad(descriptor(type, members([a, b]))))
    it('duplicate peers', () => {
      bad(descriptor(type, [{ peer: a, weight: 1 }, { peer: a, weight: 2 }]))
    })
    it('weight <= 0 or not a finite number', () => {
      for (const weight of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '1']) bad(descriptor(type, [{ peer: a, weight: weight as number }]))
    })
    it('replication < 1 or fractional', () => {
      for (const replication of [0, -1, 1.5, Number.NaN]) bad(descriptor(type, members([a]), replication))
    })
    it('unknown type', () => {
      for (const t of ['ring', '', 'KETAMA', undefined]) bad({ ...descriptor(type, members([a])), type: t })
    })
    it('a peer that is not a UUID', () => {
      for (const peer of ['', 'node-1', a.toUpperCase(), 42]) bad(descriptor(type, [{ peer: peer as string, weight: 1 }]))
    })
    it('a bad version', () => {
      for (const version of [-1, 1.5, Number.NaN, '1']) bad({ ...descriptor(type, members([a])), version })
    })
    it('not an object, or members not an array', () => {
      bad(null)
      bad('ketama')
      bad({ ...descriptor(type, members([a])), members: {} })
      bad({ ...descriptor(type, members([a])), members: [null] })
    })
  })
}
