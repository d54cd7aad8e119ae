/**
 * One transmission request against a `BlockDevice`: what each command does to the device and
 * the success reply it earns. Socket, accounting of in-flight work and error replies stay in
 * the connection.
 *
 * Spec: NetworkBlockDevice/nbd `doc/proto.md` — "Request types", "Simple reply message".
 */
import type { BlockDevice, WriteOptions, WriteZeroesOptions } from '@torus/core'
import { sharedPayloadPool } from './payload-pool.js'
import {
  CMD_CACHE,
  CMD_FLAG_FAST_ZERO,
  CMD_FLAG_FUA,
  CMD_FLAG_NO_HOLE,
  CMD_FLUSH,
  CMD_READ,
  CMD_TRIM,
  CMD_WRITE,
  CMD_WRITE_ZEROES,
  SIMPLE_REPLY_HEADER_BYTES,
} from './protocol/constants.js'
import { encodeSimpleReply, writeSimpleReplyHeader, type NbdRequest } from './protocol/transmission.js'
import type { NbdStats } from './stats.js'

/** Per-connection context, built once so requests do not allocate option objects. */
export interface ExecuteContext {
  readonly signal: AbortSignal
  readonly plain: { signal: AbortSignal }
  readonly fua: WriteOptions
  /** FUA was advertised (a FUA flag is otherwise ignored). */
  fuaHonoured: boolean
  readonly stats: NbdStats
}

export function createExecuteContext(signal: AbortSignal, stats: NbdStats): ExecuteContext {
  return { signal, plain: { signal }, fua: { signal, fua: true }, fuaHonoured: false, stats }
}

/**
 * Runs a request that passed `checkRequest` and resolves with its success reply (for READ, the
 * header and data in one buffer the device filled in place). Rejects with whatever the device
 * throws; the caller maps it to an errno.
 */
export async function executeRequest(device: BlockDevice, req: NbdRequest, ctx: ExecuteContext): Promise<Buffer> {
  const fua = ctx.fuaHonoured && (req.flags & CMD_FLAG_FUA) !== 0
  switch (req.type) {
    case CMD_READ: {
      // One buffer for header + data; the device reads straight into it.
      const buf = Buffer.allocUnsafe(SIMPLE_REPLY_HEADER_BYTES + req.length)
      await device.read(req.offset, buf.subarray(SIMPLE_REPLY_HEADER_BYTES), ctx.plain)
      writeSimpleReplyHeader(buf, 0, 0, req.cookieHi, req.cookieLo)
      ctx.stats.bytesRead += req.length
      return buf
    }
    case CMD_WRITE:
      try {
        await device.write(req.offset, req.data!, fua ? ctx.fua : ctx.plain)
      } finally {
        // Settled: the device no longer reads the payload (BlockDevice contract).
        if (req.pooled === true) sharedPayloadPool.release(req.data!)
      }
      ctx.stats.bytesWritten += req.length
      break
    case CMD_FLUSH:
      await device.flush(ctx.plain)
      break
    case CMD_TRIM:
      await device.trim(req.offset, req.length, fua ? ctx.fua : ctx.plain)
      break
    case CMD_WRITE_ZEROES: {
      const o: WriteZeroesOptions = { signal: ctx.signal }
      if (fua) o.fua = true
      if ((req.flags & CMD_FLAG_NO_HOLE) !== 0) o.noHole = true
      if ((req.flags & CMD_FLAG_FAST_ZERO) !== 0) o.fast = true
      await device.writeZeroes(req.offset, req.length, o)
      break
    }
    case CMD_CACHE:
      // Advisory; no device hook. Only reachable if SEND_CACHE were advertised.
      break
  }
  return encodeSimpleReply(0, req.cookieHi, req.cookieLo)
}
