// cfsboot.conf (ini). Every key is optional; a missing file means all defaults.
//
//   [gc]
//   keep-rollback = 1        deployments kept besides the booted, the default and the pinned ones
//   [boot]
//   kernel-args = quiet      extra kernel arguments for every entry
//   verity = require         cfsboot.verity= for the initramfs: require | maybe | off
//   tries = 3                boot counting tries for a new deployment (0: no counting)
//   [uki]
//   key = /path/db.key       with cert: deploy writes signed unified kernel images (docs/trust.md)
//   cert = /path/db.crt
//   [health]                 read by the on-device marking program (templates/health/cfsboot-health)
//   timeout = 90             seconds each health check may run
//   on-failure = reboot      reboot | none: what a failed check does (reboot lets the tries run out)
//   [remote]                 where `cfsboot upgrade` looks (docs/commands/upgrade.md)
//   url = https://…/fleet    a static repository, or oci://HOST/REPO
//   channel = stable         release channel (the OCI tag)
//   trusted-keys = /etc/cfsboot/keys/release.pub …   ed25519 public keys (PEM) an index must be signed by
//   ca-file, insecure, timeout, connections, username, password-file
//   [publish]
//   key = /path/release.key  ed25519 private key (PEM) that `cfsboot publish` signs with

import {readFile} from 'node:fs/promises'
import ini from 'ini'

import {InvalidInputError} from '../errors.js'

export type VerityPolicy = 'require' | 'maybe' | 'off'

export interface Config {
  keepRollback: number
  kernelArgs: string[]
  verity: VerityPolicy
  tries: number
  /** Secure Boot signing key and certificate for UKIs; null: plain BLS entries. */
  uki: {key: string; cert: string} | null
  health: {timeout: number; onFailure: 'reboot' | 'none'}
  remote: RemoteConfig
  /** Key `cfsboot publish` signs with. */
  publishKey: string | null
}

export interface RemoteConfig {
  url: string | null
  channel: string
  trustedKeys: string[]
  caFile: string | null
  /** Plain http for oci:// (https:// and http:// URLs say it themselves). */
  insecure: boolean
  /** Seconds a server may stay silent. */
  timeout: number
  connections: number
  username: string | null
  passwordFile: string | null
}

/** Boot counting tries of a new deployment unless cfsboot.conf says otherwise. */
export const DEFAULT_TRIES = 3

export const DEFAULT_CONFIG_VALUES: Config = {
  keepRollback: 1,
  kernelArgs: [],
  verity: 'maybe',
  tries: DEFAULT_TRIES,
  uki: null,
  health: {timeout: 90, onFailure: 'reboot'},
  remote: {
    url: null,
    channel: 'stable',
    trustedKeys: [],
    caFile: null,
    insecure: false,
    timeout: 30,
    connections: 16,
    username: null,
    passwordFile: null,
  },
  publishKey: null,
}

function absolute(v: unknown, key: string): string {
  const s = String(v).trim()
  if (!s.startsWith('/')) throw new InvalidInputError(`cfsboot.conf: ${key} must be an absolute path`)
  return s
}

function parseRemote(r: Record<string, unknown>): RemoteConfig {
  const c: RemoteConfig = {...DEFAULT_CONFIG_VALUES.remote}
  const str = (k: string): string | null => (typeof r[k] === 'string' && r[k].trim() ? r[k].trim() : null)
  c.url = str('url')
  if (str('channel')) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(str('channel')!))
      throw new InvalidInputError('cfsboot.conf: remote.channel must be a tag-like name')
    c.channel = str('channel')!
  }
  if (str('trusted-keys'))
    c.trustedKeys = str('trusted-keys')!
      .split(/\s+/)
      .map((k) => absolute(k, 'remote.trusted-keys'))
  if (str('ca-file')) c.caFile = absolute(str('ca-file'), 'remote.ca-file')
  if (r['insecure'] !== undefined) c.insecure = r['insecure'] === true || r['insecure'] === 'true'
  if (r['timeout'] !== undefined) c.timeout = int(r['timeout'], 'remote.timeout', 1, 3600)
  if (r['connections'] !== undefined) c.connections = int(r['connections'], 'remote.connections', 1, 256)
  c.username = str('username')
  if (str('password-file')) c.passwordFile = absolute(str('password-file'), 'remote.password-file')
  return c
}

function int(v: unknown, key: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidInputError(
      `cfsboot.conf: ${key} must be a whole number from ${min} to ${max}, not ${JSON.stringify(v)}`,
    )
  }
  return n
}

export function parseConfig(text: string): Config {
  const raw = ini.parse(text) as Record<string, Record<string, unknown>>
  const c: Config = {...DEFAULT_CONFIG_VALUES}
  const gc = raw['gc'] ?? {}
  const boot = raw['boot'] ?? {}
  const uki = raw['uki'] ?? {}
  const health = raw['health'] ?? {}
  if (gc['keep-rollback'] !== undefined) c.keepRollback = int(gc['keep-rollback'], 'gc.keep-rollback', 0, 100)
  if (boot['kernel-args'] !== undefined)
    c.kernelArgs = String(boot['kernel-args']).split(/\s+/).filter(Boolean)
  if (boot['tries'] !== undefined) c.tries = int(boot['tries'], 'boot.tries', 0, 99)
  if (boot['verity'] !== undefined) {
    const v = String(boot['verity'])
    if (v !== 'require' && v !== 'maybe' && v !== 'off') {
      throw new InvalidInputError(
        `cfsboot.conf: boot.verity must be require, maybe or off, not ${JSON.stringify(v)}`,
      )
    }
    c.verity = v
  }
  const key = typeof uki['key'] === 'string' ? uki['key'].trim() : ''
  const cert = typeof uki['cert'] === 'string' ? uki['cert'].trim() : ''
  if (!!key !== !!cert)
    throw new InvalidInputError('cfsboot.conf: [uki] needs both key and cert (or neither)')
  if (key) {
    if (!key.startsWith('/') || !cert.startsWith('/'))
      throw new InvalidInputError('cfsboot.conf: [uki] key and cert must be absolute paths')
    c.uki = {key, cert}
  }
  c.health = {...c.health}
  if (health['timeout'] !== undefined) c.health.timeout = int(health['timeout'], 'health.timeout', 1, 3600)
  if (health['on-failure'] !== undefined) {
    const v = String(health['on-failure'])
    if (v !== 'reboot' && v !== 'none')
      throw new InvalidInputError(
        `cfsboot.conf: health.on-failure must be reboot or none, not ${JSON.stringify(v)}`,
      )
    c.health.onFailure = v
  }
  c.remote = parseRemote(raw['remote'] ?? {})
  const pub = raw['publish'] ?? {}
  if (pub['key'] !== undefined && String(pub['key']).trim())
    c.publishKey = absolute(pub['key'], 'publish.key')
  return c
}

export async function loadConfig(path: string): Promise<Config> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {...DEFAULT_CONFIG_VALUES}
    throw err
  }
  return parseConfig(text)
}
