// One HTTP layer for every remote (static repositories and OCI registries).
//
// Built on undici rather than node:http/https: undici (maintained by Node's own team, the engine
// behind Node's fetch) gives per-origin keep-alive connection pools with pipelining-free
// concurrency limits, header and body timeouts that catch stalled servers, and
// EnvHttpProxyAgent, which honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY (node:http ignores them on
// Node 20). A custom CA goes to both the direct connector and the proxied TLS connection.
// undici 7 is the newest major that runs on Node 20.19 (8 needs 22).

import {readFileSync} from 'node:fs'
import {Readable} from 'node:stream'
import {rootCertificates} from 'node:tls'
import {Dispatcher, EnvHttpProxyAgent, errors as undiciErrors} from 'undici'

import {CfsError, InvalidInputError} from '../errors.js'

/** Seconds a server may be silent (headers or between body chunks) before the request fails. */
export const DEFAULT_TIMEOUT_MS = 30_000
/** Connections per origin: enough to hide loopback/LAN latency, few enough to be polite. */
export const DEFAULT_CONNECTIONS = 16
/** Redirects followed for one request (registries redirect blobs to storage). */
export const MAX_REDIRECTS = 5
/** Bytes read from a body we buffer (errors, tokens, small JSON) unless the caller says more. */
export const MAX_SMALL_BODY = 1 << 20

/** A remote failed: unreachable, an HTTP error status, a stall, a cut connection. */
export class RemoteError extends CfsError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('EREMOTE', message, data)
    this.name = 'RemoteError'
  }
}

/**
 * The certificates NODE_EXTRA_CA_CERTS named when bin/cfsboot started us (it moves the variable
 * to CFSBOOT_EXTRA_CA_CERTS so that commands which never connect do not pay for Node building its
 * trust store at start-up), added to Node's own roots as Node itself would have added them.
 * Undefined when there are none, or when Node read them itself. An unreadable file is ignored
 * with a warning, as Node does.
 */
function defaultTrustWithExtraCerts(): string[] | undefined {
  const file = process.env.CFSBOOT_EXTRA_CA_CERTS
  if (!file || process.env.NODE_EXTRA_CA_CERTS) return undefined
  try {
    return [...rootCertificates, readFileSync(file, 'latin1')]
  } catch (err) {
    process.emitWarning(`Ignoring extra certs from ${file}: ${(err as Error).message}`)
    return undefined
  }
}

export interface HttpOptions {
  /** PEM file with the CA certificate(s) to trust for HTTPS (in addition to none: replaces the defaults). */
  caFile?: string
  timeoutMs?: number
  connections?: number
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH'
  headers?: Record<string, string>
  /** A Buffer, or a factory for a fresh stream (so a request can be sent again after a 401). */
  body?: Buffer | (() => Readable)
  /** Ask for the bytes from this offset on (HTTP Range). */
  offset?: number
  /** Do not follow redirects (upload locations are read by the caller). */
  noRedirect?: boolean
}

export interface Response {
  status: number
  headers: Record<string, string>
  body: Readable
  url: string
}

/** Drops a body we do not read, so its connection goes back to the pool. */
export async function discard(res: Response): Promise<void> {
  const b = res.body as Readable & {dump?: (o?: {limit: number}) => Promise<void>}
  if (b.dump) await b.dump({limit: MAX_SMALL_BODY}).catch(() => undefined)
  else b.destroy()
}

export interface HttpStats {
  requests: number
  /** Body bytes received, counted by the readers (readBody, downloads). */
  bytes: number
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(h))
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  return out
}

/** Turns undici's and the system's failures into one line naming the URL. */
export function describeFailure(url: string, err: unknown): RemoteError {
  if (err instanceof CfsError) return err as RemoteError
  const e = err as Error & {code?: string}
  if (e instanceof undiciErrors.HeadersTimeoutError || e instanceof undiciErrors.BodyTimeoutError)
    return new RemoteError(`${url}: the server stopped answering (timeout)`)
  if (e instanceof undiciErrors.ConnectTimeoutError) return new RemoteError(`${url}: connect timeout`)
  const cause = (e as {cause?: Error & {code?: string}}).cause
  const msg = cause?.code ?? e.code ?? ''
  return new RemoteError(`${url}: ${msg ? `${msg}: ` : ''}${(cause ?? e).message.split('\n')[0]}`)
}

export class HttpClient {
  readonly stats: HttpStats = {requests: 0, bytes: 0}
  readonly timeoutMs: number
  private readonly dispatcher: Dispatcher

  constructor(opts: HttpOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    let ca: Buffer | string[] | undefined
    if (opts.caFile) {
      try {
        ca = readFileSync(opts.caFile)
      } catch {
        throw new InvalidInputError(`CA file ${opts.caFile} cannot be read`)
      }
    } else {
      ca = defaultTrustWithExtraCerts()
    }
    const tls = ca ? {ca} : {}
    this.dispatcher = new EnvHttpProxyAgent({
      connections: opts.connections ?? DEFAULT_CONNECTIONS,
      keepAliveTimeout: 30_000,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
      connect: tls,
      requestTls: tls,
      proxyTls: tls,
    })
  }

  /** One request; follows redirects for GET/HEAD. The caller must consume or destroy the body. */
  async request(url: string, opts: RequestOptions = {}): Promise<Response> {
    let current = url
    let headers = {...opts.headers}
    if (opts.offset) headers['range'] = `bytes=${opts.offset}-`
    for (let hop = 0; ; hop++) {
      this.stats.requests++
      let res: Dispatcher.ResponseData
      try {
        const body = opts.body === undefined ? null : Buffer.isBuffer(opts.body) ? opts.body : opts.body()
        res = await this.dispatcher.request({
          origin: new URL(current).origin,
          path: new URL(current).pathname + new URL(current).search,
          method: opts.method ?? 'GET',
          headers,
          body,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        })
      } catch (err) {
        throw describeFailure(current, err)
      }
      const status = res.statusCode
      const location = res.headers['location']
      const isGet = (opts.method ?? 'GET') === 'GET' || opts.method === 'HEAD'
      if (
        !opts.noRedirect &&
        isGet &&
        [301, 302, 303, 307, 308].includes(status) &&
        typeof location === 'string'
      ) {
        await discard({status, headers: {}, body: res.body, url: current})
        if (hop >= MAX_REDIRECTS) throw new RemoteError(`${url}: too many redirects`)
        const next = new URL(location, current)
        // Credentials stay with the origin that asked for them.
        if (next.origin !== new URL(current).origin) {
          headers = Object.fromEntries(
            Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'),
          )
        }
        current = next.toString()
        continue
      }
      return {status, headers: flatHeaders(res.headers), body: res.body, url: current}
    }
  }

  /** Reads a whole body, refusing more than `max` bytes (a hostile server cannot fill memory). */
  async readBody(res: Response, max = MAX_SMALL_BODY): Promise<Buffer> {
    const declared = Number(res.headers['content-length'] ?? NaN)
    if (declared > max) {
      res.body.destroy()
      throw new RemoteError(`${res.url}: response of ${declared} bytes is over the limit of ${max}`)
    }
    const chunks: Buffer[] = []
    let n = 0
    try {
      for await (const c of res.body) {
        n += (c as Buffer).length
        this.stats.bytes += (c as Buffer).length
        if (n > max) {
          res.body.destroy()
          throw new RemoteError(`${res.url}: response is over the limit of ${max} bytes`)
        }
        chunks.push(c as Buffer)
      }
    } catch (err) {
      throw describeFailure(res.url, err)
    }
    return Buffer.concat(chunks)
  }

  /** A failed status as one line (the body's first line, if short, says why). */
  async statusError(res: Response, what: string): Promise<RemoteError> {
    const text = await this.readBody(res, 4096).then(
      (b) => b.toString('utf8').split('\n')[0]!.trim().slice(0, 200),
      () => '',
    )
    return new RemoteError(`${what}: HTTP ${res.status}${text ? ` (${text})` : ''}`, {status: res.status})
  }

  async close(): Promise<void> {
    await this.dispatcher.close()
  }
}
