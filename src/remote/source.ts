// Where a device reads a release from: a static repository over HTTP(S) or an OCI registry.
// Both give the signed index's bytes and, for an entry of that index, its bytes from an offset.

import {readFile} from 'node:fs/promises'

import {InvalidInputError} from '../errors.js'
import {RemoteConfig} from '../deploy/config.js'
import {HttpClient} from './http.js'
import {OciSource} from './oci.js'
import {isRegistryReference} from './reference.js'
import {StaticSource} from './static.js'
import {httpOptions, ReleaseSource, TransportOptions} from './source-types.js'

/** Transport options from [remote], with a password read from its file. */
export async function transportFromConfig(r: RemoteConfig): Promise<TransportOptions> {
  let auth: TransportOptions['auth'] = null
  if (r.username) {
    let password = ''
    if (r.passwordFile) {
      try {
        password = (await readFile(r.passwordFile, 'utf8')).replace(/\r?\n$/, '')
      } catch {
        throw new InvalidInputError(`remote.password-file ${r.passwordFile} cannot be read`)
      }
    }
    auth = {username: r.username, password}
  }
  return {
    caFile: r.caFile,
    insecure: r.insecure,
    timeoutMs: r.timeout * 1000,
    connections: r.connections,
    auth,
  }
}

export function openSource(url: string, channel: string, t: TransportOptions): ReleaseSource {
  if (isRegistryReference(url)) return new OciSource(url, channel, t)
  if (!/^https?:\/\//.test(url))
    throw new InvalidInputError(`${url}: not an http(s):// URL or oci:// reference`)
  return new StaticSource(url, channel, new HttpClient(httpOptions(t)))
}
