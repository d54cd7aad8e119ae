import type { IncomingMessage, ServerResponse } from 'node:http'
import { isTorusError, TorusError, type TorusErrorCode } from '@torus/core'

const STATUS_BY_CODE: Partial<Record<TorusErrorCode, number>> = {
  TORUS_INVALID_ARGUMENT: 400,
  TORUS_NOT_FOUND: 404,
  TORUS_ALREADY_EXISTS: 409,
  TORUS_CONFLICT: 409,
  TORUS_NOT_INITIALIZED: 412,
  TORUS_LOCKED: 423,
  TORUS_NOT_SUPPORTED: 501,
  TORUS_UNAVAILABLE: 503,
  TORUS_OUT_OF_SPACE: 507,
}

const MAX_BODY_BYTES = 64 * 1024

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** Errors cross HTTP as `{ error: { code, message } }` with a status that matches the code. */
export function sendError(res: ServerResponse, err: unknown): void {
  if (isTorusError(err)) {
    const status = (err.details as { httpStatus?: unknown } | undefined)?.httpStatus
    sendJson(res, typeof status === 'number' ? status : (STATUS_BY_CODE[err.code] ?? 500), { error: err.toJSON() })
  } else {
    sendJson(res, 500, { error: { code: 'TORUS_INTERNAL', message: err instanceof Error ? err.message : String(err) } })
  }
}

/** Reads a small JSON object body; bad or oversized input is TORUS_INVALID_ARGUMENT (HTTP 400, or 413 when too large). */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length
    if (total > MAX_BODY_BYTES) throw new TorusError('TORUS_INVALID_ARGUMENT', `request body larger than ${MAX_BODY_BYTES} bytes`, { details: { httpStatus: 413 } })
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return {}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new TorusError('TORUS_INVALID_ARGUMENT', 'request body is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TorusError('TORUS_INVALID_ARGUMENT', 'request body must be a JSON object')
  return value as Record<string, unknown>
}

export type Handler = (req: IncomingMessage, res: ServerResponse, params: string[]) => Promise<void> | void

export interface Route {
  method: string
  pattern: RegExp
  handler: Handler
}

/** A tiny router: first matching route wins; unknown paths 404, wrong methods 405. */
export function createRouter(routes: Route[]): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    // Everything that looks at the request runs inside the promise chain: a malformed URL or
    // percent-encoding must be a 400, never an exception that takes the daemon down.
    Promise.resolve()
      .then(() => {
        let pathname: string
        try {
          pathname = new URL(req.url ?? '/', 'http://localhost').pathname
        } catch {
          throw new TorusError('TORUS_INVALID_ARGUMENT', 'malformed request URL')
        }
        const matching = routes.filter((r) => r.pattern.test(pathname))
        const route = matching.find((r) => r.method === req.method)
        if (route === undefined) {
          if (matching.length > 0) sendJson(res, 405, { error: { code: 'TORUS_INVALID_ARGUMENT', message: `method ${req.method} not allowed on ${pathname}` } })
          else sendJson(res, 404, { error: { code: 'TORUS_NOT_FOUND', message: `no such endpoint: ${pathname}` } })
          return
        }
        let params: string[]
        try {
          params = route.pattern.exec(pathname)!.slice(1).map((p) => decodeURIComponent(p))
        } catch {
          throw new TorusError('TORUS_INVALID_ARGUMENT', 'malformed percent-encoding in the request path')
        }
        return route.handler(req, res, params)
      })
      .catch((err: unknown) => {
        if (!res.headersSent) sendError(res, err)
        else res.destroy()
      })
  }
}
