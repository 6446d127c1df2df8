// Reads a composefs image back into an FsNode tree: the inverse of writer.ts. The walk and all
// its checks are walk.ts's; this only builds the tree from what the walk reports.

import {cmpBytes, DIGEST_SIZE, FsNode, S_IFDIR} from '../../tree/node.js'
import {fsverityDigest} from '../../verity/merkle.js'
import {type ImageInfo} from './image-header.js'
import {type InodeView, type ReadOptions, walkImage} from './walk.js'

export {readImageInfo} from './image-header.js'
export type {ImageInfo} from './image-header.js'

export type {ReadOptions} from './walk.js'

export interface ImageTree {
  root: FsNode
  info: ImageInfo
  /** Distinct inodes in the tree as read (whiteouts that were skipped not counted). */
  inodeCount: number
  /** Names in the tree (the root and every hardlink name included). */
  entryCount: number
}

/** The fs-verity digest of the image file: what `cfsboot build` prints and mounts check. */
export function imageDigest(image: Buffer): Buffer {
  return fsverityDigest(image)
}

/** A tree node holding what the walk saw of one inode (its own copies of content and payload). */
function nodeOf(v: InodeView): FsNode {
  const node = new FsNode(v.mode)
  node.nlink = v.nlink
  node.uid = v.uid
  node.gid = v.gid
  node.rdev = v.rdev
  node.size = v.size
  node.mtimeSec = v.mtimeSec
  node.mtimeNsec = v.mtimeNsec
  if (v.payload) node.payload = v.payload.toString('latin1', v.payloadStart, v.payloadEnd)
  if (v.content) node.content = Buffer.from(v.content)
  if (v.digest) node.digest = Buffer.from(v.digest.subarray(v.digestStart, v.digestStart + DIGEST_SIZE))
  if (v.xattrs.length > 0) node.xattrs = [...v.xattrs]
  return node
}

/** Parses a composefs image into a tree. Throws InvalidInputError on anything malformed. */
export function readImage(image: Buffer, opts: ReadOptions = {}): ImageTree {
  const byNid = new Map<number, FsNode>()
  /** dirs[d]: the directory holding the entries at depth d + 1. */
  const dirs: FsNode[] = []
  let root: FsNode | undefined
  const {header, inodeCount, entryCount} = walkImage(
    image,
    {
      inode(nameStart, nameEnd, depth, v) {
        const node = nodeOf(v)
        byNid.set(v.nid, node)
        if (depth === 0) root = node
        else dirs[depth - 1]!.addChild(image.toString('latin1', nameStart, nameEnd), node)
        if (v.type === S_IFDIR) dirs[depth] = node
      },
      link(nameStart, nameEnd, depth, nid) {
        const link = new FsNode()
        link.linkTo = byNid.get(nid)!
        dirs[depth - 1]!.addChild(image.toString('latin1', nameStart, nameEnd), link)
      },
    },
    opts,
  )
  const {metaStart: _m, xattrStart: _x, ...info} = header
  return {root: root!, info, inodeCount, entryCount}
}

/**
 * The objects the image refers to: payloads (paths relative to the objects directory) of
 * regular files whose content is not in the image. Sorted in byte order, without duplicates.
 */
export function listObjects(tree: ImageTree | FsNode): string[] {
  const root = tree instanceof FsNode ? tree : tree.root
  const objects = new Set<string>()
  const stack: FsNode[] = [root]
  while (stack.length > 0) {
    const n = stack.pop()!
    if (n.isReg() && n.payload !== null && n.content === null) objects.add(n.payload)
    if (n.children) for (const c of n.children.values()) if (!c.linkTo) stack.push(c)
  }
  return [...objects].sort(cmpBytes)
}
