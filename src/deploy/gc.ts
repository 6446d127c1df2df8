// `cfsboot gc`: remove what no kept deployment needs.
//
// Mark: the kept deployments (booted, default, `keep-rollback` more, pinned — see view.ts), their
// images (parsed: every object they reference), their kernel directories and entries.
// Sweep, in the reverse of deploy's order so a crash leaves only unreferenced files:
// entries of dropped deployments → their directories → images → kernels → objects; then the
// layer records of container builds (src/store/layer-records.ts) that name an object gone.
// Runs under the sysroot lock: no deploy can be importing meanwhile. Objects listed by a pull in
// progress or a staged download (composefs/downloads/*/keep, src/deploy/downloads.ts)
// are kept too: a pull registers its release under the lock before its first object arrives.

import {lstat, readdir, rm} from 'node:fs/promises'
import {join} from 'node:path'

import {DamageError, oneLine} from '../errors.js'
import {ObjectStore} from '../store/objects.js'
import {pruneLayerRecords} from '../store/layer-records.js'
import {objectPath} from '../tree/node.js'
import {fsyncDir} from '../util/fs.js'
import {Config} from './config.js'
import {downloadRoots} from './downloads.js'
import {removeEntry} from './entries.js'
import {loadImage, objectRefs} from '../image/load.js'
import {imagePath, isDigest, Paths} from './paths.js'
import {removeDeploymentDir} from './undeploy.js'
import {withLockedView} from './view.js'

export interface GcResult {
  dryRun: boolean
  deployments: {removed: string[]; kept: string[]}
  entries: number
  images: number
  kernels: number
  objects: number
  /** Layer records of container builds removed: they named a removed object (store/layer-records.ts). */
  layerRecords: number
  bytes: number
}

async function sizeOf(p: string): Promise<number> {
  try {
    const st = await lstat(p)
    if (!st.isDirectory()) return st.size
    let total = 0
    for (const name of await readdir(p)) total += await sizeOf(join(p, name))
    return total
  } catch {
    return 0
  }
}

async function listNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort()
  } catch {
    return []
  }
}

export async function gc(opts: {
  paths: Paths
  config: Config
  dryRun?: boolean
  lockTimeout?: number
}): Promise<GcResult> {
  const {paths} = opts
  const dryRun = opts.dryRun ?? false
  return withLockedView(opts, async (view) => {
    const kept = view.deployments.filter((d) => d.kept)
    const dropped = view.deployments.filter((d) => !d.kept)
    const result: GcResult = {
      dryRun,
      deployments: {
        removed: dropped.map((d) => d.deployment.digest),
        kept: kept.map((d) => d.deployment.digest),
      },
      entries: 0,
      images: 0,
      kernels: 0,
      objects: 0,
      layerRecords: 0,
      bytes: 0,
    }

    // Mark.
    const keptImages = new Set(kept.map((d) => d.deployment.digest))
    const keptKernels = new Set(kept.map((d) => d.deployment.kernel.dir.split('/').pop()!))
    const keptObjects = new Set<string>()
    for (const digest of keptImages) {
      // A kept image that cannot be read is damage; gc must then not guess what it needs.
      let img
      try {
        img = await loadImage(imagePath(paths, digest))
      } catch (err) {
        throw new DamageError(
          `kept deployment ${digest.slice(0, 12)}: its image is unreadable (${oneLine(err)}); run cfsboot fsck`,
        )
      }
      for (const r of objectRefs(img.root)) keptObjects.add(r.path)
    }
    for (const path of await downloadRoots(paths)) keptObjects.add(path)

    // Sweep: entries first (dropped deployments' and dangling ones), then deployment dirs.
    for (const e of [
      ...dropped.flatMap((d) => (d.entry ? [d.entry] : [])),
      ...view.danglingEntries,
      ...view.staleEntries,
    ]) {
      result.entries++
      if (!dryRun) await removeEntry(paths.entries, e)
    }
    if (!dryRun && result.entries) await fsyncDir(paths.entries)
    for (const d of dropped) {
      result.bytes += await sizeOf(join(paths.deployments, d.deployment.digest))
      if (!dryRun) await removeDeploymentDir(paths, d.deployment.digest)
    }
    for (const name of await listNames(paths.images)) {
      if (keptImages.has(name)) continue
      if (!isDigest(name) && !name.startsWith('.')) continue
      result.images++
      result.bytes += await sizeOf(join(paths.images, name))
      if (!dryRun) await rm(join(paths.images, name), {force: true})
    }
    for (const name of await listNames(paths.kernels)) {
      if (keptKernels.has(name)) continue
      result.kernels++
      result.bytes += await sizeOf(join(paths.kernels, name))
      if (!dryRun) await rm(join(paths.kernels, name), {recursive: true, force: true})
    }
    const store = new ObjectStore(paths.objects)
    for await (const digest of store.list()) {
      const path = objectPath(digest)
      if (keptObjects.has(path)) continue
      result.objects++
      result.bytes += await sizeOf(join(paths.objects, path))
      if (!dryRun) await rm(join(paths.objects, path), {force: true})
    }
    const records = await pruneLayerRecords(paths.objects, (path) => keptObjects.has(path), dryRun)
    result.layerRecords = records.records
    result.bytes += records.bytes
    if (!dryRun) {
      await store.cleanTemporary()
      await rm(paths.staging, {recursive: true, force: true})
    }
    return result
  })
}
