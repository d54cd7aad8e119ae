import {
  silentLogger,
  systemClock,
  TorusError,
  validateVolumeName,
  type AbortOptions,
  type BlockStore,
  type Clock,
  type Logger,
  type MetadataStore,
} from '@torus/core'
import { Volume } from './volume.js'
import { VolumeLease } from './volume-lease.js'

export interface OpenVolumeOptions extends AbortOptions {
  metadata: MetadataStore
  store: BlockStore
  name: string
  /** Who serves the volume, e.g. `torusd@host:4321`; other openers see it in TORUS_LOCKED. */
  holder: string
  /** Lease behind the write lock; kept alive every `leaseTtlMs / 3`. Default 10 s. */
  leaseTtlMs?: number
  clock?: Clock
  logger?: Logger
  /** Open without taking the write lock; every mutation fails with TORUS_READ_ONLY. */
  readOnly?: boolean
  /** Called once if the write lock is lost; the volume then refuses writes and flushes. */
  onLost?: (error: TorusError) => void
  /** See VolumeLeaseOptions.unreachableGraceMs. Default 0. */
  unreachableGraceMs?: number
}

/**
 * Looks up volume `name` and opens it. Unless `readOnly`, takes its write lock under a fresh
 * lease and keeps the lease alive until `volume.close()`.
 *
 * Errors: TORUS_NOT_FOUND (no such volume), TORUS_LOCKED (someone else holds the lock; the
 * message names them), and whatever the metadata store throws.
 */
export async function openVolume(options: OpenVolumeOptions): Promise<Volume> {
  const { metadata, store, name, holder } = options
  validateVolumeName(name)
  if (typeof holder !== 'string' || holder.length === 0) throw new TypeError('holder must be a non-empty string')
  const leaseTtlMs = options.leaseTtlMs ?? 10_000
  if (!Number.isSafeInteger(leaseTtlMs) || leaseTtlMs < 3) throw new RangeError(`invalid leaseTtlMs: ${leaseTtlMs}`)
  const clock = options.clock ?? systemClock
  const logger = options.logger ?? silentLogger
  const abort = options.signal === undefined ? undefined : { signal: options.signal }

  const info = await metadata.getVolume(name, abort)
  if (info === undefined) throw new TorusError('TORUS_NOT_FOUND', `volume ${name} does not exist`, { details: { volume: name } })
  if (options.readOnly === true) return new Volume({ info, store, logger, readOnly: true })

  const grantedAtMs = clock.now()
  const leaseId = await metadata.grantLease(leaseTtlMs, abort)
  let lock
  try {
    lock = await metadata.lockVolume(name, holder, leaseId, abort)
  } catch (err) {
    await metadata.revokeLease(leaseId).catch(() => {})
    throw err
  }
  const lease = new VolumeLease(
    {
      metadata,
      lock,
      leaseTtlMs,
      clock,
      logger,
      ...(options.onLost === undefined ? {} : { onLost: options.onLost }),
      ...(options.unreachableGraceMs === undefined ? {} : { unreachableGraceMs: options.unreachableGraceMs }),
    },
    grantedAtMs,
  )
  try {
    const volume = new Volume({ info, store, logger, lease })
    logger.child({ component: 'volume', volume: name }).info('volume opened', { holder, generation: lock.generation })
    return volume
  } catch (err) {
    await lease.release()
    throw err
  }
}
