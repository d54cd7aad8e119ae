// The torus:// path: TorusClient + HttpBackend against a small in-process HTTP server that serves
// the control API routes of docs/control-api.md over a MemoryMetadataStore (as torusd does), so
// the same commands run over HTTP. Checks the wire contract: PUT /v1/ring's 409 becomes
// TORUS_CONFLICT (and the CAS loop retries), error bodies keep their code and message, and a
// torusd that lacks a route is reported as too old.
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isTorusError, type RingDescriptor } from '@torus/core'
import { TorusClient } from '../src/client.js'
import { listPeers, peerAdd } from '../src/commands/peer.js'
import { ringSetType } from '../src/commands/ring.js'
import { parseEndpoint, type TorusEndpoint } from '../src/endpoint.js'
import { HttpBackend } from '../src/http-backend.js'
import { MemoryCluster, PEER_A, PEER_B } from './helpers/memory-cluster.js'

const STATUS: Record<string, number> = { TORUS_CONFLICT: 409, TORUS_NOT_FOUND: 404, TORUS_INVALID_ARGUMENT: 400, TORUS_NOT_INITIALIZED: 412 }

let c: MemoryCluster
let server: http.Server
let backend: HttpBackend
const requests: string[] = []
/** When set, the next PUT /v1/ring first lets a rival change win (a concurrent admin). */
let rivalOnce: ((r: RingDescriptor) => RingDescriptor) | undefined
/** When set, the next GET /v1/ring answers this instead of the ring. */
let bogusRing: unknown

beforeAll(async () => {
  c = await MemoryCluster.create()
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`)
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(body))
      }
      const route = async (): Promise<void> => {
        if (req.method === 'GET' && req.url === '/v1/peers') return send(200, await c.store.listPeers())
        if (req.method === 'GET' && req.url === '/v1/volumes') return send(200, await c.store.listVolumes())
        if (req.method === 'GET' && req.url === '/v1/ring') {
          const body = bogusRing ?? (await c.store.getRing())
          bogusRing = undefined
          return send(200, body)
        }
        if (req.method === 'PUT' && req.url === '/v1/ring') {
          const next = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RingDescriptor
          if (rivalOnce !== undefined) {
            const current = (await c.store.getRing())!
            await c.store.setRing({ ...rivalOnce(current), version: current.version + 1 })
            rivalOnce = undefined
          }
          await c.store.setRing(next)
          return send(200, await c.store.getRing())
        }
        send(404, { error: { code: 'TORUS_NOT_FOUND', message: `no such endpoint: ${req.url}` } })
      }
      route().catch((err: unknown) => {
        if (isTorusError(err)) send(STATUS[err.code] ?? 500, { error: err.toJSON() })
        else send(500, { error: { code: 'TORUS_INTERNAL', message: String(err) } })
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  backend = new HttpBackend(new TorusClient(parseEndpoint(`torus://127.0.0.1:${port}`) as TorusEndpoint))
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  await c.close()
})

describe('HttpBackend over the control API', () => {
  it('lists peers and the ring through GET /v1/peers and GET /v1/ring', async () => {
    await c.heartbeat(PEER_A)
    const out = await listPeers(backend, c.ctx())
    expect(out).toContain(PEER_A)
    expect(out.trimEnd().split('\n').at(-1)).toBe('Balanced: false Usage: 0.00%')
    expect(requests).toEqual(expect.arrayContaining(['GET /v1/ring', 'GET /v1/peers']))
  })

  it('changes the ring with PUT /v1/ring and retries after a 409 conflict', async () => {
    await c.heartbeat(PEER_B)
    expect(await peerAdd(backend, { uuids: [PEER_A], allPeers: false }, c.ctx())).toContain('ring version 0 -> 1')
    rivalOnce = (r) => ({ ...r, members: [...r.members, { peer: PEER_B, weight: 7 }] })
    const out = await ringSetType(backend, 'mod', c.ctx())
    expect(out).toBe('type ketama -> mod\nring version 2 -> 3 (after 1 concurrent change(s), re-read and applied again)\n')
    expect(await c.store.getRing()).toMatchObject({ version: 3, type: 'mod', members: [{ peer: PEER_A }, { peer: PEER_B, weight: 7 }] })
  })

  it('keeps the code, message and details of an error body', async () => {
    const ring = await backend.getRing()
    await expect(backend.setRing({ ...ring, version: ring.version + 5 })).rejects.toMatchObject({
      code: 'TORUS_CONFLICT',
      details: { currentVersion: ring.version },
    })
  })

  it('refuses a malformed ring from the wire instead of building on it', async () => {
    bogusRing = { version: 'seven', type: 'ketama', replication: 2, members: [] }
    await expect(backend.getRing()).rejects.toMatchObject({ code: 'TORUS_PROTOCOL', message: expect.stringMatching(/sent a malformed ring: .*version must be a non-negative integer/) })
  })

  it('says a torusd without the route is its HTTP port or too old, instead of "not found"', async () => {
    // /v1/status is not served by this test server: the router's 404 reply.
    await expect(backend.client.status()).rejects.toMatchObject({ code: 'TORUS_NOT_SUPPORTED', message: expect.stringMatching(/does not serve \/v1\/status: point -C at its peer address \(--peer-address; .*\), or it is older than this torusctl/) })
  })

  it('reports an unreachable torusd as TORUS_UNAVAILABLE', async () => {
    const gone = new HttpBackend(new TorusClient(parseEndpoint('torus://127.0.0.1:1') as TorusEndpoint))
    await expect(gone.listPeers()).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE', message: expect.stringMatching(/^cannot reach torusd at torus:\/\/127\.0\.0\.1:1 \(connection refused\)/) })
  })

  it('says a port that does not speak HTTP (an NBD listener) is the wrong one, not an llhttp code', async () => {
    // An NBD server greets first with its magic; torusctl's HTTP parser then fails on it.
    const sockets: net.Socket[] = []
    const nbdLike = net.createServer((socket) => {
      sockets.push(socket)
      socket.end(Buffer.from('NBDMAGICIHAVEOPT\x00\x03', 'latin1'))
    })
    await new Promise<void>((resolve) => nbdLike.listen(0, '127.0.0.1', resolve))
    try {
      const port = (nbdLike.address() as AddressInfo).port
      const wrong = new HttpBackend(new TorusClient(parseEndpoint(`torus://127.0.0.1:${port}`) as TorusEndpoint))
      await expect(wrong.listPeers()).rejects.toMatchObject({
        code: 'TORUS_UNAVAILABLE',
        message: expect.stringMatching(new RegExp(`^cannot reach torusd at torus://127\\.0\\.0\\.1:${port} \\(it does not speak HTTP; an NBD port\\?\\)`)),
      })
    } finally {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => nbdLike.close(resolve))
    }
  })
})
