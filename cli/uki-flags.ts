// --uki-key / --uki-cert, shared by deploy and install: sign a unified kernel image per
// deployment (docs/trust.md). Given on the command line they override cfsboot.conf's [uki].
import {Flags} from '@oclif/core'

import {CfsError} from '../src/errors.js'

export const ukiFlags = {
  'uki-key': Flags.string({
    description: 'Secure Boot signing key (unencrypted PEM): write a signed UKI instead of a BLS entry',
    dependsOn: ['uki-cert'],
  }),
  'uki-cert': Flags.string({
    description: 'certificate (PEM) of --uki-key; the firmware must trust it (db)',
    dependsOn: ['uki-key'],
  }),
}

/** The key pair the flags name, or undefined (then cfsboot.conf decides). */
export function ukiFromFlags(flags: {
  'uki-key'?: string | undefined
  'uki-cert'?: string | undefined
}): {key: string; cert: string} | undefined {
  const key = flags['uki-key']
  const cert = flags['uki-cert']
  if (key === undefined && cert === undefined) return undefined
  if (!key || !cert) throw new CfsError('EUSAGE', '--uki-key and --uki-cert go together')
  return {key, cert}
}
