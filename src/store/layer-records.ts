// Layer records: what a container build keeps inside an objects directory about the layers it
// has imported, so a second build (or another image sharing a base layer) does not read a layer
// again. One small file per layer, named by its diff ID:
//
//   OBJECTS/.layers/<diff ID hex>.json     {"version":1,"diffId":…,"entries":[…]}
//
// The entries are the layer's, as src/oci/cache.ts stores them; file contents are referred to
// by object digest (`digest`, hex). The diff ID is the sha256 of the whole uncompressed layer,
// so a record stands for exactly one layer content, whatever its compression or the registry it
// came from. The dot keeps the directory out of the objects listing, and overlayfs never looks
// at it. This module owns the files (where, which version, how written, when removed); what an
// entry holds is the importer's.

import {mkdir, readdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'

import {objectPath} from '../tree/node.js'
import {isDigest} from '../util/digest.js'
import {writeFileAtomic} from '../util/fs.js'

export const LAYER_CACHE_DIR = '.layers'
const VERSION = 1

/** An entry as a record stores it: whatever the importer keeps, and the object it names. */
export interface RecordEntry {
  digest?: string
}

const recordPath = (objectsDir: string, diffId: string): string =>
  join(objectsDir, LAYER_CACHE_DIR, `${diffId.replace(/^sha256:/, '')}.json`)

/** A record's diff ID and entries, or null when it is not one this version can read. */
function parseRecord(text: string): {diffId: unknown; entries: unknown[]} | null {
  let rec: {version?: unknown; diffId?: unknown; entries?: unknown}
  try {
    rec = JSON.parse(text) as typeof rec
  } catch {
    return null
  }
  if (rec.version !== VERSION || !Array.isArray(rec.entries)) return null
  return {diffId: rec.diffId, entries: rec.entries}
}

/** The entries recorded for the layer `diffId`, or null (absent, unreadable, another version). */
export async function readLayerRecord<E extends RecordEntry>(
  objectsDir: string,
  diffId: string,
): Promise<E[] | null> {
  let text: string
  try {
    text = await readFile(recordPath(objectsDir, diffId), 'latin1')
  } catch {
    return null
  }
  const rec = parseRecord(text)
  return rec && rec.diffId === diffId ? (rec.entries as E[]) : null
}

/** Writes (atomically) the record of layer `diffId`; only once the objects it names are committed. */
export async function writeLayerRecord(
  objectsDir: string,
  diffId: string,
  entries: RecordEntry[],
): Promise<void> {
  await mkdir(join(objectsDir, LAYER_CACHE_DIR), {recursive: true, mode: 0o755})
  // Names are byte strings: latin1 keeps every byte as one character, both ways.
  const text = JSON.stringify({version: VERSION, diffId, entries})
  await writeFileAtomic(recordPath(objectsDir, diffId), Buffer.from(text, 'latin1'))
}

/**
 * For `cfsboot gc`: removes (with `dryRun`, only counts) the records that name an object
 * `isKept` says is going, given its path in the objects directory ("ab/cdef…"), and those that
 * cannot be read (readLayerRecord ignores them). Such a record could only send the next build
 * back to its layer, and the record of a large layer takes megabytes. Returns how many records
 * and their bytes.
 */
export async function pruneLayerRecords(
  objectsDir: string,
  isKept: (objectPath: string) => boolean,
  dryRun: boolean,
): Promise<{records: number; bytes: number}> {
  const dir = join(objectsDir, LAYER_CACHE_DIR)
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return {records: 0, bytes: 0}
  }
  let records = 0
  let bytes = 0
  for (const name of names.sort()) {
    if (!name.endsWith('.json')) continue // a writer's temporary file: not ours to judge
    const path = join(dir, name)
    let text: Buffer
    try {
      text = await readFile(path)
    } catch {
      continue // gone meanwhile
    }
    if (namesOnlyKept(text, isKept)) continue
    records++
    bytes += text.length
    if (!dryRun) await rm(path, {force: true})
  }
  return {records, bytes}
}

function namesOnlyKept(text: Buffer, isKept: (objectPath: string) => boolean): boolean {
  const rec = parseRecord(text.toString('latin1'))
  if (!rec) return false
  for (const e of rec.entries as (RecordEntry | null)[]) {
    if (typeof e !== 'object' || e === null) return false
    if (e.digest === undefined) continue
    if (typeof e.digest !== 'string' || !isDigest(e.digest)) return false
    if (!isKept(objectPath(Buffer.from(e.digest, 'hex')))) return false
  }
  return true
}
