/**
 * WsTransport behaviour that needs real sockets beyond the shared suite: hostile and
 * unauthenticated raw WebSocket clients, oversized frames, reconnection after an abrupt cut and
 * after a restart, bounded buffers when the server stops reading, keep-alive against a silent
 * peer. Misbehaviour comes from a plain `ws` client and from a TCP proxy between the ends.
 */
import http from 'node:http'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { WebSocket } from 'ws'
import { captureLogger, CLIENT_ID, CLUSTER, SECRET, SERVER_ID, type LogRecord } from '@torus/conformance/transport'
import type { Transport, TransportValue } from '@torus/core'
import { decodeFrame, encodeHello, encodeRequest, FrameType, PENDING_HELLOS_MAX, WS_SUBPROTOCOL, WsTransport, type Frame, type WsTransportOptions } from '../src/index.js'
import { FrameBufferPool } from '../src/frame-pool.js'
import { TcpProxy } from './helpers/tcp-proxy.js'

const KiB = 1024
const MiB = 1024 * KiB
const cleanup: (() => Promise<void>)[] = []

afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!()
})

function transport(options: Partial<WsTransportOptions> & { peerId: string }): WsTransport {
  const t = new WsTransport({ clusterId: CLUSTER, secret: SECRET, ...options })
  cleanup.push(() => t.close())
  return t
}

async function server(options: Partial<WsTransportOptions> = {}, handlers: Record<string, (body: TransportValue) => TransportValue | Promise<TransportValue>> = {}) {
  const records: LogRecord[] = []
  const t = transport({ peerId: SERVER_ID, logger: captureLogger(records), ...options })
  let calls = 0
  t.handle('ping', () => {
    calls++
    return 'pong'
  })
  for (const [m, h] of Object.entries(handlers)) t.handle(m, h)
  const address = await t.listen('ws://127.0.0.1:0')
  return { t, address, port: Number(new URL(address).port), records, calls: () => calls }
}

async function proxyTo(port: number): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(port)
  cleanup.push(() => proxy.close())
  return proxy
}

/** A plain ws client: records frames and the close code. */
function rawClient(address: string, protocol: string | null = WS_SUBPROTOCOL) {
  const ws = new WebSocket(address, protocol === null ? [] : [protocol])
  const frames: Frame[] = []
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  ws.on('error', () => {})
  ws.on('message', (data: Buffer) => frames.push(decodeFrame(data, 16 * MiB)))
  const open = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error('unexpected response'), { status: res.statusCode })))
  })
  cleanup.push(async () => {
    ws.terminate()
  })
  return { ws, frames, closed, open }
}

const warnings = (records: LogRecord[], message: string): LogRecord[] => records.filter((r) => r.level === 'warn' && r.message === message)
const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('WsTransport: refusing peers', () => {
  it('refuses a client with the wrong secret and logs a warning with its address', async () => {
    const s = await server()
    const client = transport({ peerId: CLIENT_ID, secret: 'definitely not the right secret!!' })
    await expect(client.connect(s.address)).rejects.toMatchObject({ code: 'TORUS_PROTOCOL', details: { reason: 'auth' } })
    const [warning] = warnings(s.records, 'hello refused')
    expect(warning?.fields).toMatchObject({ reason: 'auth', peer: CLIENT_ID })
    expect(warning?.fields['remote']).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(s.calls()).toBe(0)
  })

  it('refuses an upgrade without the subprotocol (HTTP 400) and answers plain HTTP with 426', async () => {
    const s = await server()
    const raw = rawClient(s.address, null)
    await expect(raw.open).rejects.toMatchObject({ status: 400 })
    expect(warnings(s.records, 'upgrade refused')[0]?.fields['remote']).toMatch(/^127\.0\.0\.1:\d+$/)
    const status = await new Promise<number>((resolve) => http.get(`http://127.0.0.1:${s.port}/`, (res) => (res.resume(), resolve(res.statusCode ?? 0))))
    expect(status).toBe(426)
  })

  it('drops a raw client that sends garbage, telling it why; no handler runs', async () => {
    const s = await server()
    const raw = rawClient(s.address)
    await raw.open
    raw.ws.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'))
    const { code } = await raw.closed
    expect(code).toBe(4400)
    expect(raw.frames[0]).toMatchObject({ type: FrameType.ERROR, id: 0, error: { code: 'TORUS_PROTOCOL' } })
    expect(warnings(s.records, 'protocol error')[0]?.fields['remote']).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(s.calls()).toBe(0)
  })

  it('drops a raw client that sends a request instead of a hello, without running the handler', async () => {
    const s = await server()
    const raw = rawClient(s.address)
    await raw.open
    raw.ws.send(encodeRequest(1, 'ping', null))
    expect((await raw.closed).code).toBe(4401)
    expect(s.calls()).toBe(0)
    expect(warnings(s.records, 'hello refused')[0]?.fields).toMatchObject({ reason: 'sequence' })
  })

  it('drops a raw client that sends its HELLO but a request instead of the proof', async () => {
    const s = await server()
    const raw = rawClient(s.address)
    await raw.open
    raw.ws.send(encodeHello({ cluster: CLUSTER, peer: 'intruder', nonce: new Uint8Array(32), maxFrameBytes: 65536 }))
    await until(() => raw.frames.length === 1)
    expect(raw.frames[0]?.type).toBe(FrameType.CHALLENGE)
    raw.ws.send(encodeRequest(1, 'ping', null))
    expect((await raw.closed).code).toBe(4401)
    expect(s.calls()).toBe(0)
  })

  it('drops a raw client that sends a text message', async () => {
    const s = await server()
    const raw = rawClient(s.address)
    await raw.open
    raw.ws.send('hello?')
    expect((await raw.closed).code).toBe(4400)
  })

  it('drops a raw client that stays silent for helloTimeoutMs (close 4408)', async () => {
    const s = await server({ helloTimeoutMs: 150 })
    const raw = rawClient(s.address)
    await raw.open
    const started = Date.now()
    expect((await raw.closed).code).toBe(4408)
    expect(Date.now() - started).toBeGreaterThanOrEqual(100)
    expect(warnings(s.records, 'hello timed out')).toHaveLength(1)
  })

  it('caps connections in their hello: one more is refused with HTTP 503 until one finishes', async () => {
    const s = await server()
    const silent = Array.from({ length: PENDING_HELLOS_MAX }, () => rawClient(s.address))
    await Promise.all(silent.map((c) => c.open))
    const extra = rawClient(s.address)
    await expect(extra.open).rejects.toMatchObject({ status: 503 })
    expect(warnings(s.records, 'upgrade refused').at(-1)?.fields['reason']).toMatch(/in their hello/)
    silent[0]!.ws.terminate()
    await silent[0]!.closed
    const client = transport({ peerId: CLIENT_ID })
    await until(() => s.records.some((r) => r.message === 'connection lost'))
    expect(await (await client.connect(s.address)).request('ping', null)).toBe('pong')
  })

  it('refuses a frame over maxFrameBytes (close 1009) and keeps serving others', async () => {
    const s = await server({ maxFrameBytes: 64 * KiB })
    const raw = rawClient(s.address)
    await raw.open
    raw.ws.send(new Uint8Array(70 * KiB))
    expect((await raw.closed).code).toBe(1009)
    await until(() => warnings(s.records, 'connection lost').length > 0)
    expect(warnings(s.records, 'connection lost')[0]?.fields).toMatchObject({ code: 1009 })
    const client = transport({ peerId: CLIENT_ID })
    expect(await (await client.connect(s.address)).request('ping', null)).toBe('pong')
  })

  it('refuses a frame over 1 KiB before the hello, even under maxFrameBytes', async () => {
    const s = await server()
    const raw = rawClient(s.address)
    await raw.open
    raw.ws.send(new Uint8Array(4 * KiB))
    expect((await raw.closed).code).toBe(4400)
  })
})

describe('WsTransport: abandoning a connect', () => {
  it('abandons a connect whose server accepted the socket but never answers the hello, closing it cleanly', async () => {
    // The socket is OPEN while the session is still in its hello: abandoning must cut it
    // without throwing (ws refuses to send the reserved code 1006).
    const httpServer = http.createServer()
    const { WebSocketServer } = await import('ws')
    const wss = new WebSocketServer({ server: httpServer, handleProtocols: () => WS_SUBPROTOCOL })
    const received: Buffer[] = []
    const serverSide = new Promise<{ closed: Promise<number> }>((resolve) => {
      wss.on('connection', (ws) => {
        ws.on('message', (data: Buffer) => received.push(data))
        resolve({ closed: new Promise<number>((r) => ws.on('close', (code) => r(code))) })
      })
    })
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r))
    cleanup.push(async () => {
      for (const c of wss.clients) c.terminate()
      wss.close()
      await new Promise<void>((r) => httpServer.close(() => r()))
    })
    const port = (httpServer.address() as { port: number }).port
    const client = transport({ peerId: CLIENT_ID })
    const controller = new AbortController()
    const connecting = client.connect(`ws://127.0.0.1:${port}`, { signal: controller.signal, timeoutMs: 10_000 })
    const { closed } = await serverSide
    await until(() => received.length > 0) // the client's HELLO arrived: the pipe is open
    controller.abort()
    await expect(connecting).rejects.toMatchObject({ code: 'TORUS_ABORTED' })
    expect(await closed).toBe(1001)
  })
})

describe('WsTransport: sharing an HTTP server', () => {
  it('takes only the upgrades of a server it does not own, and leaves it running when closed', async () => {
    const httpServer = http.createServer((_req, res) => res.end('control api'))
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r))
    cleanup.push(() => new Promise<void>((r) => httpServer.close(() => r())))
    const port = (httpServer.address() as { port: number }).port
    const shared = new WsTransport({ clusterId: CLUSTER, secret: SECRET, peerId: SERVER_ID, server: httpServer })
    shared.handle('ping', () => 'pong')
    expect(await shared.listen(`ws://127.0.0.1:${port}`)).toBe(`ws://127.0.0.1:${port}`)
    const client = transport({ peerId: CLIENT_ID })
    const connection = await client.connect(`ws://127.0.0.1:${port}`, { expectedPeerId: SERVER_ID })
    expect(await connection.request('ping', null)).toBe('pong')
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('control api')
    await connection.close()
    await shared.close()
    expect(httpServer.listening).toBe(true)
    expect(httpServer.listenerCount('upgrade')).toBe(0)
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('control api')
  })
})

describe('WsTransport: reconnecting', () => {
  it('reconnects after every connection is cut without a close handshake', async () => {
    const s = await server()
    const proxy = await proxyTo(s.port)
    const client = transport({ peerId: CLIENT_ID, reconnectMinDelayMs: 10, reconnectMaxDelayMs: 50 })
    const connection = await client.connect(proxy.address)
    expect(await connection.request('ping', null)).toBe('pong')
    const states: string[] = []
    connection.onStateChange((state) => states.push(state))
    proxy.cut()
    await until(() => states.includes('reconnecting'))
    await connection.ready({ timeoutMs: 5000 })
    expect(await connection.request('ping', null)).toBe('pong')
    expect(states).toEqual(['reconnecting', 'open'])
  })

  it('fails requests in flight when the server restarts, then serves from the new server on the same port', async () => {
    const release: (() => void)[] = []
    const s = await server({}, { hang: () => new Promise<TransportValue>((resolve) => release.push(() => resolve(null))) })
    const client = transport({ peerId: CLIENT_ID, reconnectMinDelayMs: 10, reconnectMaxDelayMs: 100 })
    const connection = await client.connect(s.address)
    const inFlight = connection.request('hang', null).catch((e: unknown) => e)
    await until(() => release.length === 1)
    await s.t.close()
    expect(await inFlight).toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    const again = transport({ peerId: SERVER_ID })
    again.handle('ping', () => 'pong again')
    await again.listen(s.address)
    await connection.ready({ timeoutMs: 5000 })
    expect(await connection.request('ping', null)).toBe('pong again')
    release.forEach((r) => r())
  })

  it('notices a silent peer by keep-alive and reconnects', async () => {
    const s = await server({ keepAliveMs: 100 })
    const proxy = await proxyTo(s.port)
    const client = transport({ peerId: CLIENT_ID, keepAliveMs: 100, reconnectMinDelayMs: 10, reconnectMaxDelayMs: 50 })
    const connection = await client.connect(proxy.address)
    const states: string[] = []
    connection.onStateChange((state) => states.push(state))
    proxy.silence()
    const silentAt = Date.now()
    await until(() => states.includes('reconnecting'), 3000)
    expect(Date.now() - silentAt).toBeLessThan(1000)
    await connection.ready({ timeoutMs: 5000 })
    expect(await connection.request('ping', null)).toBe('pong')
  })
})

describe('WsTransport: backpressure', () => {
  const limits = { maxBufferedBytes: 1 * MiB, maxQueuedBytes: 2 * MiB }
  const frameMax = 256 * KiB + 64

  /** Sends `count` 256 KiB requests without waiting, sampling the client's buffered bytes. */
  async function flood(connection: Awaited<ReturnType<Transport['connect']>>, count: number) {
    let peak = 0
    const outcomes: Promise<string>[] = []
    const body = new Uint8Array(256 * KiB)
    for (let i = 0; i < count; i++) {
      outcomes.push(connection.request('sink', body, { timeoutMs: 20_000 }).then(() => 'ok', (e: { code: string; details?: { reason?: string } }) => `${e.code}:${e.details?.reason ?? ''}`))
      peak = Math.max(peak, connection.bufferedBytes)
      // Let the socket write what it can between sends.
      if (i % 8 === 7) await new Promise((r) => setImmediate(r))
      peak = Math.max(peak, connection.bufferedBytes)
    }
    return { peak, outcomes }
  }

  it('keeps the client buffer bounded when the server stops reading, and delivers the queue once it reads again', async () => {
    let received = 0
    const s = await server({}, { sink: (body) => (received++, (body as Uint8Array).byteLength) })
    const proxy = await proxyTo(s.port)
    const client = transport({ peerId: CLIENT_ID, ...limits })
    const connection = await client.connect(proxy.address)
    proxy.pauseUpstream()
    // 40 MiB: more than the kernel buffers in between can hold.
    const { peak, outcomes } = await flood(connection, 160)
    expect(peak).toBeLessThanOrEqual(limits.maxBufferedBytes + limits.maxQueuedBytes + frameMax)
    await new Promise((r) => setTimeout(r, 50))
    expect(connection.bufferedBytes).toBeLessThanOrEqual(limits.maxBufferedBytes + limits.maxQueuedBytes + frameMax)
    proxy.resumeUpstream()
    const results = await Promise.all(outcomes)
    const ok = results.filter((r) => r === 'ok').length
    const refused = results.filter((r) => r === 'TORUS_UNAVAILABLE:backpressure').length
    expect(ok + refused).toBe(160)
    expect(refused).toBeGreaterThan(0)
    expect(ok).toBe(received)
    expect(connection.bufferedBytes).toBe(0)
  })

  it('keeps the client buffer bounded when server handlers stall, and the server never runs more than its limit', async () => {
    let running = 0
    let peakRunning = 0
    let open!: () => void
    const gate = new Promise<void>((resolve) => (open = resolve))
    const s = await server({ maxConcurrentHandlers: 2 }, {
      sink: async () => {
        running++
        peakRunning = Math.max(peakRunning, running)
        await gate
        running--
        return null
      },
    })
    const client = transport({ peerId: CLIENT_ID, ...limits })
    const connection = await client.connect(s.address)
    const { peak, outcomes } = await flood(connection, 160)
    expect(peak).toBeLessThanOrEqual(limits.maxBufferedBytes + limits.maxQueuedBytes + frameMax)
    expect(peakRunning).toBe(2)
    open()
    const results = await Promise.all(outcomes)
    expect(results.filter((r) => r === 'TORUS_UNAVAILABLE:backpressure').length).toBeGreaterThan(0)
    expect(results.every((r) => r === 'ok' || r === 'TORUS_UNAVAILABLE:backpressure')).toBe(true)
    expect(peakRunning).toBe(2)
  })
})

describe('WsTransport: pooled frame buffers', () => {
  it('delivers every byte of many large requests and replies in flight at once, mixed with small ones, while buffers are reused', async () => {
    // Large frames go out through reused buffers (frame-pool.ts); a buffer released before its
    // frame was written would show up here as a corrupted echo.
    const s = await server({}, {
      echo: (b) => {
        const { bytes, tag } = b as { bytes: Uint8Array; tag: number }
        return { tag, bytes: Buffer.from(bytes) } // copied: the request's view dies with its frame
      },
    })
    const client = transport({ peerId: CLIENT_ID })
    const connection = await client.connect(s.address)
    const acquire = vi.spyOn(FrameBufferPool.prototype, 'acquire')
    const lend = vi.spyOn(FrameBufferPool.prototype, 'lend')
    const release = vi.spyOn(FrameBufferPool.prototype, 'release')
    cleanup.push(async () => {
      vi.restoreAllMocks()
    })
    const payload = (tag: number, n: number): Uint8Array => {
      const b = new Uint8Array(n)
      for (let i = 0; i < n; i += 4) b[i] = (tag * 131 + i) & 0xff
      b[n - 1] = tag & 0xff
      return b
    }
    for (let round = 0; round < 4; round++) {
      const sizes = Array.from({ length: 48 }, (_, i) => 64 * KiB + ((i * 37 + round * 11) % 9) * 56 * KiB)
      const pending = sizes.map(async (n, i) => {
        const tag = round * 1000 + i
        const reply = (await connection.request('echo', { tag, bytes: payload(tag, n) })) as { tag: number; bytes: Uint8Array }
        expect(reply.tag).toBe(tag)
        expect(Buffer.from(reply.bytes).equals(Buffer.from(payload(tag, n))), `tag ${tag}`).toBe(true)
      })
      const small = Array.from({ length: 48 }, () => connection.request('ping', null))
      await Promise.all([...pending, ...small])
      expect(await Promise.all(small)).toEqual(Array(48).fill('pong'))
    }
    // Both directions pooled: 4 rounds x 48 requests, and as many replies.
    const lent = lend.mock.results.filter((r) => r.value === true).length
    expect(lent).toBe(2 * 4 * 48)
    await until(() => release.mock.calls.length >= lent)
    const buffers = new Set(acquire.mock.results.map((r) => r.value as Buffer))
    expect(buffers.size).toBeLessThan(acquire.mock.calls.length / 2) // reused, not fresh each time
  })
})

describe('WsTransport: options', () => {
  it('works with random masks (maskFrames) for large and small frames', async () => {
    const s = await server({}, { echo: (b) => b })
    const client = transport({ peerId: CLIENT_ID, maskFrames: true })
    const connection = await client.connect(s.address)
    const big = new Uint8Array(MiB).map((_, i) => i & 0xff)
    expect(Buffer.from((await connection.request('echo', big)) as Uint8Array).equals(Buffer.from(big))).toBe(true)
    expect(await connection.request('ping', null)).toBe('pong')
  })

  it('refuses listen and connect addresses that are not ws://host:port', async () => {
    const t = transport({ peerId: SERVER_ID })
    for (const address of ['ws://127.0.0.1', 'wss://127.0.0.1:1', 'tcp://127.0.0.1:1', 'ws://127.0.0.1:0/path']) {
      await expect(t.listen(address)).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
    }
    await expect(t.connect('ws://127.0.0.1')).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
    expect(() => transport({ peerId: SERVER_ID, keepAliveMs: -1 })).toThrow(RangeError)
  })

  it('decodes every frame a hand-played client receives during a normal hello', async () => {
    const s = await server()
    const raw = rawClient(s.address)
    await raw.open
    raw.ws.send(encodeHello({ cluster: 'another', peer: 'p', nonce: new Uint8Array(32), maxFrameBytes: 65536 }))
    await raw.closed
    expect(raw.frames).toMatchObject([{ type: FrameType.ERROR, id: 0, error: { code: 'TORUS_PROTOCOL', details: { reason: 'cluster' } } }])
  })
})
