import { isTorusError, repeatedOption, RING_TYPES, type DeclaredOptions, type RingType } from '@torus/core'
import yargs, { type Argv } from 'yargs'
import { hideBin } from 'yargs/helpers'
import type { ClusterBackend } from './backend.js'
import { init } from './commands/init.js'
import { listPeers, peerAdd, peerForget, peerRemove } from './commands/peer.js'
import { ringGet, ringSetReplication, ringSetType } from './commands/ring.js'
import { status } from './commands/status.js'
import { volumeCreateBlock, volumeDelete, volumeList, volumeStatus } from './commands/volume.js'
import { resolveSecretFile, SECRET_FILE_ENV } from './cluster-secret.js'
import { connect } from './connect.js'
import { configPath, DEFAULT_ENDPOINT, DEFAULT_ETCD_PREFIX, resolveEndpoint, resolveEtcdPrefix, UsageError, type Endpoint } from './endpoint.js'
import type { CommandContext, OutputFormat } from './output.js'
import { VERSION } from './version.js'

// Exit codes: 0 success, 1 the operation failed, 2 bad usage.
interface Global {
  endpoint?: string | undefined
  'etcd-prefix'?: string | undefined
  output: OutputFormat
}

/** Where a command acts, once resolved from flags, environment and config file. */
interface Target {
  endpoint: Endpoint
  etcdPrefix: string
}

function run(action: (backend: ClusterBackend, ctx: CommandContext, target: Target) => Promise<string>) {
  return async (argv: object): Promise<void> => {
    const args = argv as Global
    const endpoint = resolveEndpoint(args.endpoint)
    if (endpoint.kind === 'torus' && args['etcd-prefix'] !== undefined) {
      throw new UsageError(`--etcd-prefix applies to etcd endpoints only; ${endpoint.raw} is a torusd`)
    }
    const etcdPrefix = endpoint.kind === 'etcd' ? resolveEtcdPrefix(args['etcd-prefix']) : DEFAULT_ETCD_PREFIX
    const backend = await connect(endpoint, { etcdPrefix })
    let out: string
    try {
      out = await action(backend, { output: args.output, now: Date.now }, { endpoint, etcdPrefix })
    } finally {
      // A failure to close must not hide the command's own result or error.
      await backend.close().catch(() => {})
    }
    process.stdout.write(out)
  }
}

function fail(err: unknown): never {
  if (err instanceof UsageError) {
    process.stderr.write(`torusctl: ${err.message}\n`)
    process.exit(2)
  }
  if (isTorusError(err)) {
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
          .positional('SIZE', { type: 'string', demandOption: true, describe: 'size, e.g. 1GiB, 256MiB' })
          .example('$0 volume create-block pad 1GiB', 'a 1 GiB volume named pad'),
      (a) => run((b, ctx) => volumeCreateBlock(b, a.NAME, a.SIZE, ctx))(a),
    )
    .command('list', 'List volumes', (c) => c.example('$0 -o json volume list', 'as JSON'), (a) => run((b, ctx) => volumeList(b, ctx))(a))
    .command(
      'status NAME',
      'Who serves a volume, and whether every block has all its copies (stale replicas repair is working through); etcd clusters',
      (c) => c.positional('NAME', { type: 'string', demandOption: true, describe: 'volume name' }).example('$0 volume status pad', 'lock holder and stale copies of pad'),
      (a) => run((b, ctx) => volumeStatus(b, a.NAME, ctx))(a),
    )
    .command(
      'delete NAME',
      'Delete a volume and free its space (refused while it is in use)',
      (c) => c.positional('NAME', { type: 'string', demandOption: true }),
      (a) => run((b, ctx) => volumeDelete(b, a.NAME, ctx))(a),
    )
    .demandCommand(1, 'volume: name a subcommand (create-block, list, status, delete)')
}

function peerCommands(y: Argv<Global>): Argv<Global> {
  return y
    .command(
      'add [UUID..]',
      'Add peers to the ring (weighted by the capacity they report); new ring version',
      (c) =>
        c
          .positional('UUID', { type: 'string', array: true, describe: 'peer UUIDs, as list-peers shows them' })
          .option('all-peers', { type: 'boolean', default: false, describe: 'add every alive peer that is not in the ring yet' })
          .option('force', { type: 'boolean', default: false, describe: 'change the ring although volumes exist: rebalance is not built, so their data would read as missing' })
          .example('$0 -C 10.0.0.1:2379 peer add --all-peers', 'add every alive peer')
          .example('$0 peer add 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1c3e', 'add one peer by UUID'),
      (a) => run((b, ctx) => peerAdd(b, { uuids: (a.UUID ?? []).map(String), allPeers: a['all-peers'], force: a.force }, ctx))(a),
    )
    .command(
      'remove <UUID..>',
      'Remove peers from the ring; new ring version (refused while volumes exist: their blocks do not move yet)',
      (c) =>
        c
          // `default: undefined` drops the `[default: []]` yargs gives a variadic positional, which a required one never uses.
          .positional('UUID', { type: 'string', array: true, demandOption: true, default: undefined, describe: 'peer UUIDs' })
          .option('force', { type: 'boolean', default: false, describe: 'change the ring although volumes exist: rebalance is not built, so their data would read as missing' })
          .example('$0 peer remove 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1c3e', 'take one peer out'),
      (a) => run((b, ctx) => peerRemove(b, (a.UUID ?? []).map(String), ctx, a.force))(a),
    )
    .command(
      'forget <UUID..>',
      'Drop the records of decommissioned (DOWN, not in the ring) peers from list-peers',
      (c) => c.positional('UUID', { type: 'string', array: true, demandOption: true, default: undefined, describe: 'peer UUIDs' }).example('$0 peer forget 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1c3e', 'forget a retired peer'),
      (a) => run((b, ctx) => peerForget(b, (a.UUID ?? []).map(String), ctx))(a),
    )
    .demandCommand(1, 'peer: name a subcommand (add, remove, forget)')
}

function ringCommands(y: Argv<Global>): Argv<Global> {
  return y
    .command('get', 'Show the ring: version, type, replication and members', (c) => c.example('$0 ring get -o json', 'as JSON'), (a) => run(ringGet)(a))
    .command(
      'set-type TYPE',
      'Change the ring type (ketama: weighted consistent hashing; mod: hash mod N; single: one peer)',
      (c) => c.positional('TYPE', { choices: RING_TYPES, demandOption: true }).option('force', { type: 'boolean', default: false, describe: 'change the ring although volumes exist: rebalance is not built, so their data would read as missing' }).example('$0 ring set-type ketama', 'weighted placement'),
      (a) => run((b, ctx) => ringSetType(b, a.TYPE as RingType, ctx, a.force))(a),
    )
    .command(
      'set-replication N',
      'Change how many peers hold each block (1-16)',
      (c) => c.positional('N', { type: 'string', demandOption: true, describe: 'copies of each block, 1-16' }).option('force', { type: 'boolean', default: false, describe: 'change the ring although volumes exist: rebalance is not built, so their data would read as missing' }).example('$0 ring set-replication 3', 'three copies'),
      (a) => run((b, ctx) => ringSetReplication(b, a.N, ctx, a.force))(a),
    )
    .demandCommand(1, 'ring: name a subcommand (get, set-type, set-replication)')
}

async function main(): Promise<void> {
  const cli = yargs(hideBin(process.argv))
  await cli
    .scriptName('torusctl')
    .usage(
      `$0 [-C ENDPOINT] [--etcd-prefix PREFIX] <command>\n\nAdministers a Torus cluster. ENDPOINT is HOST:PORT[,HOST:PORT...] or etcd://HOST:PORT[,...] for a cluster in etcd, or torus://HOST:PORT for a single torusd (its peer address); default $TORUS_ENDPOINT, then ${configPath()}, then ${DEFAULT_ENDPOINT}.`,
    )
    .option('endpoint', { alias: 'C', type: 'string', describe: 'etcd HOST:PORT[,HOST:PORT...] / etcd://..., or torus://HOST:PORT of a torusd' })
    .option('etcd-prefix', { type: 'string', describe: `key prefix of the cluster in etcd (env TORUS_ETCD_PREFIX; default ${DEFAULT_ETCD_PREFIX})` })
    .option('output', { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as OutputFormat, describe: 'Result format' })
    .command(
      'init',
      'Format a new cluster (a single embedded node formats itself on first start)',
      (c) =>
        c
          .option('block-size', { type: 'string', describe: 'block size, e.g. 512KiB (etcd default 512KiB; a torusd uses its --block-size)' })
          .option('replication', { type: 'string', describe: 'default replication for new volumes, 1-16 (etcd default 2)' })
          .option('ring-type', { choices: RING_TYPES, describe: 'ring type (etcd default ketama)' })
          .option('secret-file', {
            type: 'string',
            describe: `etcd only: file with the cluster secret peers authenticate with; read if it exists, else a new one is written there (0600) [env ${SECRET_FILE_ENV}; default ~/.torus/<prefix, / as _>cluster-secret]`,
          })
          .example('$0 -C 127.0.0.1:2379 init', 'a cluster in etcd: 512KiB blocks, replication 2, ketama, secret in ~/.torus/torus_cluster-secret')
          .example('$0 -C 127.0.0.1:2379 init --replication 3', 'three copies of each block')
          .example('$0 -C 127.0.0.1:2379 init --secret-file /etc/torus/secret', 'keep the cluster secret there (give the same path to every torusd)'),
      (a) =>
        run((b, ctx, target) => {
          if (target.endpoint.kind === 'torus' && a['secret-file'] !== undefined) {
            throw new UsageError(`--secret-file applies to etcd endpoints only; ${target.endpoint.raw} is a single torusd, which has no peers and needs no secret`)
          }
          const secretFile = target.endpoint.kind === 'etcd' ? resolveSecretFile(a['secret-file'], target.etcdPrefix) : undefined
          return init(b, { blockSize: a['block-size'], replication: a.replication, ringType: a['ring-type'], secretFile }, ctx)
        })(a),
    )
    .command('volume', 'Create, list, inspect (status) and delete volumes', volumeCommands)
    .command(
      'list-peers',
      'List peers: address, UUID, size, used, ring membership (OK/Avail/DOWN), last heartbeat, rebalance/repair rates; then whether the ring is balanced',
      (c) => c.example('$0 -C 127.0.0.1:2379 list-peers', 'the peers of a cluster in etcd'),
      (a) => run(listPeers)(a),
    )
    .command('peer', 'Add peers to the ring, remove them, or forget decommissioned ones', peerCommands)
    .command('ring', 'Show or change the ring (placement of blocks on peers)', ringCommands)
    .command('status', 'A torusd: its peer, addresses, capacity, usage and open volumes. etcd: a cluster summary', {}, (a) => run(status)(a))
    // Not yargs' .completion(): it prints the script even for `completion --help`. Tab completion
    // itself (--get-yargs-completions, which the script calls) works without it.
    .command(
      'completion',
      'Print a bash completion script',
      (c) => c.example('$0 completion >> ~/.bashrc', 'complete torusctl commands in new shells'),
      () => void cli.showCompletionScript(),
    )
    .demandCommand(1, 'name a command')
    .strict()
    // Global, so it sees every subcommand's options. yargs hands check() its declared options,
    // although @types/yargs calls them the alias map.
    .check((argv, declared) => {
      const repeated = repeatedOption(argv, declared as unknown as DeclaredOptions)
      if (repeated !== undefined) throw new UsageError(repeated)
      return true
    })
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
