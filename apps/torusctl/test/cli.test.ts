// Goal: the built torusctl explains itself — --help names every subcommand, a required variadic
// positional shows no made-up default, `completion --help` is help, not the script — and refuses
// an option given twice as bad usage (exit 2) before it connects anywhere.
// Method: run dist/main.js (what bin/torusctl runs) with no TORUS_* variables and an endpoint
// nothing listens on; none of these cases may reach it.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run, type RunResult } from '@torus/testing'

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/main.js')
let home: string

beforeAll(() => {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`pnpm build\` first (scripts/test.sh does)`)
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'torusctl-cli-'))
})
afterAll(() => {
  fs.rmSync(home, { recursive: true, force: true })
})

function torusctl(...args: string[]): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home }
  for (const k of Object.keys(env)) if (k.startsWith('TORUS_')) delete env[k]
  return run(process.execPath, [MAIN, ...args], { timeoutMs: 30_000, env })
}

describe('torusctl --help', () => {
  it('names every subcommand of volume and peer', async () => {
    const top = await torusctl('--help')
    expect(top.code).toBe(0)
    expect(top.stdout).toMatch(/torusctl volume +Create, list, inspect \(status\) and delete volumes/)
    expect(top.stdout).toMatch(/torusctl peer +Add peers to the ring, remove them, or forget decommissioned ones/)
  })

  it('shows no default for the UUIDs peer remove and peer forget require', async () => {
    for (const sub of ['remove', 'forget']) {
      const r = await torusctl('peer', sub, '--help')
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/UUID +peer UUIDs +\[array\] \[required\]\n/)
      expect(r.stdout).not.toContain('[default: []]')
    }
  })

  it('shows help for completion --help, and the script for completion', async () => {
    const help = await torusctl('completion', '--help')
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^torusctl completion\n\nPrint a bash completion script\n/)
    expect(help.stdout).not.toContain('completions-###')
    const script = await torusctl('completion')
    expect(script.code).toBe(0)
    expect(script.stdout).toMatch(/^###-begin-torusctl-completions-###\n/)
    expect(script.stdout).toContain('--get-yargs-completions')
    const words = await torusctl('--get-yargs-completions', 'torusctl', 'volume', '')
    expect(words.stdout.split('\n')).toEqual(expect.arrayContaining(['create-block', 'list', 'status', 'delete']))
  })
})

describe('torusctl usage errors', () => {
  it.each([
    { args: ['-C', '127.0.0.1:1', '--endpoint', '127.0.0.1:2', 'status'], name: '-C/--endpoint' },
    { args: ['-C', '127.0.0.1:1', '-o', 'json', '-o', 'table', 'volume', 'list'], name: '-o/--output' },
    { args: ['-C', '127.0.0.1:1', 'volume', 'list', '--etcd-prefix', 'a/', '--etcd-prefix', 'b/'], name: '--etcd-prefix' },
    { args: ['-C', '127.0.0.1:1', 'init', '--replication', '2', '--replication', '3'], name: '--replication' },
  ])('exits 2 when $name is given twice, naming it', async ({ args, name }) => {
    const r = await torusctl(...args)
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr).toBe(`torusctl: ${name} given more than once\n`)
  })
})
