// Goal: a single-valued torusctl option given twice is a usage error naming it, while variadic
// positionals (peer UUIDs) still repeat. Method: a real yargs parse declared the way main.ts
// declares torusctl's options, with repeatedOption as its global check.
import { describe, expect, it } from 'vitest'
import yargs from 'yargs'
import { repeatedOption, type DeclaredOptions } from '@torus/core'

/** Parses args and returns what the check saw in the subcommand (or at the top level). */
async function check(args: string[]): Promise<string | undefined> {
  let seen: string | undefined
  await yargs(args)
    .option('endpoint', { alias: 'C', type: 'string' })
    .option('output', { alias: 'o', choices: ['table', 'json'] as const, default: 'table' })
    .command('peer', 'peers', (p) =>
      p.command('remove <UUID..>', 'remove', (c) => c.positional('UUID', { type: 'string', array: true, demandOption: true }).option('force', { type: 'boolean', default: false })),
    )
    .command('volume', 'volumes', (v) => v.command('create-block NAME SIZE', 'create', (c) => c.positional('NAME', { type: 'string' }).positional('SIZE', { type: 'string' })))
    .check((argv, declared) => {
      seen = repeatedOption(argv, declared as unknown as DeclaredOptions)
      return true
    })
    .parseAsync()
  return seen
}

describe('repeatedOption', () => {
  it('names a global option given twice, by its short and long names', async () => {
    expect(await check(['-C', '127.0.0.1:2379', '--endpoint', '127.0.0.1:2380', 'volume', 'create-block', 'pad', '1GiB'])).toBe('-C/--endpoint given more than once')
    expect(await check(['-o', 'json', '-o', 'json', 'peer', 'remove', 'a'])).toBe('-o/--output given more than once')
  })

  it('lets a variadic positional and a repeated boolean through', async () => {
    expect(await check(['peer', 'remove', 'a', 'b', 'c', '--force', '--force'])).toBeUndefined()
    expect(await check(['-C', '127.0.0.1:2379', 'volume', 'create-block', 'pad', '1GiB'])).toBeUndefined()
  })
})
