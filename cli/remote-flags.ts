// Flags of the commands that talk to a remote (publish, pull, upgrade, and build's docker://
// sources), merged over [remote].
import {Flags} from '@oclif/core'

import {RemoteConfig} from '../src/deploy/config.js'
import {transportFromConfig} from '../src/remote/source.js'
import {TransportOptions} from '../src/remote/source-types.js'

export const transportFlags = {
  'ca-file': Flags.string({description: 'PEM file of the CA that signed the server’s certificate'}),
  insecure: Flags.boolean({
    description: 'plain http for oci:// (a registry on loopback or a trusted network)',
  }),
  timeout: Flags.integer({description: 'seconds a server may stay silent before the request fails', min: 1}),
  connections: Flags.integer({description: 'connections (and downloads) at once', min: 1, max: 256}),
  username: Flags.string({description: 'registry user (basic auth, or for the bearer token)'}),
  'password-file': Flags.string({description: 'file holding the registry password or token'}),
}

export async function transportFrom(
  flags: {
    'ca-file'?: string | undefined
    insecure?: boolean | undefined
    timeout?: number | undefined
    connections?: number | undefined
    username?: string | undefined
    'password-file'?: string | undefined
  },
  remote: RemoteConfig,
): Promise<TransportOptions> {
  return transportFromConfig({
    ...remote,
    ...(flags['ca-file'] !== undefined && {caFile: flags['ca-file']}),
    ...(flags.insecure && {insecure: true}),
    ...(flags.timeout !== undefined && {timeout: flags.timeout}),
    ...(flags.connections !== undefined && {connections: flags.connections}),
    ...(flags.username !== undefined && {username: flags.username}),
    ...(flags['password-file'] !== undefined && {passwordFile: flags['password-file']}),
  })
}
