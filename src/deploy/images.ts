// Loading an image file for the deployment verbs: its bytes, its fs-verity digest and its tree,
// plus the objects it references (the GC marks these).

import {readFile, stat} from 'node:fs/promises'

import {InvalidInputError} from '../errors.js'
import {readImage} from '../format/erofs/reader.js'
import {FsNode, walk} from '../tree/node.js'
import {fsverityDigest} from '../verity/merkle.js'

/** Images hold metadata only; anything this large is not one. */
export const MAX_IMAGE_SIZE = 1 << 30

export interface LoadedImage {
  bytes: Buffer
  digest: string
  root: FsNode
}

export interface ObjectRef {
  /** "xx/yyyy…" */
  path: string
  digest: Buffer
  size: number
}

export async function loadImage(path: string): Promise<LoadedImage> {
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new InvalidInputError(`${path}: no such image file`)
    throw err
  })
  if (!st.isFile()) throw new InvalidInputError(`${path}: not an image file`)
  if (st.size > MAX_IMAGE_SIZE)
    throw new InvalidInputError(`${path}: too large for a composefs image (${st.size} bytes)`)
  const bytes = await readFile(path)
  return {bytes, digest: fsverityDigest(bytes).toString('hex'), root: readImage(bytes).root}
}

/** Every object the tree references, once each. */
export function referencedObjects(root: FsNode): ObjectRef[] {
  const refs = new Map<string, ObjectRef>()
  for (const n of walk(root)) {
    if (n.linkTo || !n.isReg() || n.content || !n.payload || n.size === 0) continue
    if (!refs.has(n.payload))
      refs.set(n.payload, {path: n.payload, digest: n.digest ?? Buffer.alloc(0), size: n.size})
  }
  return [...refs.values()]
}
