// `cfsboot publish IMAGE --objects DIR --to DIR|oci://HOST/REPO[:TAG]`: one release, signed.
//
// Every object the image references is read once from --objects: its fs-verity digest must be
// the one the image names (a wrong objects dir never gets published) and its sha256 is computed
// on the same pass for the OCI blob name. Then the signed index is made and the target gets what
// it lacks, the index last.

import {createHash, createPublicKey} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {join} from 'node:path'

import {DigestMismatchError, DamageError, InvalidInputError} from '../errors.js'
import {loadImage, referencedObjects} from '../deploy/images.js'
import {forEachLimit} from '../util/concurrency.js'
import {FsVerityHasher} from '../verity/merkle.js'
import {CHANNEL_RE, keyId, loadPrivateKey, Release, ReleaseObject, signRelease} from './index.js'
import {publishOci} from './oci.js'
import {isRegistryReference} from './reference.js'
import {TransportOptions} from './source.js'
import {publishStatic, UploadCounts} from './static.js'

export interface PublishOptions {
  image: string
  objects: string
  to: string
  channel: string
  key: string
  transport?: TransportOptions
  onProgress?: (phase: string, done: number, total: number) => void
}

export interface PublishResult {
  target: string
  kind: 'static' | 'oci'
  channel: string
  digest: string
  keyId: string
  objects: {total: number; bytes: number; uploaded: number; present: number; bytesUploaded: number}
  indexBytes: number
  /** For oci://: the sha256 digest of the tagged OCI index. */
  manifest: string | null
}

/** Files hashed at once (each on the main thread; reads overlap in libuv's pool). */
const HASH_CONCURRENCY = 8

/** fs-verity digest and sha256 of a file in one read. */
async function hashFile(path: string): Promise<{digest: string; sha256: string; size: number}> {
  const v = new FsVerityHasher()
  const s = createHash('sha256')
  let size = 0
  try {
    for await (const c of createReadStream(path, {highWaterMark: 1 << 20})) {
      v.update(c as Buffer)
      s.update(c as Buffer)
      size += (c as Buffer).length
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DamageError(`${path}: object missing`)
    throw err
  }
  return {digest: v.digest().toString('hex'), sha256: s.digest('hex'), size}
}

export async function publish(opts: PublishOptions): Promise<PublishResult> {
  if (!CHANNEL_RE.test(opts.channel))
    throw new InvalidInputError(`${JSON.stringify(opts.channel)} is not a valid channel name`)
  const key = await loadPrivateKey(opts.key)
  const img = await loadImage(opts.image)
  const refs = referencedObjects(img.root)
  const objects: {entry: ReleaseObject; path: string}[] = []
  let done = 0
  await forEachLimit(refs, HASH_CONCURRENCY, async (r) => {
    const path = join(opts.objects, r.path)
    const h = await hashFile(path)
    const want = r.path.replace('/', '')
    if (h.digest !== want)
      throw new DigestMismatchError(
        `object ${r.path} in ${opts.objects} has the wrong fs-verity digest (${h.digest})`,
      )
    objects.push({entry: {digest: h.digest, size: h.size, sha256: h.sha256}, path})
    opts.onProgress?.('verify', ++done, refs.length)
  })
  objects.sort((a, b) => (a.entry.digest < b.entry.digest ? -1 : 1))
  const imgHash = await hashFile(opts.image)
  const image = {
    entry: {digest: img.digest, size: img.bytes.length, sha256: imgHash.sha256},
    path: opts.image,
  }
  const release: Release = {
    channel: opts.channel,
    created: new Date().toISOString(),
    image: image.entry,
    objects: objects.map((o) => o.entry),
  }
  const envelope = signRelease(release, key)
  const onProgress = (d: number, t: number): void => opts.onProgress?.('upload', d, t)
  const common = {channel: opts.channel, image, objects, envelope, onProgress}
  const oci = isRegistryReference(opts.to)
  const r: UploadCounts & {reference?: string; manifest?: string} = oci
    ? await publishOci({...common, to: opts.to, transport: opts.transport ?? {}})
    : await publishStatic({...common, to: opts.to})
  return {
    target: r.reference ?? opts.to,
    kind: oci ? 'oci' : 'static',
    channel: opts.channel,
    digest: img.digest,
    keyId: keyId(createPublicKey(key)),
    objects: {
      total: objects.length,
      bytes: objects.reduce((a, o) => a + o.entry.size, 0),
      uploaded: r.uploaded,
      present: r.present,
      bytesUploaded: r.bytesUploaded,
    },
    indexBytes: envelope.length,
    manifest: r.manifest ?? null,
  }
}
