// Where a device reads a release from: a static repository over HTTP(S) or an OCI registry.
// Both give the signed index's bytes and, for an entry of that index, its bytes from an offset.

import {readFile} from 'node:fs/promises'

import {InvalidInputError} from '../errors.js'
import {RemoteConfig} from '../deploy/config.js'
import {HttpClient, HttpOptions, Response} from './http.js'
import {ReleaseObject} from './index.js'
import {OciSource} from './oci.js'
import {isRegistryReference} from './reference.js'
import {StaticSource} from './static.js'

export interface ReleaseSource {
  readonly http: HttpClient
  /** What to name in messages: the index URL or the registry reference. */
  readonly name: string
  fetchEnvelope(): Promise<Buffer>
  open(o: ReleaseObject, kind: 'image' | 'object', offset: number): Promise<Response>
  close(): Promise<void>
}

export interface TransportOptions {
  caFile?: string | null
  insecure?: boolean
  timeoutMs?: number
  connections?: number
  auth?: {username: string; password: string} | null
}

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

export function httpOptions(t: TransportOptions): HttpOptions {
  return {
    ...(t.caFile && {caFile: t.caFile}),
    ...(t.timeoutMs !== undefined && {timeoutMs: t.timeoutMs}),
    ...(t.connections !== undefined && {connections: t.connections}),
  }
}

export function openSource(url: string, channel: string, t: TransportOptions): ReleaseSource {
  if (isRegistryReference(url)) return new OciSource(url, channel, t)
  if (!/^https?:\/\//.test(url))
    throw new InvalidInputError(`${url}: not an http(s):// URL or oci:// reference`)
  return new StaticSource(url, channel, new HttpClient(httpOptions(t)))
}
