// The one loader of image files, for every command that reads one (image …, mount's callers,
// deploy, install, gc, fsck), and the one answer to "which objects does it need, and which of
// them does a directory lack". Images are untrusted input:
//   - the file is capped at MAX_IMAGE_BYTES before it is read (image-file.ts);
//   - the reader (src/format/erofs/reader.ts) bounds-checks the rest;
//   - a file's redirect and its metacopy digest must name the same object (the walk checks it);
//   - before any object is looked up on disk, its path must be a content address (objectRefs):
//     no "..", no absolute paths, nothing else a hostile image could make us probe or copy.

import {stat} from 'node:fs/promises'
import {join} from 'node:path'

import {InvalidInputError} from '../errors.js'
import {imageDigest, listObjects, readImage} from '../format/erofs/reader.js'
import type {ImageTree, ReadOptions} from '../format/erofs/reader.js'
import {FsNode, isObjectPath, walk} from '../tree/node.js'
import {forEachLimit} from '../util/concurrency.js'
import {loadImageFile} from './image-file.js'

export {MAX_IMAGE_BYTES} from './image-file.js'

/** Concurrent stat calls while looking for missing objects. */
const STAT_CONCURRENCY = 64

export interface LoadedImage {
  bytes: Buffer
  /** fs-verity digest of the image file (hex). */
  digest: string
  tree: ImageTree
  root: FsNode
}

export interface ObjectRef {
  /** "xx/yyyy…", relative to an objects directory. */
  path: string
  /** The fs-verity digest the path names. */
  digest: Buffer
  size: number
}

/** The digest an object path names, or null when the path is not a content address. */
function digestOfPath(path: string): Buffer | null {
  return isObjectPath(path) ? Buffer.from(path.replace('/', ''), 'hex') : null
}

/**
 * Loads, parses and checks an image file, without its fs-verity digest (hashing the whole
 * image is most of what `image dump` would otherwise spend besides parsing).
 */
export async function loadImageTree(
  path: string,
  opts: ReadOptions = {},
): Promise<Omit<LoadedImage, 'digest'>> {
  const bytes = await loadImageFile(path)
  const tree = readImage(bytes, opts)
  return {bytes, tree, root: tree.root}
}

/** Loads, parses and checks an image file. */
export async function loadImage(path: string, opts: ReadOptions = {}): Promise<LoadedImage> {
  const loaded = await loadImageTree(path, opts)
  return {...loaded, digest: imageDigest(loaded.bytes).toString('hex')}
}

/**
 * Every object the tree references (the reader's listObjects), once each, with the size the
 * image gives it. Refuses an object path that is not a content address.
 */
export function objectRefs(root: FsNode): ObjectRef[] {
  const sizes = new Map<string, number>()
  for (const n of walk(root))
    if (n.isReg() && n.payload !== null && !sizes.has(n.payload)) sizes.set(n.payload, n.size)
  return listObjects(root).map((path) => {
    const digest = digestOfPath(path)
    if (!digest) {
      throw new InvalidInputError(
        `image references ${JSON.stringify(path)}, which is not an object path (xx/yyyy…)`,
      )
    }
    return {path, digest, size: sizes.get(path) ?? 0}
  })
}

/**
 * The objects `dir` lacks: not a regular file there, or (with `checkSize`) not of the size the
 * image says. In the order of `refs`.
 */
export async function absentObjects(
  refs: readonly ObjectRef[],
  dir: string,
  opts: {checkSize?: boolean} = {},
): Promise<ObjectRef[]> {
  const absent = new Set<ObjectRef>()
  await forEachLimit(refs, STAT_CONCURRENCY, async (r) => {
    const st = await stat(join(dir, r.path)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null
      throw err
    })
    if (!st?.isFile() || (opts.checkSize && st.size !== r.size)) absent.add(r)
  })
  return refs.filter((r) => absent.has(r))
}
