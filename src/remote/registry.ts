// An OCI distribution-spec client: manifests and blobs, read and pushed, with the spec's two
// authentication schemes. On a 401 the server's WWW-Authenticate challenge says which:
//   Basic  → the request is sent again with the username and password;
//   Bearer → a token is fetched from the challenge's realm (with service and scope, the
//            credentials as Basic auth if any, anonymous otherwise), cached per scope, and the
//            request sent again with it.
// Request bodies are Buffers or stream factories, so a request can be replayed after a challenge.

import {createHash} from 'node:crypto'
import {Readable} from 'node:stream'

import {InvalidInputError} from '../errors.js'
import {discard, HttpClient, HttpOptions, RemoteError, RequestOptions, Response} from './http.js'
import {parseReference, Reference} from './reference.js'

/** A manifest larger than this is refused (registries themselves stop at about 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 << 20
/** A token response larger than this is refused. */
const MAX_TOKEN_BYTES = 64 << 10

export interface RegistryOptions extends HttpOptions {
  /** Plain http (a registry on a trusted network or loopback). */
  insecure?: boolean
  auth?: {username: string; password: string}
  /** Share one HTTP layer (and its pools and counters) with other clients. */
  http?: HttpClient
}

export interface Manifest {
  mediaType: string
  /** sha256:<hex> of the bytes as received. */
  digest: string
  bytes: Buffer
}

interface Challenge {
  scheme: string
  params: Record<string, string>
}

const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/

/** Parses `Bearer realm="…",service="…",scope="…"` (quoted or token values). */
export function parseChallenge(header: string): Challenge | null {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header)
  if (!m) return null
  const params: Record<string, string> = {}
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g
  let p: RegExpExecArray | null
  while ((p = re.exec(m[2]!)))
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!
  return {scheme: m[1]!.toLowerCase(), params}
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

function checkDigest(digest: string): string {
  if (!SHA256_DIGEST.test(digest))
    throw new InvalidInputError(`${JSON.stringify(digest)} is not a sha256 digest`)
  return digest
}

export class RegistryClient {
  readonly registry: string
  readonly repository: string
  readonly http: HttpClient
  private readonly base: string
  private readonly auth: {username: string; password: string} | undefined
  private readonly ownsHttp: boolean
  /** Authorization header values by scope ("pull" or "pull,push"). */
  private readonly authorization = new Map<string, string>()

  constructor(ref: Reference | string, opts: RegistryOptions = {}) {
    const r = typeof ref === 'string' ? parseReference(ref) : ref
    this.registry = r.registry
    this.repository = r.repository
    this.base = `${opts.insecure ? 'http' : 'https'}://${r.registry}/v2/${r.repository}`
    this.auth = opts.auth
    this.ownsHttp = !opts.http
    this.http = opts.http ?? new HttpClient(opts)
  }

  /** GET a manifest by tag or digest; checks the digest when asked by digest. */
  async getManifest(reference: string, accept: string[]): Promise<Manifest> {
    const res = await this.send(`${this.base}/manifests/${reference}`, 'pull', {
      headers: {accept: accept.join(', ')},
    })
    if (res.status !== 200) throw await this.http.statusError(res, `manifest ${this.repository}:${reference}`)
    const bytes = await this.http.readBody(res, MAX_MANIFEST_BYTES)
    const digest = sha256Digest(bytes)
    if (reference.startsWith('sha256:') && digest !== reference)
      throw new RemoteError(`manifest ${reference}: the registry sent bytes with digest ${digest}`)
    const mediaType = (res.headers['content-type'] ?? '').split(';')[0]!.trim()
    let declared = ''
    try {
      declared = (JSON.parse(bytes.toString('utf8')) as {mediaType?: string}).mediaType ?? ''
    } catch {
      throw new RemoteError(`manifest ${this.repository}:${reference} is not JSON`)
    }
    return {mediaType: declared || mediaType, digest, bytes}
  }

  /** The blob's bytes from `offset` on (a 206 answer), or from 0 if the registry ignores Range. */
  async blobStream(digest: string, opts: {offset?: number} = {}): Promise<Readable> {
    return (await this.blobResponse(digest, opts)).body
  }

  /** Like blobStream, with the status (200 or 206) and headers, for resumable downloads. */
  async blobResponse(digest: string, opts: {offset?: number} = {}): Promise<Response> {
    checkDigest(digest)
    const res = await this.send(
      `${this.base}/blobs/${digest}`,
      'pull',
      opts.offset ? {offset: opts.offset} : {},
    )
    if (res.status !== 200 && res.status !== 206) throw await this.http.statusError(res, `blob ${digest}`)
    return res
  }

  /** The URL of a blob, for callers that want to count or log requests. */
  blobUrl(digest: string): string {
    return `${this.base}/blobs/${checkDigest(digest)}`
  }

  async hasBlob(digest: string): Promise<boolean> {
    const res = await this.send(`${this.base}/blobs/${checkDigest(digest)}`, 'pull', {method: 'HEAD'})
    await discard(res)
    if (res.status === 200) return true
    if (res.status === 404) return false
    throw new RemoteError(`HEAD blob ${digest}: HTTP ${res.status}`)
  }

  /**
   * Uploads a blob in one request (POST for an upload location, then PUT with the digest), unless
   * the registry has it. `body` is the bytes or a factory for a stream of `size` bytes.
   */
  async pushBlob(
    digest: string,
    body: Buffer | (() => Readable),
    size: number,
  ): Promise<'pushed' | 'present'> {
    if (await this.hasBlob(digest)) return 'present'
    const start = await this.send(`${this.base}/blobs/uploads/`, 'pull,push', {
      method: 'POST',
      headers: {'content-length': '0'},
      noRedirect: true,
    })
    await discard(start)
    const location = start.headers['location']
    if (start.status !== 202 || !location)
      throw new RemoteError(`blob upload for ${this.repository}: HTTP ${start.status}`)
    const put = new URL(location, this.base)
    put.searchParams.set('digest', digest)
    const res = await this.send(put.toString(), 'pull,push', {
      method: 'PUT',
      headers: {'content-type': 'application/octet-stream', 'content-length': String(size)},
      body,
      noRedirect: true,
    })
    if (res.status !== 201) throw await this.http.statusError(res, `blob upload ${digest}`)
    await discard(res)
    return 'pushed'
  }

  /** PUTs a manifest under a tag (or its digest); returns the digest. */
  async pushManifest(reference: string, mediaType: string, bytes: Buffer): Promise<string> {
    if (bytes.length > MAX_MANIFEST_BYTES)
      throw new InvalidInputError(
        `manifest of ${bytes.length} bytes is over the ${MAX_MANIFEST_BYTES}-byte limit`,
      )
    const res = await this.send(`${this.base}/manifests/${reference}`, 'pull,push', {
      method: 'PUT',
      headers: {'content-type': mediaType, 'content-length': String(bytes.length)},
      body: bytes,
      noRedirect: true,
    })
    if (res.status !== 201) throw await this.http.statusError(res, `manifest ${this.repository}:${reference}`)
    await discard(res)
    return sha256Digest(bytes)
  }

  async close(): Promise<void> {
    if (this.ownsHttp) await this.http.close()
  }

  /** Sends a request, answering one authentication challenge if the registry makes it. */
  private async send(url: string, scope: 'pull' | 'pull,push', opts: RequestOptions): Promise<Response> {
    const withAuth = (): RequestOptions => {
      const a =
        this.authorization.get(scope) ?? (scope === 'pull' ? this.authorization.get('pull,push') : undefined)
      return a ? {...opts, headers: {...opts.headers, authorization: a}} : opts
    }
    const res = await this.http.request(url, withAuth())
    if (res.status !== 401) return res
    const challenge = parseChallenge(res.headers['www-authenticate'] ?? '')
    await discard(res)
    if (!challenge) throw new RemoteError(`${url}: HTTP 401 without an authentication challenge`)
    if (challenge.scheme === 'basic') {
      if (!this.auth) throw new RemoteError(`${this.registry} asks for a username and password (HTTP 401)`)
      const b = Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64')
      this.authorization.set(scope, `Basic ${b}`)
    } else if (challenge.scheme === 'bearer') {
      this.authorization.set(scope, `Bearer ${await this.fetchToken(challenge, scope)}`)
    } else {
      throw new RemoteError(`${url}: unsupported authentication scheme ${challenge.scheme}`)
    }
    const again = await this.http.request(url, withAuth())
    if (again.status === 401 || again.status === 403) {
      await discard(again)
      throw new RemoteError(`${this.registry}: access to ${this.repository} denied (HTTP ${again.status})`, {
        status: again.status,
      })
    }
    return again
  }

  private async fetchToken(c: Challenge, scope: string): Promise<string> {
    const realm = c.params['realm']
    if (!realm) throw new RemoteError(`${this.registry}: bearer challenge without a realm`)
    const u = new URL(realm)
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new RemoteError(`token realm ${realm} is not http(s)`)
    if (c.params['service']) u.searchParams.set('service', c.params['service'])
    u.searchParams.set('scope', `repository:${this.repository}:${scope}`)
    const headers: Record<string, string> = {}
    if (this.auth)
      headers['authorization'] =
        `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64')}`
    const res = await this.http.request(u.toString(), {headers})
    if (res.status !== 200) throw await this.http.statusError(res, `token from ${u.origin}`)
    let parsed: {token?: unknown; access_token?: unknown}
    try {
      parsed = JSON.parse((await this.http.readBody(res, MAX_TOKEN_BYTES)).toString('utf8')) as typeof parsed
    } catch (err) {
      if (err instanceof RemoteError) throw err
      throw new RemoteError(`token from ${u.origin} is not JSON`)
    }
    const token = parsed.token ?? parsed.access_token
    if (typeof token !== 'string' || !token || /[\r\n]/.test(token))
      throw new RemoteError(`token from ${u.origin} has no token`)
    return token
  }
}
