// Read-only operations on an image file, behind the `cfsboot image …` commands: its metadata,
// its dump, the objects it refers to and which of them an objects directory lacks.

import {stat} from 'node:fs/promises'

import {InvalidInputError} from '../errors.js'
import {checkedImageDump} from '../format/dump/image.js'
import {listObjects} from '../format/erofs/reader.js'
import {absentObjects, loadImage, loadImageFile, loadImageTree, objectRefs} from './load.js'

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

/**
 * Reads and checks the image, then returns the function that prints its composefs-dump text
 * exactly as upstream's `composefs-info dump` does, through `drain` a buffer at a time. A broken
 * image throws here, before anything is printed.
 */
export async function imageDump(path: string): Promise<(drain: (bytes: Buffer) => void) => void> {
  return checkedImageDump(await loadImageFile(path))
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
