// Goal: the built torusblk explains itself: --help with examples, exit 2 with a clear message on
// bad usage or configuration (before touching the network), exit 2 for commands not built yet.
// Method: run dist/main.js with a clean environment (no TORUS_* variables).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { assertBuilt, torusblk } from './helpers/torusblk.js'

let dir: string
let secretFile: string
/** Stands for the secret file's path in the table below (it exists only once beforeAll ran). */
const SECRET = '<secret-file>'

beforeAll(() => {
  assertBuilt()
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torusblk-cli-'))
  secretFile = path.join(dir, 'cluster-secret')
  fs.writeFileSync(secretFile, `${'b2'.repeat(32)}\n`)
})

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true })
})

describe('torusblk CLI', () => {
  it('--help lists the commands, and nbdserver --help its options and examples', async () => {
    const top = await torusblk(['--help'])
    expect(top.code).toBe(0)
    expect(top.stdout).toMatch(/torusblk nbdserver/)
    expect(top.stdout).toMatch(/Examples:/)
    const sub = await torusblk(['nbdserver', '--help'])
    expect(sub.code).toBe(0)
    for (const flag of ['--endpoint', '--etcd-prefix', '--nbd-address', '--cluster-secret-file', '--lease-ttl', '--lock-grace', '--log-level']) expect(sub.stdout).toContain(flag)
    expect(sub.stdout).toMatch(/Examples:[\s\S]*nbdserver -C/)
  })

  it.each([
    { why: 'no command', args: [], stderr: /name a command/ },
    { why: 'an unknown option', args: ['nbdserver', '-C', 'h:2379', '--size', '1G'], stderr: /Unknown arguments?: size/ },
    { why: 'no endpoint', args: ['nbdserver'], stderr: /needs the cluster's etcd: pass -C\/--endpoint/ },
    { why: 'a bad endpoint', args: ['nbdserver', '-C', 'not-an-endpoint'], stderr: /-C\/--endpoint: invalid endpoint "not-an-endpoint"/ },
    { why: 'a torus:// endpoint', args: ['nbdserver', '-C', 'torus://127.0.0.1:40000'], stderr: /torus:\/\/ names a single torusd/ },
    { why: 'no cluster secret', args: ['nbdserver', '-C', '127.0.0.1:2379'], stderr: /needs the cluster secret that torusctl init wrote.*--cluster-secret-file/ },
    { why: 'an unreadable secret file', args: ['nbdserver', '-C', '127.0.0.1:2379', '--cluster-secret-file', '/nonexistent/secret'], stderr: /--cluster-secret-file: cannot read/ },
    { why: 'a bad NBD address', args: ['nbdserver', '-C', '127.0.0.1:2379', '--cluster-secret-file', SECRET, '--nbd-address', 'nowhere'], stderr: /--nbd-address.*expected HOST:PORT/ },
    { why: 'a bad lease TTL', args: ['nbdserver', '-C', '127.0.0.1:2379', '--cluster-secret-file', SECRET, '--lease-ttl', '0'], stderr: /--lease-ttl/ },
    { why: 'a repeated option', args: ['nbdserver', '-C', '127.0.0.1:2379', '--cluster-secret-file', SECRET, '--nbd-address', '127.0.0.1:18811', '--nbd-address', 'nope'], stderr: /^torusblk: --nbd-address given more than once$/m },
    { why: 'a repeated option by its alias', args: ['nbdserver', '-C', '127.0.0.1:2379', '--endpoint', '127.0.0.1:2380', '--cluster-secret-file', SECRET], stderr: /^torusblk: -C\/--endpoint given more than once$/m },
  ])('exits 2 on $why, saying what is wrong', async ({ args, stderr }) => {
    const r = await torusblk(args.map((a) => (a === SECRET ? secretFile : a)))
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr).toMatch(stderr)
    expect(r.stderr).toContain('Run torusblk --help for usage.')
  })

  it('exits 2 for nbd and flex, which are not implemented yet', async () => {
    const nbd = await torusblk(['nbd', 'pad', '/dev/nbd0'])
    expect(nbd.code).toBe(2)
    expect(nbd.stderr).toMatch(/torusblk nbd is not implemented yet.*nbd-client/)
    const flex = await torusblk(['flex'])
    expect(flex.code).toBe(2)
    expect(flex.stderr).toMatch(/torusblk flex is not implemented yet/)
  })

  it('exits 1 with the reason when etcd cannot be reached', async () => {
    const r = await torusblk(['nbdserver', '-C', '127.0.0.1:1', '--cluster-secret-file', secretFile, '--nbd-address', '127.0.0.1:0'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/torusblk: cannot reach etcd at 127\.0\.0\.1:1/)
  }, 30_000)
})
