/**
 * The per-connection protocol logic without sockets: a Session on a fake pipe whose buffered
 * byte count the test sets by hand, a ManualClock, and the other end played with the hello
 * state machines and the frame codec. Covers the hello timeout and its guard (no handler before
 * the hello), deadlines on one timer, send backpressure (queue, fail fast, drain in order) and
 * receive backpressure (handler limit, pause, resume).
 */
import { describe, expect, it } from 'vitest'
import { ManualClock, silentLogger, TorusError, type Clock, type RequestHandler, type Timer, type TransportValue } from '@torus/core'
import { decodeFrame, encodeError, encodeHello, encodeReply, encodeRequest, FrameType, type Frame } from '../src/frame-codec.js'
import { FrameBufferPool } from '../src/frame-pool.js'
import { ClientHandshake, ServerHandshake, type HandshakeIdentity } from '../src/handshake.js'
import { CloseCode, Session, type FramePipe, type SessionConfig, type SessionOwner } from '../src/session.js'

const secret = new TextEncoder().encode('session test secret 0123456789ab')
const local: HandshakeIdentity = { clusterId: 'c', peerId: 'local', secret, maxFrameBytes: 1 << 20 }
const remote: HandshakeIdentity = { clusterId: 'c', peerId: 'remote', secret, maxFrameBytes: 1 << 20 }

class FakePipe implements FramePipe {
  sent: Uint8Array[] = []
  bufferedBytes = 0
  /** Add each sent frame's size to bufferedBytes (a socket that does not drain by itself). */
  accumulate = false
  paused = false
  closedWith: { code: number; reason: string } | undefined
  send(frame: Uint8Array): void {
    this.sent.push(frame)
    if (this.accumulate) this.bufferedBytes += frame.byteLength
  }
  pause(): void {
    this.paused = true
  }
  resume(): void {
    this.paused = false
  }
  close(code: number, reason: string): void {
    this.closedWith ??= { code, reason }
  }
  frames(): Frame[] {
    return this.sent.map((f) => decodeFrame(f, 1 << 24))
  }
}

/** A ManualClock that counts the timers armed on it. */
class CountingClock implements Clock {
  readonly inner = new ManualClock()
  armed = 0
  now(): number {
    return this.inner.now()
  }
  setTimeout(fn: () => void, ms: number): Timer {
    this.armed++
    return this.inner.setTimeout(fn, ms)
  }
  clearTimeout(timer: Timer): void {
    this.inner.clearTimeout(timer)
  }
  advance(ms: number): void {
    this.inner.advance(ms)
  }
}

class Owner implements SessionOwner {
  opened = 0
  closedWith: TorusError | undefined
  sessionOpened(): void {
    this.opened++
  }
  sessionClosed(_s: Session, error: TorusError): void {
    this.closedWith = error
  }
}

function config(clock: Clock, handlers: Record<string, RequestHandler> = {}, more: Partial<SessionConfig> = {}): SessionConfig {
  return {
    identity: local,
    maxConcurrentHandlers: 64,
    maxBufferedBytes: 1 << 20,
    maxQueuedBytes: 4 << 20,
    helloTimeoutMs: 1000,
    clock,
    logger: silentLogger,
    handlers: new Map(Object.entries(handlers)),
    ...more,
  }
}

/** A client session that completed its hello against a hand-played server. */
function openClient<P extends FakePipe = FakePipe>(cfg: SessionConfig, pipe: P = new FakePipe() as P): { session: Session; pipe: P; owner: Owner } {
  const owner = new Owner()
  const session = new Session(cfg, 'client', 'fake://remote', owner)
  session.start(pipe)
  const server = new ServerHandshake(remote)
  const challenge = server.receive(decodeFrame(pipe.sent[0]!, 1 << 20))
  session.receive(challenge.send!)
  const ok = server.receive(decodeFrame(pipe.sent[1]!, 1 << 20))
  session.receive(ok.send!)
  expect(session.state).toBe('open')
  pipe.sent = []
  return { session, pipe, owner }
}

/** A server session that completed its hello with a hand-played client. */
function openServer(cfg: SessionConfig): { session: Session; pipe: FakePipe; owner: Owner } {
  const owner = new Owner()
  const session = new Session(cfg, 'server', 'fake://remote', owner)
  const pipe = new FakePipe()
  session.start(pipe)
  const client = new ClientHandshake(remote)
  session.receive(client.start())
  session.receive(client.receive(decodeFrame(pipe.sent[0]!, 1 << 20)).send!)
  expect(session.state).toBe('open')
  pipe.sent = []
  return { session, pipe, owner }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('Session: hello', () => {
  it('drops a peer that does not finish its hello in helloTimeoutMs', () => {
    const clock = new ManualClock()
    const owner = new Owner()
    const session = new Session(config(clock), 'server', 'fake://remote', owner)
    const pipe = new FakePipe()
    session.start(pipe)
    clock.advance(999)
    expect(session.state).toBe('hello')
    clock.advance(1)
    expect(session.state).toBe('closed')
    expect(pipe.closedWith?.code).toBe(CloseCode.HELLO_TIMEOUT)
    expect(pipe.frames()).toMatchObject([{ type: FrameType.ERROR, id: 0, error: { code: 'TORUS_TIMEOUT' } }])
    expect(owner.closedWith).toMatchObject({ code: 'TORUS_TIMEOUT' })
  })

  it('never runs a handler for a request that arrives before the hello completes', () => {
    let calls = 0
    const session = new Session(config(new ManualClock(), { ping: () => ++calls }), 'server', 'fake://remote', new Owner())
    const pipe = new FakePipe()
    session.start(pipe)
    session.receive(encodeRequest(1, 'ping', null))
    expect(calls).toBe(0)
    expect(session.state).toBe('closed')
    expect(pipe.closedWith?.code).toBe(CloseCode.REFUSED)
    expect(pipe.frames()[0]).toMatchObject({ type: FrameType.ERROR, id: 0, error: { code: 'TORUS_PROTOCOL' } })
  })

  it('refuses a frame over 1 KiB before the hello completes', () => {
    const session = new Session(config(new ManualClock()), 'server', 'fake://remote', new Owner())
    const pipe = new FakePipe()
    session.start(pipe)
    // The largest legitimate hello (128-character ids) is well under the limit.
    session.receive(encodeHello({ cluster: 'c', peer: 'p'.repeat(128), nonce: new Uint8Array(32), maxFrameBytes: 4096 }))
    expect(session.state).toBe('hello')
    expect(pipe.frames()[0]?.type).toBe(FrameType.CHALLENGE)
    const session2 = new Session(config(new ManualClock()), 'server', 'fake://remote', new Owner())
    const pipe2 = new FakePipe()
    session2.start(pipe2)
    session2.receive(encodeReply(1, new Uint8Array(2000)))
    expect(pipe2.closedWith?.code).toBe(CloseCode.PROTOCOL)
  })

  it('surfaces a refusal from the other side as the close error', () => {
    const owner = new Owner()
    const session = new Session(config(new ManualClock()), 'client', 'fake://remote', owner)
    session.start(new FakePipe())
    session.receive(encodeError(0, { code: 'TORUS_PROTOCOL', message: 'authentication failed: nope' }))
    expect(owner.closedWith).toMatchObject({ code: 'TORUS_PROTOCOL', message: 'authentication failed: nope' })
  })

  it('closes with 4400 on a hello frame after the hello', () => {
    const { session, pipe } = openClient(config(new ManualClock()))
    session.receive(encodeHello({ cluster: 'c', peer: 'x', nonce: new Uint8Array(32), maxFrameBytes: 4096 }))
    expect(session.state).toBe('closed')
    expect(pipe.closedWith?.code).toBe(CloseCode.PROTOCOL)
  })
})

describe('Session: requests and deadlines', () => {
  it('matches replies by id and ignores a reply for an unknown id', async () => {
    const { session, pipe } = openClient(config(new ManualClock()))
    const a = session.request('m', 'a', 1000, undefined)
    const b = session.request('m', 'b', 1000, undefined)
    const [fa, fb] = pipe.frames() as (Frame & { type: 5 })[]
    session.receive(encodeReply(12345, 'stray'))
    session.receive(encodeReply(fb!.id, 'B'))
    session.receive(encodeError(fa!.id, { code: 'TORUS_CONFLICT', message: 'no' }))
    expect(await b).toBe('B')
    await expect(a).rejects.toMatchObject({ code: 'TORUS_CONFLICT' })
    expect(session.state).toBe('open')
  })

  it('arms one timer for many requests with the same timeout, and expires each on time', async () => {
    const clock = new CountingClock()
    const { session } = openClient(config(clock))
    const before = clock.armed
    const settled: string[] = []
    const calls = Array.from({ length: 100 }, (_, i) => session.request('m', i, 500, undefined).catch((e: TorusError) => settled.push(e.code)))
    expect(clock.armed - before).toBe(1)
    clock.advance(499)
    await tick()
    expect(settled).toHaveLength(0)
    clock.advance(1)
    await Promise.all(calls)
    expect(settled).toEqual(new Array(100).fill('TORUS_TIMEOUT'))
    expect(session.pendingRequests).toBe(0)
  })

  it('re-arms for an earlier deadline and expires requests in deadline order', async () => {
    const clock = new ManualClock()
    const { session } = openClient(config(clock))
    const order: number[] = []
    const calls = [300, 100, 200].map((t) => session.request('m', t, t, undefined).catch(() => order.push(t)))
    for (let i = 0; i < 3; i++) {
      clock.advance(100)
      await tick()
    }
    await Promise.all(calls)
    expect(order).toEqual([100, 200, 300])
  })
})

describe('Session: send backpressure', () => {
  it('queues behind a full pipe, fails fast past maxQueuedBytes, and drains in order', async () => {
    const { session, pipe } = openClient(config(new ManualClock(), {}, { maxBufferedBytes: 10_000, maxQueuedBytes: 20_000 }))
    pipe.accumulate = true
    const body = new Uint8Array(4000)
    const results: (string | number)[] = []
    const calls: Promise<unknown>[] = []
    for (let i = 0; i < 10; i++) calls.push(session.request('m', { i, body }, 10_000, undefined).then(() => i, (e: TorusError) => `${i}:${e.code}`).then((r) => results.push(r)))
    // Frames are ~4 030 bytes: two fit under 10 000 buffered bytes, four more queue (~16 100
    // of 20 000 bytes), and the rest fail at once.
    expect(pipe.sent).toHaveLength(2)
    await tick()
    expect(results).toEqual(['6:TORUS_UNAVAILABLE', '7:TORUS_UNAVAILABLE', '8:TORUS_UNAVAILABLE', '9:TORUS_UNAVAILABLE'])
    expect(session.bufferedBytes).toBeGreaterThan(8000 + 16_000)
    expect(session.bufferedBytes).toBeLessThanOrEqual(10_000 + 20_000 + 4100)
    const failed = await session.request('m', { body }, 10_000, undefined).catch((e: TorusError) => e)
    expect(failed).toMatchObject({ code: 'TORUS_UNAVAILABLE', details: { reason: 'backpressure' } })
    // The socket empties: queued frames go out in the order they were requested.
    pipe.bufferedBytes = 0
    session.drain()
    pipe.bufferedBytes = 0
    session.drain()
    pipe.bufferedBytes = 0
    session.drain()
    const ids = pipe.frames().map((f) => (f as Frame & { type: 5 }).body as { i: number }).map((b) => b.i)
    expect(ids).toEqual([0, 1, 2, 3, 4, 5])
    for (const f of pipe.frames()) session.receive(encodeReply(f.id, null))
    await Promise.all(calls)
    expect(results.slice(4)).toEqual([0, 1, 2, 3, 4, 5])
  })

  it('never sends a queued request that timed out, and releases its bytes', async () => {
    const clock = new ManualClock()
    const { session, pipe } = openClient(config(clock, {}, { maxBufferedBytes: 1000 }))
    pipe.bufferedBytes = 5000
    const p = session.request('m', 'queued', 100, undefined).catch((e: TorusError) => e.code)
    expect(pipe.sent).toHaveLength(0)
    expect(session.bufferedBytes).toBeGreaterThan(5000)
    clock.advance(100)
    expect(await p).toBe('TORUS_TIMEOUT')
    expect(session.bufferedBytes).toBe(5000)
    pipe.bufferedBytes = 0
    session.drain()
    expect(pipe.sent).toHaveLength(0)
  })
})

describe('Session: pooled frames', () => {
  // The session encodes large frames into the pipe's pool and must give a buffer back exactly
  // when its frame can never reach the pipe; a frame the pipe got is the pipe's to release.
  class PoolPipe extends FakePipe {
    readonly framePool = new FrameBufferPool()
  }
  const openPooledClient = (cfg: SessionConfig): { session: Session; pipe: PoolPipe } => openClient(cfg, new PoolPipe())
  const big = (n = 100 * 1024): Uint8Array => new Uint8Array(n).fill(3)

  it('hands a large request to the pipe in a pooled buffer and never releases it itself', async () => {
    const { session, pipe } = openPooledClient(config(new ManualClock()))
    const p = session.request('m', { bytes: big() }, 1000, undefined)
    expect(pipe.sent).toHaveLength(1)
    expect(pipe.framePool.owns(pipe.sent[0]!)).toBe(true)
    session.receive(encodeReply(decodeFrame(pipe.sent[0]!, 1 << 20).id, null))
    await p
    expect(pipe.framePool.owns(pipe.sent[0]!)).toBe(true) // still the pipe's until written
    expect(pipe.framePool.freeBytes).toBe(0)
  })

  it('releases a queued large request that times out, and never sends it', async () => {
    const clock = new ManualClock()
    const { session, pipe } = openPooledClient(config(clock, {}, { maxBufferedBytes: 1000 }))
    pipe.bufferedBytes = 5000
    const p = session.request('m', { bytes: big() }, 100, undefined).catch((e: TorusError) => e.code)
    clock.advance(100)
    expect(await p).toBe('TORUS_TIMEOUT')
    expect(pipe.framePool.freeBytes).toBeGreaterThan(100 * 1024)
    pipe.bufferedBytes = 0
    session.drain()
    expect(pipe.sent).toHaveLength(0)
  })

  it('keeps a queued large request in its buffer until the pipe takes it', async () => {
    const { session, pipe } = openPooledClient(config(new ManualClock(), {}, { maxBufferedBytes: 1000 }))
    pipe.bufferedBytes = 5000
    const p = session.request('m', { bytes: big() }, 1000, undefined)
    pipe.bufferedBytes = 0
    session.drain()
    expect(pipe.sent).toHaveLength(1)
    session.receive(encodeReply(decodeFrame(pipe.sent[0]!, 1 << 20).id, null))
    await p
    expect(pipe.framePool.owns(pipe.sent[0]!)).toBe(true)
    expect(pipe.framePool.freeBytes).toBe(0)
  })

  it('releases a large request refused for a full queue or for the peer\'s frame limit', async () => {
    const { session, pipe } = openPooledClient(config(new ManualClock(), {}, { maxBufferedBytes: 1000, maxQueuedBytes: 1000 }))
    pipe.bufferedBytes = 5000
    await expect(session.request('m', { bytes: big() }, 1000, undefined)).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    const afterQueueFull = pipe.framePool.freeBytes
    expect(afterQueueFull).toBeGreaterThan(100 * 1024)
    pipe.bufferedBytes = 0
    await expect(session.request('m', { bytes: big(2 << 20) }, 1000, undefined)).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
    expect(pipe.framePool.freeBytes).toBeGreaterThan(afterQueueFull + (2 << 20))
    expect(pipe.sent).toHaveLength(0)
  })

  it('sends a large reply pooled, and releases one too large for the peer before sending an error', async () => {
    const sizes = [100 * 1024, 2 << 20]
    const cfg = config(new ManualClock(), { read: () => ({ bytes: big(sizes.shift()) }) })
    const { session, pipe } = openPooledClient(cfg)
    // Requests come from the hand-played other end; the client session serves them too.
    session.receive(encodeRequest(7, 'read', null))
    await tick()
    expect(pipe.framePool.owns(pipe.sent[0]!)).toBe(true)
    session.receive(encodeRequest(8, 'read', null))
    await tick()
    expect(pipe.frames()[1]).toMatchObject({ type: FrameType.ERROR, id: 8, error: { code: 'TORUS_INVALID_ARGUMENT' } })
    expect(pipe.framePool.freeBytes).toBeGreaterThan(2 << 20)
  })
})

describe('Session: receive backpressure', () => {
  it('runs at most maxConcurrentHandlers, pauses the pipe, and resumes once they finish', async () => {
    const gates: (() => void)[] = []
    const started: number[] = []
    const handlers = {
      work: (body: TransportValue) => {
        started.push(body as number)
        return new Promise<TransportValue>((resolve) => gates.push(() => resolve(body)))
      },
    }
    const { session, pipe } = openServer(config(new ManualClock(), handlers, { maxConcurrentHandlers: 2 }))
    for (let i = 1; i <= 5; i++) session.receive(encodeRequest(i, 'work', i))
    expect(started).toEqual([1, 2])
    expect(pipe.paused).toBe(true)
    gates.shift()!()
    await tick()
    expect(started).toEqual([1, 2, 3])
    expect(pipe.paused).toBe(true)
    while (gates.length > 0) {
      gates.shift()!()
      await tick()
    }
    expect(started).toEqual([1, 2, 3, 4, 5])
    expect(pipe.paused).toBe(false)
    expect(pipe.frames().map((f) => [f.type, f.id])).toEqual([1, 2, 3, 4, 5].map((i) => [FrameType.REPLY, i]))
  })

  it('counts a request until its reply is handed to the pipe', async () => {
    let calls = 0
    const { session, pipe } = openServer(config(new ManualClock(), { fast: () => ++calls }, { maxConcurrentHandlers: 1, maxBufferedBytes: 100 }))
    pipe.bufferedBytes = 1000 // the caller is not reading our replies
    session.receive(encodeRequest(1, 'fast', null))
    session.receive(encodeRequest(2, 'fast', null))
    await tick()
    expect(calls).toBe(1)
    expect(pipe.sent).toHaveLength(0)
    expect(pipe.paused).toBe(true)
    pipe.bufferedBytes = 0
    session.drain()
    await tick()
    session.drain()
    expect(calls).toBe(2)
    expect(pipe.frames().map((f) => f.id)).toEqual([1, 2])
    expect(pipe.paused).toBe(false)
  })

  it('answers an unknown method with TORUS_NOT_SUPPORTED without a handler slot leak', async () => {
    const { session, pipe } = openServer(config(new ManualClock(), {}, { maxConcurrentHandlers: 1 }))
    for (let i = 1; i <= 50; i++) session.receive(encodeRequest(i, 'nope', null))
    expect(pipe.frames()).toHaveLength(50)
    expect(pipe.frames().every((f) => f.type === FrameType.ERROR && f.error.code === 'TORUS_NOT_SUPPORTED')).toBe(true)
    expect(pipe.paused).toBe(false)
  })
})

describe('Session: closing', () => {
  it('a local close rejects pending requests with TORUS_NOT_OPEN and aborts running handlers', async () => {
    let signal: AbortSignal | undefined
    const { session } = openServer(config(new ManualClock(), { hang: (_b, ctx) => ((signal = ctx.signal), new Promise(() => {})) }))
    session.receive(encodeRequest(1, 'hang', null))
    expect(signal?.aborted).toBe(false)
    session.close()
    expect(signal?.aborted).toBe(true)
    const client = openClient(config(new ManualClock()))
    const p = client.session.request('m', null, 1000, undefined)
    client.session.close()
    await expect(p).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
  })

  it('a connection-level ERROR from the peer fails pending requests with TORUS_UNAVAILABLE', async () => {
    const { session, pipe, owner } = openClient(config(new ManualClock()))
    const p = session.request('m', null, 1000, undefined)
    session.receive(encodeError(0, { code: 'TORUS_PROTOCOL', message: 'you sent garbage' }))
    await expect(p).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    expect(owner.closedWith?.message).toMatch(/you sent garbage/)
    expect(pipe.closedWith).toBeDefined()
  })

  it('a lost link fails pending requests with TORUS_UNAVAILABLE', async () => {
    const { session } = openClient(config(new ManualClock()))
    const p = session.request('m', null, 1000, undefined)
    session.closed(CloseCode.ABNORMAL, '')
    await expect(p).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
  })
})
