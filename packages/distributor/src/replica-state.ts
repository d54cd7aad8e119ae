import fs from 'node:fs'
import { join } from 'node:path'
import { TorusError, type VolumeId } from '@torus/core'
import { fsError } from './checksum-file.js'

/**
 * `<stateDir>/state.json`, a replica's small durable state: the geometry its checksum files were
 * written with, and the highest lock generation seen per volume.
 *
 * ```json
 * { "format": 1, "blockSizeBytes": 524288, "sectorBytes": 4096, "generations": { "7": 12 } }
 * ```
 *
 * It is replaced atomically (write `state.json.tmp`, fsync, rename, fsync the directory), so a
 * crash leaves the old or the new file, never a mix. The writes are synchronous on purpose:
 * `Replica.announce()` returns its answer synchronously (the gateway calls it without awaiting),
 * and a raised generation must be on disk before that answer, or before a write carrying it is
 * applied. Raises happen once per lock takeover, so blocking the event loop for two fsyncs then
 * costs nothing on the data path.
 */
export const STATE_FILE = 'state.json'
const STATE_FORMAT = 1

export interface ReplicaGeometry {
  blockSizeBytes: number
  sectorBytes: number
}

interface StateJson extends ReplicaGeometry {
  format: number
  generations: Record<string, number>
}

export class ReplicaState {
  readonly dir: string
  readonly #geometry: ReplicaGeometry
  readonly #generations = new Map<VolumeId, number>()

  private constructor(dir: string, geometry: ReplicaGeometry) {
    this.dir = dir
    this.#geometry = geometry
  }

  /**
   * Loads `dir/state.json`, creating it (and `dir`) when the directory holds no replica state
   * yet. Refuses (TORUS_CORRUPT) a directory with checksum files but no state file: starting
   * from generation 0 there would let a fenced-off gateway write again. Refuses
   * (TORUS_INVALID_ARGUMENT) state written with another block or sector size.
   */
  static load(dir: string, geometry: ReplicaGeometry): ReplicaState {
    const state = new ReplicaState(dir, geometry)
    const path = join(dir, STATE_FILE)
    fs.mkdirSync(dir, { recursive: true })
    fs.rmSync(`${path}.tmp`, { force: true })
    let text: string
    try {
      text = fs.readFileSync(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      const leftovers = fs.readdirSync(dir).filter((name) => name.endsWith('.crc'))
      if (leftovers.length > 0) {
        throw new TorusError('TORUS_CORRUPT', `${path} is missing but ${dir} holds checksum files (${leftovers.join(', ')})`, { details: { path } })
      }
      state.#save()
      return state
    }
    const json = parse(text, path)
    if (json.blockSizeBytes !== geometry.blockSizeBytes || json.sectorBytes !== geometry.sectorBytes) {
      throw new TorusError(
        'TORUS_INVALID_ARGUMENT',
        `${path} was written for ${json.blockSizeBytes}-byte blocks and ${json.sectorBytes}-byte sectors, but the replica has ${geometry.blockSizeBytes} and ${geometry.sectorBytes}`,
        { details: { path } },
      )
    }
    for (const [volumeId, generation] of Object.entries(json.generations)) state.#generations.set(Number(volumeId) as VolumeId, generation)
    return state
  }

  generation(volumeId: VolumeId): number {
    return this.#generations.get(volumeId) ?? 0
  }

  /**
   * Records `generation` as the highest seen for `volumeId` and makes it durable before
   * returning. The raise stays in memory even when saving fails (refusing more is safe); the
   * error still reaches the caller, who must not act on the new generation.
   */
  raise(volumeId: VolumeId, generation: number): void {
    if (generation <= this.generation(volumeId)) return
    this.#generations.set(volumeId, generation)
    this.#save()
  }

  #save(): void {
    const generations: Record<string, number> = {}
    for (const [volumeId, generation] of [...this.#generations].sort((a, b) => a[0] - b[0])) generations[String(volumeId)] = generation
    const json: StateJson = { format: STATE_FORMAT, ...this.#geometry, generations }
    const path = join(this.dir, STATE_FILE)
    const tmp = `${path}.tmp`
    try {
      const fd = fs.openSync(tmp, 'w', 0o644)
      try {
        fs.writeFileSync(fd, `${JSON.stringify(json)}\n`)
        fs.fsyncSync(fd)
      } finally {
        fs.closeSync(fd)
      }
      fs.renameSync(tmp, path)
      fsyncDirSync(this.dir)
    } catch (err) {
      throw fsError(err as NodeJS.ErrnoException)
    }
  }
}

function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function parse(text: string, path: string): StateJson {
  const corrupt = (why: string): TorusError => new TorusError('TORUS_CORRUPT', `${path} is not a replica state file: ${why}`, { details: { path } })
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw corrupt((err as Error).message)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw corrupt('not an object')
  const j = json as Record<string, unknown>
  if (j.format !== STATE_FORMAT) throw corrupt(`unknown format ${String(j.format)}`)
  if (!isCount(j.blockSizeBytes) || !isCount(j.sectorBytes)) throw corrupt('bad geometry')
  const g = j.generations
  if (typeof g !== 'object' || g === null || Array.isArray(g)) throw corrupt('generations must be an object')
  for (const [volumeId, generation] of Object.entries(g)) {
    if (!/^[1-9][0-9]*$/.test(volumeId) || !isCount(generation)) throw corrupt(`bad generation entry ${volumeId}`)
  }
  return json as StateJson
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}
