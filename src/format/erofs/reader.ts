// Reads a composefs image back into an FsNode tree: the inverse of writer.ts, with the same
// rules as upstream's lcfs_load_node_from_image (the overlayfs xattrs become payloads and
// digests again, escaped `trusted.overlay.overlay.*` xattrs are unescaped, the 00..ff root
// whiteouts and composefs's whiteout bookkeeping disappear, a nid seen twice is a hardlink).
//
// Images may be hostile (downloaded, or on a disk someone else could write). So every offset
// and length is checked against the buffer before it is read, nothing is allocated from a size
// the image claims without a cap, directories are walked iteratively with a depth cap, a
// directory reachable twice (a cycle or a directory hardlink) is refused, and all counts have
// the limits below. Every violation is an InvalidInputError with one line:
// `image: <what> at nid N`.

import {
  byteString,
  cmpBytes,
  FsNode,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
} from '../../tree/node.js'
import {fsverityDigest} from '../../verity/merkle.js'
import {fail, ImageBuffer, type ImageHeader, type ImageInfo, parseHeader} from './image-header.js'
import {
  BLOCK_SIZE,
  Compact,
  COMPACT_INODE_SIZE,
  Extended,
  EXTENDED_INODE_SIZE,
  I_DATALAYOUT_BIT,
  I_VERSION_BIT,
  Layout,
  ReaderDefaults,
  type ReaderLimits,
  SLOT_BITS,
  SUPER_OFFSET,
  SUPER_SIZE,
  XATTR_ENTRY_SIZE,
  XATTR_IBODY_HEADER_SIZE,
} from './layout.js'
import {DataLocator, type DirEntry, noNul, readDirectory} from './read-data.js'
import {XattrReader} from './read-xattrs.js'

export {readImageInfo} from './image-header.js'
export type {ImageInfo} from './image-header.js'

export type {ReaderLimits} from './layout.js'

/** The reader's default limits (their values and reasons are in layout.ts). */
export const DEFAULT_READER_LIMITS: Readonly<ReaderLimits> = ReaderDefaults

export interface ReadOptions {
  limits?: Partial<ReaderLimits>
}

export interface ImageTree {
  root: FsNode
  info: ImageInfo
  /** Distinct inodes in the tree as read (whiteouts that were skipped not counted). */
  inodeCount: number
  /** Names in the tree (the root and every hardlink name included). */
  entryCount: number
}

const DATALAYOUT_MASK = 0x7
const VALID_TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFBLK, S_IFCHR, S_IFSOCK, S_IFIFO])

/** The fs-verity digest of the image file: what `cfsboot build` prints and mounts check. */
export function imageDigest(image: Buffer): Buffer {
  return fsverityDigest(image)
}

/** What one inode holds, before it is placed in the tree. */
interface ParsedInode {
  node: FsNode
  /** Directory entries, in on-disk order (directories only). */
  entries: DirEntry[] | null
  /** A real overlay whiteout (char device 0:0): composefs's own, skipped like upstream. */
  whiteout: boolean
}

class Reader {
  private readonly img: ImageBuffer
  private readonly limits: ReaderLimits
  private readonly info: ImageHeader
  /** First node read for each nid: later names for it become hardlinks. */
  private readonly byNid = new Map<number, FsNode>()
  private readonly whiteoutNids = new Set<number>()
  /** Directories on the path currently being walked (to tell a cycle from a second name). */
  private readonly walking = new Set<number>()
  private entries = 0
  private readonly xattrReader: XattrReader
  /**
   * Bytes of directory blocks, file content and symlink targets read so far. A valid image
   * stores each of these once, so more than the image size means inodes share data blocks,
   * which would let a small image expand into a huge tree.
   */
  private dataRead = 0

  constructor(image: Buffer, opts: ReadOptions) {
    this.img = new ImageBuffer(image)
    this.limits = {...DEFAULT_READER_LIMITS, ...opts.limits}
    this.info = parseHeader(this.img)
    this.xattrReader = new XattrReader(this.img, this.limits, this.info.xattrStart)
  }

  read(): ImageTree {
    const rootNid = this.info.rootNid
    const root = this.parseInode(rootNid)
    if (root.whiteout || !root.node.isDir() || !root.entries) fail('the root is not a directory', rootNid)
    this.byNid.set(rootNid, root.node)
    this.entries = 1

    // Depth-first in on-disk (name) order, as upstream reads: the first name met for a
    // hardlinked inode is the one that holds it, later names link to it.
    interface Frame {
      dir: FsNode
      nid: number
      parentNid: number
      entries: DirEntry[]
      next: number
    }
    const stack: Frame[] = [
      {dir: root.node, nid: rootNid, parentNid: rootNid, entries: root.entries, next: 0},
    ]
    this.walking.add(rootNid)
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!
      if (frame.next >= frame.entries.length) {
        this.walking.delete(frame.nid)
        stack.pop()
        continue
      }
      const {name, nid} = frame.entries[frame.next++]!
      if (name === '.') {
        if (nid !== frame.nid) fail(`"." does not point to its directory`, frame.nid)
        continue
      }
      if (name === '..') {
        if (nid !== frame.parentNid) fail(`".." does not point to the parent directory`, frame.nid)
        continue
      }
      if (this.whiteoutNids.has(nid)) continue

      const seen = this.byNid.get(nid)
      if (seen) {
        if (seen.isDir()) {
          fail(this.walking.has(nid) ? 'directory cycle' : 'directory with more than one name', nid)
        }
        this.countEntry(nid)
        const link = new FsNode()
        link.linkTo = seen
        frame.dir.addChild(name, link)
        continue
      }

      const child = this.parseInode(nid)
      if (child.whiteout) {
        this.whiteoutNids.add(nid)
        continue
      }
      this.countEntry(nid)
      if (this.byNid.size >= this.limits.maxInodes) fail(`more than ${this.limits.maxInodes} inodes`, nid)
      this.byNid.set(nid, child.node)
      frame.dir.addChild(name, child.node)
      if (child.entries) {
        if (stack.length >= this.limits.maxDepth)
          fail(`directories nested deeper than ${this.limits.maxDepth}`, nid)
        this.walking.add(nid)
        stack.push({dir: child.node, nid, parentNid: frame.nid, entries: child.entries, next: 0})
      }
    }

    const {metaStart: _m, xattrStart: _x, ...info} = this.info
    return {root: root.node, info, inodeCount: this.byNid.size, entryCount: this.entries}
  }

  private countEntry(nid: number): void {
    if (++this.entries > this.limits.maxEntries) fail(`more than ${this.limits.maxEntries} entries`, nid)
  }

  /** Counts data bytes against the image size (see `dataRead`). */
  private countData(nid: number, len: number): void {
    this.dataRead += len
    if (this.dataRead > this.img.length) fail('data blocks shared between inodes', nid)
  }

  /** Byte offset of an inode; the whole fixed part must lie inside the image, after the superblock. */
  private inodeOffset(nid: number): number {
    const off = this.info.metaStart + nid * 2 ** SLOT_BITS
    if (off < SUPER_OFFSET + SUPER_SIZE) fail('inode overlaps the header or superblock', nid)
    this.img.need(off, COMPACT_INODE_SIZE, 'inode', nid)
    return off
  }

  private parseInode(nid: number): ParsedInode {
    const img = this.img
    const off = this.inodeOffset(nid)
    const format = img.u16(off, 'inode', nid)
    const extended = ((format >> I_VERSION_BIT) & 1) === 1
    const layout = (format >> I_DATALAYOUT_BIT) & DATALAYOUT_MASK
    const node = new FsNode()
    let size: number
    let u: number
    let xattrIcount: number
    let isize: number
    if (extended) {
      isize = EXTENDED_INODE_SIZE
      img.need(off, isize, 'extended inode', nid)
      xattrIcount = img.u16(off + Extended.xattrIcount, 'inode', nid)
      node.mode = img.u16(off + Extended.mode, 'inode', nid)
      size = img.u64(off + Extended.size, 'inode size', nid)
      u = img.u32(off + Extended.u, 'inode', nid)
      node.uid = img.u32(off + Extended.uid, 'inode', nid)
      node.gid = img.u32(off + Extended.gid, 'inode', nid)
      node.mtimeSec = img.i64(off + Extended.mtime, 'inode mtime', nid)
      node.mtimeNsec = img.u32(off + Extended.mtimeNsec, 'inode', nid)
      node.nlink = img.u32(off + Extended.nlink, 'inode', nid)
    } else {
      isize = COMPACT_INODE_SIZE
      xattrIcount = img.u16(off + Compact.xattrIcount, 'inode', nid)
      node.mode = img.u16(off + Compact.mode, 'inode', nid)
      node.nlink = img.u16(off + Compact.nlink, 'inode', nid)
      size = img.u32(off + Compact.size, 'inode', nid)
      u = img.u32(off + Compact.u, 'inode', nid)
      node.uid = img.u16(off + Compact.uid, 'inode', nid)
      node.gid = img.u16(off + Compact.gid, 'inode', nid)
      node.mtimeSec = this.info.buildTimeSec
      node.mtimeNsec = this.info.buildTimeNsec
    }
    const type = node.mode & S_IFMT
    if (!VALID_TYPES.has(type)) fail(`invalid file mode 0${node.mode.toString(8)}`, nid)
    if (type === S_IFDIR) node.children = new Map()
    if (type === S_IFCHR || type === S_IFBLK) node.rdev = u
    if (size > this.limits.maxFileSize) fail(`file size ${size} too large`, nid)
    node.size = size

    // Composefs's own whiteouts (the 00..ff entries of the root): not part of the tree.
    if (type === S_IFCHR && node.rdev === 0) return {node, entries: null, whiteout: true}

    const xattrSize = xattrIcount === 0 ? 0 : XATTR_IBODY_HEADER_SIZE + (xattrIcount - 1) * XATTR_ENTRY_SIZE
    img.need(off, isize + xattrSize, 'inode xattrs', nid)
    const tailOff = off + isize + xattrSize

    if (layout !== Layout.flatPlain && layout !== Layout.flatInline && layout !== Layout.chunkBased) {
      fail(`unsupported data layout ${layout}`, nid)
    }
    const dataOff = u * BLOCK_SIZE
    const data = new DataLocator(img, nid, size, layout, dataOff, tailOff)

    let entries: DirEntry[] | null = null
    if (type === S_IFDIR) {
      if (layout === Layout.chunkBased) fail('chunk-based directory', nid)
      this.countData(nid, size)
      entries = readDirectory(this.img, nid, data, this.limits.maxNameLength)
    } else if (type === S_IFLNK) {
      if (layout === Layout.chunkBased) fail('chunk-based symlink', nid)
      if (size > this.limits.maxSymlinkLength)
        fail(`symlink target longer than ${this.limits.maxSymlinkLength}`, nid)
      this.countData(nid, size)
      node.payload = noNul(byteString(data.read('symlink target')), 'symlink target', nid)
    } else if (type === S_IFREG && size > 0) {
      if (layout === Layout.chunkBased) {
        // Content lives in an object; the chunk map holds only null addresses (not read).
      } else {
        if (size > this.limits.maxInlineContent)
          fail(`inline content of ${size} bytes is over the limit`, nid)
        this.countData(nid, size)
        node.content = data.read('file content')
      }
    }

    if (xattrIcount > 0) this.xattrReader.read(node, nid, off + isize, xattrSize)
    return {node, entries, whiteout: false}
  }

  /** One block (or the inline tail) of a directory: dirents, then the names they point to. */
}

/** Parses a composefs image into a tree. Throws InvalidInputError on anything malformed. */
export function readImage(image: Buffer, opts: ReadOptions = {}): ImageTree {
  return new Reader(image, opts).read()
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
