import { BlockRef, peerId } from '@torus/core'
import { describe, expect, it } from 'vitest'
import { blockKey, createRing, DEFAULT_KETAMA_POINTS_PER_SHARE, hashKey, KetamaRing, ModRing, murmur3, SingleRing } from '../src/index.js'

const utf8 = new TextEncoder()
const A = '00000000-0000-4000-8000-00000000000a'
const B = '00000000-0000-4000-8000-00000000000b'
const C = '00000000-0000-4000-8000-00000000000c'

describe('murmur3', () => {
  it('matches the reference MurmurHash3_x86_32 vectors', () => {
    expect(murmur3(utf8.encode(''), 0)).toBe(0)
    expect(murmur3(utf8.encode(''), 1)).toBe(0x514e28b7)
    expect(murmur3(utf8.encode('hello'), 0)).toBe(0x248bfa47)
    expect(murmur3(utf8.encode('The quick brown fox jumps over the lazy dog'), 0)).toBe(0x2e4ff723)
  })

  it('placement hashes are pinned: changing them would move every block', () => {
    expect(hashKey(blockKey(1, 0))).toMatchInlineSnapshot(`1847741072`)
    expect(hashKey('pad')).toMatchInlineSnapshot(`2995717811`)
  })
})

describe('blockKey', () => {
  it('is the 16-byte BlockRef encoding', () => {
    expect(blockKey(7, 3)).toEqual(new BlockRef(7, 3).toBytes())
    expect(BlockRef.fromBytes(blockKey(7, 3)).equals(new BlockRef(7, 3))).toBe(true)
    expect(() => blockKey(0, 0)).toThrow(RangeError)
  })
})

describe('createRing', () => {
  it('builds the class for each type', () => {
    expect(createRing({ version: 0, type: 'single', replication: 1, members: [] })).toBeInstanceOf(SingleRing)
    expect(createRing({ version: 0, type: 'mod', replication: 1, members: [{ peer: A, weight: 1 }] })).toBeInstanceOf(ModRing)
    expect(createRing({ version: 0, type: 'ketama', replication: 1, members: [{ peer: A, weight: 1 }] })).toBeInstanceOf(KetamaRing)
  })

  it('an empty single ring places nowhere', () => {
    expect(createRing({ version: 0, type: 'single', replication: 2, members: [] }).peersFor('x')).toEqual([])
  })

  it('freezes a sorted copy of the descriptor', () => {
    const input = { version: 3, type: 'mod' as const, replication: 2, members: [{ peer: C, weight: 1 }, { peer: A, weight: 2 }] }
    const ring = createRing(input)
    expect(ring.descriptor.members.map((m) => m.peer)).toEqual([A, C])
    expect(Object.isFrozen(ring.descriptor)).toBe(true)
    input.members.push({ peer: B, weight: 1 })
    expect(ring.descriptor.members).toHaveLength(2)
  })

  it('ketama points follow weights', () => {
    const members = [
      { peer: A, weight: 1 },
      { peer: B, weight: 1 },
      { peer: C, weight: 2 },
    ]
    const ring = createRing({ version: 0, type: 'ketama', replication: 1, members }, { ketamaPointsPerShare: 100 }) as KetamaRing
    expect(ring.pointCount).toBe(75 + 75 + 150)
    const dflt = createRing({ version: 0, type: 'ketama', replication: 1, members }) as KetamaRing
    expect(dflt.pointCount).toBe(4 * DEFAULT_KETAMA_POINTS_PER_SHARE * 3 / 4)
    expect(() => createRing({ version: 0, type: 'ketama', replication: 1, members }, { ketamaPointsPerShare: 0 })).toThrow(
      expect.objectContaining({ code: 'TORUS_INVALID_ARGUMENT' }),
    )
  })

  it('a tiny weight still gets one point', () => {
    const ring = createRing(
      { version: 0, type: 'ketama', replication: 2, members: [{ peer: A, weight: 1e-9 }, { peer: B, weight: 1e12 }] },
      { ketamaPointsPerShare: 10 },
    ) as KetamaRing
    expect(ring.pointCount).toBe(21)
    expect([...ring.peersFor('k')].sort()).toEqual([peerId(A), peerId(B)])
  })

  it('rejects a key that is neither bytes nor a string', () => {
    for (const type of ['single', 'mod', 'ketama'] as const) {
      const ring = createRing({ version: 0, type, replication: 1, members: [{ peer: A, weight: 1 }] })
      expect(() => ring.peersFor(42 as unknown as string)).toThrow(expect.objectContaining({ code: 'TORUS_INVALID_ARGUMENT' }))
    }
  })
})
