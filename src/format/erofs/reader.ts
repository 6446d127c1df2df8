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

import {InvalidInputError} from '../../errors.js'
import {
  byteString,
  cmpBytes,
  DIGEST_SIZE,
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
import {
  BLOCK_BITS,
  BLOCK_SIZE,
  CFS_MAGIC,
  CFS_VERSION,
  CfsHeader,
  Compact,
  COMPACT_INODE_SIZE,
  DIRENT_SIZE,
  EROFS_MAGIC,
  Extended,
  EXTENDED_INODE_SIZE,
  I_DATALAYOUT_BIT,
  I_VERSION_BIT,
  Layout,
  OVERLAY_ESCAPE_PREFIX,
  OVERLAY_PREFIX,
  OverlayXattr,
  SLOT_BITS,
  Super,
  SUPER_OFFSET,
  SUPER_SIZE,
  XATTR_ENTRY_SIZE,
  XATTR_IBODY_HEADER_SIZE,
  XATTR_PREFIXES,
} from './layout.js'

/** Limits the reader enforces; callers may lower (or raise) them through `ReadOptions.limits`. */
export interface ReaderLimits {
  /** Directory nesting. PATH_MAX (4096) allows at most 2048 levels of "/x". */
  maxDepth: number
  /** Distinct inodes in the tree. */
  maxInodes: number
  /** Directory entries (names, hardlinks included) in the tree. */
  maxEntries: number
  /** Xattrs in the whole tree (shared ones counted once per inode that uses them). */
  maxXattrEntries: number
  /** A file name (Linux NAME_MAX). */
  maxNameLength: number
  /** A symlink target (PATH_MAX - 1, as upstream). */
  maxSymlinkLength: number
  /** A redirect payload (object path). */
  maxPayloadLength: number
  /** Content stored in the image for one file (upstream's LCFS_INLINE_CONTENT_MAX). */
  maxInlineContent: number
  /** A full xattr name (Linux XATTR_NAME_MAX). */
  maxXattrNameLength: number
  /** All xattrs of one inode, counted as upstream does (UINT16_MAX). */
  maxXattrSpace: number
  /** A file size (composefs's own limit for object-backed files). */
  maxFileSize: number
}

export const DEFAULT_READER_LIMITS: Readonly<ReaderLimits> = Object.freeze({
  maxDepth: 2048,
  maxInodes: 1 << 21,
  maxEntries: 1 << 21,
  maxXattrEntries: 1 << 22,
  maxNameLength: 255,
  maxSymlinkLength: 4095,
  maxPayloadLength: 4095,
  maxInlineContent: 5000,
  maxXattrNameLength: 255,
  maxXattrSpace: 0xffff,
  maxFileSize: 2 ** 53,
})

/** The newest composefs format version this reader understands. */
export const MAX_COMPOSEFS_VERSION = 1

export interface ReadOptions {
  limits?: Partial<ReaderLimits>
}

/** Header and superblock facts, readable without walking the tree. */
export interface ImageInfo {
  /** composefs format version (0 or 1). */
  composefsVersion: number
  /** composefs header flags (bit 0: the tree has POSIX ACLs). */
  flags: number
  /** Inode count recorded in the superblock (includes the 256 root whiteouts). */
  inodes: number
  /** Block count recorded in the superblock. */
  blocks: number
  /** Build time: the oldest mtime in the tree (the mtime of every compact inode). */
  buildTimeSec: number
  buildTimeNsec: number
  rootNid: number
  /** Image size in bytes. */
  size: number
}

export interface ImageTree {
  root: FsNode
  info: ImageInfo
  /** Distinct inodes in the tree as read (whiteouts that were skipped not counted). */
  inodeCount: number
  /** Names in the tree (the root and every hardlink name included). */
  entryCount: number
}

/** Extended xattr header entry (value length, name) not in layout.ts. */
const XATTR_SPACE_PER_ENTRY = 2 * XATTR_ENTRY_SIZE - 1
const DATALAYOUT_MASK = 0x7
const VALID_TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFBLK, S_IFCHR, S_IFSOCK, S_IFIFO])
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

function fail(what: string, nid?: number): never {
  throw new InvalidInputError(nid === undefined ? `image: ${what}` : `image: ${what} at nid ${nid}`)
}

/** Bounds checks over the image buffer; every read of image bytes goes through `need`. */
class ImageBuffer {
  constructor(readonly buf: Buffer) {}

  get length(): number {
    return this.buf.length
  }

  /** Throws unless [off, off+len) lies inside the buffer. */
  need(off: number, len: number, what: string, nid?: number): void {
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0) fail(what, nid)
    if (off + len > this.buf.length) fail(`${what} beyond the end of the image`, nid)
  }

  u8(off: number, what: string, nid?: number): number {
    this.need(off, 1, what, nid)
    return this.buf.readUInt8(off)
  }

  u16(off: number, what: string, nid?: number): number {
    this.need(off, 2, what, nid)
    return this.buf.readUInt16LE(off)
  }

  u32(off: number, what: string, nid?: number): number {
    this.need(off, 4, what, nid)
    return this.buf.readUInt32LE(off)
  }

  /** A u64 that must fit a JavaScript number exactly. */
  u64(off: number, what: string, nid?: number): number {
    this.need(off, 8, what, nid)
    const v = this.buf.readBigUInt64LE(off)
    if (v > MAX_SAFE) fail(`${what} out of range`, nid)
    return Number(v)
  }

  /** A signed 64-bit time that must fit a JavaScript number exactly. */
  i64(off: number, what: string, nid?: number): number {
    this.need(off, 8, what, nid)
    const v = this.buf.readBigInt64LE(off)
    if (v > MAX_SAFE || v < -MAX_SAFE) fail(`${what} out of range`, nid)
    return Number(v)
  }

  slice(off: number, len: number, what: string, nid?: number): Buffer {
    this.need(off, len, what, nid)
    return this.buf.subarray(off, off + len)
  }
}

/** Parses and checks the composefs header and the EROFS superblock. */
function parseHeader(img: ImageBuffer): ImageInfo & {metaStart: number; xattrStart: number} {
  if (img.length < SUPER_OFFSET + SUPER_SIZE) fail(`too small (${img.length} bytes) to be a composefs image`)
  const magic = img.u32(CfsHeader.magic, 'composefs header')
  if (magic !== CFS_MAGIC) fail(`not a composefs image (magic 0x${magic.toString(16)})`)
  const version = img.u32(CfsHeader.version, 'composefs header')
  if (version !== CFS_VERSION) fail(`unsupported composefs header version ${version}`)
  const composefsVersion = img.u32(CfsHeader.composefsVersion, 'composefs header')
  if (composefsVersion > MAX_COMPOSEFS_VERSION) {
    fail(`unsupported composefs format version ${composefsVersion} (known: 0..${MAX_COMPOSEFS_VERSION})`)
  }
  const flags = img.u32(CfsHeader.flags, 'composefs header')

  const sb = SUPER_OFFSET
  const sbMagic = img.u32(sb + Super.magic, 'superblock')
  if (sbMagic !== EROFS_MAGIC) fail(`bad EROFS superblock magic 0x${sbMagic.toString(16)}`)
  const blkszbits = img.u8(sb + Super.blkszbits, 'superblock')
  if (blkszbits !== BLOCK_BITS) fail(`unsupported block size 2^${blkszbits}`)
  const blocks = img.u32(sb + Super.blocks, 'superblock')
  if (blocks * BLOCK_SIZE > img.length) {
    fail(`truncated: superblock says ${blocks} blocks, the file has ${img.length} bytes`)
  }
  const metaStart = img.u32(sb + Super.metaBlkaddr, 'superblock') * BLOCK_SIZE
  const xattrStart = img.u32(sb + Super.xattrBlkaddr, 'superblock') * BLOCK_SIZE
  if (metaStart >= img.length) fail('inode area starts beyond the end of the image')
  if (xattrStart >= img.length) fail('shared xattr area starts beyond the end of the image')
  return {
    composefsVersion,
    flags,
    inodes: img.u64(sb + Super.inos, 'superblock inode count'),
    blocks,
    buildTimeSec: img.i64(sb + Super.buildTime, 'superblock build time'),
    buildTimeNsec: img.u32(sb + Super.buildTimeNsec, 'superblock'),
    rootNid: img.u16(sb + Super.rootNid, 'superblock'),
    size: img.length,
    metaStart,
    xattrStart,
  }
}

/** Cheap metadata from the composefs header and the superblock (no tree walk). */
export function readImageInfo(image: Buffer): ImageInfo {
  const {metaStart: _m, xattrStart: _x, ...info} = parseHeader(new ImageBuffer(image))
  return info
}

/** The fs-verity digest of the image file: what `cfsboot build` prints and mounts check. */
export function imageDigest(image: Buffer): Buffer {
  return fsverityDigest(image)
}

interface DirEntry {
  name: string
  nid: number
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
  private readonly info: ReturnType<typeof parseHeader>
  /** First node read for each nid: later names for it become hardlinks. */
  private readonly byNid = new Map<number, FsNode>()
  private readonly whiteoutNids = new Set<number>()
  /** Directories on the path currently being walked (to tell a cycle from a second name). */
  private readonly walking = new Set<number>()
  private entries = 0
  private xattrEntries = 0
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
      entries = this.readDirectory(nid, data)
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

    if (xattrIcount > 0) this.readXattrs(node, nid, off + isize, xattrSize)
    return {node, entries, whiteout: false}
  }

  private readDirectory(nid: number, data: DataLocator): DirEntry[] {
    const entries: DirEntry[] = []
    let previous: string | null = null
    for (const [blockOff, blockLen] of data.blocks('directory')) {
      for (const e of this.readDirBlock(nid, blockOff, blockLen)) {
        if (previous !== null && cmpBytes(previous, e.name) >= 0) fail('directory entries out of order', nid)
        previous = e.name
        entries.push(e)
      }
    }
    return entries
  }

  /** One block (or the inline tail) of a directory: dirents, then the names they point to. */
  private readDirBlock(nid: number, off: number, len: number): DirEntry[] {
    const img = this.img
    img.need(off, len, 'directory block', nid)
    if (len < DIRENT_SIZE) fail('directory block too small', nid)
    const namesStart = img.u16(off + 8, 'dirent', nid)
    if (namesStart === 0 || namesStart % DIRENT_SIZE !== 0 || namesStart > len) {
      fail('bad dirent count', nid)
    }
    const count = namesStart / DIRENT_SIZE
    const out: DirEntry[] = []
    for (let i = 0; i < count; i++) {
      const d = off + i * DIRENT_SIZE
      const nidLo = img.u32(d, 'dirent', nid)
      const nidHi = img.u32(d + 4, 'dirent', nid)
      if (nidHi !== 0) fail('dirent nid out of range', nid)
      const nameoff = img.u16(d + 8, 'dirent', nid)
      let nameEnd: number
      if (i + 1 < count) {
        nameEnd = img.u16(d + DIRENT_SIZE + 8, 'dirent', nid)
      } else {
        // The last name ends at the first NUL (block padding) or at the end of the block.
        const z = nameoff < len ? img.buf.subarray(off + nameoff, off + len).indexOf(0) : -1
        nameEnd = z < 0 ? len : nameoff + z
      }
      if (nameoff < namesStart || nameoff >= len || nameEnd > len || nameEnd <= nameoff) {
        fail('bad dirent name offset', nid)
      }
      const nameLen = nameEnd - nameoff
      if (nameLen > this.limits.maxNameLength) fail(`name longer than ${this.limits.maxNameLength}`, nid)
      const name = img.buf.toString('latin1', off + nameoff, off + nameEnd)
      if (name.includes('\0') || name.includes('/')) fail('invalid character in a name', nid)
      out.push({name, nid: nidLo})
    }
    return out
  }

  private readXattrs(node: FsNode, nid: number, start: number, xattrSize: number): void {
    const img = this.img
    const end = start + xattrSize
    if (xattrSize < XATTR_IBODY_HEADER_SIZE) fail('xattr header', nid)
    const sharedCount = img.u8(start + 4, 'xattr header', nid)
    let pos = start + XATTR_IBODY_HEADER_SIZE + sharedCount * 4
    if (pos > end) fail('shared xattr count larger than the xattr area', nid)
    const budget = {used: 0}

    // Inline entries; like upstream, fewer than 5 trailing bytes are padding.
    while (end - pos > XATTR_ENTRY_SIZE) {
      const entryLen = this.readXattrEntry(node, nid, pos, end, budget)
      pos += Math.ceil(entryLen / 4) * 4
    }
    for (let i = 0; i < sharedCount; i++) {
      const idx = img.u32(start + XATTR_IBODY_HEADER_SIZE + i * 4, 'shared xattr reference', nid)
      const entryOff = this.info.xattrStart + idx * 4
      this.readXattrEntry(node, nid, entryOff, img.length, budget)
    }
  }

  /** Reads one xattr entry at `off` that must end before `end`; returns its unpadded length. */
  private readXattrEntry(
    node: FsNode,
    nid: number,
    off: number,
    end: number,
    budget: {used: number},
  ): number {
    const img = this.img
    if (off + XATTR_ENTRY_SIZE > end) fail('xattr entry beyond its area', nid)
    const nameLen = img.u8(off, 'xattr entry', nid)
    const index = img.u8(off + 1, 'xattr entry', nid)
    const valueLen = img.u16(off + 2, 'xattr entry', nid)
    const len = XATTR_ENTRY_SIZE + nameLen + valueLen
    if (off + len > end) fail('xattr entry beyond its area', nid)
    img.need(off, len, 'xattr entry', nid)
    const prefix = XATTR_PREFIXES[index]
    if (prefix === undefined) fail(`unknown xattr name prefix ${index}`, nid)
    const key = prefix + img.buf.toString('latin1', off + XATTR_ENTRY_SIZE, off + XATTR_ENTRY_SIZE + nameLen)
    if (key.length === 0 || key.includes('\0')) fail('invalid xattr name', nid)
    if (key.length > this.limits.maxXattrNameLength)
      fail(`xattr name longer than ${this.limits.maxXattrNameLength}`, nid)
    if (++this.xattrEntries > this.limits.maxXattrEntries)
      fail(`more than ${this.limits.maxXattrEntries} xattrs`, nid)
    const value = img.buf.subarray(off + XATTR_ENTRY_SIZE + nameLen, off + len)
    this.applyXattr(node, nid, key, value, budget)
    return len
  }

  /** Turns composefs's overlayfs xattrs back into what the tree meant; stores the rest. */
  private applyXattr(node: FsNode, nid: number, key: string, value: Buffer, budget: {used: number}): void {
    const type = node.mode & S_IFMT
    if (key === OverlayXattr.redirect) {
      if (type === S_IFREG) {
        let payload = byteString(value)
        if (payload.length > 1 && payload.startsWith('/')) payload = payload.slice(1)
        payload = noNul(payload, 'redirect', nid)
        if (payload.length > this.limits.maxPayloadLength) fail('redirect payload too long', nid)
        node.payload = payload
      }
      return
    }
    if (key === OverlayXattr.metacopy) {
      // 4-byte header (version, length, flags, hash algorithm), then the fs-verity digest.
      if (type === S_IFREG && value.length === 4 + DIGEST_SIZE) node.digest = Buffer.from(value.subarray(4))
      return
    }
    if (key === OverlayXattr.escapedWhiteout && type === S_IFREG) {
      // A whiteout of the original tree, stored as an escaped one: make it a whiteout again.
      node.mode = S_IFCHR | (node.mode & ~S_IFMT)
      node.rdev = 0
      node.size = 0
      node.content = null
      node.payload = null
      node.digest = null
      return
    }
    if (
      key === OverlayXattr.escapedWhiteouts ||
      key === OverlayXattr.userWhiteout ||
      key === OverlayXattr.userWhiteouts
    ) {
      return
    }
    if (key.startsWith(OVERLAY_PREFIX)) {
      // Composefs's own overlay xattrs (opaque, …) are dropped; the tree's own were escaped.
      if (!key.startsWith(OVERLAY_ESCAPE_PREFIX)) return
      key = 'trusted.' + key.slice(OVERLAY_PREFIX.length)
    }
    // Same accounting and replacement rule as upstream (the last xattr fills the hole).
    const i = node.xattrs.findIndex((x) => x.key === key)
    if (i >= 0) {
      const old = node.xattrs[i]!
      node.xattrs[i] = node.xattrs[node.xattrs.length - 1]!
      node.xattrs.pop()
      budget.used =
        node.xattrs.length > 0 ? budget.used - (XATTR_SPACE_PER_ENTRY + key.length + old.value.length) : 0
    }
    let space = XATTR_SPACE_PER_ENTRY + key.length + value.length
    if (node.xattrs.length === 0) space += XATTR_IBODY_HEADER_SIZE
    if (budget.used + space > this.limits.maxXattrSpace) fail('too many or too large xattrs', nid)
    budget.used += space
    // A view, not a copy: shared xattrs (an SELinux label on every inode) cost no memory each.
    node.xattrs.push({key, value})
  }
}

/** Where an inode's data is: whole blocks at `dataOff`, and for inline layout a tail after the inode. */
class DataLocator {
  constructor(
    private readonly img: ImageBuffer,
    private readonly nid: number,
    private readonly size: number,
    private readonly layout: number,
    private readonly dataOff: number,
    private readonly tailOff: number,
  ) {}

  /** [offset, length] of each piece of the data, in order, all bounds-checked. */
  blocks(what: string): [number, number][] {
    const {img, nid, size} = this
    if (size === 0) return []
    const nBlocks = Math.ceil(size / BLOCK_SIZE)
    const inline = this.layout === Layout.flatInline
    const fullBlocks = inline ? nBlocks - 1 : nBlocks
    const inBlocks = inline ? fullBlocks * BLOCK_SIZE : size
    if (inBlocks > 0) img.need(this.dataOff, inBlocks, `${what} data blocks`, nid)
    const pieces: [number, number][] = []
    for (let b = 0; b < fullBlocks; b++) {
      pieces.push([this.dataOff + b * BLOCK_SIZE, Math.min(BLOCK_SIZE, size - b * BLOCK_SIZE)])
    }
    if (inline) {
      const tail = size - fullBlocks * BLOCK_SIZE
      img.need(this.tailOff, tail, `${what} inline data`, nid)
      // The kernel requires the inline tail to stay in the inode's block.
      if (Math.floor(this.tailOff / BLOCK_SIZE) !== Math.floor((this.tailOff + tail - 1) / BLOCK_SIZE)) {
        fail(`${what} inline data crosses a block boundary`, nid)
      }
      pieces.push([this.tailOff, tail])
    }
    return pieces
  }

  /** The data as one copied buffer (callers cap `size` first). */
  read(what: string): Buffer {
    return Buffer.concat(this.blocks(what).map(([off, len]) => this.img.buf.subarray(off, off + len)))
  }
}

/** Paths never hold NUL bytes (upstream would silently cut there; a NUL means damage). */
function noNul(s: string, what: string, nid: number): string {
  if (s.includes('\0')) fail(`NUL byte in a ${what}`, nid)
  return s
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
