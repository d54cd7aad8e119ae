/**
 * Sans-IO authenticated hello: decoded frames in, frames to send and a verdict out. No sockets,
 * no timers (the session owns the hello timeout).
 *
 *   client                                   server
 *     HELLO     { cluster, peer, nonceC, maxFrameBytes } ─▶  refuse other cluster
 *            ◀─ CHALLENGE { cluster, peer, nonceS, maxFrameBytes }
 *     check cluster (and expected peer id)
 *     PROOF     { proofC }                   ─▶  verify proofC, else refuse
 *            ◀─ HELLO_OK  { proofS }             (server is open)
 *     verify proofS, else refuse (client is open)
 *
 *   proofX = HMAC-SHA256(secret, "torus-transport/1" ‖ role ‖ lp(cluster) ‖ lp(clientPeer)
 *                               ‖ lp(serverPeer) ‖ nonceC ‖ nonceS)
 *   role   = "C" for the client's proof, "S" for the server's; lp(s) = u16 BE length ‖ ASCII.
 *
 * Both nonces are fresh 32-byte random values, so neither proof can be replayed on another
 * connection, and the role byte stops a proof from being reflected back as the other side's.
 * The client proves first, so a server never produces an HMAC for a peer that has not shown
 * it knows the secret. Proofs are compared with `crypto.timingSafeEqual`. The secret itself
 * never travels.
 *
 * A refusal throws TORUS_PROTOCOL with `details.reason`: `cluster` (another cluster), `auth`
 * (bad proof), `peer` (not the expected peer id) or `sequence` (a frame out of order); the
 * session sends it to the other side as an ERROR frame with id 0 and closes.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { TorusError } from '@torus/core'
import { encodeChallenge, encodeHello, encodeHelloOk, encodeProof, FrameType, NONCE_BYTES, type Frame } from './frame-codec.js'

export interface HandshakeIdentity {
  clusterId: string
  peerId: string
  /** The cluster secret as bytes. */
  secret: Uint8Array
  /** What this end accepts; advertised to the other end. */
  maxFrameBytes: number
}

/** What a completed hello established about the other end. */
export interface HandshakeResult {
  peerId: string
  /** The largest frame the other end accepts. */
  maxFrameBytes: number
}

export interface HandshakeStep {
  /** A frame to send now, if any. */
  send?: Uint8Array
  /** Set when the hello is complete on this side. */
  done?: HandshakeResult
}

const LABEL = Buffer.from('torus-transport/1', 'ascii')

export function refusal(reason: 'cluster' | 'auth' | 'peer' | 'sequence', message: string, details: Record<string, unknown> = {}): TorusError {
  return new TorusError('TORUS_PROTOCOL', message, { details: { reason, ...details } })
}

/** The HMAC one side presents. Exported for tests that play a peer by hand. */
export function computeProof(
  secret: Uint8Array,
  role: 'C' | 'S',
  cluster: string,
  clientPeer: string,
  serverPeer: string,
  clientNonce: Uint8Array,
  serverNonce: Uint8Array,
): Buffer {
  const hmac = createHmac('sha256', secret)
  hmac.update(LABEL)
  hmac.update(role)
  for (const s of [cluster, clientPeer, serverPeer]) {
    const bytes = Buffer.from(s, 'ascii')
    const len = Buffer.allocUnsafe(2)
    len.writeUInt16BE(bytes.length)
    hmac.update(len)
    hmac.update(bytes)
  }
  hmac.update(clientNonce)
  hmac.update(serverNonce)
  return hmac.digest()
}

function proofMatches(expected: Buffer, got: Uint8Array): boolean {
  return got.byteLength === expected.byteLength && timingSafeEqual(expected, got)
}

/** The dialling side. Call `start()` once, then `receive()` every frame until `done`. */
export class ClientHandshake {
  readonly #me: HandshakeIdentity
  readonly #expectedPeerId: string | undefined
  readonly #nonce: Uint8Array
  #state: 'new' | 'challenge' | 'hello-ok' | 'done' = 'new'
  #server: { peerId: string; nonce: Uint8Array; maxFrameBytes: number } | undefined

  constructor(me: HandshakeIdentity, expectedPeerId?: string, nonce: Uint8Array = randomBytes(NONCE_BYTES)) {
    this.#me = me
    this.#expectedPeerId = expectedPeerId
    this.#nonce = nonce
  }

  start(): Uint8Array {
    if (this.#state !== 'new') throw new Error('handshake already started')
    this.#state = 'challenge'
    return encodeHello({ cluster: this.#me.clusterId, peer: this.#me.peerId, nonce: this.#nonce, maxFrameBytes: this.#me.maxFrameBytes })
  }

  receive(frame: Frame): HandshakeStep {
    if (this.#state === 'challenge' && frame.type === FrameType.CHALLENGE) {
      const c = frame.challenge
      if (c.cluster !== this.#me.clusterId) {
        throw refusal('cluster', `cluster mismatch: the listening peer is in cluster ${c.cluster}, the dialling peer in ${this.#me.clusterId}`, {
          expected: this.#me.clusterId,
          got: c.cluster,
        })
      }
      if (this.#expectedPeerId !== undefined && c.peer !== this.#expectedPeerId) {
        throw refusal('peer', `unexpected peer: the listening peer is ${c.peer}, the dialling peer expected ${this.#expectedPeerId}`, {
          expected: this.#expectedPeerId,
          got: c.peer,
        })
      }
      this.#server = { peerId: c.peer, nonce: c.nonce, maxFrameBytes: c.maxFrameBytes }
      this.#state = 'hello-ok'
      const me = this.#me
      return { send: encodeProof(computeProof(me.secret, 'C', me.clusterId, me.peerId, c.peer, this.#nonce, c.nonce)) }
    }
    if (this.#state === 'hello-ok' && frame.type === FrameType.HELLO_OK) {
      const server = this.#server!
      const me = this.#me
      const expected = computeProof(me.secret, 'S', me.clusterId, me.peerId, server.peerId, this.#nonce, server.nonce)
      if (!proofMatches(expected, frame.proof)) throw refusal('auth', "authentication failed: the listening peer's proof does not match (cluster secret differs)")
      this.#state = 'done'
      return { done: { peerId: server.peerId, maxFrameBytes: server.maxFrameBytes } }
    }
    throw refusal('sequence', `unexpected frame type ${frame.type} during hello`)
  }
}

/** The accepting side. Call `receive()` for every frame until `done`. */
export class ServerHandshake {
  readonly #me: HandshakeIdentity
  readonly #nonce: Uint8Array
  #state: 'hello' | 'proof' | 'done' = 'hello'
  #client: { peerId: string; nonce: Uint8Array; maxFrameBytes: number } | undefined

  constructor(me: HandshakeIdentity, nonce: Uint8Array = randomBytes(NONCE_BYTES)) {
    this.#me = me
    this.#nonce = nonce
  }

  /** The peer id the client claimed (not yet proven), for log lines about a refusal. */
  get claimedPeerId(): string | undefined {
    return this.#client?.peerId
  }

  receive(frame: Frame): HandshakeStep {
    if (this.#state === 'hello' && frame.type === FrameType.HELLO) {
      const h = frame.hello
      if (h.cluster !== this.#me.clusterId) {
        throw refusal('cluster', `cluster mismatch: the dialling peer is in cluster ${h.cluster}, the listening peer in ${this.#me.clusterId}`, {
          expected: this.#me.clusterId,
          got: h.cluster,
        })
      }
      this.#client = { peerId: h.peer, nonce: h.nonce, maxFrameBytes: h.maxFrameBytes }
      this.#state = 'proof'
      return { send: encodeChallenge({ cluster: this.#me.clusterId, peer: this.#me.peerId, nonce: this.#nonce, maxFrameBytes: this.#me.maxFrameBytes }) }
    }
    if (this.#state === 'proof' && frame.type === FrameType.PROOF) {
      const client = this.#client!
      const me = this.#me
      const expected = computeProof(me.secret, 'C', me.clusterId, client.peerId, me.peerId, client.nonce, this.#nonce)
      if (!proofMatches(expected, frame.proof)) throw refusal('auth', "authentication failed: the dialling peer's proof does not match (cluster secret differs)")
      this.#state = 'done'
      return {
        send: encodeHelloOk(computeProof(me.secret, 'S', me.clusterId, client.peerId, me.peerId, client.nonce, this.#nonce)),
        done: { peerId: client.peerId, maxFrameBytes: client.maxFrameBytes },
      }
    }
    throw refusal('sequence', `unexpected frame type ${frame.type} during hello`)
  }
}
