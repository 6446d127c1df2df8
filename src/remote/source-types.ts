// What every release source offers (static repository or OCI registry) and the transport
// options both take. Apart from source.ts, which picks one, so the sources need not import it.

import {HttpClient, HttpOptions, Response} from './http.js'
import {ReleaseObject} from './index.js'
import type {RegistryOptions} from './registry.js'

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

export function httpOptions(t: TransportOptions): HttpOptions {
  return {
    ...(t.caFile && {caFile: t.caFile}),
    ...(t.timeoutMs !== undefined && {timeoutMs: t.timeoutMs}),
    ...(t.connections !== undefined && {connections: t.connections}),
  }
}

/** The registry client's options: the HTTP ones, plus plain http and credentials. */
export function registryOptions(t: TransportOptions): RegistryOptions {
  return {
    ...httpOptions(t),
    ...(t.insecure && {insecure: true}),
    ...(t.auth && {auth: t.auth}),
  }
}

export interface UploadCounts {
  uploaded: number
  present: number
  bytesUploaded: number
}
