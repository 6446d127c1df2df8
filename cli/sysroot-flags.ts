// Flags every deployment command shares, and turning them into paths and configuration.
import {Flags} from '@oclif/core'

import {Config, loadConfig} from '../src/deploy/config.js'
import {DEFAULT_CONFIG, DEFAULT_SYSROOT, Paths, sysrootPaths} from '../src/deploy/paths.js'

export const sysrootFlags = {
  sysroot: Flags.string({description: 'physical root of the cfsboot system', default: DEFAULT_SYSROOT}),
  'boot-dir': Flags.string({description: 'directory holding loader/entries (default: SYSROOT/boot)'}),
  config: Flags.string({description: 'cfsboot.conf to read', default: DEFAULT_CONFIG}),
}

export const lockFlags = {
  'lock-timeout': Flags.integer({
    description: 'seconds to wait for another cfsboot command to finish',
    default: 300,
    min: 0,
  }),
}

export async function resolveSysroot(flags: {
  sysroot: string
  'boot-dir'?: string | undefined
  config: string
}): Promise<{
  paths: Paths
  config: Config
}> {
  return {paths: sysrootPaths(flags.sysroot, flags['boot-dir']), config: await loadConfig(flags.config)}
}
