// cfsboot.conf (ini). Every key is optional; a missing file means all defaults.
//
//   [gc]
//   keep-rollback = 1        deployments kept besides the booted, the default and the pinned ones
//   [boot]
//   kernel-args = quiet      extra kernel arguments for every entry
//   verity = require         cfsboot.verity= for the initramfs: require | maybe | off
//   tries = 3                boot counting tries for a new deployment (0: no counting)

import {readFile} from 'node:fs/promises'
import ini from 'ini'

import {InvalidInputError} from '../errors.js'

export type VerityPolicy = 'require' | 'maybe' | 'off'

export interface Config {
  keepRollback: number
  kernelArgs: string[]
  verity: VerityPolicy
  tries: number
}

export const DEFAULT_CONFIG_VALUES: Config = {keepRollback: 1, kernelArgs: [], verity: 'maybe', tries: 0}

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
