import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { run, Service, type RunResult } from '@torus/testing'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..')
export const TORUSBLK_MAIN = path.join(root, 'apps/torusblk/dist/main.js')

/** The tests run the built app, exactly what `bin` runs. */
export function assertBuilt(...extra: string[]): void {
  for (const f of [TORUSBLK_MAIN, ...extra.map((p) => path.join(root, p))]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run \`pnpm build\` first (scripts/test.sh does)`)
  }
}

/** Runs torusblk to completion (for usage errors and refused starts). */
export function torusblk(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<RunResult> {
  const clean = { ...process.env }
  for (const k of Object.keys(clean)) if (k.startsWith('TORUS_')) delete clean[k]
  return run(process.execPath, [TORUSBLK_MAIN, ...args], { timeoutMs: 30_000, env: { ...clean, ...env }, ...(cwd === undefined ? {} : { cwd }) })
}

/**
 * An interactive qemu-io on an NBD URI: the connection (and so the volume) stays open until
 * `quit()`. qemu-io reads commands from a piped stdin and answers each on stdout.
 */
export class QemuIoSession {
  readonly service: Service

  constructor(uri: string) {
    this.service = new Service('qemu-io', ['-f', 'raw', uri], { stdio: ['pipe', 'pipe', 'pipe'] })
  }

  /** Sends one command and resolves with the first new output line matching `expect`. */
  async command(command: string, expect: RegExp, timeoutMs = 30_000): Promise<string> {
    const seen = this.service.lines.length
    this.service.child.stdin!.write(`${command}\n`)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const line = this.service.lines.slice(seen).find((l) => expect.test(l))
      if (line !== undefined) return line
      if (!this.service.running || Date.now() > deadline) {
        throw new Error(`qemu-io ${this.service.running ? 'timed out' : 'exited'} waiting for ${String(expect)} after ${JSON.stringify(command)}; output:\n${this.service.lines.join('\n')}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  async quit(): Promise<void> {
    if (this.service.running) this.service.child.stdin!.end('quit\n')
    await this.service.stop('SIGTERM', 10_000)
  }
}
