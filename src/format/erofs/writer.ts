// Writes a composefs image: the EROFS layout of a prepared tree (see prepare.ts), byte for byte
// as upstream mkcomposefs lays it out, so that the same tree gives the same image (and the same
// fs-verity digest) whichever tool built it.
//
// Layout:  [composefs header | pad to 1024][superblock 128][inodes, each on a 32-byte slot,
//          with inline xattrs and tail-packed data][shared xattrs][pad to 4096][data blocks]
// Inodes are in breadth-first order of the name-sorted tree; a nid is an inode's slot number.

import {InvalidInputError} from '../../errors.js'
import {FsNode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK} from '../../tree/node.js'
import {fsverityDigest} from '../../verity/merkle.js'
import {
  BLOCK_SIZE,
  CFS_FLAG_HAS_ACL,
  CFS_MAGIC,
  CFS_VERSION,
  CfsHeader,
  COMPACT_INODE_SIZE,
  Compact,
  DIRENT_SIZE,
  EROFS_MAGIC,
  Extended,
  EXTENDED_INODE_SIZE,
  FEATURE_COMPAT_MTIME,
  FEATURE_COMPAT_XATTR_FILTER,
  FileType,
  I_DATALAYOUT_BIT,
  I_VERSION_BIT,
  Layout,
  NULL_ADDR,
  SLOT_SIZE,
  Super,
  SUPER_OFFSET,
  SUPER_SIZE,
  XATTR_IBODY_HEADER_SIZE,
  BLOCK_BITS,
} from './layout.js'
import {chooseVersion, chunking, prepareTree, WNode, WXattr} from './prepare.js'
import {shareXattrs, xattrCounts, xattrEntrySize, xattrFilter, xattrIndex} from './write-xattrs.js'

export interface WriteOptions {
  /** Lowest format version to write (default 0). */
  minVersion?: number
  /** Highest format version allowed when the tree needs a newer one (default 1). */
  maxVersion?: number
}

export interface WrittenImage {
  image: Buffer
  /** fs-verity digest of the image. */
  digest: Buffer
  /** Format version written in the composefs header. */
  version: number
  /** Number of inodes in the image. */
  inodes: number
}

const roundUp = (x: number, a: number): number => Math.ceil(x / a) * a

function fileType(mode: number): number {
  switch (mode & 0o170000) {
    case S_IFREG:
      return FileType.reg
    case S_IFDIR:
      return FileType.dir
    case S_IFCHR:
      return FileType.chr
    case S_IFBLK:
      return FileType.blk
    case S_IFIFO:
      return FileType.fifo
    case S_IFSOCK:
      return FileType.sock
    case S_IFLNK:
      return FileType.symlink
    default:
      return FileType.unknown
  }
}

/** Breadth-first inode order; also fixes directory link counts and sorts xattrs. */
function orderInodes(root: WNode): {nodes: WNode[]; minMtime: [number, number]; hasAcl: boolean} {
  const nodes: WNode[] = [root]
  root.ordered = true
  let minSec = root.mtimeSec
  let minNsec = root.mtimeNsec
  let hasAcl = false
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]!
    if (node.type === S_IFDIR) {
      let n = 2
      for (const c of node.children) if (c.type === S_IFDIR) n++
      node.nlink = n
    }
    if (node.xattrs.length > 1) node.xattrs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    if (node.mtimeSec < minSec || (node.mtimeSec === minSec && node.mtimeNsec < minNsec)) {
      minSec = node.mtimeSec
      minNsec = node.mtimeNsec
    }
    node.inodeNum = i
    if (
      node.xattrs.some((x) => x.key === 'system.posix_acl_access' || x.key === 'system.posix_acl_default')
    ) {
      hasAcl = true
    }
    for (const c of node.children) {
      if (c.linkTo) continue
      nodes.push(c)
      c.ordered = true
    }
  }
  for (const node of nodes) {
    for (const c of node.children) {
      if (!c.linkTo) continue
      const t = c.target()
      if (!t.ordered) throw new InvalidInputError(`image: hardlink ${c.path()} points outside the tree`)
      if (t.type === S_IFDIR && c.name !== '.' && c.name !== '..') {
        throw new InvalidInputError(`image: hardlink to a directory at ${c.path()}`)
      }
    }
  }
  return {nodes, minMtime: [minSec, minNsec], hasAcl}
}

/** Directory entries split into blocks: returns [nBlocks, tail bytes] before tail placement. */
function dirSize(n: WNode): [number, number] {
  let blocks = 0
  let used = 0
  for (const c of n.children) {
    const len = DIRENT_SIZE + c.name.length
    if (used + len > BLOCK_SIZE) {
      blocks++
      used = 0
    }
    used += len
  }
  // Never tail-pack more than half a block.
  if (used > BLOCK_SIZE / 2) {
    blocks++
    used = 0
  }
  return [blocks, used]
}

function dataSize(n: WNode): void {
  n.nBlocks = 0
  n.tailSize = 0
  if (n.type === S_IFDIR) {
    ;[n.nBlocks, n.tailSize] = dirSize(n)
  } else if (n.type === S_IFLNK) {
    n.tailSize = n.payload!.length
  } else if (n.type === S_IFREG && n.size > 0) {
    if (n.content) {
      n.nBlocks = Math.floor(n.size / BLOCK_SIZE)
      n.tailSize = n.size % BLOCK_SIZE
      if (n.tailSize > BLOCK_SIZE / 2) {
        n.nBlocks++
        n.tailSize = 0
      }
    } else {
      // External file: a block map of null chunks (the data comes from the object via overlayfs).
      const {chunkBits, chunkCount} = chunking(n.size)
      n.chunkBits = chunkBits
      n.chunkCount = chunkCount
      n.tailSize = chunkCount * 4
    }
  }
}

function inodeSizeField(n: WNode): number {
  return n.type === S_IFDIR ? n.nBlocks * BLOCK_SIZE + n.tailSize : n.size
}

/** Padding before an inode so its tail data does not cross a block boundary. */
function tailPadding(n: WNode, pos: number, inodeSize: number, xattrSize: number): number {
  const nonTail = inodeSize + xattrSize
  const total = nonTail + n.tailSize
  if (n.type === S_IFLNK) {
    // Symlinks keep inode and target in one block; a target that cannot fit goes to a data block.
    const startBlock = Math.floor(pos / BLOCK_SIZE)
    const endBlock = Math.floor((pos + total - 1) / BLOCK_SIZE)
    if (Math.floor(total / BLOCK_SIZE) > 0) {
      n.nBlocks++
      n.tailSize = 0
    }
    return startBlock !== endBlock ? roundUp(pos, BLOCK_SIZE) - pos : 0
  }
  let remainder = BLOCK_SIZE - ((pos + nonTail) % BLOCK_SIZE)
  if (remainder >= n.tailSize) return 0
  const extra = roundUp(remainder, SLOT_SIZE)
  remainder = BLOCK_SIZE - ((pos + nonTail + extra) % BLOCK_SIZE)
  if (n.tailSize <= remainder) return extra
  // It does not fit even after padding: put the tail in a block of its own.
  n.nBlocks++
  n.tailSize = 0
  return roundUp(pos, BLOCK_SIZE) - pos
}

/** Assigns nids; returns the end of the inode area and the number of data blocks. */
function layoutInodes(nodes: WNode[], minMtime: [number, number]): {inodesEnd: number; dataBlocks: number} {
  let pos = SUPER_OFFSET + SUPER_SIZE
  let dataBlocks = 0
  for (const n of nodes) {
    dataSize(n)
    n.compact =
      n.mtimeSec === minMtime[0] &&
      n.mtimeNsec === minMtime[1] &&
      n.nlink <= 0xffff &&
      n.uid <= 0xffff &&
      n.gid <= 0xffff &&
      inodeSizeField(n) <= 0xffffffff
    const inodeSize = n.compact ? COMPACT_INODE_SIZE : EXTENDED_INODE_SIZE
    const {nShared, unsharedSize} = xattrCounts(n)
    n.nShared = nShared
    n.xattrSize =
      nShared === 0 && unsharedSize === 0
        ? 0
        : roundUp(XATTR_IBODY_HEADER_SIZE + nShared * 4 + unsharedSize, 4)
    const aligned = roundUp(pos, SLOT_SIZE)
    n.ipad = aligned - pos
    pos = aligned
    const extra = tailPadding(n, pos, inodeSize, n.xattrSize)
    n.ipad += extra
    pos += extra
    n.isize = inodeSize + n.xattrSize + n.tailSize
    dataBlocks += n.nBlocks
    n.nid = pos / SLOT_SIZE
    pos += n.isize
  }
  return {inodesEnd: roundUp(pos, SLOT_SIZE), dataBlocks}
}

/** A bounds-checked sequential writer over a preallocated, zeroed image buffer. */
class Out {
  pos = 0
  constructor(readonly buf: Buffer) {}
  skip(n: number): void {
    this.pos += n
  }
  align(a: number): void {
    this.pos = roundUp(this.pos, a)
  }
  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos)
    this.pos += b.length
  }
  str(s: string): void {
    this.pos += this.buf.write(s, this.pos, 'latin1')
  }
  u8(v: number): void {
    this.buf.writeUInt8(v, this.pos)
    this.pos += 1
  }
  u16(v: number): void {
    this.buf.writeUInt16LE(v & 0xffff, this.pos)
    this.pos += 2
  }
  u32(v: number): void {
    this.buf.writeUInt32LE(v >>> 0, this.pos)
    this.pos += 4
  }
}

/**
 * A safe integer as 64 bits, little-endian, two's complement when negative (mtimes before
 * 1970), without a BigInt per inode.
 */
function writeU64(b: Buffer, v: number, off: number): void {
  const hi = Math.floor(v / 2 ** 32)
  b.writeUInt32LE(v - hi * 2 ** 32, off)
  b.writeInt32LE(hi, off + 4)
}

function writeXattr(out: Out, x: WXattr): void {
  const [index, suffix] = xattrIndex(x.key)
  out.u8(suffix.length)
  out.u8(index)
  out.u16(x.value.length)
  out.str(suffix)
  out.bytes(x.value)
  out.align(4)
}

/** Splits a directory's entries into the chunks that are written as blocks and as the tail. */
function direntChunks(n: WNode): {blocks: WNode[][]; tail: WNode[]} {
  const blocks: WNode[][] = []
  let current: WNode[] = []
  let used = 0
  for (const c of n.children) {
    const len = DIRENT_SIZE + c.name.length
    if (used + len > BLOCK_SIZE) {
      blocks.push(current)
      current = []
      used = 0
    }
    current.push(c)
    used += len
  }
  if (blocks.length < n.nBlocks) return {blocks: [...blocks, current], tail: []}
  return {blocks, tail: current}
}

function writeDirents(out: Out, entries: WNode[]): void {
  let nameoff = entries.length * DIRENT_SIZE
  for (const c of entries) {
    const t = c.target()
    out.u32(t.nid) // nid is a u64; images this writer makes stay far below 2^32 slots.
    out.u32(0)
    out.u16(nameoff)
    out.u8(fileType(t.mode))
    out.u8(0)
    nameoff += c.name.length
  }
  for (const c of entries) out.str(c.name)
}

function writeInode(out: Out, n: WNode, inodesEnd: number, nextBlock: {value: number}): void {
  out.skip(n.ipad)
  const start = out.pos
  const nShared = n.nShared
  const icount = n.xattrSize === 0 ? 0 : (n.xattrSize - XATTR_IBODY_HEADER_SIZE) / 4 + 1
  if (icount > 0xffff) throw new InvalidInputError(`image: too many xattrs on ${n.path()}`)

  let layout: number = n.tailSize > 0 ? Layout.flatInline : Layout.flatPlain
  let size = 0
  let chunkFormat = -1
  if (n.type === S_IFDIR) size = n.nBlocks * BLOCK_SIZE + n.tailSize
  else if (n.type === S_IFREG) {
    size = n.size
    if (size > 0 && !n.content) {
      layout = Layout.chunkBased
      chunkFormat = n.chunkBits - BLOCK_BITS
    }
  } else if (n.type === S_IFLNK) size = n.nBlocks === 0 ? n.tailSize : n.size

  // i_u: block address of the data blocks, the device number, or the chunk format.
  let u = 0
  if (n.type === S_IFCHR || n.type === S_IFBLK) u = n.rdev >>> 0
  else if (n.nBlocks > 0 && (n.type === S_IFDIR || n.type === S_IFREG || n.type === S_IFLNK)) {
    u = nextBlock.value / BLOCK_SIZE
    nextBlock.value += n.nBlocks * BLOCK_SIZE
  }
  // The chunk format shares i_u with the block address and overwrites its low 16 bits.
  if (chunkFormat >= 0) u = ((u & 0xffff0000) | chunkFormat) >>> 0

  const format = (layout << I_DATALAYOUT_BIT) | ((n.compact ? 0 : 1) << I_VERSION_BIT)
  const b = out.buf
  if (n.compact) {
    b.writeUInt16LE(format, start + Compact.format)
    b.writeUInt16LE(icount, start + Compact.xattrIcount)
    b.writeUInt16LE(n.mode & 0xffff, start + Compact.mode)
    b.writeUInt16LE(n.nlink, start + Compact.nlink)
    b.writeUInt32LE(size >>> 0, start + Compact.size)
    b.writeUInt32LE(u, start + Compact.u)
    b.writeUInt32LE(n.inodeNum, start + Compact.ino)
    b.writeUInt16LE(n.uid, start + Compact.uid)
    b.writeUInt16LE(n.gid, start + Compact.gid)
    out.skip(COMPACT_INODE_SIZE)
  } else {
    b.writeUInt16LE(format, start + Extended.format)
    b.writeUInt16LE(icount, start + Extended.xattrIcount)
    b.writeUInt16LE(n.mode & 0xffff, start + Extended.mode)
    writeU64(b, size, start + Extended.size)
    b.writeUInt32LE(u, start + Extended.u)
    b.writeUInt32LE(n.inodeNum, start + Extended.ino)
    b.writeUInt32LE(n.uid >>> 0, start + Extended.uid)
    b.writeUInt32LE(n.gid >>> 0, start + Extended.gid)
    writeU64(b, n.mtimeSec, start + Extended.mtime)
    b.writeUInt32LE(n.mtimeNsec >>> 0, start + Extended.mtimeNsec)
    b.writeUInt32LE(n.nlink >>> 0, start + Extended.nlink)
    out.skip(EXTENDED_INODE_SIZE)
  }

  if (n.xattrSize > 0) {
    out.u32(xattrFilter(n))
    out.u8(nShared)
    out.skip(7)
    for (const x of n.xattrs) {
      if (x.sharedOffset >= 0) out.u32(((inodesEnd % BLOCK_SIZE) + x.sharedOffset) / 4)
    }
    for (const x of n.xattrs) if (x.sharedOffset < 0) writeXattr(out, x)
  }

  if (n.type === S_IFDIR) {
    const {tail} = direntChunks(n)
    if (tail.length > 0) writeDirents(out, tail)
  } else if (n.type === S_IFLNK) {
    if (n.nBlocks === 0) out.str(n.payload!)
  } else if (n.type === S_IFREG && n.tailSize > 0) {
    if (n.content) out.bytes(n.content.subarray(n.size - n.tailSize))
    else for (let i = 0, count = n.chunkCount; i < count; i++) out.u32(NULL_ADDR)
  }
  if (out.pos - start !== n.isize) throw new Error(`internal: inode size mismatch at ${n.path()}`)
}

function writeDataBlocks(out: Out, n: WNode): void {
  if (n.type === S_IFDIR) {
    for (const block of direntChunks(n).blocks) {
      writeDirents(out, block)
      out.align(BLOCK_SIZE)
    }
    return
  }
  if (n.nBlocks === 0) return
  if (n.type === S_IFREG && !n.content) {
    // An external file whose block map could not be tail-packed: a block of null chunks.
    for (let i = 0; i < BLOCK_SIZE / 4; i++) out.u32(NULL_ADDR)
    return
  }
  const data = n.type === S_IFREG ? n.content! : Buffer.from(n.payload!, 'latin1')
  for (let i = 0; i < n.nBlocks; i++) {
    out.bytes(data.subarray(i * BLOCK_SIZE, Math.min(data.length, (i + 1) * BLOCK_SIZE)))
    out.align(BLOCK_SIZE)
  }
}

/** Serialises a tree into a composefs image and computes its fs-verity digest. */
export function writeImage(root: FsNode, opts: WriteOptions = {}): WrittenImage {
  const version = chooseVersion(root, opts.minVersion ?? 0, opts.maxVersion ?? 1)
  const tree = prepareTree(root, version)
  const {nodes, minMtime, hasAcl} = orderInodes(tree)
  const shared = shareXattrs(nodes)
  const sharedSize = shared.reduce((acc, x) => acc + xattrEntrySize(x), 0)
  const {inodesEnd, dataBlocks} = layoutInodes(nodes, minMtime)
  if (tree.nid > 0xffff) throw new InvalidInputError('image: root inode out of range')
  const dataStart = roundUp(inodesEnd + sharedSize, BLOCK_SIZE)
  const total = dataStart + dataBlocks * BLOCK_SIZE

  const out = new Out(Buffer.alloc(total))
  const b = out.buf
  b.writeUInt32LE(CFS_MAGIC, CfsHeader.magic)
  b.writeUInt32LE(CFS_VERSION, CfsHeader.version)
  b.writeUInt32LE(hasAcl ? CFS_FLAG_HAS_ACL : 0, CfsHeader.flags)
  b.writeUInt32LE(version, CfsHeader.composefsVersion)

  const sb = SUPER_OFFSET
  b.writeUInt32LE(EROFS_MAGIC, sb + Super.magic)
  b.writeUInt32LE(FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER, sb + Super.featureCompat)
  b.writeUInt8(BLOCK_BITS, sb + Super.blkszbits)
  b.writeUInt16LE(tree.nid, sb + Super.rootNid)
  b.writeBigUInt64LE(BigInt(nodes.length), sb + Super.inos)
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(minMtime[0])), sb + Super.buildTime)
  b.writeUInt32LE(minMtime[1] >>> 0, sb + Super.buildTimeNsec)
  b.writeUInt32LE(dataStart / BLOCK_SIZE + dataBlocks, sb + Super.blocks)
  b.writeUInt32LE(Math.floor((SUPER_OFFSET + SUPER_SIZE) / BLOCK_SIZE), sb + Super.metaBlkaddr)
  b.writeUInt32LE(Math.floor(inodesEnd / BLOCK_SIZE), sb + Super.xattrBlkaddr)
  out.pos = SUPER_OFFSET + SUPER_SIZE

  const nextBlock = {value: dataStart}
  for (const n of nodes) writeInode(out, n, inodesEnd, nextBlock)
  out.align(SLOT_SIZE)
  for (const x of shared) writeXattr(out, x)
  out.align(BLOCK_SIZE)
  if (out.pos !== dataStart) throw new Error('internal: data blocks start mismatch')
  for (const n of nodes) writeDataBlocks(out, n)
  if (out.pos !== total || nextBlock.value !== total) throw new Error('internal: image size mismatch')

  return {image: out.buf, digest: fsverityDigest(out.buf), version, inodes: nodes.length}
}
