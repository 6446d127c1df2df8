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

import {InvalidInputError} from './errors.js'
import {treeFromDump} from './build-from-dump.js'
import {type BuildProgress, scanAndHashTree} from './build-tree.js'
import {ObjectStore} from './store/objects.js'
import type {FsNode} from './tree/node.js'
import type {ScannedFile} from './tree/scan.js'
import {importImage} from './oci/import.js'
import {parseImageReference} from './oci/reference.js'
import {registryOptions, TransportOptions} from './remote/source-types.js'
import {writeImageFile} from './write-image-file.js'
import {checkImageOutput} from './image-output.js'

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
  await checkImageOutput(opts.output)
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
    const tree = await scanAndHashTree(opts.source, {
      ...(opts.threads !== undefined && {threads: opts.threads}),
      ...(opts.onProgress && {onProgress: opts.onProgress}),
    })
    root = tree.root
    files = {
      regular: tree.files.length,
      inline: tree.inline,
      external: tree.external.length,
      externalBytes: tree.externalBytes,
    }
    if (opts.objects)
      objects = {dir: opts.objects, ...(await storeObjects(tree.external, opts.objects, opts))}
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
