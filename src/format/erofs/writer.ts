// Writes a composefs image: the EROFS layout of a prepared tree (see prepare.ts), byte for byte
// as upstream mkcomposefs lays it out, so that the same tree gives the same image (and the same
// fs-verity digest) whichever tool built it.
//
// Layout:  [composefs header | pad to 1024][superblock 128][inodes, each on a 32-byte slot,
//          with inline xattrs and tail-packed data][shared xattrs][pad to 4096][data blocks]
// Inodes are in breadth-first order of the name-sorted tree; a nid is an inode's slot number.
// Per-inode layout results live in typed arrays indexed by inode (class Placement), not in
// objects per inode: a large tree has hundreds of thousands.

import {InvalidInputError} from '../../errors.js'
import {
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
  OverlayXattr,
} from './layout.js'
import {chunkBitsFor, External, ImageTree, metacopyHeader, prepareTree, WXattr} from './prepare.js'
import {metacopyLength, xattrEntrySize, xattrIndex, XattrLayout} from './write-xattrs.js'

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

/** Per-inode layout results, indexed by inode, each in the smallest type that holds it. */
class Placement {
  readonly nid: Uint32Array
  /** Padding before the inode: less than a block and a slot. */
  readonly ipad: Uint16Array
  readonly xattrSize: Int32Array
  readonly isize: Int32Array
  readonly nBlocks: Uint32Array
  readonly tailSize: Int32Array
  /** External files: log2 of the chunk size (at most 12 + 31) and at most 1024 chunks (validated). */
  readonly chunkBits: Uint8Array
  readonly chunkCount: Uint16Array
  readonly compact: Uint8Array
  constructor(count: number) {
    this.nid = new Uint32Array(count)
    this.ipad = new Uint16Array(count)
    this.xattrSize = new Int32Array(count)
    this.isize = new Int32Array(count)
    this.nBlocks = new Uint32Array(count)
    this.tailSize = new Int32Array(count)
    this.chunkBits = new Uint8Array(count)
    this.chunkCount = new Uint16Array(count)
    this.compact = new Uint8Array(count)
  }
}

/** The oldest mtime in the tree (the build time, and the mtime of every compact inode). */
function minMtime(nodes: FsNode[]): [number, number] {
  let minSec = nodes[0]!.mtimeSec
  let minNsec = nodes[0]!.mtimeNsec
  for (const node of nodes) {
    if (node.mtimeSec < minSec || (node.mtimeSec === minSec && node.mtimeNsec < minNsec)) {
      minSec = node.mtimeSec
      minNsec = node.mtimeNsec
    }
  }
  return [minSec, minNsec]
}

function hasAcl(tree: ImageTree): boolean {
  for (const list of tree.xattrs) {
    if (list?.some((x) => x.key === 'system.posix_acl_access' || x.key === 'system.posix_acl_default')) {
      return true
    }
  }
  return false
}

/** A directory's entries split into blocks: sets its nBlocks and tail bytes before tail placement. */
function dirSize(names: string[], p: Placement, i: number): void {
  let blocks = 0
  let used = 0
  for (let k = 0; k < names.length; k++) {
    const len = DIRENT_SIZE + names[k]!.length
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
  p.nBlocks[i] = blocks
  p.tailSize[i] = used
}

function dataSize(tree: ImageTree, p: Placement, i: number): void {
  const type = tree.mode[i]! & S_IFMT
  if (type === S_IFDIR) {
    dirSize(tree.dirNames[i]!, p, i)
    return
  }
  const size = tree.size[i]!
  const n = tree.nodes[i]!
  let nBlocks = 0
  let tailSize = 0
  if (type === S_IFLNK) {
    tailSize = n.payload!.length
  } else if (type === S_IFREG && size > 0) {
    if (n.content) {
      nBlocks = Math.floor(size / BLOCK_SIZE)
      tailSize = size % BLOCK_SIZE
      if (tailSize > BLOCK_SIZE / 2) {
        nBlocks++
        tailSize = 0
      }
    } else {
      // External file: a block map of null chunks (the data comes from the object via overlayfs).
      const chunkBits = chunkBitsFor(size)
      const chunkCount = Math.ceil(size / 2 ** chunkBits)
      p.chunkBits[i] = chunkBits
      p.chunkCount[i] = chunkCount
      tailSize = chunkCount * 4
    }
  }
  p.nBlocks[i] = nBlocks
  p.tailSize[i] = tailSize
}

function inodeSizeField(tree: ImageTree, p: Placement, i: number): number {
  return (tree.mode[i]! & S_IFMT) === S_IFDIR ? p.nBlocks[i]! * BLOCK_SIZE + p.tailSize[i]! : tree.size[i]!
}

/** Padding before an inode so its tail data does not cross a block boundary. */
function tailPadding(type: number, p: Placement, i: number, pos: number, inodeSize: number): number {
  const nonTail = inodeSize + p.xattrSize[i]!
  const tailSize = p.tailSize[i]!
  const total = nonTail + tailSize
  if (type === S_IFLNK) {
    // Symlinks keep inode and target in one block; a target that cannot fit goes to a data block.
    const startBlock = Math.floor(pos / BLOCK_SIZE)
    const endBlock = Math.floor((pos + total - 1) / BLOCK_SIZE)
    if (Math.floor(total / BLOCK_SIZE) > 0) {
      p.nBlocks[i]!++
      p.tailSize[i] = 0
    }
    return startBlock !== endBlock ? roundUp(pos, BLOCK_SIZE) - pos : 0
  }
  let remainder = BLOCK_SIZE - ((pos + nonTail) % BLOCK_SIZE)
  if (remainder >= tailSize) return 0
  const extra = roundUp(remainder, SLOT_SIZE)
  remainder = BLOCK_SIZE - ((pos + nonTail + extra) % BLOCK_SIZE)
  if (tailSize <= remainder) return extra
  // It does not fit even after padding: put the tail in a block of its own.
  p.nBlocks[i]!++
  p.tailSize[i] = 0
  return roundUp(pos, BLOCK_SIZE) - pos
}

/** Assigns nids; returns the end of the inode area and the number of data blocks. */
function layoutInodes(
  tree: ImageTree,
  xattrs: XattrLayout,
  p: Placement,
  minMtime: [number, number],
): {inodesEnd: number; dataBlocks: number} {
  let pos = SUPER_OFFSET + SUPER_SIZE
  let dataBlocks = 0
  const {nodes} = tree
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!
    dataSize(tree, p, i)
    const compact =
      n.mtimeSec === minMtime[0] &&
      n.mtimeNsec === minMtime[1] &&
      tree.nlink[i]! <= 0xffff &&
      n.uid <= 0xffff &&
      n.gid <= 0xffff &&
      inodeSizeField(tree, p, i) <= 0xffffffff
    p.compact[i] = compact ? 1 : 0
    const inodeSize = compact ? COMPACT_INODE_SIZE : EXTENDED_INODE_SIZE
    const nShared = xattrs.nShared[i]!
    const unsharedSize = xattrs.unsharedSize[i]!
    p.xattrSize[i] =
      nShared === 0 && unsharedSize === 0
        ? 0
        : roundUp(XATTR_IBODY_HEADER_SIZE + nShared * 4 + unsharedSize, 4)
    const aligned = roundUp(pos, SLOT_SIZE)
    let ipad = aligned - pos
    pos = aligned
    const extra = tailPadding(tree.mode[i]! & S_IFMT, p, i, pos, inodeSize)
    ipad += extra
    pos += extra
    p.ipad[i] = ipad
    p.isize[i] = inodeSize + p.xattrSize[i]! + p.tailSize[i]!
    dataBlocks += p.nBlocks[i]!
    p.nid[i] = pos / SLOT_SIZE
    pos += p.isize[i]!
  }
  return {inodesEnd: roundUp(pos, SLOT_SIZE), dataBlocks}
}

/**
 * A sequential writer over a zeroed buffer: the whole image, or a window of it that is handed
 * to a sink and reused whenever the next piece would not fit (room()), so that an image
 * written to a file never has to be in memory whole. Positions (pos, base) are offsets in the
 * image. It stores bytes with plain indexed writes: Buffer's write methods cost a native call
 * (or argument checks) each, which was a third of the writer's time on a large tree. A write
 * past the end is dropped by the typed array; the writer checks that every inode and the whole
 * image end where the layout said, so no overrun goes unnoticed.
 */
class Out {
  pos = 0
  /** The image offset of buf[0]. */
  base = 0
  constructor(
    readonly buf: Buffer,
    private readonly sink: ((bytes: Buffer) => void) | null = null,
  ) {}
  /** Makes the next `n` bytes fit in the window (positions may move past them by skip or align only after). */
  room(n: number): void {
    if (this.sink === null || this.pos + n - this.base <= this.buf.length) return
    this.flush()
    if (n > this.buf.length) throw new Error('internal: image piece larger than the window')
  }
  /** Hands everything up to pos to the sink. */
  flush(): void {
    const used = this.pos - this.base
    if (used > this.buf.length) throw new Error('internal: image window overrun')
    this.sink!(this.buf.subarray(0, used))
    this.buf.fill(0, 0, used)
    this.base = this.pos
  }
  skip(n: number): void {
    this.pos += n
  }
  align(a: number): void {
    this.pos = roundUp(this.pos, a)
  }
  bytes(b: Uint8Array): void {
    const p = this.pos - this.base
    if (b.length > 64) this.buf.set(b, p)
    else for (let i = 0; i < b.length; i++) this.buf[p + i] = b[i]!
    this.pos += b.length
  }
  /** A byte string (every character one byte). */
  str(s: string): void {
    const buf = this.buf
    const p = this.pos - this.base
    // Long strings (payloads) in one native call, short ones (names) without its overhead.
    if (s.length > 16) buf.write(s, p, 'latin1')
    else for (let i = 0; i < s.length; i++) buf[p + i] = s.charCodeAt(i)
    this.pos += s.length
  }
  u8(v: number): void {
    this.buf[this.pos++ - this.base] = v
  }
  u16(v: number): void {
    const p = this.pos - this.base
    this.buf[p] = v
    this.buf[p + 1] = v >>> 8
    this.pos += 2
  }
  u32(v: number): void {
    const p = this.pos - this.base
    this.buf[p] = v
    this.buf[p + 1] = v >>> 8
    this.buf[p + 2] = v >>> 16
    this.buf[p + 3] = v >>> 24
    this.pos += 4
  }
}

/**
 * A safe integer as 64 bits, little-endian, two's complement when negative (mtimes before
 * 1970), without a BigInt per inode.
 */
function writeU64(b: Buffer, v: number, off: number): void {
  const hi = Math.floor(v / 2 ** 32)
  put32(b, off, v - hi * 2 ** 32)
  put32(b, off + 4, hi)
}

/** The low 16 bits of `v`, little-endian. */
function put16(b: Buffer, off: number, v: number): void {
  b[off] = v
  b[off + 1] = v >>> 8
}

/** The low 32 bits of `v` (two's complement when negative), little-endian. */
function put32(b: Buffer, off: number, v: number): void {
  b[off] = v
  b[off + 1] = v >>> 8
  b[off + 2] = v >>> 16
  b[off + 3] = v >>> 24
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

const [METACOPY_INDEX, METACOPY_SUFFIX] = xattrIndex(OverlayXattr.metacopy)
/** The metacopy header of the usual digest, made once rather than per file. */
const METACOPY_HEADER = metacopyHeader(DIGEST_SIZE)
const [REDIRECT_INDEX, REDIRECT_SUFFIX] = xattrIndex(OverlayXattr.redirect)

/** The inline entry of a derived metacopy (the metacopyValue of `digest`), without making it. */
function writeMetacopy(out: Out, digest: Buffer | null): void {
  const index = METACOPY_INDEX
  const suffix = METACOPY_SUFFIX
  out.u8(suffix.length)
  out.u8(index)
  out.u16(metacopyLength(digest))
  out.str(suffix)
  if (digest) {
    const header = digest.length === DIGEST_SIZE ? METACOPY_HEADER : metacopyHeader(digest.length)
    for (let k = 0; k < header.length; k++) out.u8(header[k]!)
    out.bytes(digest)
  }
  out.align(4)
}

/** The inline entry of a derived redirect ("/" + payload), without making it. */
function writeRedirect(out: Out, payload: string): void {
  const index = REDIRECT_INDEX
  const suffix = REDIRECT_SUFFIX
  out.u8(suffix.length)
  out.u8(index)
  out.u16(1 + payload.length)
  out.str(suffix)
  out.u8(0x2f)
  out.str(payload)
  out.align(4)
}

/** The inode's xattr body after its header: shared references, then inline entries. */
function writeXattrs(out: Out, tree: ImageTree, xattrs: XattrLayout, i: number, inodesEnd: number): void {
  const ref = (offset: number): void => out.u32(((inodesEnd % BLOCK_SIZE) + offset) / 4)
  const list = tree.xattrs[i]
  if (list) {
    for (const x of list) if (x.sharedOffset >= 0) ref(x.sharedOffset)
    for (const x of list) if (x.sharedOffset < 0) writeXattr(out, x)
    return
  }
  const n = tree.nodes[i]!
  const redirect = tree.external[i] === External.redirect
  const mc = xattrs.metacopyOffset[i]!
  const rd = redirect ? xattrs.redirectOffset[i]! : -1
  if (mc >= 0) ref(mc)
  if (rd >= 0) ref(rd)
  if (mc < 0) writeMetacopy(out, n.digest)
  if (redirect && rd < 0) writeRedirect(out, n.payload!)
}

/** Splits a directory's entries (indexes into its names) into the blocks and the tail. */
function direntChunks(
  names: string[],
  nBlocks: number,
): {blocks: [number, number][]; tail: [number, number]} {
  const blocks: [number, number][] = []
  let first = 0
  let used = 0
  for (let k = 0; k < names.length; k++) {
    const len = DIRENT_SIZE + names[k]!.length
    if (used + len > BLOCK_SIZE) {
      blocks.push([first, k])
      first = k
      used = 0
    }
    used += len
  }
  if (blocks.length < nBlocks) return {blocks: [...blocks, [first, names.length]], tail: [0, 0]}
  return {blocks, tail: [first, names.length]}
}

function writeDirents(
  out: Out,
  tree: ImageTree,
  p: Placement,
  dir: number,
  [from, to]: [number, number],
): void {
  const names = tree.dirNames[dir]!
  const inodes = tree.dirInodes[dir]!
  let nameoff = (to - from) * DIRENT_SIZE
  for (let k = from; k < to; k++) {
    const t = inodes[k]!
    out.u32(p.nid[t]!) // nid is a u64; images this writer makes stay far below 2^32 slots.
    out.u32(0)
    out.u16(nameoff)
    out.u8(fileType(tree.mode[t]!))
    out.u8(0)
    nameoff += names[k]!.length
  }
  for (let k = from; k < to; k++) out.str(names[k]!)
}

function writeInode(
  out: Out,
  tree: ImageTree,
  xattrs: XattrLayout,
  p: Placement,
  i: number,
  inodesEnd: number,
  nextBlock: {value: number},
): void {
  const n = tree.nodes[i]!
  const type = tree.mode[i]! & S_IFMT
  const nBlocks = p.nBlocks[i]!
  const tailSize = p.tailSize[i]!
  const xattrSize = p.xattrSize[i]!
  const compact = p.compact[i] === 1
  out.room(p.ipad[i]! + p.isize[i]!)
  out.skip(p.ipad[i]!)
  const start = out.pos
  const icount = xattrSize === 0 ? 0 : (xattrSize - XATTR_IBODY_HEADER_SIZE) / 4 + 1
  if (icount > 0xffff) throw new InvalidInputError(`image: too many xattrs on ${n.path()}`)

  let layout: number = tailSize > 0 ? Layout.flatInline : Layout.flatPlain
  let size = 0
  let chunkFormat = -1
  if (type === S_IFDIR) size = nBlocks * BLOCK_SIZE + tailSize
  else if (type === S_IFREG) {
    size = tree.size[i]!
    if (size > 0 && !n.content) {
      layout = Layout.chunkBased
      chunkFormat = p.chunkBits[i]! - BLOCK_BITS
    }
  } else if (type === S_IFLNK) size = nBlocks === 0 ? tailSize : tree.size[i]!

  // i_u: block address of the data blocks, the device number, or the chunk format.
  let u = 0
  if (type === S_IFCHR || type === S_IFBLK) u = n.rdev >>> 0
  else if (nBlocks > 0 && (type === S_IFDIR || type === S_IFREG || type === S_IFLNK)) {
    u = nextBlock.value / BLOCK_SIZE
    nextBlock.value += nBlocks * BLOCK_SIZE
  }
  // The chunk format shares i_u with the block address and overwrites its low 16 bits.
  if (chunkFormat >= 0) u = ((u & 0xffff0000) | chunkFormat) >>> 0

  const format = (layout << I_DATALAYOUT_BIT) | ((compact ? 0 : 1) << I_VERSION_BIT)
  const mode = tree.mode[i]! & 0xffff
  const nlink = tree.nlink[i]!
  const b = out.buf
  const at = start - out.base
  // Every value below fits its field (the layout chose compact only when they do).
  if (compact) {
    put16(b, at + Compact.format, format)
    put16(b, at + Compact.xattrIcount, icount)
    put16(b, at + Compact.mode, mode)
    put16(b, at + Compact.nlink, nlink)
    put32(b, at + Compact.size, size)
    put32(b, at + Compact.u, u)
    put32(b, at + Compact.ino, i)
    put16(b, at + Compact.uid, n.uid)
    put16(b, at + Compact.gid, n.gid)
    out.skip(COMPACT_INODE_SIZE)
  } else {
    put16(b, at + Extended.format, format)
    put16(b, at + Extended.xattrIcount, icount)
    put16(b, at + Extended.mode, mode)
    writeU64(b, size, at + Extended.size)
    put32(b, at + Extended.u, u)
    put32(b, at + Extended.ino, i)
    put32(b, at + Extended.uid, n.uid)
    put32(b, at + Extended.gid, n.gid)
    writeU64(b, n.mtimeSec, at + Extended.mtime)
    put32(b, at + Extended.mtimeNsec, n.mtimeNsec)
    put32(b, at + Extended.nlink, nlink)
    out.skip(EXTENDED_INODE_SIZE)
  }

  if (xattrSize > 0) {
    out.u32(xattrs.filter(i))
    out.u8(xattrs.nShared[i]!)
    out.skip(7)
    writeXattrs(out, tree, xattrs, i, inodesEnd)
  }

  if (type === S_IFDIR) {
    const {tail} = direntChunks(tree.dirNames[i]!, nBlocks)
    if (tail[1] > tail[0]) writeDirents(out, tree, p, i, tail)
  } else if (type === S_IFLNK) {
    if (nBlocks === 0) out.str(n.payload!)
  } else if (type === S_IFREG && tailSize > 0) {
    if (n.content) out.bytes(n.content.subarray(tree.size[i]! - tailSize))
    else for (let k = 0, count = p.chunkCount[i]!; k < count; k++) out.u32(NULL_ADDR)
  }
  if (out.pos - start !== p.isize[i]) throw new Error(`internal: inode size mismatch at ${n.path()}`)
}

function writeDataBlocks(out: Out, tree: ImageTree, p: Placement, i: number): void {
  const type = tree.mode[i]! & S_IFMT
  const nBlocks = p.nBlocks[i]!
  // Every block starts on a block boundary: room for one block is room for it and its padding.
  if (type === S_IFDIR) {
    for (const block of direntChunks(tree.dirNames[i]!, nBlocks).blocks) {
      out.room(BLOCK_SIZE)
      writeDirents(out, tree, p, i, block)
      out.align(BLOCK_SIZE)
    }
    return
  }
  if (nBlocks === 0) return
  const n = tree.nodes[i]!
  if (type === S_IFREG && !n.content) {
    // An external file whose block map could not be tail-packed: a block of null chunks.
    out.room(BLOCK_SIZE)
    for (let k = 0; k < BLOCK_SIZE / 4; k++) out.u32(NULL_ADDR)
    return
  }
  const data = type === S_IFREG ? n.content! : Buffer.from(n.payload!, 'latin1')
  for (let k = 0; k < nBlocks; k++) {
    out.room(BLOCK_SIZE)
    out.bytes(data.subarray(k * BLOCK_SIZE, Math.min(data.length, (k + 1) * BLOCK_SIZE)))
    out.align(BLOCK_SIZE)
  }
}

/** Serialises a tree into a composefs image and computes its fs-verity digest. */
export function writeImage(root: FsNode, opts: WriteOptions = {}): WrittenImage {
  let image: Buffer | undefined
  const {version, inodes} = emitImage(root, opts, (size) => new Out((image = Buffer.alloc(size))))
  return {image: image!, digest: fsverityDigest(image!), version, inodes}
}

export interface StreamedImage {
  /** Format version written in the composefs header. */
  version: number
  /** Number of inodes in the image. */
  inodes: number
  /** Size of the image in bytes. */
  size: number
}

/** Bytes of the image held at a time by streamImage. */
const WINDOW_SIZE = 1 << 18

/**
 * Serialises a tree into a composefs image handed to `sink` in order, a piece at a time (each
 * piece is only valid during the call): a large image is never in memory whole.
 */
export function streamImage(root: FsNode, opts: WriteOptions, sink: (bytes: Buffer) => void): StreamedImage {
  let out: Out | undefined
  const written = emitImage(
    root,
    opts,
    (size) => (out = new Out(Buffer.alloc(Math.min(size, WINDOW_SIZE)), sink)),
  )
  out!.flush()
  return written
}

/** Lays out the tree and writes its image through the Out that `output` makes for its size. */
function emitImage(root: FsNode, opts: WriteOptions, output: (size: number) => Out): StreamedImage {
  const tree = prepareTree(root, opts.minVersion ?? 0, opts.maxVersion ?? 1)
  const {version} = tree
  const {nodes} = tree
  const mtime = minMtime(nodes)
  const xattrs = new XattrLayout(tree)
  const sharedSize = xattrs.sharedSize()
  const p = new Placement(nodes.length)
  const {inodesEnd, dataBlocks} = layoutInodes(tree, xattrs, p, mtime)
  const rootNid = p.nid[0]!
  if (rootNid > 0xffff) throw new InvalidInputError('image: root inode out of range')
  const dataStart = roundUp(inodesEnd + sharedSize, BLOCK_SIZE)
  const total = dataStart + dataBlocks * BLOCK_SIZE

  // The headers are written at their offsets in the first window (at least one block).
  const out = output(total)
  const b = out.buf
  b.writeUInt32LE(CFS_MAGIC, CfsHeader.magic)
  b.writeUInt32LE(CFS_VERSION, CfsHeader.version)
  b.writeUInt32LE(hasAcl(tree) ? CFS_FLAG_HAS_ACL : 0, CfsHeader.flags)
  b.writeUInt32LE(version, CfsHeader.composefsVersion)

  const sb = SUPER_OFFSET
  b.writeUInt32LE(EROFS_MAGIC, sb + Super.magic)
  b.writeUInt32LE(FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER, sb + Super.featureCompat)
  b.writeUInt8(BLOCK_BITS, sb + Super.blkszbits)
  b.writeUInt16LE(rootNid, sb + Super.rootNid)
  b.writeBigUInt64LE(BigInt(nodes.length), sb + Super.inos)
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(mtime[0])), sb + Super.buildTime)
  b.writeUInt32LE(mtime[1] >>> 0, sb + Super.buildTimeNsec)
  b.writeUInt32LE(dataStart / BLOCK_SIZE + dataBlocks, sb + Super.blocks)
  b.writeUInt32LE(Math.floor((SUPER_OFFSET + SUPER_SIZE) / BLOCK_SIZE), sb + Super.metaBlkaddr)
  b.writeUInt32LE(Math.floor(inodesEnd / BLOCK_SIZE), sb + Super.xattrBlkaddr)
  out.pos = SUPER_OFFSET + SUPER_SIZE

  const nextBlock = {value: dataStart}
  for (let i = 0; i < nodes.length; i++) writeInode(out, tree, xattrs, p, i, inodesEnd, nextBlock)
  out.room(SLOT_SIZE)
  out.align(SLOT_SIZE)
  for (const x of xattrs.shared) {
    out.room(xattrEntrySize(x))
    writeXattr(out, x)
  }
  out.room(BLOCK_SIZE)
  out.align(BLOCK_SIZE)
  if (out.pos !== dataStart) throw new Error('internal: data blocks start mismatch')
  for (let i = 0; i < nodes.length; i++) writeDataBlocks(out, tree, p, i)
  if (out.pos !== total || nextBlock.value !== total) throw new Error('internal: image size mismatch')
  return {version, inodes: nodes.length, size: total}
}
