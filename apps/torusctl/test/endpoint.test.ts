// Endpoint resolution decides where every torusctl command goes: flag, then env, then the
// config file's profile, then the local daemon; malformed input is a usage error, never a guess.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_ENDPOINT, parseEndpoint, resolveEndpoint, UsageError } from '../src/endpoint.js'
import { renderTable } from '../src/output.js'

const dirs: string[] = []
function home(config?: unknown): NodeJS.ProcessEnv {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torusctl-home-'))
  dirs.push(dir)
  if (config !== undefined) {
    fs.mkdirSync(path.join(dir, '.torus'))
    fs.writeFileSync(path.join(dir, '.torus', 'config.json'), typeof config === 'string' ? config : JSON.stringify(config))
  }
  return { HOME: dir }
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

describe('parseEndpoint', () => {
  it('maps torus://HOST:PORT to the control API URL', () => {
    expect(parseEndpoint('torus://10.0.0.5:40000')).toMatchObject({ kind: 'torus', baseUrl: 'http://10.0.0.5:40000' })
    expect(parseEndpoint('torus://[::1]:4000/')).toMatchObject({ baseUrl: 'http://[::1]:4000' })
  })
  it('rejects malformed endpoints and explains etcd ones', () => {
    for (const bad of ['torus://', 'torus://host', 'torus://:99', 'torus://h:99999', 'http://h:1', 'nonsense']) {
      expect(() => parseEndpoint(bad), bad).toThrow(UsageError)
    }
    expect(() => parseEndpoint('127.0.0.1:2379,127.0.0.2:2379')).toThrow(/etcd/)
    expect(() => parseEndpoint('etcd://127.0.0.1:2379')).toThrow(/etcd/)
  })
})

describe('resolveEndpoint', () => {
  it('prefers the flag, then TORUS_ENDPOINT, then the config file, then the default', () => {
    const env: NodeJS.ProcessEnv = { ...home({ endpoint: 'torus://file:1' }), TORUS_ENDPOINT: 'torus://env:2' }
    expect(resolveEndpoint('torus://flag:3', env).baseUrl).toBe('http://flag:3')
    expect(resolveEndpoint(undefined, env).baseUrl).toBe('http://env:2')
    expect(resolveEndpoint(undefined, { HOME: env.HOME }).baseUrl).toBe('http://file:1')
    expect(resolveEndpoint(undefined, home()).raw).toBe(DEFAULT_ENDPOINT)
  })
  it('reads the current profile', () => {
    const env = home({ currentProfile: 'lab', profiles: { lab: { endpoint: 'torus://lab:9' } } })
    expect(resolveEndpoint(undefined, env).baseUrl).toBe('http://lab:9')
  })
  it('reports a broken config file instead of ignoring it', () => {
    expect(() => resolveEndpoint(undefined, home('{nope'))).toThrow(/not valid JSON/)
    expect(() => resolveEndpoint(undefined, home({ currentProfile: 'x', profiles: {} }))).toThrow(/profile "x" not found/)
    expect(() => resolveEndpoint(undefined, home({ endpoint: 42 }))).toThrow(/endpoint must be a string/)
    expect(() => resolveEndpoint(undefined, home([]))).toThrow(/must hold a JSON object/)
    expect(() => resolveEndpoint(undefined, home({ currentProfile: 'toString', profiles: {} }))).toThrow(/profile "toString" not found/)
    const dirConfig = home()
    fs.mkdirSync(path.join(dirConfig.HOME!, '.torus', 'config.json'), { recursive: true })
    expect(() => resolveEndpoint(undefined, dirConfig)).toThrow(/cannot read/)
  })
})

describe('renderTable', () => {
  it('aligns columns like the original torusctl', () => {
    expect(renderTable(['VOLUME NAME', 'SIZE', 'TYPE'], [['pad', '1.0 GiB', 'block']])).toBe('VOLUME NAME  SIZE     TYPE\npad          1.0 GiB  block\n')
  })
})
