// Read-only operations on an image file, behind the `cfsboot image …` commands: its metadata,
// the objects it refers to and which of them an objects directory lacks (its dump: dump.ts).

import {stat} from 'node:fs/promises'

import {InvalidInputError} from '../errors.js'
import {listObjects} from '../format/erofs/reader.js'
import {absentObjects, loadImage, loadImageTree, objectRefs} from './load.js'

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

export async function imageInfo(path: string): Promise<ImageInfoResult> {
  const {bytes, digest, tree} = await loadImage(path)
  return {
    digest,
    entries: tree.inodeCount,
    size: bytes.length,
    referencedObjects: listObjects(tree).length,
    formatVersion: tree.info.composefsVersion,
  }
}

/** Object paths (relative to an objects directory) the image refers to, sorted and unique. */
export async function imageObjects(path: string): Promise<string[]> {
  return listObjects((await loadImageTree(path)).root)
}

/** The image's objects that `objectsDir` lacks (sorted; empty when the directory is complete). */
export async function missingObjects(path: string, objectsDir: string): Promise<string[]> {
  const st = await stat(objectsDir).catch(() => null)
  if (!st?.isDirectory()) throw new InvalidInputError(`objects directory ${objectsDir} does not exist`)
  const refs = objectRefs((await loadImageTree(path)).root)
  return (await absentObjects(refs, objectsDir)).map((r) => r.path)
}
