/**
 * The sans-IO hello: a client and a server state machine wired back to back by hand. Checks
 * the happy path, that the proof is exactly the documented HMAC, and every refusal (wrong
 * secret on either side, other cluster, unexpected peer, frames out of order, replayed and
 * reflected proofs).
 */
import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ClientHandshake, computeProof, ServerHandshake, type HandshakeIdentity } from '../src/handshake.js'
import { decodeFrame, encodeHelloOk, encodeProof, encodeRequest, type Frame } from '../src/frame-codec.js'

const MAX = 1 << 20
const secret = new TextEncoder().encode('handshake test secret 0123456789')
const client: HandshakeIdentity = { clusterId: 'c1', peerId: 'client-1', secret, maxFrameBytes: 65536 }
const server: HandshakeIdentity = { clusterId: 'c1', peerId: 'server-1', secret, maxFrameBytes: 131072 }
const nonceC = new Uint8Array(32).fill(0xc0)
const nonceS = new Uint8Array(32).fill(0x5e)

const frame = (bytes: Uint8Array | undefined): Frame => decodeFrame(bytes!, MAX)

function refusal(fn: () => unknown): Record<string, unknown> {
  try {
    fn()
  } catch (err) {
    expect(err).toMatchObject({ code: 'TORUS_PROTOCOL' })
    return (err as { details: Record<string, unknown> }).details
  }
  throw new Error('no refusal')
}

describe('hello handshake', () => {
  it('completes when both sides share cluster and secret, and each learns the other', () => {
    const c = new ClientHandshake(client)
    const s = new ServerHandshake(server)
    const challenge = s.receive(frame(c.start()))
    expect(challenge.done).toBeUndefined()
    const proof = c.receive(frame(challenge.send))
    expect(proof.done).toBeUndefined()
    const ok = s.receive(frame(proof.send))
    expect(ok.done).toEqual({ peerId: 'client-1', maxFrameBytes: 65536 })
    const done = c.receive(frame(ok.send))
    expect(done).toEqual({ done: { peerId: 'server-1', maxFrameBytes: 131072 } })
  })

  it('computes proofs as the documented HMAC-SHA256', () => {
    const lp = (s: string): Buffer => Buffer.concat([Buffer.from([0, s.length]), Buffer.from(s, 'ascii')])
    const expected = createHmac('sha256', secret)
      .update(Buffer.concat([Buffer.from('torus-transport/1C'), lp('c1'), lp('client-1'), lp('server-1'), nonceC, nonceS]))
      .digest()
    expect(computeProof(secret, 'C', 'c1', 'client-1', 'server-1', nonceC, nonceS)).toEqual(expected)
    // The role byte separates the two proofs of one exchange.
    expect(computeProof(secret, 'S', 'c1', 'client-1', 'server-1', nonceC, nonceS)).not.toEqual(expected)
  })

  it('sends the proof the server expects for the nonces of this exchange', () => {
    const c = new ClientHandshake(client, undefined, nonceC)
    const s = new ServerHandshake(server, nonceS)
    const proofFrame = frame(c.receive(frame(s.receive(frame(c.start())).send)).send) as Frame & { type: 3 }
    expect(Buffer.from(proofFrame.proof)).toEqual(computeProof(secret, 'C', 'c1', 'client-1', 'server-1', nonceC, nonceS))
  })

  it('the server refuses a client with another secret (reason auth) and never proves itself to it', () => {
    const c = new ClientHandshake({ ...client, secret: new TextEncoder().encode('some other secret, long enough!!') })
    const s = new ServerHandshake(server)
    const proof = c.receive(frame(s.receive(frame(c.start())).send))
    expect(refusal(() => s.receive(frame(proof.send)))).toMatchObject({ reason: 'auth' })
  })

  it('the client refuses a server whose proof is wrong (reason auth)', () => {
    const c = new ClientHandshake(client)
    const s = new ServerHandshake(server)
    c.receive(frame(s.receive(frame(c.start())).send))
    expect(refusal(() => c.receive(frame(encodeHelloOk(new Uint8Array(32)))))).toMatchObject({ reason: 'auth' })
  })

  it('refuses a proof replayed from an earlier exchange', () => {
    const c1 = new ClientHandshake(client)
    const s1 = new ServerHandshake(server)
    const hello = c1.start()
    const proof = c1.receive(frame(s1.receive(frame(hello)).send)).send!
    // Someone without the secret replays the recorded HELLO and PROOF: the new server's nonce differs.
    const s2 = new ServerHandshake(server)
    s2.receive(frame(hello))
    expect(refusal(() => s2.receive(frame(proof)))).toMatchObject({ reason: 'auth' })
  })

  it("refuses the server's own proof reflected back as the client's", () => {
    const c = new ClientHandshake(client, undefined, nonceC)
    const s = new ServerHandshake(server, nonceS)
    s.receive(frame(c.start()))
    const reflected = computeProof(secret, 'S', 'c1', 'client-1', 'server-1', nonceC, nonceS)
    expect(refusal(() => s.receive(frame(encodeProof(reflected))))).toMatchObject({ reason: 'auth' })
  })

  it('refuses another cluster on both sides (reason cluster) with both cluster ids', () => {
    const s = new ServerHandshake(server)
    const c = new ClientHandshake({ ...client, clusterId: 'c2' })
    expect(refusal(() => s.receive(frame(c.start())))).toMatchObject({ reason: 'cluster', expected: 'c1', got: 'c2' })
    const c3 = new ClientHandshake(client)
    c3.start()
    const foreign = new ServerHandshake({ ...server, clusterId: 'c9' })
    const other = new ClientHandshake({ ...client, clusterId: 'c9' })
    const challenge = foreign.receive(frame(other.start())).send
    expect(refusal(() => c3.receive(frame(challenge)))).toMatchObject({ reason: 'cluster', expected: 'c1', got: 'c9' })
  })

  it('refuses an unexpected peer id before sending any proof (reason peer)', () => {
    const c = new ClientHandshake(client, 'server-2')
    const s = new ServerHandshake(server)
    expect(refusal(() => c.receive(frame(s.receive(frame(c.start())).send)))).toMatchObject({ reason: 'peer', expected: 'server-2', got: 'server-1' })
  })

  it('refuses frames out of order (reason sequence)', () => {
    const s = new ServerHandshake(server)
    expect(refusal(() => s.receive(frame(encodeProof(new Uint8Array(32)))))).toMatchObject({ reason: 'sequence' })
    const s2 = new ServerHandshake(server)
    const c2 = new ClientHandshake(client)
    s2.receive(frame(c2.start()))
    expect(refusal(() => s2.receive(frame(new ClientHandshake(client).start())))).toMatchObject({ reason: 'sequence' })
    const s3 = new ServerHandshake(server)
    expect(refusal(() => s3.receive(frame(encodeRequest(1, 'ping', null))))).toMatchObject({ reason: 'sequence' })
    const c4 = new ClientHandshake(client)
    c4.start()
    expect(refusal(() => c4.receive(frame(encodeHelloOk(new Uint8Array(32)))))).toMatchObject({ reason: 'sequence' })
    expect(() => c4.start()).toThrow()
  })
})
