import { createJsonLogger, isTorusError, repeatedOption, type DeclaredOptions, type Logger } from '@torus/core'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { ConfigError, DEFAULTS, defaultDataDir, resolveConfig } from './config.js'
import { Daemon } from './daemon.js'
import { VERSION } from './version.js'

// Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration.
async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('torusd')
    .usage('$0 [options]\n\nThe Torus storage daemon: stores blocks in --data-dir and serves every volume over NBD.')
    .option('data-dir', { type: 'string', describe: `Where blocks and metadata live [env TORUS_DATA_DIR] (default ${defaultDataDir()})` })
    .option('size', { type: 'string', describe: `Storage this node gives to the pool, e.g. 5GiB [env STORAGE_SIZE] (default ${DEFAULTS.size})` })
    .option('host', { type: 'string', describe: `HTTP listen host for /healthz and /metrics [env LISTEN_HOST] (default ${DEFAULTS.host})` })
    .option('port', { type: 'string', describe: `HTTP listen port [env LISTEN_HTTP_PORT] (default ${DEFAULTS.port})` })
    .option('peer-address', { type: 'string', describe: `Peer address; torusctl talks to it [env PEER_ADDRESS] (default ${DEFAULTS.peerAddress})` })
    .option('nbd-address', { type: 'string', describe: `NBD listen HOST:PORT, or "off" [env TORUS_NBD_ADDRESS] (default ${DEFAULTS.nbdAddress})` })
    .option('nbd-max-connections', { type: 'string', describe: `NBD connections served at once; more are refused [env TORUS_NBD_MAX_CONNECTIONS] (default ${DEFAULTS.nbdMaxConnections})` })
    .option('block-size', { type: 'string', describe: `Block size when this node formats a new cluster (default ${DEFAULTS.blockSize})` })
    .option('lease-ttl', { type: 'string', describe: `Volume lock lease TTL in seconds [env TORUS_LEASE_TTL] (default ${DEFAULTS.leaseTtlSeconds})` })
    .option('log-level', { type: 'string', describe: `debug, info, warn or error [env TORUS_LOG_LEVEL] (default ${DEFAULTS.logLevel})` })
    .option('io-threads', { type: 'string', describe: 'Threads for block I/O (libuv pool; read by bin/torusd.cjs) [env UV_THREADPOOL_SIZE] (default: cores - 1)' })
    .option('etcd', { type: 'string', describe: 'etcd HOST:PORT[,HOST:PORT…] for a multi-node cluster; without it the node runs embedded metadata [env ETCD_HOST, ETCD_PORT]' })
    .option('etcd-prefix', { type: 'string', describe: `Key prefix of the cluster in etcd [env TORUS_ETCD_PREFIX] (default ${DEFAULTS.etcdPrefix})` })
    .option('debug-init', { type: 'boolean', describe: 'Initialise an uninitialised etcd cluster with defaults instead of refusing to start [env DEBUG_INIT=1]' })
    .option('auto-join', { type: 'boolean', describe: 'Add this peer to the ring at start-up [env AUTO_JOIN=1]' })
    .option('lock-grace', {
      type: 'string',
      describe: `Seconds an open volume keeps serving after its lock lease lapsed while etcd is unreachable [env TORUS_LOCK_GRACE] (default ${DEFAULTS.lockGraceSeconds})`,
    })
    .option('repair-rate', {
      type: 'string',
      describe: `Most bytes per second copied to stale replicas of the volumes this node serves, e.g. 64MiB; 0 turns repair off [env TORUS_REPAIR_RATE] (default ${DEFAULTS.repairRate})`,
    })
    .option('idle-repair-interval', {
      type: 'string',
      describe: `Seconds between looks for volumes nobody has open that have stale copies; one node (the lowest ring member id, only while every member is up) opens each to repair it; 0 turns that off [env TORUS_IDLE_REPAIR_INTERVAL] (default ${DEFAULTS.idleRepairIntervalSeconds})`,
    })
    .option('cluster-secret-file', {
      type: 'string',
      describe: 'File holding the cluster secret that torusctl init wrote; peers prove they know it. Needed with --etcd [env TORUS_CLUSTER_SECRET_FILE, or the secret itself in TORUS_CLUSTER_SECRET]',
    })
    .example('$0 --data-dir /var/lib/torus --size 5GiB', 'a single node with embedded metadata')
    .example('$0 --etcd 10.0.0.1:2379 --cluster-secret-file /etc/torus/secret --size 5GiB --auto-join --peer-address ws://10.0.0.5:40000', 'a cluster member')
    .strict()
    // yargs hands check() its declared options, although @types/yargs calls them the alias map.
    .check((argv, declared) => repeatedOption(argv, declared as unknown as DeclaredOptions) ?? true)
    .help()
    .alias('h', 'help')
    .version(VERSION)
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err) => {
      process.stderr.write(`torusd: ${msg ?? err?.message}\nRun torusd --help for usage.\n`)
      process.exit(2)
    })
    .parseAsync()

  let config
  try {
    config = resolveConfig({
      dataDir: argv['data-dir'],
      size: argv.size,
      host: argv.host,
      port: argv.port,
      peerAddress: argv['peer-address'],
      nbdAddress: argv['nbd-address'],
      nbdMaxConnections: argv['nbd-max-connections'],
      blockSize: argv['block-size'],
      leaseTtl: argv['lease-ttl'],
      logLevel: argv['log-level'],
      etcd: argv.etcd,
      etcdPrefix: argv['etcd-prefix'],
      debugInit: argv['debug-init'],
      autoJoin: argv['auto-join'],
      lockGrace: argv['lock-grace'],
      clusterSecretFile: argv['cluster-secret-file'],
      repairRate: argv['repair-rate'],
      idleRepairInterval: argv['idle-repair-interval'],
    })
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`torusd: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }

  const logger = createJsonLogger({ level: config.logLevel, write: (line) => process.stderr.write(line), fields: { app: 'torusd' } })
  logger.info('torusd starting', { version: VERSION, node: process.version, ioThreads: Number(process.env.UV_THREADPOOL_SIZE ?? 4), gc: gcMode() })
  const daemon = new Daemon(config, logger)
  installSignalHandlers(daemon, logger)
  try {
    await daemon.start()
  } catch (err) {
    logger.error('start failed', { err })
    process.stderr.write(`torusd: ${describe(err)}\n`)
    await daemon.stop().catch(() => {})
    // A configuration mistake found at start-up (e.g. a wrong cluster secret) exits like a bad flag.
    process.exit(isTorusError(err, 'TORUS_NOT_SUPPORTED') || err instanceof ConfigError ? 2 : 1)
  }
}

function installSignalHandlers(daemon: Daemon, logger: Logger): void {
  let signalled = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      logger.warn('second signal, exiting without a clean stop', { signal })
      process.exit(1)
    }
    signalled = true
    logger.info('signal received, flushing and stopping', { signal })
    daemon.stop().then(
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
    if ((code === 'EADDRINUSE' || code === 'EACCES') && !err.message.includes('cannot listen')) return `cannot listen: ${err.message}`
    return err.message
  }
  return String(err)
}

main().catch((err: unknown) => {
  process.stderr.write(`torusd: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
})

/**
 * How V8 collects garbage in this process; bin/torusd and torusd.cjs's shebang pick
 * single-threaded (see docs/configuration.md). V8 reads flags in order, `_` and `-` alike, and
 * --single-threaded implies --single-threaded-gc; the last word wins.
 */
function gcMode(): 'single-threaded' | 'parallel' {
  let single = false
  for (const arg of process.execArgv) {
    const flag = arg.replaceAll('_', '-').split('=')[0]
    if (flag === '--single-threaded-gc' || flag === '--single-threaded') single = true
    else if (flag === '--no-single-threaded-gc' || flag === '--no-single-threaded') single = false
  }
  return single ? 'single-threaded' : 'parallel'
}
