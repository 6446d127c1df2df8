// Flags every deployment command shares, and turning them into paths and configuration.
import {Flags} from '@oclif/core'

import {Access, Target, withTarget} from '../src/deploy/device.js'
import {DEFAULT_CONFIG} from '../src/deploy/paths.js'

export const sysrootFlags = {
  sysroot: Flags.string({
    description: 'physical root of the cfsboot system (default: /sysroot of the booted device; host use)',
  }),
  'boot-dir': Flags.string({
    description:
      'directory holding loader/entries (default: the ESP on a booted device, found and mounted as needed; SYSROOT/boot with --sysroot)',
  }),
  config: Flags.string({description: 'cfsboot.conf to read', default: DEFAULT_CONFIG}),
}

export const lockFlags = {
  'lock-timeout': Flags.integer({
    description: 'seconds to wait for another cfsboot command to finish',
    default: 300,
    min: 0,
  }),
}

/**
 * Runs a verb on the physical root and boot directory the flags name, or on a booted device
 * the ones it finds (src/deploy/device.ts); a privately mounted ESP is unmounted afterwards.
 */
export async function withSysroot<T>(
  flags: {sysroot?: string | undefined; 'boot-dir'?: string | undefined; config: string},
  access: Access,
  fn: (t: Target) => Promise<T>,
): Promise<T> {
  return withTarget({sysroot: flags.sysroot, bootDir: flags['boot-dir'], config: flags.config, access}, fn)
}
