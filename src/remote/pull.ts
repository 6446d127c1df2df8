// `cfsboot pull URL|oci://…` and `cfsboot upgrade`: a release from a remote onto this device.
//
//   1. the signed index, verified with the trusted keys before anything else is fetched;
//   2. registered under the sysroot lock in composefs/downloads/ (gc keeps what it lists);
//   3. the image (its fs-verity digest is the index's), whose every object must be listed by the
//      index with the same size — an image naming anything else is refused;
//   4. only the objects the store lacks, many at once over kept-alive connections, each verified
//      while it arrives and moved into the store by ObjectStore.adoptVerifiedBatch;
//   5. deploy (src/deploy/deploy.ts: atomic, under the lock), unless --download-only.
// Any failure leaves the deployments untouched and the store with verified objects only; the
// next pull resumes (HTTP Range) and fetches only what is still missing.

import {open, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {InvalidInputError} from '../errors.js'
import {Config} from '../deploy/config.js'
import {deploy, DeployResult} from '../deploy/deploy.js'
import {readEntries} from '../deploy/entries.js'
import {loadImage, ObjectRef, objectRefs} from '../image/load.js'
import {Paths, requireSysroot} from '../deploy/paths.js'
import {ObjectStore} from '../store/objects.js'
import {withLock} from '../system/lock.js'
import {forEachLimit} from '../util/concurrency.js'
import {exists, fsyncPath} from '../util/fs.js'
import {downloadDir, listDownloads, registerDownload, removeDownloads} from '../deploy/downloads.js'
import {fetchVerified} from './fetch.js'
import {DEFAULT_CONNECTIONS} from './http.js'
import {loadPublicKey, Release, ReleaseObject, SignatureError, verifyRelease} from './index.js'
import {openSource} from './source.js'
import {ReleaseSource, TransportOptions} from './source-types.js'

export type PullMode = 'check' | 'download' | 'deploy'

export interface PullOptions {
  paths: Paths
  config: Config
  /** http(s):// static repository or oci://HOST/REPO[:TAG|@DIGEST]. */
  source: string
  channel: string
  mode: PullMode
  transport: TransportOptions
  /** Public key files (default: cfsboot.conf [remote] trusted-keys). */
  trustedKeys?: string[]
  lockTimeout?: number
  onProgress?: (phase: string, done: number, total: number) => void
  onWait?: () => void
}

export interface PullResult {
  source: string
  channel: string
  mode: PullMode
  digest: string
  created: string
  keyId: string
  /** The default deployment before this command (null: none). */
  current: string | null
  updateAvailable: boolean
  objects: {
    referenced: number
    present: number
    missing: number
    bytesMissing: number
    downloaded: number
    bytesDownloaded: number
    /** Bytes of interrupted downloads that were kept and not fetched again. */
    bytesResumed: number
  }
  transfer: {requests: number; bytes: number}
  deploy: DeployResult | null
}

/** Above this many references, list the store once instead of probing each object. */
const LIST_STORE_THRESHOLD = 512
/** Verified objects made durable and linked into the store together (one syncfs each batch). */
const ADOPT_BATCH = 256

async function currentDefault(paths: Paths): Promise<string | null> {
  const {entries} = await readEntries(paths.entries)
  return entries[0]?.digest ?? null
}

async function presentSet(store: ObjectStore, digests: string[]): Promise<Set<string>> {
  const present = new Set<string>()
  if (digests.length > LIST_STORE_THRESHOLD) {
    for await (const d of store.list()) present.add(d.toString('hex'))
  } else {
    for (const d of digests) if (await store.has(Buffer.from(d, 'hex'))) present.add(d)
  }
  return present
}

/** Every object the image references must be in the signed index, with the same size. */
function checkImageAgainstIndex(refs: ObjectRef[], release: Release): ReleaseObject[] {
  const byDigest = new Map(release.objects.map((o) => [o.digest, o]))
  return refs.map((r) => {
    const hex = r.path.replace('/', '')
    const o = byDigest.get(hex)
    if (!o || o.size !== r.size)
      throw new SignatureError(
        `the image references object ${r.path}${o ? ` of ${r.size} bytes` : ''}, which the signed index does not list${o ? ' with that size' : ''}`,
      )
    return o
  })
}

const lockOpts = (opts: PullOptions): {timeout?: number; onWait?: () => void} => ({
  ...(opts.lockTimeout !== undefined && {timeout: opts.lockTimeout}),
  ...(opts.onWait && {onWait: opts.onWait}),
})

export async function pull(opts: PullOptions): Promise<PullResult> {
  const {paths} = opts
  await requireSysroot(paths)
  const keyFiles = opts.trustedKeys ?? opts.config.remote.trustedKeys
  if (!keyFiles.length)
    throw new InvalidInputError(
      'no trusted keys: set [remote] trusted-keys in cfsboot.conf (or pass --trusted-key)',
    )
  const keys = await Promise.all(keyFiles.map(loadPublicKey))
  const source = openSource(opts.source, opts.channel, opts.transport)
  try {
    return await pullFrom(source, keys, opts)
  } finally {
    await source.close()
  }
}

async function pullFrom(
  source: ReleaseSource,
  keys: Awaited<ReturnType<typeof loadPublicKey>>[],
  opts: PullOptions,
): Promise<PullResult> {
  const {paths} = opts
  const envelope = await source.fetchEnvelope()
  const release = verifyRelease(envelope, keys)
  const byDigestRef = /@sha256:/.test(opts.source)
  if (!byDigestRef && release.channel !== opts.channel)
    throw new SignatureError(`the signed index is for channel ${release.channel}, not ${opts.channel}`)
  const current = await currentDefault(paths)
  const store = new ObjectStore(paths.objects)
  const result: PullResult = {
    source: source.name,
    channel: release.channel,
    mode: opts.mode,
    digest: release.image.digest,
    created: release.created,
    keyId: release.keyId,
    current,
    updateAvailable: release.image.digest !== current,
    objects: {
      referenced: release.objects.length,
      present: 0,
      missing: 0,
      bytesMissing: 0,
      downloaded: 0,
      bytesDownloaded: 0,
      bytesResumed: 0,
    },
    transfer: {requests: 0, bytes: 0},
    deploy: null,
  }
  const finish = (): PullResult => {
    result.transfer = {...source.http.stats}
    return result
  }
  if (opts.mode === 'deploy' && !result.updateAvailable && (await listDownloads(paths)).length) {
    // A pull killed after its deploy switched the default: its download is done with.
    await withLock(paths.lock, lockOpts(opts), () => removeDownloads(paths))
  }
  if (opts.mode === 'check' || (opts.mode === 'deploy' && !result.updateAvailable)) {
    const present = await presentSet(
      store,
      release.objects.map((o) => o.digest),
    )
    const missing = release.objects.filter((o) => !present.has(o.digest))
    Object.assign(result.objects, {
      present: release.objects.length - missing.length,
      missing: missing.length,
      bytesMissing: missing.reduce((a, o) => a + o.size, 0),
    })
    return finish()
  }

  // Register the download before any of its objects can enter the store (gc reads it under the lock).
  const dir = await withLock(paths.lock, lockOpts(opts), async () => {
    await removeDownloads(paths, release.image.digest)
    return registerDownload(
      paths,
      release.image.digest,
      envelope,
      release.objects.map((o) => o.digest),
    )
  })

  const imageFile = join(dir, 'image')
  if (!(await exists(imageFile))) {
    const part = join(dir, 'image.part')
    const f = await fetchVerified(source, release.image, 'image', part, source.http.stats)
    result.objects.bytesResumed += f.resumed
    await fsyncPath(part)
    await rename(part, imageFile)
  }
  const img = await loadImage(imageFile)
  if (img.digest !== release.image.digest) {
    await rm(imageFile, {force: true})
    throw new SignatureError(
      `the downloaded image's digest changed on disk (${img.digest}); run the pull again`,
    )
  }
  const refs = objectRefs(img.root)
  const needed = checkImageAgainstIndex(refs, release)
  result.objects.referenced = needed.length
  const present = await presentSet(
    store,
    needed.map((o) => o.digest),
  )
  const missing = needed.filter((o) => !present.has(o.digest))
  const bytesMissing = missing.reduce((a, o) => a + o.size, 0)
  Object.assign(result.objects, {
    present: needed.length - missing.length,
    missing: missing.length,
    bytesMissing,
  })

  // Objects this download brought, for fs-verity at deploy (written before each enters the store).
  const fetchedList = join(dir, 'fetched')
  let bytesDone = 0
  // Verified parts waiting for the next batch: made durable together, then linked into the store.
  let verified: {path: string; digest: Buffer}[] = []
  const adopt = async (): Promise<void> => {
    const batch = verified
    verified = []
    result.objects.downloaded += (await store.adoptVerifiedBatch(batch)).length
  }
  const fetchedFh = await open(fetchedList, 'a')
  try {
    await forEachLimit(missing, opts.transport.connections ?? DEFAULT_CONNECTIONS, async (o) => {
      const part = join(dir, 'parts', o.digest)
      const f = await fetchVerified(source, o, 'object', part, source.http.stats, (n) => {
        bytesDone += n
        opts.onProgress?.('download', bytesDone, bytesMissing)
      })
      result.objects.bytesResumed += f.resumed
      bytesDone += f.resumed
      result.objects.bytesDownloaded += f.bytes
      await fetchedFh.write(`${o.digest}\n`)
      verified.push({path: part, digest: Buffer.from(o.digest, 'hex')})
      if (verified.length >= ADOPT_BATCH) await adopt()
    })
    await adopt()
  } finally {
    await fetchedFh.close()
  }
  await rm(join(dir, 'parts'), {recursive: true, force: true})
  await writeFile(join(dir, 'complete'), '')
  if (opts.mode === 'download') return finish()
  result.deploy = await deployDownload(opts, release.image.digest)
  return finish()
}

/** Deploys a complete download (the last step of a pull, or `upgrade --from-downloaded`). */
export async function deployDownload(
  opts: Pick<PullOptions, 'paths' | 'config' | 'lockTimeout' | 'onProgress' | 'onWait'>,
  digest: string,
): Promise<DeployResult> {
  const dir = downloadDir(opts.paths, digest)
  const fetched = (await readFile(join(dir, 'fetched'), 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => /^[0-9a-f]{64}$/.test(l))
  const r = await deploy({
    paths: opts.paths,
    config: opts.config,
    image: join(dir, 'image'),
    sealObjects: [...new Set(fetched)].map((d) => ({
      path: `${d.slice(0, 2)}/${d.slice(2)}`,
      digest: Buffer.alloc(0),
      size: 0,
    })),
    ...(opts.lockTimeout !== undefined && {lockTimeout: opts.lockTimeout}),
    ...(opts.onProgress && {onProgress: opts.onProgress}),
    ...(opts.onWait && {onWait: opts.onWait}),
  })
  await rm(dir, {recursive: true, force: true})
  return r
}
