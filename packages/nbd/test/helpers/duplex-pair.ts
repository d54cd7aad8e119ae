import { Duplex } from 'node:stream'

/**
 * Two in-process duplex streams wired back to back (like ws `test/duplex-pair.js`): what one
 * writes, the other reads, chunk for chunk. Ending one ends the other's readable side;
 * destroying one ends and destroys the other.
 */
export function duplexPair(): [Duplex, Duplex] {
  const sides: Duplex[] = []
  const eof = [false, false]
  const make = (me: number): Duplex => {
    const peer = 1 - me
    const push = (chunk: Buffer | null): void => {
      const p = sides[peer]!
      if (eof[peer] || p.destroyed) return
      if (chunk === null) eof[peer] = true
      p.push(chunk)
    }
    return new Duplex({
      // Like a TCP socket: when the peer ends, end our side too.
      allowHalfOpen: false,
      read() {},
      write(chunk: Buffer, _enc, cb) {
        push(chunk)
        cb()
      },
      final(cb) {
        push(null)
        cb()
      },
      destroy(err, cb) {
        push(null)
        const p = sides[peer]!
        // Let the peer read what was already pushed (and see 'end') before it closes.
        setImmediate(() => p.destroy())
        cb(err)
      },
    })
  }
  sides.push(make(0), make(1))
  return [sides[0]!, sides[1]!]
}
