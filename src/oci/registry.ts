// docker://HOST/REPO:TAG as a BlobSource, over the registry client of src/remote/ (the one
// publish and pull use: auth, proxies, timeouts). Manifests come from /manifests/, everything
// else streams from /blobs/; every digest is checked by the same code as for layouts.

import type {Readable} from 'node:stream'

import {InvalidInputError} from '../errors.js'
import {parseReference} from '../remote/reference.js'
import {RegistryClient, type RegistryOptions} from '../remote/registry.js'
import {MediaType, type BlobSource, type Descriptor} from './manifest.js'

const MANIFEST_TYPES = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerList,
  MediaType.dockerManifest,
]
const isManifest = (t: string): boolean => (MANIFEST_TYPES as string[]).includes(t)

export class RegistrySource implements BlobSource {
  private readonly client: RegistryClient
  private readonly reference: string
  /** Manifest bytes already fetched, by digest. */
  private readonly manifests = new Map<string, Buffer>()

  constructor(url: string, opts: RegistryOptions = {}) {
    const ref = parseReference(url)
    this.reference = ref.digest ?? ref.tag ?? 'latest'
    this.client = new RegistryClient(ref, opts)
  }

  async root(): Promise<Descriptor> {
    const m = await this.client.getManifest(this.reference, MANIFEST_TYPES)
    this.manifests.set(m.digest, m.bytes)
    return {mediaType: m.mediaType, digest: m.digest, size: m.bytes.length}
  }

  async blob(desc: Descriptor, max: number): Promise<Buffer> {
    const known = this.manifests.get(desc.digest)
    if (known) return known
    if (isManifest(desc.mediaType)) {
      const m = await this.client.getManifest(desc.digest, MANIFEST_TYPES)
      this.manifests.set(m.digest, m.bytes)
      return m.bytes
    }
    if (desc.size > max) throw new InvalidInputError(`${desc.digest}: ${desc.size} bytes (limit ${max})`)
    const parts: Buffer[] = []
    let n = 0
    for await (const c of await this.client.blobStream(desc.digest)) {
      n += (c as Buffer).length
      if (n > max) throw new InvalidInputError(`${desc.digest}: more than ${max} bytes`)
      parts.push(c as Buffer)
    }
    return Buffer.concat(parts)
  }

  async open(desc: Descriptor): Promise<Readable> {
    return this.client.blobStream(desc.digest)
  }

  close(): Promise<void> {
    return this.client.close()
  }
}
