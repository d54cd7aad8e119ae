// WRITE payloads are read from the socket straight into their buffers (NbdServer's direct
// reads). Pipelined writes of random sizes, sent in random fragments so that headers, payloads
// and the next request share reads in every possible way, must land byte-exact; compared with a
// model after reading everything back. Replays from TORUS_SEED.
import { describe, expect, it } from 'vitest'
import { SeededRandom } from '@torus/core'
import { nbdConstants as C, encodeRequest } from '../src/index.js'
import { tcpTransport } from './helpers/harness.js'
import { MemoryDevice } from './helpers/memory-device.js'

const SIZE = 8 * 1024 * 1024
const seeds = process.env.TORUS_SEED !== undefined ? [Number(process.env.TORUS_SEED)] : [1, 2, 3]

describe('direct reads of WRITE payloads over TCP', () => {
  for (const seed of seeds) {
    it(`stores pipelined, fragmented writes byte-exact (TORUS_SEED=${seed})`, async () => {
      const rnd = new SeededRandom(seed)
      const device = new MemoryDevice(SIZE)
      const model = new Uint8Array(SIZE)
      const server = await tcpTransport.start({ resolveExport: () => device })
      try {
        const client = await server.connect()
        await client.connect('x')
        // Build a stream of non-overlapping writes (they are in flight together).
        const stream: Buffer[] = []
        const taken: Array<[number, number]> = []
        let count = 0
        for (let i = 0; i < 60; i++) {
          const length = [1, 17, 4096, 65_535, 65_536, 65_537, 300_001, 1_048_576, 2_000_000][rnd.int(9)]!
          const offset = rnd.int(SIZE - length)
          if (taken.some(([a, b]) => offset < b && a < offset + length)) continue
          taken.push([offset, offset + length])
          const data = Buffer.alloc(length)
          for (let k = 0; k < length; k += 4096) data.fill((seed * 31 + i * 7 + k) & 0xff, k, Math.min(length, k + 4096))
          model.set(data, offset)
          stream.push(encodeRequest(C.CMD_WRITE, { cookie: BigInt(i), offset, length, data }))
          count++
        }
        const all = Buffer.concat(stream)
        // Send in random fragments, yielding between some of them so reads split everywhere.
        for (let at = 0; at < all.length; ) {
          const n = Math.min(all.length - at, 1 + rnd.int(rnd.next() < 0.5 ? 100 : 200_000))
          client.send(all.subarray(at, at + n))
          at += n
          if (rnd.next() < 0.2) await new Promise((r) => setTimeout(r, 1))
        }
        for (let i = 0; i < count; i++) expect((await client.readReply()).error).toBe(0)
        for (let off = 0; off < SIZE; off += 1024 * 1024) {
          client.request(C.CMD_READ, { cookie: 1000n, offset: off, length: 1024 * 1024 })
          const r = await client.readReply(1024 * 1024)
          expect(r.error).toBe(0)
          if (!r.data.equals(Buffer.from(model.subarray(off, off + 1024 * 1024)))) {
            expect.fail(`bytes differ in [${off}, ${off + 1024 * 1024}) (TORUS_SEED=${seed})`)
          }
        }
      } finally {
        await server.close()
      }
    })
  }
})
