// A release in an OCI registry. The tag (the channel) names an OCI image index:
//
//   index (application/vnd.oci.image.index.v1+json), tagged CHANNEL
//     ├─ release manifest   artifactType application/vnd.cfsboot.release.v1
//     │    config: the signed release index (RELEASE_INDEX_MEDIA), the envelope's bytes
//     │    layers: [the image (IMAGE_MEDIA)]
//     └─ objects manifests  artifactType application/vnd.cfsboot.objects.v1, one per
//          OBJECTS_PER_MANIFEST objects; layers: the objects (OBJECT_MEDIA)
//
// Blobs are named by sha256 of their bytes, objects by fs-verity digest: the signed index lists
// both for every object, so a device maps one to the other from signed data only. Manifests
// reference every blob (registries' garbage collection keeps only referenced blobs) and each
// stays far below the ~4 MiB manifest limit of common registries, whatever the object count.

import {createReadStream} from 'node:fs'

import {forEachLimit} from '../util/concurrency.js'
import {RemoteError, Response} from './http.js'
import {MAX_INDEX_BYTES, ReleaseObject} from './index.js'
import {parseReference, Reference} from './reference.js'
import {RegistryClient, sha256Digest} from './registry.js'
import {registryOptions, ReleaseSource, TransportOptions, UploadCounts} from './source-types.js'

export const RELEASE_ARTIFACT = 'application/vnd.cfsboot.release.v1'
export const OBJECTS_ARTIFACT = 'application/vnd.cfsboot.objects.v1'
export const RELEASE_INDEX_MEDIA = 'application/vnd.cfsboot.release.index.v1+json'
export const IMAGE_MEDIA = 'application/vnd.cfsboot.image.v1.erofs'
export const OBJECT_MEDIA = 'application/vnd.cfsboot.object.v1'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const EMPTY_MEDIA = 'application/vnd.oci.empty.v1+json'
/** ~150 bytes per descriptor: 10,000 keep an objects manifest near 1.5 MB. */
export const OBJECTS_PER_MANIFEST = 10_000
/** Blobs pushed at once. */
const PUSH_CONCURRENCY = 8

interface Descriptor {
  mediaType: string
  digest: string
  size: number
  artifactType?: string
}

function clientFor(ref: Reference, t: TransportOptions): RegistryClient {
  return new RegistryClient(ref, registryOptions(t))
}

export class OciSource implements ReleaseSource {
  readonly name: string
  private readonly client: RegistryClient
  private readonly reference: string

  constructor(url: string, channel: string, t: TransportOptions) {
    const ref = parseReference(url)
    this.reference = ref.digest ?? ref.tag ?? channel
    this.name = `oci://${ref.registry}/${ref.repository}${ref.digest ? `@${ref.digest}` : `:${this.reference}`}`
    this.client = clientFor(ref, t)
  }

  get http() {
    return this.client.http
  }

  async fetchEnvelope(): Promise<Buffer> {
    const top = await this.client.getManifest(this.reference, [OCI_INDEX, OCI_MANIFEST])
    let manifest = top
    if (top.mediaType === OCI_INDEX) {
      const idx = parseJson(top.bytes, this.name) as {manifests?: Descriptor[]}
      const d = (idx.manifests ?? []).find((m) => m.artifactType === RELEASE_ARTIFACT)
      if (!d) throw new RemoteError(`${this.name} holds no cfsboot release`)
      manifest = await this.client.getManifest(d.digest, [OCI_MANIFEST])
    }
    const m = parseJson(manifest.bytes, this.name) as {config?: Descriptor}
    const c = m.config
    if (!c || c.mediaType !== RELEASE_INDEX_MEDIA || !(c.size <= MAX_INDEX_BYTES))
      throw new RemoteError(`${this.name} is not a cfsboot release (config ${c?.mediaType ?? 'missing'})`)
    const res = await this.client.blobResponse(c.digest)
    const bytes = await this.http.readBody(res, MAX_INDEX_BYTES)
    if (sha256Digest(bytes) !== c.digest)
      throw new RemoteError(`${this.name}: the index blob has the wrong sha256`)
    return bytes
  }

  async open(o: ReleaseObject, _kind: 'image' | 'object', offset: number): Promise<Response> {
    return this.client.blobResponse(`sha256:${o.sha256}`, offset ? {offset} : {})
  }

  async close(): Promise<void> {
    await this.client.close()
  }
}

function parseJson(b: Buffer, what: string): unknown {
  try {
    return JSON.parse(b.toString('utf8'))
  } catch {
    throw new RemoteError(`${what}: a manifest that is not JSON`)
  }
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v))

/** Pushes a release: objects the registry lacks, the image, the index, manifests, then the tag. */
export async function publishOci(opts: {
  to: string
  channel: string
  transport: TransportOptions
  image: {entry: ReleaseObject; path: string}
  objects: {entry: ReleaseObject; path: string}[]
  envelope: Buffer
  onProgress?: (done: number, total: number) => void
}): Promise<UploadCounts & {reference: string; manifest: string; requests: number}> {
  const ref = parseReference(opts.to)
  const tag = ref.tag ?? opts.channel
  const client = clientFor(ref, opts.transport)
  const counts: UploadCounts = {uploaded: 0, present: 0, bytesUploaded: 0}
  try {
    const blob = async (e: ReleaseObject, path: string): Promise<void> => {
      const r = await client.pushBlob(`sha256:${e.sha256}`, () => createReadStream(path), e.size)
      if (r === 'pushed') {
        counts.uploaded++
        counts.bytesUploaded += e.size
      } else counts.present++
    }
    let done = 0
    await forEachLimit(opts.objects, PUSH_CONCURRENCY, async (o) => {
      await blob(o.entry, o.path)
      opts.onProgress?.(++done, opts.objects.length)
    })
    await client.pushBlob(
      `sha256:${opts.image.entry.sha256}`,
      () => createReadStream(opts.image.path),
      opts.image.entry.size,
    )
    const envDigest = sha256Digest(opts.envelope)
    await client.pushBlob(envDigest, opts.envelope, opts.envelope.length)
    const empty = Buffer.from('{}')
    await client.pushBlob(sha256Digest(empty), empty, empty.length)
    const emptyDesc = {mediaType: EMPTY_MEDIA, digest: sha256Digest(empty), size: empty.length}

    const children: Descriptor[] = []
    const pushManifest = async (artifactType: string, m: Record<string, unknown>): Promise<void> => {
      const bytes = json({schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType, ...m})
      const digest = await client.pushManifest(sha256Digest(bytes), OCI_MANIFEST, bytes)
      children.push({mediaType: OCI_MANIFEST, digest, size: bytes.length, artifactType})
    }
    await pushManifest(RELEASE_ARTIFACT, {
      config: {mediaType: RELEASE_INDEX_MEDIA, digest: envDigest, size: opts.envelope.length},
      layers: [
        {mediaType: IMAGE_MEDIA, digest: `sha256:${opts.image.entry.sha256}`, size: opts.image.entry.size},
      ],
      annotations: {'org.cfsboot.image.digest': opts.image.entry.digest, 'org.cfsboot.channel': opts.channel},
    })
    for (let i = 0; i < opts.objects.length; i += OBJECTS_PER_MANIFEST) {
      await pushManifest(OBJECTS_ARTIFACT, {
        config: emptyDesc,
        layers: opts.objects.slice(i, i + OBJECTS_PER_MANIFEST).map((o) => ({
          mediaType: OBJECT_MEDIA,
          digest: `sha256:${o.entry.sha256}`,
          size: o.entry.size,
        })),
      })
    }
    const index = json({schemaVersion: 2, mediaType: OCI_INDEX, manifests: children})
    const manifest = await client.pushManifest(tag, OCI_INDEX, index)
    return {
      ...counts,
      reference: `oci://${ref.registry}/${ref.repository}:${tag}`,
      manifest,
      requests: client.http.stats.requests,
    }
  } finally {
    await client.close()
  }
}
