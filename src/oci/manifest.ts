// OCI image indexes, manifests and configs (and their Docker schema 2 equivalents): media
// types, size limits, validation, and the choice of one platform from a multi-arch index.
// Digests are checked before a blob's bytes are parsed, so what is parsed is what was named.

import {createHash} from 'node:crypto'

import {DigestMismatchError, InvalidInputError} from '../errors.js'

export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const

/** Layer media types an image may use (compression is read from the bytes themselves). */
export const LAYER_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
])

/** Largest index, manifest or config accepted (registries cap manifests at 4 MiB). */
export const MAX_JSON_BYTES = 4 << 20
/** Most layers an image may have. */
export const MAX_LAYERS = 500
/** Nested indexes followed at most. */
export const MAX_INDEX_DEPTH = 4

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  annotations?: Record<string, string>
  platform?: {os?: string; architecture?: string; variant?: string}
}

/** Where an image's blobs come from: an OCI layout (directory or archive), a registry. */
export interface BlobSource {
  /** The descriptor the reference names (an index or a manifest). */
  root(): Promise<Descriptor>
  /** A small blob (JSON), read whole; at most `max` bytes. */
  blob(desc: Descriptor, max: number): Promise<Buffer>
  /** A blob as a stream. */
  open(desc: Descriptor): Promise<AsyncIterable<Buffer>>
}

export function checkDigest(d: unknown, what: string): string {
  if (typeof d !== 'string' || !DIGEST_RE.test(d))
    throw new InvalidInputError(`${what}: digest ${JSON.stringify(d)} is not sha256:<64 hex digits>`)
  return d
}

export function parseDescriptor(v: unknown, what: string): Descriptor {
  const o = v as Record<string, unknown> | null
  if (!o || typeof o !== 'object') throw new InvalidInputError(`${what}: not a descriptor`)
  if (typeof o.mediaType !== 'string') throw new InvalidInputError(`${what}: no media type`)
  if (!Number.isSafeInteger(o.size) || (o.size as number) < 0)
    throw new InvalidInputError(`${what}: bad size`)
  return {...(o as unknown as Descriptor), digest: checkDigest(o.digest, what)}
}

/** Parses JSON whose bytes must have the descriptor's digest. */
export function verifiedJson(desc: Descriptor, bytes: Buffer): Record<string, unknown> {
  const got = `sha256:${createHash('sha256').update(bytes).digest('hex')}`
  if (got !== desc.digest || bytes.length !== desc.size)
    throw new DigestMismatchError(`${desc.digest}: content has digest ${got} (${bytes.length} bytes)`)
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'))
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
    return v as Record<string, unknown>
  } catch (err) {
    throw new InvalidInputError(`${desc.digest}: not valid JSON (${(err as Error).message})`)
  }
}

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

/** The running machine, in OCI's terms (GOARCH names). */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = {
    x64: 'amd64',
    ia32: '386',
    arm64: 'arm64',
    arm: 'arm',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
    loong64: 'loong64',
    mips64el: 'mips64le',
  }
  const a = arch[process.arch] ?? process.arch
  if (a === 'arm') {
    const v = (process.config.variables as Record<string, unknown>).arm_version
    return {os: 'linux', architecture: a, variant: `v${String(v ?? 7)}`}
  }
  return {os: 'linux', architecture: a}
}

/** "linux/arm64", "linux/arm/v7". */
export function parsePlatform(s: string): Platform {
  const [os, architecture, variant, extra] = s.split('/')
  if (!os || !architecture || extra !== undefined)
    throw new InvalidInputError(`--platform "${s}": expected OS/ARCH[/VARIANT], e.g. linux/amd64`)
  return {os, architecture, ...(variant && {variant})}
}

export const formatPlatform = (p: Platform): string =>
  [p.os, p.architecture, p.variant].filter(Boolean).join('/')

function matches(d: Descriptor, want: Platform): boolean {
  const p = d.platform
  if (!p || p.os !== want.os || p.architecture !== want.architecture) return false
  if (!want.variant) return true
  // arm64's variant is v8 when absent; otherwise a wanted variant must be named.
  return (p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined)) === want.variant
}

export interface ResolvedImage {
  manifestDigest: string
  config: Record<string, unknown>
  layers: {desc: Descriptor; diffId: string}[]
}

/** Index (possibly nested) → the platform's manifest → config and layers, each verified. */
export async function resolveImage(src: BlobSource, platform: Platform | null): Promise<ResolvedImage> {
  let desc = await src.root()
  for (let depth = 0; ; depth++) {
    if (desc.mediaType === MediaType.ociIndex || desc.mediaType === MediaType.dockerList) {
      if (depth >= MAX_INDEX_DEPTH) throw new InvalidInputError(`${desc.digest}: indexes nested too deep`)
      const index = verifiedJson(desc, await src.blob(desc, MAX_JSON_BYTES))
      const list = Array.isArray(index.manifests) ? index.manifests : []
      const all = list.map((m, i) => parseDescriptor(m, `${desc.digest} manifests[${i}]`))
      const want = platform ?? hostPlatform()
      const hit =
        all.find((m) => matches(m, want)) ??
        (platform === null && all.length === 1 && !all[0]!.platform ? all[0] : undefined)
      if (!hit) {
        const have = all.map((m) => (m.platform ? formatPlatform(m.platform as Platform) : '?')).join(', ')
        throw new InvalidInputError(
          `image has no manifest for ${formatPlatform(want)} (it has: ${have || 'none'}); choose one with --platform`,
        )
      }
      desc = hit
      continue
    }
    if (desc.mediaType !== MediaType.ociManifest && desc.mediaType !== MediaType.dockerManifest)
      throw new InvalidInputError(`${desc.digest}: unsupported manifest media type ${desc.mediaType}`)
    break
  }
  const manifest = verifiedJson(desc, await src.blob(desc, MAX_JSON_BYTES))
  const configDesc = parseDescriptor(manifest.config, `${desc.digest} config`)
  const config = verifiedJson(configDesc, await src.blob(configDesc, MAX_JSON_BYTES))
  const layers = Array.isArray(manifest.layers) ? manifest.layers : null
  if (!layers) throw new InvalidInputError(`${desc.digest}: manifest has no layers`)
  if (layers.length > MAX_LAYERS)
    throw new InvalidInputError(`${desc.digest}: ${layers.length} layers (limit ${MAX_LAYERS})`)
  const diffIds = diffIdsOf(config, configDesc.digest)
  if (diffIds.length !== layers.length)
    throw new InvalidInputError(
      `${desc.digest}: ${layers.length} layers but ${diffIds.length} diff IDs in the config`,
    )
  return {
    manifestDigest: desc.digest,
    config,
    layers: layers.map((l, i) => {
      const d = parseDescriptor(l, `${desc.digest} layers[${i}]`)
      if (!LAYER_MEDIA_TYPES.has(d.mediaType))
        throw new InvalidInputError(`layer ${d.digest}: unsupported media type ${d.mediaType}`)
      return {desc: d, diffId: diffIds[i]!}
    }),
  }
}

export function diffIdsOf(config: Record<string, unknown>, what: string): string[] {
  const rootfs = config.rootfs as {type?: unknown; diff_ids?: unknown} | undefined
  if (!rootfs || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids))
    throw new InvalidInputError(`${what}: config has no rootfs.diff_ids`)
  return rootfs.diff_ids.map((d, i) => checkDigest(d, `${what} diff_ids[${i}]`))
}
