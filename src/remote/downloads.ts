// Where pulls keep their state on the device, and the rule that protects it from gc.
//
//   SYSROOT/composefs/downloads/
//     <image digest>/
//       release.json   the verified signed index; written under the sysroot lock before any
//                      object of the pull enters the store. gc keeps every object it lists.
//       image          the release's image (its fs-verity digest checked), image.part before
//       parts/<hex>    object downloads in progress: resumed with HTTP Range after a kill -9,
//                      moved into the store (ObjectStore.adoptVerified) once their digest matches
//       complete       every object is in the store: `upgrade --from-downloaded` deploys it
//
// A pull killed at any moment leaves only verified objects in the store (each entered by one
// link(2) after its digest was checked) and this directory, which the next pull resumes. A pull
// of another release removes older download directories (under the lock); a deploy of the
// download removes its own.

import {readdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'

import {isDigest, Paths} from '../deploy/paths.js'
import {localPayload} from './index.js'

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
 * A release.json that cannot be read protects nothing (it was never completely written).
 */
export async function downloadRoots(p: Paths): Promise<Set<string>> {
  const keep = new Set<string>()
  for (const d of await listDownloads(p)) {
    try {
      const r = localPayload(await readFile(join(downloadDir(p, d), 'release.json')))
      for (const o of r.objects) keep.add(`${o.digest.slice(0, 2)}/${o.digest.slice(2)}`)
    } catch {
      continue
    }
  }
  return keep
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
