import yargs, { type Argv } from 'yargs'
import { hideBin } from 'yargs/helpers'
import { ApiError, TorusClient } from './client.js'
import { init } from './commands/init.js'
import { volumeCreateBlock, volumeDelete, volumeList } from './commands/volume.js'
import { configPath, DEFAULT_ENDPOINT, resolveEndpoint, UsageError } from './endpoint.js'
import type { OutputFormat } from './output.js'
import { VERSION } from './version.js'
import { status } from './commands/status.js'

// Exit codes: 0 success, 1 the operation failed, 2 bad usage.
interface Global {
  endpoint?: string | undefined
  output: OutputFormat
}

function run(action: (client: TorusClient, args: Global) => Promise<string>) {
  return async (argv: object): Promise<void> => {
    const args = argv as Global
    const client = new TorusClient(resolveEndpoint(args.endpoint))
    process.stdout.write(await action(client, args))
  }
}

function fail(err: unknown): never {
  if (err instanceof UsageError) {
    process.stderr.write(`torusctl: ${err.message}\n`)
    process.exit(2)
  }
  if (err instanceof ApiError) {
    process.stderr.write(`torusctl: ${err.message}\n`)
    process.exit(1)
  }
  process.stderr.write(`torusctl: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
}

function volumeCommands(y: Argv<Global>): Argv<Global> {
  return y
    .command(
      'create-block NAME SIZE',
      'Create a block volume, e.g. `volume create-block pad 1GiB`',
      (c) =>
        c
          .positional('NAME', { type: 'string', demandOption: true, describe: 'volume name (also the NBD export name)' })
          .positional('SIZE', { type: 'string', demandOption: true, describe: 'size, e.g. 1GiB, 256MiB' }),
      (a) => run((client, g) => volumeCreateBlock(client, a.NAME, a.SIZE, g.output))(a),
    )
    .command('list', 'List volumes', {}, (a) => run((client, g) => volumeList(client, g.output))(a))
    .command(
      'delete NAME',
      'Delete a volume and free its space',
      (c) => c.positional('NAME', { type: 'string', demandOption: true }),
      (a) => run((client, g) => volumeDelete(client, a.NAME, g.output))(a),
    )
    .demandCommand(1, 'volume: name a subcommand (create-block, list, delete)')
}

async function main(): Promise<void> {
  await yargs(hideBin(process.argv))
    .scriptName('torusctl')
    .usage(`$0 [-C ENDPOINT] <command>\n\nAdministers a Torus cluster. ENDPOINT is torus://HOST:PORT (a torusd's peer address); default $TORUS_ENDPOINT, then ${configPath()}, then ${DEFAULT_ENDPOINT}.`)
    .option('endpoint', { alias: 'C', type: 'string', describe: 'torus://HOST:PORT of a torusd' })
    .option('output', { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as OutputFormat, describe: 'Result format' })
    .command(
      'init',
      'Format a new cluster (a single embedded node formats itself on first start)',
      (c) =>
        c
          .option('block-size', { type: 'string', describe: 'block size, e.g. 512KiB (default: the daemon\'s --block-size)' })
          .option('replication', { type: 'number', describe: 'default replication for new volumes' })
          .option('ring-type', { choices: ['ketama', 'mod', 'single'], describe: 'ring type' }),
      (a) => run((client, g) => init(client, { blockSize: a['block-size'], replication: a.replication, ringType: a['ring-type'] }, g.output))(a),
    )
    .command('volume', 'Create, list and delete volumes', volumeCommands)
    .command('status', 'Show the daemon: peer, addresses, capacity and usage, open volumes', {}, (a) => run((client, g) => status(client, g.output))(a))
    .completion('completion', 'Print a bash completion script')
    .demandCommand(1, 'name a command')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(VERSION)
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err) => {
      if (err !== undefined && err !== null) fail(err)
      process.stderr.write(`torusctl: ${msg}\nRun torusctl --help for usage.\n`)
      process.exit(2)
    })
    .parseAsync()
}

main().catch(fail)
