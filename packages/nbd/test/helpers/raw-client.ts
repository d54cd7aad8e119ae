import type { Duplex } from 'node:stream'
import { nbdConstants as C, encodeRequest } from '../../src/index.js'

/** A scripted NBD client for hostile-byte tests: send raw bytes, await exact byte counts. */
export class RawClient {
  readonly socket: Duplex
  #chunks: Buffer[] = []
  #length = 0
  #waiters: Array<() => void> = []
  #closed = false
  readonly closed: Promise<void>

  constructor(socket: Duplex) {
    this.socket = socket
    socket.on('data', (c: Buffer) => {
      this.#chunks.push(c)
      this.#length += c.length
      this.#wake()
    })
    socket.on('error', () => {})
    this.closed = new Promise((resolve) => {
      const done = (): void => {
        this.#closed = true
        this.#wake()
        resolve()
      }
      socket.once('end', done)
      socket.once('close', done)
    })
  }

  #wake(): void {
    const w = this.#waiters
    this.#waiters = []
    for (const f of w) f()
  }

  get isClosed(): boolean {
    return this.#closed
  }

  /** Bytes received and not yet read. */
  get pending(): number {
    return this.#length
  }

  #take(n: number): Buffer {
    const first = this.#chunks[0]
    let out: Buffer
    if (first !== undefined && first.length >= n) {
      out = first.subarray(0, n)
      if (first.length === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
    } else {
      const all = Buffer.concat(this.#chunks)
      out = all.subarray(0, n)
      this.#chunks = all.length > n ? [all.subarray(n)] : []
    }
    this.#length -= n
    return out
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes)
  }

  /** Resolves with exactly `n` bytes; rejects if the server closes first or after `timeoutMs`. */
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs
    while (this.#length < n) {
      if (this.#closed) throw new Error(`connection closed with ${this.#length}/${n} bytes`)
      if (Date.now() > deadline) throw new Error(`timeout with ${this.#length}/${n} bytes`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50)
        this.#waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
    return this.#take(n)
  }

  /** Waits for the server to close; returns any bytes it sent first. */
  async expectClose(timeoutMs = 5000): Promise<Buffer> {
    await Promise.race([
      this.closed,
      new Promise((_, reject) => setTimeout(() => reject(new Error('server did not close')), timeoutMs)),
    ])
    return this.#take(this.#length)
  }

  destroy(): void {
    this.socket.destroy()
  }

  // ---- handshake helpers ----

  /** Reads the greeting and sends client flags (FIXED_NEWSTYLE | NO_ZEROES by default). */
  async start(clientFlags = C.FLAG_C_FIXED_NEWSTYLE | C.FLAG_C_NO_ZEROES): Promise<Buffer> {
    const greeting = await this.read(C.GREETING_BYTES)
    const f = Buffer.alloc(4)
    f.writeUInt32BE(clientFlags >>> 0)
    this.send(f)
    return greeting
  }

  sendOption(option: number, data: Uint8Array = Buffer.alloc(0), declaredLength = data.byteLength): void {
    const h = Buffer.alloc(16)
    h.writeUInt32BE(C.IHAVEOPT_HI, 0)
    h.writeUInt32BE(C.IHAVEOPT_LO, 4)
    h.writeUInt32BE(option >>> 0, 8)
    h.writeUInt32BE(declaredLength >>> 0, 12)
    this.send(Buffer.concat([h, data]))
  }

  /** Reads one option reply. */
  async readOptionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = await this.read(C.OPTION_REPLY_HEADER_BYTES)
    if (h.readUInt32BE(0) !== C.OPTION_REPLY_MAGIC_HI || h.readUInt32BE(4) !== C.OPTION_REPLY_MAGIC_LO) {
      throw new Error(`bad option reply magic ${h.subarray(0, 8).toString('hex')}`)
    }
    const len = h.readUInt32BE(16)
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: await this.read(len) }
  }

  /** Sends NBD_OPT_GO and reads replies up to the final one. */
  async go(name: string, requests: number[] = [], option = C.OPT_GO): Promise<{ final: number; infos: Map<number, Buffer>; message: string }> {
    this.sendOption(option, goData(name, requests))
    const infos = new Map<number, Buffer>()
    for (;;) {
      const r = await this.readOptionReply()
      if (r.type === C.REP_INFO) {
        infos.set(r.data.readUInt16BE(0), r.data)
        continue
      }
      // Error replies carry an optional human-readable message.
      return { final: r.type, infos, message: r.type >= 0x8000_0000 ? r.data.toString('utf8') : '' }
    }
  }

  /** Handshake with GO; throws unless it succeeds. Returns size and transmission flags. */
  async connect(name: string): Promise<{ sizeBytes: number; flags: number }> {
    await this.start()
    const { final, infos } = await this.go(name, [C.INFO_BLOCK_SIZE])
    if (final !== C.REP_ACK) throw new Error(`GO failed: ${final.toString(16)}`)
    const e = infos.get(C.INFO_EXPORT)!
    return { sizeBytes: Number(e.readBigUInt64BE(2)), flags: e.readUInt16BE(10) }
  }

  // ---- transmission helpers ----

  request(type: number, o: { flags?: number; cookie?: bigint; offset?: bigint | number; length?: number; data?: Uint8Array } = {}): void {
    this.send(encodeRequest(type, o))
  }

  /** Reads one simple reply; `dataLength` bytes follow when error is 0 (READ). */
  async readReply(dataLength = 0): Promise<{ error: number; cookie: bigint; data: Buffer }> {
    const h = await this.read(C.SIMPLE_REPLY_HEADER_BYTES)
    if (h.readUInt32BE(0) !== C.SIMPLE_REPLY_MAGIC) throw new Error(`bad reply magic ${h.toString('hex')}`)
    const error = h.readUInt32BE(4)
    const cookie = h.readBigUInt64BE(8)
    const data = error === 0 && dataLength > 0 ? await this.read(dataLength) : Buffer.alloc(0)
    return { error, cookie, data }
  }
}

export function goData(name: string, requests: number[] = []): Buffer {
  const n = Buffer.from(name, 'utf8')
  const b = Buffer.alloc(4 + n.length + 2 + 2 * requests.length)
  b.writeUInt32BE(n.length, 0)
  n.copy(b, 4)
  b.writeUInt16BE(requests.length, 4 + n.length)
  requests.forEach((r, i) => b.writeUInt16BE(r, 6 + n.length + 2 * i))
  return b
}

/** Hex with `#` comments and whitespace, as in test/fixtures. */
export function hex(s: string): Buffer {
  return Buffer.from(
    s
      .split('\n')
      .map((l) => l.replace(/#.*$/, ''))
      .join('')
      .replace(/\s+/g, ''),
    'hex',
  )
}

export async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}
