// Checks that etcd3 client errors become the project's codes with the original kept as `cause`,
// and that a store pointed at a port nobody listens on fails with TORUS_UNAVAILABLE.
import { createServer } from 'node:net'
import { TorusError } from '@torus/core'
import { EtcdLeaseInvalidError, GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3'
import { describe, expect, it } from 'vitest'
import { EtcdMetadataStore, mapEtcdError } from '../src/index.js'

describe('mapEtcdError', () => {
  it('maps an unavailable grpc error to TORUS_UNAVAILABLE, retryable, with the cause', () => {
    const cause = new GRPCUnavailableError('14 UNAVAILABLE: No connection established')
    const err = mapEtcdError(cause)
    expect(err).toMatchObject({ code: 'TORUS_UNAVAILABLE', retryable: true })
    expect(err.cause).toBe(cause)
  })

  it('maps a missing lease to TORUS_LEASE_EXPIRED naming the lease', () => {
    const cause = new EtcdLeaseInvalidError('7587')
    expect(mapEtcdError(cause, { leaseId: '7587' })).toMatchObject({ code: 'TORUS_LEASE_EXPIRED', details: { leaseId: '7587' }, cause })
  })

  it('maps a missed deadline to TORUS_TIMEOUT', () => {
    expect(mapEtcdError(new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED'))).toMatchObject({ code: 'TORUS_TIMEOUT' })
  })

  it('passes a TorusError through unchanged', () => {
    const err = new TorusError('TORUS_LOCKED', 'volume pad is locked by node-a')
    expect(mapEtcdError(err)).toBe(err)
  })

  it('maps anything else to TORUS_INTERNAL with the cause', () => {
    const cause = new Error('surprise')
    expect(mapEtcdError(cause)).toMatchObject({ code: 'TORUS_INTERNAL', cause })
  })
})

describe('EtcdMetadataStore without etcd', () => {
  it('rejects open with TORUS_UNAVAILABLE when nothing listens on the endpoint', async () => {
    // Bind then release a loopback port, so nothing listens on it during the test.
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as { port: number }
    await new Promise<void>((resolve) => server.close(() => resolve()))
    const store = new EtcdMetadataStore({ hosts: `127.0.0.1:${port}`, dialTimeoutMs: 300 })
    await expect(store.open()).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    expect(store.status).toBe('closed')
  })
})
