// Layers already imported, by diff ID: a small record per layer kept inside the objects
// directory, so a second build (or another image sharing a base layer) does not read the
// layer again.
//
//   OBJECTS/.layers/<diff ID hex>.json     {"version":1,"diffId":…,"entries":[…]}
//
// A record lists the layer's entries as the tree assembly applies them; file contents are
// referred to by object digest (small inlined files are kept in the record). The diff ID is the
// sha256 of the whole uncompressed layer, so a record stands for exactly one layer content,
// whatever its compression or the registry it came from. A record is written (atomically) only
// after the layer's objects were committed, and it is used only when every object it names is
// still in the store (a gc may have removed some); otherwise the layer is read again. The dot
// keeps the directory out of the objects listing, and overlayfs never looks at it.

import {mkdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {ObjectStore} from '../store/objects.js'
import {forEachLimit} from '../util/concurrency.js'
import {writeFileAtomic} from '../util/fs.js'
import type {LayerEntry} from './layers.js'

export const LAYER_CACHE_DIR = '.layers'
const VERSION = 1

interface StoredEntry extends Omit<LayerEntry, 'content' | 'xattrs'> {
  content?: string
  xattrs: [string, string][]
}

const recordPath = (objects: string, diffId: string): string =>
  join(objects, LAYER_CACHE_DIR, `${diffId.replace(/^sha256:/, '')}.json`)

export async function loadLayerRecord(store: ObjectStore, diffId: string): Promise<LayerEntry[] | null> {
  let rec: {version?: unknown; diffId?: unknown; entries?: StoredEntry[]}
  try {
    rec = JSON.parse(await readFile(recordPath(store.dir, diffId), 'latin1')) as typeof rec
  } catch {
    return null // absent or unreadable: read the layer
  }
  if (rec.version !== VERSION || rec.diffId !== diffId || !Array.isArray(rec.entries)) return null
  const entries = rec.entries.map(({content, xattrs, ...e}): LayerEntry => ({
    ...e,
    ...(content !== undefined && {content: Buffer.from(content, 'base64')}),
    xattrs: xattrs.map(([key, v]) => ({key, value: Buffer.from(v, 'base64')})),
  }))
  const digests = [...new Set(entries.flatMap((e) => (e.digest ? [e.digest] : [])))]
  let missing = false
  await forEachLimit(digests, 16, async (d) => {
    if (!missing && !(await store.has(Buffer.from(d, 'hex')))) missing = true
  })
  return missing ? null : entries
}

export async function saveLayerRecord(
  store: ObjectStore,
  diffId: string,
  entries: LayerEntry[],
): Promise<void> {
  const stored: StoredEntry[] = entries.map(({content, xattrs, ...e}) => ({
    ...e,
    ...(content && {content: content.toString('base64')}),
    xattrs: xattrs.map((x) => [x.key, x.value.toString('base64')]),
  }))
  await mkdir(join(store.dir, LAYER_CACHE_DIR), {recursive: true, mode: 0o755})
  // Names are byte strings: latin1 keeps every byte as one character, both ways.
  const text = JSON.stringify({version: VERSION, diffId, entries: stored})
  await writeFileAtomic(recordPath(store.dir, diffId), Buffer.from(text, 'latin1'))
}
