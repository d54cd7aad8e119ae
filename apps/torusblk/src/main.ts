import { createJsonLogger, isTorusError, repeatedOption, type DeclaredOptions, type Logger } from '@torus/core'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { DEFAULTS, resolveNbdServerConfig, UsageError, type RawNbdServerOptions } from './config.js'
import { Gateway } from './gateway.js'
import { VERSION } from './version.js'

// Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or configuration (also: a command
// that is not available yet).

function usageExit(message: string): never {
  process.stderr.write(`torusblk: ${message}\nRun torusblk --help for usage.\n`)
  process.exit(2)
}

const notYet =
  (what: string, instead: string) =>
  (): never => {
    process.stderr.write(`torusblk: ${what} is not implemented yet. ${instead}\n`)
    process.exit(2)
  }

async function main(): Promise<void> {
  let run: (() => Promise<void>) | undefined
  await yargs(hideBin(process.argv))
    .scriptName('torusblk')
    .usage('$0 <command>\n\nClient side of Torus: an NBD gateway without local storage, kernel attach, and the Kubernetes FlexVolume driver.')
    .command(
      'nbdserver',
      'Serve every volume of a cluster over NBD, storing nothing locally (the gateway torusd runs, without its storage)',
      (y) =>
        y
          .usage(
            '$0 nbdserver -C ENDPOINT [options]\n\nServes every volume of the cluster in etcd over NBD (export name = volume name). Blocks live on the cluster\'s peers; this process only dials them, stores nothing and writes no files. A volume is served for writing by one gateway at a time: while this gateway has it open, torusd and other gateways refuse it.',
          )
          .option('endpoint', { alias: 'C', type: 'string', describe: 'The cluster\'s etcd: HOST:PORT[,HOST:PORT...] or etcd://HOST:PORT[,...] [env TORUS_ENDPOINT]' })
          .option('etcd-prefix', { type: 'string', describe: `Key prefix of the cluster in etcd [env TORUS_ETCD_PREFIX] (default ${DEFAULTS.etcdPrefix})` })
          .option('nbd-address', { type: 'string', describe: `NBD listen HOST:PORT [env TORUS_NBD_ADDRESS] (default ${DEFAULTS.nbdAddress})` })
          .option('nbd-max-connections', { type: 'string', describe: `NBD connections served at once; more are refused [env TORUS_NBD_MAX_CONNECTIONS] (default ${DEFAULTS.nbdMaxConnections})` })
          .option('cluster-secret-file', {
            type: 'string',
            describe: 'File holding the cluster secret that torusctl init wrote; peers refuse a gateway without it [env TORUS_CLUSTER_SECRET_FILE, or the secret itself in TORUS_CLUSTER_SECRET]',
          })
          .option('lease-ttl', { type: 'string', describe: `Volume lock lease TTL in seconds [env TORUS_LEASE_TTL] (default ${DEFAULTS.leaseTtlSeconds})` })
          .option('lock-grace', {
            type: 'string',
            describe: `Seconds an open volume keeps serving after its lock lease lapsed while etcd is unreachable [env TORUS_LOCK_GRACE] (default ${DEFAULTS.lockGraceSeconds})`,
          })
          .option('repair-rate', {
            type: 'string',
            describe: `Most bytes per second copied to stale replicas of the volumes served here, e.g. 64MiB; 0 turns repair off [env TORUS_REPAIR_RATE] (default ${DEFAULTS.repairRate})`,
          })
          .option('log-level', { type: 'string', describe: `debug, info, warn or error [env TORUS_LOG_LEVEL] (default ${DEFAULTS.logLevel})` })
          .example('$0 nbdserver -C 10.0.0.1:2379 --cluster-secret-file /etc/torus/cluster-secret', 'serve on 127.0.0.1:10809')
          .example('$0 nbdserver -C etcd://10.0.0.1:2379,10.0.0.2:2379 --nbd-address 0.0.0.0:10809 --cluster-secret-file /etc/torus/cluster-secret', 'serve other machines')
          .example('qemu-io -f raw nbd://127.0.0.1:10809/pad -c "write -P 0xab 0 1M"', 'then write to volume pad through it'),
      (argv) => {
        run = () =>
          nbdserver({
            endpoint: argv.endpoint,
            etcdPrefix: argv['etcd-prefix'],
            nbdAddress: argv['nbd-address'],
            nbdMaxConnections: argv['nbd-max-connections'],
            clusterSecretFile: argv['cluster-secret-file'],
            leaseTtl: argv['lease-ttl'],
            lockGrace: argv['lock-grace'],
            repairRate: argv['repair-rate'],
            logLevel: argv['log-level'],
          })
      },
    )
    .command(
      'nbd VOLUME DEVICE',
      'Attach VOLUME to a kernel /dev/nbdX through nbd-client (not implemented yet)',
      {},
      notYet('torusblk nbd', 'Run `torusblk nbdserver` and attach with the system\'s client instead: nbd-client -N VOLUME 127.0.0.1 10809 /dev/nbdX'),
    )
    .command('flex', 'Kubernetes FlexVolume driver (not implemented yet)', {}, notYet('torusblk flex', 'There is no FlexVolume driver in this version.'))
    .demandCommand(1, 'name a command')
    .example('$0 nbdserver -C 10.0.0.1:2379 --cluster-secret-file /etc/torus/cluster-secret', 'an NBD gateway without local storage')
    .strict()
    // Global, so it sees nbdserver's options too. yargs hands check() its declared options,
    // although @types/yargs calls them the alias map.
    .check((argv, declared) => repeatedOption(argv, declared as unknown as DeclaredOptions) ?? true)
    .help()
    .alias('h', 'help')
    .version(VERSION)
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err) => usageExit(msg ?? err?.message ?? 'invalid usage'))
    .parseAsync()
  await run?.()
}

async function nbdserver(flags: RawNbdServerOptions): Promise<void> {
  let config
  try {
    config = resolveNbdServerConfig(flags)
  } catch (err) {
    if (err instanceof UsageError) usageExit(err.message)
    throw err
  }
  const logger = createJsonLogger({ level: config.logLevel, write: (line) => process.stderr.write(line), fields: { app: 'torusblk' } })
  logger.info('torusblk nbdserver starting', { version: VERSION, node: process.version })
  const gateway = new Gateway(config, logger)
  installSignalHandlers(gateway, logger)
  try {
    await gateway.start()
  } catch (err) {
    logger.error('start failed', { err })
    process.stderr.write(`torusblk: ${describe(err)}\n`)
    await gateway.stop().catch(() => {})
    // A wrong secret is a configuration mistake, like a bad flag.
    process.exit(isTorusError(err, 'TORUS_INVALID_ARGUMENT') ? 2 : 1)
  }
}

function installSignalHandlers(gateway: Gateway, logger: Logger): void {
  let signalled = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      logger.warn('second signal, exiting without a clean stop', { signal })
      process.exit(1)
    }
    signalled = true
    logger.info('signal received, flushing and unlocking volumes', { signal })
    gateway.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('stop failed', { err })
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}

function describe(err: unknown): string {
  if (isTorusError(err)) return `${err.message} (${err.code})`
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE' || code === 'EACCES') return `cannot listen: ${err.message}`
    return err.message
  }
  return String(err)
}

main().catch((err: unknown) => {
  process.stderr.write(`torusblk: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
})
