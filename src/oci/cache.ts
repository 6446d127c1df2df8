// Layers already imported, by diff ID: a record per layer kept inside the objects directory
// (src/store/layer-records.ts owns the files), so a second build (or another image sharing a
// base layer) does not read the layer again. A record lists the layer's entries as the tree
// assembly applies them; file contents are referred to by object digest (small inlined files are
// kept in the record). A record is written only after the layer's objects were committed, and it
// is used only when every object it names is still in the store (a gc removes the records that
// name an object it removes, but a store may be shared or edited by hand); otherwise the layer is
// read again.

import {ObjectStore} from '../store/objects.js'
import {readLayerRecord, writeLayerRecord} from '../store/layer-records.js'
import {forEachLimit} from '../util/concurrency.js'
import type {LayerEntry} from './layers.js'

interface StoredEntry extends Omit<LayerEntry, 'content' | 'xattrs'> {
  content?: string
  xattrs: [string, string][]
}

export async function loadLayerRecord(store: ObjectStore, diffId: string): Promise<LayerEntry[] | null> {
  const stored = await readLayerRecord<StoredEntry>(store.dir, diffId)
  if (!stored) return null // absent or unreadable: read the layer
  let entries: LayerEntry[]
  try {
    entries = stored.map(({content, xattrs, ...e}): LayerEntry => ({
      ...e,
      ...(content !== undefined && {content: Buffer.from(content, 'base64')}),
      xattrs: xattrs.map(([key, v]) => ({key, value: Buffer.from(v, 'base64')})),
    }))
  } catch {
    return null
  }
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
  await writeLayerRecord(store.dir, diffId, stored)
}
