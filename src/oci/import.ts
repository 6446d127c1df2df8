// A container image → the in-memory tree `cfsboot build` writes, its contents in the store.
//
// Per layer, bottom up: a record of the same diff ID already imported is used as is; otherwise
// the layer streams through readLayer() into a staging area, which is committed to the store
// only once the layer's digests matched, and a record is saved. Then the entries are applied
// to the tree (tree.ts). On any failure the staging area is removed: the store keeps only
// verified objects, and build writes no image.

import {InvalidInputError} from '../errors.js'
import type {RegistryOptions} from '../remote/registry.js'
import {ObjectStore} from '../store/objects.js'
import type {FsNode} from '../tree/node.js'
import {loadLayerRecord, saveLayerRecord} from './cache.js'
import {readLayer, type LayerEntry, type LayerSource} from './layers.js'
import {dockerArchiveImage, OciLayout} from './layout.js'
import {parsePlatform, resolveImage, type BlobSource, type Platform} from './manifest.js'
import type {ImageReference} from './reference.js'
import {RegistrySource} from './registry.js'
import {LayerTree} from './tree.js'

export interface ImportOptions {
  /** Objects directory; without it contents are hashed but not stored (and nothing is cached). */
  objects?: string
  /** OS/ARCH[/VARIANT] to pick from a multi-arch index; default: the running machine. */
  platform?: string
  maxLayerBytes?: number
  /** docker:// sources: the registry client's options (plain http, CA, credentials). */
  registry?: RegistryOptions
  onLayer?: (done: number, total: number) => void
}

export interface ImportResult {
  root: FsNode
  files: FsNode[]
  /** Digest of the manifest (or, for a docker archive, of the config) the tree was built from. */
  image: string
  layers: {total: number; cached: number}
  objects: {added: number; present: number}
}

async function layerSources(
  ref: ImageReference,
  platform: Platform | null,
  registry: RegistryOptions,
): Promise<{image: string; layers: LayerSource[]; close: () => Promise<void>}> {
  if (ref.transport === 'docker-archive') {
    const img = await dockerArchiveImage(ref.path, ref.tag)
    return {
      image: img.id,
      layers: img.layers.map((l) => ({digest: l.digest, size: null, diffId: l.diffId, open: l.open})),
      close: async () => undefined,
    }
  }
  if (ref.transport === 'docker') {
    const src = new RegistrySource(`docker://${ref.name}`, registry)
    try {
      return {...(await sourceLayers(src, platform)), close: () => src.close()}
    } catch (err) {
      await src.close()
      throw err
    }
  }
  const src =
    ref.transport === 'oci' ? OciLayout.dir(ref.path, ref.tag) : await OciLayout.archive(ref.path, ref.tag)
  return {...(await sourceLayers(src, platform)), close: async () => undefined}
}

async function sourceLayers(
  src: BlobSource,
  platform: Platform | null,
): Promise<{image: string; layers: LayerSource[]}> {
  const img = await resolveImage(src, platform)
  return {
    image: img.manifestDigest,
    layers: img.layers.map(({desc, diffId}) => ({
      digest: desc.digest,
      size: desc.size,
      diffId,
      open: () => src.open(desc),
    })),
  }
}

export async function importImage(ref: ImageReference, opts: ImportOptions = {}): Promise<ImportResult> {
  const platform = opts.platform !== undefined ? parsePlatform(opts.platform) : null
  const {image, layers, close} = await layerSources(ref, platform, opts.registry ?? {})
  try {
    return await importLayers(image, layers, opts)
  } finally {
    await close()
  }
}

async function importLayers(
  image: string,
  layers: LayerSource[],
  opts: ImportOptions,
): Promise<ImportResult> {
  const store = opts.objects !== undefined ? new ObjectStore(opts.objects) : null
  const tree = new LayerTree()
  const result = {cached: 0, added: 0, present: 0}
  for (const [i, layer] of layers.entries()) {
    const cached = store ? await loadLayerRecord(store, layer.diffId) : null
    if (cached) {
      result.cached++
      tree.apply(cached, i)
    } else {
      let entries: LayerEntry[]
      const staging = store ? await store.stage() : null
      try {
        entries = await readLayer(layer, {
          staging,
          ...(opts.maxLayerBytes !== undefined && {maxLayerBytes: opts.maxLayerBytes}),
        })
        // Applied before the commit: a layer the tree refuses (a hardlink to nothing, a path
        // through a symlink) adds no object either.
        tree.apply(entries, i)
      } catch (err) {
        await staging?.abort()
        if (err instanceof InvalidInputError) err.message = `${layer.digest ?? layer.diffId}: ${err.message}`
        throw err
      }
      if (staging && store) {
        const c = await staging.commit().catch(async (err: unknown) => {
          await staging.abort()
          throw err
        })
        result.added += c.added
        result.present += c.present
        await saveLayerRecord(store, layer.diffId, entries)
      }
    }
    opts.onLayer?.(i + 1, layers.length)
  }
  const {root, files} = tree.finish()
  return {
    root,
    files,
    image,
    layers: {total: layers.length, cached: result.cached},
    objects: {added: result.added, present: result.present},
  }
}
