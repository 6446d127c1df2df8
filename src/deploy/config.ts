// cfsboot.conf (ini). Every key is optional; a missing file means all defaults.
//
//   [gc]
//   keep-rollback = 1        deployments kept besides the booted, the default and the pinned ones
//   [boot]
//   kernel-args = quiet      extra kernel arguments for every entry
//   verity = require         cfsboot.verity= for the initramfs: require (default) | maybe | off
//   tries = 3                boot counting tries for a new deployment (0: no counting)
//   [uki]
//   key = /path/db.key       with cert: deploy writes signed unified kernel images (docs/trust.md)
//   cert = /path/db.crt
//   [health]                 read by the on-device marking program (templates/health/cfsboot-health)
//   timeout = 90             seconds each health check may run
//   on-failure = reboot      reboot | none: what a failed check does (reboot lets the tries run out)

import {readFile} from 'node:fs/promises'
import ini from 'ini'

import {DEFAULT_VERITY, VerityPolicy} from '../boot/contract.js'
import {InvalidInputError} from '../errors.js'

export interface Config {
  keepRollback: number
  kernelArgs: string[]
  verity: VerityPolicy
  tries: number
  /** Secure Boot signing key and certificate for UKIs; null: plain BLS entries. */
  uki: {key: string; cert: string} | null
  health: {timeout: number; onFailure: 'reboot' | 'none'}
}

/** Boot counting tries of a new deployment unless cfsboot.conf says otherwise. */
export const DEFAULT_TRIES = 3

export const DEFAULT_CONFIG_VALUES: Config = {
  keepRollback: 1,
  kernelArgs: [],
  // Verified by default (as composefs-rs and bootc): every file's content is checked on open.
  verity: DEFAULT_VERITY,
  tries: DEFAULT_TRIES,
  uki: null,
  health: {timeout: 90, onFailure: 'reboot'},
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
