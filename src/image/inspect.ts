// Read-only operations on an image file, behind the `cfsboot image …` commands: its metadata,
// its dump, the objects it refers to and which of them an objects directory lacks.

import {readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {InvalidInputError} from '../errors.js'
import {writeDump} from '../format/dump/write.js'
import {imageDigest, listObjects, readImage} from '../format/erofs/reader.js'
import type {ImageTree, ReadOptions} from '../format/erofs/reader.js'
import {forEachLimit} from '../util/concurrency.js'

/** Largest image file we load (a composefs image holds only metadata: 1 GiB is millions of files). */
export const MAX_IMAGE_BYTES = 1 << 30

/** Concurrent stat calls while looking for missing objects. */
const STAT_CONCURRENCY = 64

/** The result of `cfsboot image info --json` (schema: docs/schemas/image-info.json). */
export interface ImageInfoResult {
  /** fs-verity digest of the image file (hex). */
  digest: string
  /** Distinct inodes in the tree (the root included, composefs's internal whiteouts not). */
  entries: number
  /** Image file size in bytes. */
  size: number
  /** Distinct objects the image refers to. */
  referencedObjects: number
  /** composefs format version of the image (0 or 1). */
  formatVersion: number
}

const NOT_AN_IMAGE_FILE = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP'])

/** Reads an image file, refusing what cannot be an image before reading it. */
export async function loadImageFile(path: string): Promise<Buffer> {
  try {
    const st = await stat(path)
    if (!st.isFile()) throw new InvalidInputError(`image: ${path} is not a regular file`)
    if (st.size > MAX_IMAGE_BYTES) {
      throw new InvalidInputError(
        `image: ${path} is ${st.size} bytes, over the ${MAX_IMAGE_BYTES}-byte limit`,
      )
    }
    return await readFile(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code && NOT_AN_IMAGE_FILE.has(code))
      throw new InvalidInputError(`image: cannot read ${path} (${code})`)
    throw err
  }
}

export async function loadImageTree(path: string, opts: ReadOptions = {}): Promise<ImageTree> {
  return readImage(await loadImageFile(path), opts)
}

export async function imageInfo(path: string): Promise<ImageInfoResult> {
  const image = await loadImageFile(path)
  const tree = readImage(image)
  return {
    digest: imageDigest(image).toString('hex'),
    entries: tree.inodeCount,
    size: image.length,
    referencedObjects: listObjects(tree).length,
    formatVersion: tree.info.composefsVersion,
  }
}

/**
 * Writes the image's composefs-dump text through `out`, line by line, exactly as upstream's
 * `composefs-info dump` prints it (xattrs in the order the image stores them).
 */
export async function dumpImage(path: string, out: (line: string) => void): Promise<void> {
  const tree = await loadImageTree(path)
  writeDump(tree.root, out, {xattrOrder: 'tree'})
}

/** Object paths (relative to an objects directory) the image refers to, sorted and unique. */
export async function imageObjects(path: string): Promise<string[]> {
  return listObjects(await loadImageTree(path))
}

/**
 * An object path from an image must stay inside the objects directory: relative, no empty,
 * "." or ".." components. (A hostile image could otherwise make us probe arbitrary paths.)
 */
function checkObjectPath(p: string): void {
  const parts = p.split('/')
  if (p.length === 0 || parts.some((c) => c === '' || c === '.' || c === '..')) {
    throw new InvalidInputError(`image: unsafe object path ${JSON.stringify(p)}`)
  }
}

/** The object's file as a byte path (object paths are byte strings, not necessarily UTF-8). */
function objectFile(objectsDir: string, object: string): Buffer {
  return Buffer.concat([Buffer.from(join(objectsDir, '/')), Buffer.from(object, 'latin1')])
}

async function isPresent(file: Buffer): Promise<boolean> {
  try {
    return (await stat(file)).isFile()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return false
    throw err
  }
}

/** The image's objects that `objectsDir` lacks (sorted; empty when the directory is complete). */
export async function missingObjects(path: string, objectsDir: string): Promise<string[]> {
  const st = await stat(objectsDir).catch(() => null)
  if (!st?.isDirectory()) throw new InvalidInputError(`objects directory ${objectsDir} does not exist`)
  const objects = await imageObjects(path)
  for (const o of objects) checkObjectPath(o)
  const present = new Array<boolean>(objects.length)
  const indices = objects.map((_, i) => i)
  await forEachLimit(indices, STAT_CONCURRENCY, async (i) => {
    present[i] = await isPresent(objectFile(objectsDir, objects[i]!))
  })
  const missing = objects.filter((_, i) => !present[i])
  return missing
}
