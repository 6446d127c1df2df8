// Where pulls keep their state on the device, and the rule that protects it from gc.
//
//   SYSROOT/composefs/downloads/
//     <image digest>/
//       keep           the objects this download needs, one digest a line: gc keeps them
//       release.json   the verified signed index; both written under the sysroot lock before any
//                      object of the pull enters the store (src/deploy/downloads.ts registerDownload)
//       image          the release's image (its fs-verity digest checked), image.part before
//       parts/<hex>    object downloads in progress: resumed with HTTP Range after a kill -9,
//                      moved into the store (ObjectStore.adoptVerifiedBatch) once their digest matches
//       complete       every object is in the store: `upgrade --from-downloaded` deploys it
//
// A pull killed at any moment leaves only verified objects in the store (each entered by one
// link(2) after its digest was checked) and this directory, which the next pull resumes. A pull
// of another release removes older download directories (under the lock); a deploy of the
// download removes its own.

import {mkdir, readdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'

import {writeFileAtomic} from '../util/fs.js'
import {isDigest, Paths} from './paths.js'

/**
 * The objects a download will need, one hex digest a line: gc's roots. Written (atomically,
 * under the lock) before release.json, so a download that has a release.json is protected.
 * Plain text so gc needs no parser of the signed index (src/remote/index.ts owns that format).
 */
const KEEP_FILE = 'keep'

export const downloadsDir = (p: Paths): string => join(p.composefs, 'downloads')
export const downloadDir = (p: Paths, digest: string): string => join(downloadsDir(p), digest)

export async function listDownloads(p: Paths): Promise<string[]> {
  try {
    return (await readdir(downloadsDir(p))).filter(isDigest).sort()
  } catch {
    return []
  }
}

/**
 * Object paths (xx/yyyy…) that pulls in progress or staged downloads will need: gc's extra roots.
 * A download without its keep file protects nothing (it was never completely registered).
 */
export async function downloadRoots(p: Paths): Promise<Set<string>> {
  const keep = new Set<string>()
  for (const d of await listDownloads(p)) {
    try {
      const text = await readFile(join(downloadDir(p, d), KEEP_FILE), 'latin1')
      for (const digest of text.split('\n'))
        if (isDigest(digest)) keep.add(`${digest.slice(0, 2)}/${digest.slice(2)}`)
    } catch {
      continue
    }
  }
  return keep
}

/**
 * Registers a download before any of its objects may enter the store: its parts directory, the
 * objects gc must keep, and the verified signed index. The caller holds the lock.
 */
export async function registerDownload(
  p: Paths,
  digest: string,
  envelope: Buffer,
  objects: readonly string[],
): Promise<string> {
  const dir = downloadDir(p, digest)
  await mkdir(join(dir, 'parts'), {recursive: true})
  await writeFileAtomic(join(dir, KEEP_FILE), Buffer.from(objects.map((o) => o + '\n').join(''), 'latin1'))
  await writeFileAtomic(join(dir, 'release.json'), envelope)
  return dir
}

/** Removes download directories other than `except` (caller holds the lock). */
export async function removeDownloads(p: Paths, except?: string): Promise<string[]> {
  const removed: string[] = []
  for (const d of await listDownloads(p)) {
    if (d === except) continue
    await rm(downloadDir(p, d), {recursive: true, force: true})
    removed.push(d)
  }
  return removed
}
