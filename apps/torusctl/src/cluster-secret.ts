import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { readSmallFileSync, TorusError } from '@torus/core'
import { UsageError } from './endpoint.js'

/** The same floor torusd applies: the transport needs 16 bytes; a generated secret has 64 characters. */
export const MIN_SECRET_CHARS = 32
/** A secret file is a line of hex; anything this long is the wrong file (and /dev/zero never ends). */
const MAX_SECRET_FILE_BYTES = 4096
/** What torusd reads the secret file's path from when `--cluster-secret-file` is not given; `init` honours it too. */
export const SECRET_FILE_ENV = 'TORUS_CLUSTER_SECRET_FILE'

/**
 * Where `init` keeps an etcd cluster's secret unless told otherwise:
 * `~/.torus/<prefix with each "/" as "_">cluster-secret`, e.g. `~/.torus/torus_cluster-secret`
 * for the default prefix `torus/`, so two clusters on one machine (different prefixes) get two
 * files. `--secret-file`, then `$TORUS_CLUSTER_SECRET_FILE`, win over it.
 */
export function resolveSecretFile(flag: string | undefined, etcdPrefix: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined) {
    if (flag.trim() === '') throw new UsageError('--secret-file: empty path')
    return path.resolve(flag)
  }
  const fromEnv = env[SECRET_FILE_ENV]
  if (fromEnv !== undefined && fromEnv.trim() !== '') return path.resolve(fromEnv)
  return path.join(env.HOME ?? os.homedir(), '.torus', `${etcdPrefix.replaceAll('/', '_')}cluster-secret`)
}

/**
 * A cluster secret read from its file or freshly generated, not yet installed. A new secret is
 * first written to a temporary file beside its final path (so a full disk or an unwritable
 * directory fails before the cluster exists); `install()` links it into place only after
 * `initCluster` succeeded, and `discard()` removes it when init failed. A second `init` therefore
 * never creates or changes the secret file.
 */
export interface PreparedSecret {
  /** Absolute path of the secret file. */
  readonly path: string
  /** The secret as torusd uses it: the file's text without surrounding whitespace. */
  readonly secret: string
  /** Where a new secret waits for `install()`; `undefined` when the file already existed. */
  readonly tempPath: string | undefined
  /** Puts a new secret at `path` (never overwriting a file); a no-op for an existing one. */
  install(): void
  /** Removes the temporary file of a new secret; safe twice. */
  discard(): void
}

/** Reads the secret at `file`, or generates 32 random bytes (64 hex characters) into a 0600 temp file beside it. */
export function prepareSecret(file: string): PreparedSecret {
  const existing = readSecretFile(file)
  if (existing !== undefined) return { path: file, secret: existing, tempPath: undefined, install() {}, discard() {} }

  const secret = randomBytes(32).toString('hex')
  const dir = path.dirname(file)
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    // `wx`: never write through a file someone else put there; 0600 from the first byte.
    fs.writeFileSync(tmp, `${secret}\n`, { flag: 'wx', mode: 0o600 })
  } catch (err) {
    throw new UsageError(`--secret-file: cannot write a new secret beside ${file}: ${(err as Error).message}`)
  }
  let pending = true
  const discard = (): void => {
    if (!pending) return
    pending = false
    fs.rmSync(tmp, { force: true })
  }
  const install = (): void => {
    if (!pending) return
    try {
      // link() fails with EEXIST instead of replacing a file that appeared meanwhile.
      fs.linkSync(tmp, file)
    } catch (err) {
      // The temp file now holds the only copy of the secret of an initialised cluster: keep it.
      pending = false
      throw new TorusError(
        'TORUS_INTERNAL',
        `the cluster is initialised, but its secret could not be saved as ${file} (${(err as Error).message}); ` +
          `it is in ${tmp}: move it there (mv ${tmp} ${file}) and keep it 0600 — no torusd can join the cluster without it`,
        { cause: err },
      )
    }
    discard()
  }
  return { path: file, secret, tempPath: tmp, install, discard }
}

/** The trimmed secret in `file`, or `undefined` when there is no such file. */
function readSecretFile(file: string): string | undefined {
  let text: string
  try {
    text = readSmallFileSync(file, MAX_SECRET_FILE_BYTES)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UsageError(`--secret-file: cannot read ${file}: ${(err as Error).message}`)
  }
  // trim() as torusd does, so both sides mean the same bytes.
  const secret = text.trim()
  if (secret.length < MIN_SECRET_CHARS) {
    throw new UsageError(
      `--secret-file: ${file} holds ${secret.length} characters; a cluster secret needs at least ${MIN_SECRET_CHARS} (remove the file to have init generate one)`,
    )
  }
  return secret
}
