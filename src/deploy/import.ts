// Step 2 of a deploy: the objects an image needs into the store. Which ones the store lacks,
// where they come from (--objects), their digests checked before anything is imported (a
// wrong object must change nothing), then imported through the store (src/store/objects.ts),
// each recorded so that a failed deploy can take it back.

import {dirname, join} from 'node:path'

import {DamageError, DigestMismatchError} from '../errors.js'
import {absentObjects, ObjectRef} from '../image/load.js'
import {ObjectStore} from '../store/objects.js'
import {forEachLimit} from '../util/concurrency.js'
import {exists} from '../util/fs.js'
import {DigestPool} from '../verity/pool.js'

/** Progress of a phase ('verify', 'import'): `done` of `total` objects. */
export type Progress = (phase: string, done: number, total: number) => void

/** Above this many references, list the store once instead of probing each object. */
const LIST_STORE_THRESHOLD = 512

/** Objects the store lacks; each must be in the source dir with the right digest. */
export async function planImports(
  refs: ObjectRef[],
  store: ObjectStore,
  source: string | undefined,
  onProgress?: Progress,
): Promise<ObjectRef[]> {
  const missing: ObjectRef[] = []
  if (refs.length > LIST_STORE_THRESHOLD) {
    // One readdir per fan-out directory beats one lstat per object for large images.
    const present = new Set<string>()
    for await (const d of store.list()) present.add(d.toString('hex'))
    for (const r of refs) if (!present.has(r.digest.toString('hex'))) missing.push(r)
  } else {
    for (const r of refs) if (!(await store.has(r.digest))) missing.push(r)
  }
  if (missing.length === 0) return missing
  const absent = source ? (await absentObjects(missing, source)).map((r) => r.path) : []
  if (!source || absent.length) {
    const list = source ? absent : missing.map((r) => r.path)
    throw new DamageError(
      `${list.length} object(s) the image needs are not in the store${source ? ` nor in ${source}` : ' (pass --objects DIR)'}; first: ${list[0]}`,
    )
  }
  // Verify before importing anything: a wrong object must not change the system at all.
  const pool = new DigestPool()
  try {
    const digests = await pool.digestFiles(
      missing.map((r) => join(source, r.path)),
      (done) => onProgress?.('verify', done, missing.length),
    )
    missing.forEach((r, i) => {
      if (!digests[i]!.equals(r.digest)) {
        throw new DigestMismatchError(
          `object ${r.path} in ${source} has the wrong fs-verity digest (${digests[i]!.toString('hex')})`,
        )
      }
    })
  } finally {
    await pool.close()
  }
  return missing
}

/** Object imports in flight (forEachLimit waits for all of them before a failed deploy is undone). */
const IMPORT_CONCURRENCY = 4

/**
 * Imports objects: a hardlink when the source is on the same filesystem, else a copy. Every object
 * added is recorded in `added` (as soon as it has its name) so a failed deploy can take it back.
 */
export async function importObjects(
  missing: ObjectRef[],
  store: ObjectStore,
  source: string,
  added: string[],
  onProgress?: Progress,
): Promise<number> {
  let bytes = 0
  let done = 0
  // Fan-out dirs this import creates are taken back with it on failure (recorded before their
  // objects, so the undo, newest first, empties them first).
  for (const fanout of new Set(missing.map((r) => dirname(store.path(r.digest))))) {
    if (!(await exists(fanout))) added.push(fanout)
  }
  await forEachLimit(missing, IMPORT_CONCURRENCY, async (r) => {
    await store.importFile(join(source, r.path), r.digest, {link: true})
    added.push(store.path(r.digest))
    bytes += r.size
    onProgress?.('import', ++done, missing.length)
  })
  // The objects' names must be durable before anything refers to them.
  await store.flush()
  return bytes
}
