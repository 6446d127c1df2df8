// `cfsboot build`: tree → objects + image. The first step of the data flow.
//
//   scan the tree ─► small files inline ─► other files: fs-verity digest (all cores)
//                                        └► copy into OBJECTS/xx/yyyy… (once per digest)
//   ─► write the EROFS image to a temporary name, fsync, rename (no half-written image, ever)
//
// From a container image (SOURCE `oci:DIR`, `oci-archive:FILE`, `docker-archive:FILE`,
// `docker://HOST/REPO:TAG`, see
// src/oci/) the tree is assembled from the layers as they stream, contents going into the
// objects dir on the way; the image written is the one a build of the unpacked image gives.
//
// From a dump (--from-dump) the tree comes from composefs-dump text instead and no objects
// are touched: a dump names objects by path and digest but carries no file contents.

import {closeSync, openSync, readSync} from 'node:fs'
import {availableParallelism} from 'node:os'

import {InvalidInputError} from './errors.js'
import {treeFromDump} from './build-from-dump.js'
import {ObjectStore} from './store/objects.js'
import {FsNode, objectPath} from './tree/node.js'
import {DiskPath, scanTree, ScannedFile} from './tree/scan.js'
import {Limits} from './format/erofs/layout.js'
import {importImage} from './oci/import.js'
import {parseImageReference} from './oci/reference.js'
import {registryOptions, TransportOptions} from './remote/source-types.js'
import {writeImageFile} from './write-image-file.js'
import {DigestPool} from './verity/pool.js'

export interface BuildOptions {
  /** A directory tree, or with `fromDump` a composefs-dump file ("-" for stdin). */
  source: string
  /** Image file to write. */
  output: string
  /** Objects directory to fill with the tree's file contents (tree builds only). */
  objects?: string
  fromDump?: boolean
  /** Strict dump parsing (upstream's CFS_PARSE_STRICT). */
  strict?: boolean
  minVersion?: number
  maxVersion?: number
  threads?: number
  /** Container images: the platform to pick from a multi-arch index (OS/ARCH[/VARIANT]). */
  platform?: string
  /** Container images: bound on one layer's decompressed bytes. */
  maxLayerBytes?: number
  /** docker:// sources: how to reach the registry (plain http, a private CA, credentials, timeouts). */
  registry?: TransportOptions
  onProgress?: (p: BuildProgress) => void
}

export interface BuildProgress {
  phase: 'scan' | 'hash' | 'store' | 'write' | 'layers'
  done: number
  total: number
}

export interface BuildResult {
  /** fs-verity digest of the image, hex. */
  digest: string
  image: string
  imageBytes: number
  formatVersion: number
  inodes: number
  files: {regular: number; inline: number; external: number; externalBytes: number}
  objects: {dir: string | null; added: number; present: number}
  /** Set when SOURCE was a container image. */
  oci?: {image: string; layers: number; cachedLayers: number}
}

/** Batches that keep both the worker threads and the I/O busy without holding many promises. */
const EARLY_BATCH_FILES = 256
const EARLY_BATCH_BYTES = 64 << 20

/**
 * Hashes files while the scan is still walking the tree: the scanner reports each file as it
 * finds it, and full batches go to the worker pool at once; the digests land in the nodes.
 * Small files (inlined in the image) are read there and then, while their metadata is fresh.
 * Hashing is most of a build's work, so overlapping it with the walk brings the build close to
 * the time hashing alone takes. Per file it keeps nothing but the node (no promise, no key).
 */
class EarlyHasher {
  private batch: ScannedFile[] = []
  private batchBytes = 0
  private readonly batches: Promise<void>[] = []
  private done = 0

  constructor(
    private readonly pool: DigestPool,
    private readonly onDone: (done: number) => void,
  ) {}

  add(path: DiskPath, node: FsNode): void {
    const size = node.size
    if (size === 0) return
    if (size <= Limits.recommendedInlineContentMax) {
      node.content = readExactly(path, size)
      return
    }
    this.batch.push({node, path})
    this.batchBytes += size
    if (this.batch.length >= EARLY_BATCH_FILES || this.batchBytes >= EARLY_BATCH_BYTES) this.flush()
  }

  flush(): void {
    if (this.batch.length === 0) return
    const files = this.batch
    this.batch = []
    this.batchBytes = 0
    const hashed = this.pool.digestFiles(files.map((f) => f.path)).then((digests) => {
      files.forEach((f, i) => {
        f.node.digest = digests[i]!
        f.node.payload = objectPath(digests[i]!)
      })
      this.onDone((this.done += files.length))
    })
    // Errors surface when finish() awaits; keep them from being "unhandled" meanwhile.
    hashed.catch(() => undefined)
    this.batches.push(hashed)
  }

  /** Waits for every digest, then hashes or reads the files not reported early (hardlinked ones). */
  async finish(files: ScannedFile[]): Promise<void> {
    this.flush()
    await Promise.all(this.batches)
    this.batches.length = 0
    for (const f of files) {
      const {node} = f
      if (node.size === 0 || node.digest || node.content) continue
      if (node.size <= Limits.recommendedInlineContentMax) node.content = readExactly(f.path, node.size)
      else this.batch.push(f)
    }
    this.flush()
    await Promise.all(this.batches)
  }
}

/** Fills in inline content, digests and object paths for the scanned regular files. */
async function hashFiles(
  files: ScannedFile[],
  hasher: EarlyHasher,
): Promise<{external: ScannedFile[]; inline: number; externalBytes: number}> {
  await hasher.finish(files)
  const external: ScannedFile[] = []
  let inline = 0
  let externalBytes = 0
  for (const f of files) {
    const size = f.node.size
    if (size === 0) continue
    if (size <= Limits.recommendedInlineContentMax) inline++
    else {
      external.push(f)
      externalBytes += size
    }
  }
  return {external, inline, externalBytes}
}

/** The `size` bytes of a small file (synchronous: one short read, cheaper than a promise). */
function readExactly(path: DiskPath, size: number): Buffer {
  const fd = openSync(path, 'r')
  try {
    const buf = Buffer.alloc(size)
    const bytesRead = readSync(fd, buf, 0, size, 0)
    // The tree changed under us: refuse rather than store content that disagrees with the scan.
    if (bytesRead !== size)
      throw new InvalidInputError(
        `${String(path)}: file changed while building (size ${size}, read ${bytesRead})`,
      )
    return buf
  } finally {
    closeSync(fd)
  }
}

/**
 * Copies every distinct content into the store as one batch: staged without a per-file fsync,
 * made durable with one filesystem sync, then linked under their digests (ObjectStore.stage).
 */
async function storeObjects(
  external: ScannedFile[],
  dir: string,
  opts: BuildOptions,
): Promise<{added: number; present: number}> {
  const staging = await new ObjectStore(dir).stage()
  let present = 0
  let done = 0
  // One copy per distinct content, whatever the number of files that share it.
  const unique = [...new Map(external.map((f) => [f.node.payload!, f])).values()]
  try {
    for (const f of unique) {
      if ((await staging.addFile(f.path, f.node.digest!)) === 'present') present++
      opts.onProgress?.({phase: 'store', done: ++done, total: unique.length})
    }
    const committed = await staging.commit()
    return {added: committed.added, present: present + committed.present}
  } catch (err) {
    await staging.abort()
    throw err
  }
}

export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  let root: FsNode
  let files = {regular: 0, inline: 0, external: 0, externalBytes: 0}
  let objects = {dir: opts.objects ?? null, added: 0, present: 0}
  let oci: BuildResult['oci']
  const ref = opts.fromDump ? null : parseImageReference(opts.source)
  if (ref) {
    const imported = await importImage(ref, {
      ...(opts.objects !== undefined && {objects: opts.objects}),
      ...(opts.platform !== undefined && {platform: opts.platform}),
      ...(opts.maxLayerBytes !== undefined && {maxLayerBytes: opts.maxLayerBytes}),
      ...(opts.registry && {registry: registryOptions(opts.registry)}),
      onLayer: (done, total) => opts.onProgress?.({phase: 'layers', done, total}),
    })
    root = imported.root
    const external = imported.files.filter((f) => f.digest)
    files = {
      regular: imported.files.length,
      inline: imported.files.filter((f) => f.content).length,
      external: external.length,
      externalBytes: external.reduce((n, f) => n + f.size, 0),
    }
    objects = {dir: opts.objects ?? null, ...imported.objects}
    oci = {image: imported.image, layers: imported.layers.total, cachedLayers: imported.layers.cached}
  } else if (opts.fromDump) {
    if (opts.objects)
      throw new InvalidInputError(
        '--objects cannot be used with --from-dump: a dump carries no file contents',
      )
    root = await treeFromDump(opts.source, {strict: opts.strict ?? false})
  } else {
    // By default one worker per core but one: this thread walks the tree meanwhile, and hashes
    // too once the walk is done (one thread fewer to start and to hold in memory).
    const workers = opts.threads ?? availableParallelism() - 1
    const pool = new DigestPool({threads: workers, mainThread: workers === 0})
    let hashed
    let scan
    try {
      const hasher = new EarlyHasher(pool, (done) => opts.onProgress?.({phase: 'hash', done, total: 0}))
      scan = await scanTree(opts.source, {
        onProgress: (n) => opts.onProgress?.({phase: 'scan', done: n, total: 0}),
        onFile: (path, node) => hasher.add(path, node),
      })
      if (opts.threads === undefined) pool.helpOnMainThread()
      hashed = await hashFiles(scan.files, hasher)
    } finally {
      await pool.close()
    }
    root = scan.root
    files = {
      regular: scan.files.length,
      inline: hashed.inline,
      external: hashed.external.length,
      externalBytes: hashed.externalBytes,
    }
    if (opts.objects)
      objects = {dir: opts.objects, ...(await storeObjects(hashed.external, opts.objects, opts))}
  }
  opts.onProgress?.({phase: 'write', done: 0, total: 1})
  const written = await writeImageFile(root, opts.output, {
    ...(opts.minVersion !== undefined && {minVersion: opts.minVersion}),
    ...(opts.maxVersion !== undefined && {maxVersion: opts.maxVersion}),
  })
  return {
    ...written,
    files,
    objects,
    ...(oci && {oci}),
  }
}
