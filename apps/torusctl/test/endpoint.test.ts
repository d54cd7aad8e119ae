// Endpoint resolution decides where every torusctl command goes: flag, then env, then the
// config file's profile, then the local daemon; torus:// is one torusd, HOST:PORT lists and
// etcd:// are etcd. Malformed input is a usage error naming the bad part, never a guess.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_ENDPOINT, DEFAULT_ETCD_PREFIX, parseEndpoint, resolveEndpoint, resolveEtcdPrefix, UsageError, type Endpoint } from '../src/endpoint.js'
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
function baseUrl(e: Endpoint): string | undefined {
  return e.kind === 'torus' ? e.baseUrl : undefined
}

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

describe('parseEndpoint', () => {
  it('maps torus://HOST:PORT to the control API URL', () => {
    expect(parseEndpoint('torus://10.0.0.5:40000')).toEqual({ kind: 'torus', raw: 'torus://10.0.0.5:40000', baseUrl: 'http://10.0.0.5:40000' })
    expect(parseEndpoint('torus://[::1]:4000/')).toMatchObject({ baseUrl: 'http://[::1]:4000' })
  })

  it('maps HOST:PORT lists and etcd:// to etcd hosts (the original convention)', () => {
    expect(parseEndpoint('127.0.0.1:2379')).toEqual({ kind: 'etcd', raw: '127.0.0.1:2379', hosts: ['127.0.0.1:2379'] })
    expect(parseEndpoint('etcd-0.etcd:2379, etcd-1.etcd:2379')).toMatchObject({ kind: 'etcd', hosts: ['etcd-0.etcd:2379', 'etcd-1.etcd:2379'] })
    expect(parseEndpoint('etcd://10.0.0.1:2379,10.0.0.2:2379/')).toMatchObject({ kind: 'etcd', hosts: ['10.0.0.1:2379', '10.0.0.2:2379'] })
    expect(parseEndpoint('ETCD://[::1]:2379')).toMatchObject({ kind: 'etcd', hosts: ['[::1]:2379'] })
  })

  it('rejects malformed endpoints with a message naming the bad part', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['torus://', /empty host entry/],
      ['torus://host', /"host" has no port/],
      ['torus://:99', /":99" has no host/],
      ['torus://h:99999', /port "99999" in "h:99999" is not a number from 1 to 65535/],
      ['torus://h:1,h:2', /names one torusd/],
      ['http://h:1', /unknown scheme http:\/\//],
      ['nonsense', /expected torus:\/\/HOST:PORT/],
      ['etcd://', /empty host entry/],
      ['etcd://h:2379,', /empty host entry/],
      ['h:2379,,h:2380', /empty host entry/],
      ['h:0', /port "0"/],
      ['h:abc', /port "abc"/],
      ['h:2379:1', /is not HOST:PORT/],
      ['::1:2379', /is not HOST:PORT \(write an IPv6 address in brackets/],
      ['bad_host!:2379', /"bad_host!" is not a valid host name/],
      ['[zz]:2379', /"\[zz\]" is not an IPv6 address/],
      ['etcd://h', /"h" has no port; expected etcd:\/\/HOST:PORT/],
    ]
    for (const [bad, message] of cases) {
      expect(() => parseEndpoint(bad), bad).toThrow(UsageError)
      expect(() => parseEndpoint(bad), bad).toThrow(message)
    }
  })
})

describe('resolveEtcdPrefix', () => {
  it('prefers the flag, then TORUS_ETCD_PREFIX, then torus/', () => {
    expect(resolveEtcdPrefix('lab/', { TORUS_ETCD_PREFIX: 'env/' })).toBe('lab/')
    expect(resolveEtcdPrefix(undefined, { TORUS_ETCD_PREFIX: 'env/' })).toBe('env/')
    expect(resolveEtcdPrefix(undefined, {})).toBe(DEFAULT_ETCD_PREFIX)
    expect(DEFAULT_ETCD_PREFIX).toBe('torus/')
  })
  it('rejects empty, oversized and odd prefixes as usage errors, with the rule torusd uses', () => {
    expect(() => resolveEtcdPrefix('', {})).toThrow(/--etcd-prefix: invalid etcd prefix ""/)
    for (const bad of ['a b/', '/abs/', 'a//b/', 'x'.repeat(129), 'caf\u00e9/']) expect(() => resolveEtcdPrefix(bad, {}), bad).toThrow(UsageError)
    expect(() => resolveEtcdPrefix(undefined, { TORUS_ETCD_PREFIX: 'x\ty' })).toThrow(/TORUS_ETCD_PREFIX/)
  })

  it('adds the trailing slash, so "prod" and "prod/" are one cluster', () => {
    expect(resolveEtcdPrefix('prod', {})).toBe('prod/')
    expect(resolveEtcdPrefix('prod/', {})).toBe('prod/')
  })
})

describe('resolveEndpoint', () => {
  it('prefers the flag, then TORUS_ENDPOINT, then the config file, then the default', () => {
    const env: NodeJS.ProcessEnv = { ...home({ endpoint: 'torus://file:1' }), TORUS_ENDPOINT: 'torus://env:2' }
    expect(baseUrl(resolveEndpoint('torus://flag:3', env))).toBe('http://flag:3')
    expect(baseUrl(resolveEndpoint(undefined, env))).toBe('http://env:2')
    expect(baseUrl(resolveEndpoint(undefined, { HOME: env.HOME }))).toBe('http://file:1')
    expect(resolveEndpoint(undefined, { ...env, TORUS_ENDPOINT: 'etcd://e:2379' })).toMatchObject({ kind: 'etcd', hosts: ['e:2379'] })
    expect(resolveEndpoint(undefined, home()).raw).toBe(DEFAULT_ENDPOINT)
  })
  it('reads the current profile', () => {
    const env = home({ currentProfile: 'lab', profiles: { lab: { endpoint: 'torus://lab:9' } } })
    expect(baseUrl(resolveEndpoint(undefined, env))).toBe('http://lab:9')
    const etcd = home({ currentProfile: 'prod', profiles: { prod: { endpoint: '10.0.0.1:2379,10.0.0.2:2379' } } })
    expect(resolveEndpoint(undefined, etcd)).toMatchObject({ kind: 'etcd', hosts: ['10.0.0.1:2379', '10.0.0.2:2379'] })
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
