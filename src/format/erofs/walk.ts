// The one walk over a composefs image's inodes, with every check the image must pass, for the
// two ways of reading one: readImage (reader.ts) builds an FsNode tree from it, and the dump
// printer (src/format/dump/image.ts) prints each entry as it is met, without a tree. The walk
// follows upstream's lcfs_load_node_from_image: the overlayfs xattrs become payloads and
// digests again, escaped `trusted.overlay.overlay.*` xattrs are unescaped, the 00..ff root
// whiteouts and composefs's whiteout bookkeeping disappear, a nid seen twice is a hardlink.
//
// Images may be hostile (downloaded, or on a disk someone else could write). So every offset
// and length is checked against the buffer before it is read, nothing is allocated from a size
// the image claims without a cap, directories are walked iteratively with a depth cap, a
// directory reachable twice (a cycle or a directory hardlink) is refused, and all counts have
// the limits in layout.ts. Every violation is an InvalidInputError with one line:
// `image: <what> at nid N`.
//
// What the walk hands out is a view of the image bytes (offsets, not copies): an inode costs no
// allocation beyond its directory entries and its ordinary xattrs.

import {
  DIGEST_SIZE,
  HEX_DIGITS,
  isObjectPath,
  S_IFBLK,
  S_IFMT,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
} from '../../tree/node.js'
import {fail, i64At, ImageBuffer, type ImageHeader, parseHeader, u64At} from './image-header.js'
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
  SLOT_SIZE,
  SUPER_OFFSET,
  SUPER_SIZE,
  XATTR_ENTRY_SIZE,
  XATTR_IBODY_HEADER_SIZE,
} from './layout.js'
import {InodeView} from './inode-view.js'
import {DataLocator, onePiece, readDirectory} from './read-data.js'
import {XattrReader} from './read-xattrs.js'

export type {InodeView} from './inode-view.js'

export interface ReadOptions {
  limits?: Partial<ReaderLimits>
}

/** What the walk reports, in depth-first, name order (parents before children). */
export interface WalkVisitor {
  /**
   * An inode met for the first time, under the name img[nameStart, nameEnd) at `depth` (the
   * root: depth 0, an empty name). `inode` is reused once this returns.
   */
  inode(nameStart: number, nameEnd: number, depth: number, inode: InodeView): void
  /** Another name, at `depth`, of the inode `nid` met before (never a directory). */
  link(nameStart: number, nameEnd: number, depth: number, nid: number): void
}

/** Counts of a finished walk. */
export interface WalkResult {
  header: ImageHeader
  /** Distinct inodes (whiteouts that were skipped not counted). */
  inodeCount: number
  /** Names (the root and every hardlink name included). */
  entryCount: number
}

/** Bits of Walker.state. */
const NidState = {
  seen: 1,
  dir: 2,
  /** A real overlay whiteout: skipped wherever it is named. */
  whiteout: 4,
  /** A directory on the path being walked (to tell a cycle from a second name). */
  walking: 8,
} as const

const DATALAYOUT_MASK = 0x7
/** The valid file types, as bits numbered by type >> 12 (one test, no Set lookup per inode). */
const VALID_TYPES = [S_IFREG, S_IFDIR, S_IFLNK, S_IFBLK, S_IFCHR, S_IFSOCK, S_IFIFO].reduce(
  (bits, t) => bits | (1 << (t >> 12)),
  0,
)
const DOT = 0x2e
const SLASH = 0x2f

/** The directory being walked: its entries as flat (nameStart, nameEnd, nid) triples. */
interface Frame {
  nid: number
  parentNid: number
  entries: number[]
  next: number
}

class Walker {
  private readonly img: ImageBuffer
  private readonly limits: ReaderLimits
  readonly header: ImageHeader
  /**
   * What the walk knows of each nid (NidState bits), indexed by nid: every nid that passes
   * inodeOffset is below the image size / 32, so this costs 1/32 of the image.
   */
  private readonly state: Uint8Array
  private inodes = 0
  private entries = 0
  private readonly xattrReader: XattrReader
  private readonly view: InodeView
  /** Entries of the directory parsed last (parseInode's second result). */
  private dirEntries: number[] | null = null
  /**
   * Bytes of directory blocks, file content and symlink targets read so far. A valid image
   * stores each of these once, so more than the image size means inodes share data blocks,
   * which would let a small image expand into a huge tree.
   */
  private dataRead = 0

  constructor(image: Buffer, opts: ReadOptions) {
    this.img = new ImageBuffer(image)
    this.limits = {...ReaderDefaults, ...opts.limits}
    this.header = parseHeader(this.img)
    this.xattrReader = new XattrReader(this.img, this.limits, this.header.xattrStart)
    this.view = new InodeView()
    this.state = new Uint8Array(Math.ceil(image.length / 2 ** SLOT_BITS))
  }

  walk(visitor: WalkVisitor): WalkResult {
    const rootNid = this.header.rootNid
    const root = this.parseInode(rootNid)
    const rootEntries = this.dirEntries
    if (!root || root.type !== S_IFDIR || !rootEntries) fail('the root is not a directory', rootNid)
    const state = this.state
    state[rootNid] = NidState.seen | NidState.dir | NidState.walking
    this.inodes = 1
    this.entries = 1
    visitor.inode(0, 0, 0, root)

    // Depth-first in on-disk (name) order, as upstream reads: the first name met for a
    // hardlinked inode is the one that holds it, later names link to it.
    const buf = this.img.buf
    const stack: Frame[] = [{nid: rootNid, parentNid: rootNid, entries: rootEntries, next: 0}]
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!
      if (frame.next >= frame.entries.length) {
        state[frame.nid]! &= ~NidState.walking
        stack.pop()
        continue
      }
      const nameStart = frame.entries[frame.next]!
      const nameEnd = frame.entries[frame.next + 1]!
      const nid = frame.entries[frame.next + 2]!
      frame.next += 3
      if (buf[nameStart] === DOT && nameEnd - nameStart <= 2) {
        if (nameEnd - nameStart === 1) {
          if (nid !== frame.nid) fail(`"." does not point to its directory`, frame.nid)
          continue
        }
        if (buf[nameStart + 1] === DOT) {
          if (nid !== frame.parentNid) fail(`".." does not point to the parent directory`, frame.nid)
          continue
        }
      }
      // A nid beyond the state array fails in inodeOffset below.
      const known = nid < state.length ? state[nid]! : 0
      if (known & NidState.whiteout) continue

      const depth = stack.length
      if (known & NidState.seen) {
        if (known & NidState.dir)
          fail(known & NidState.walking ? 'directory cycle' : 'directory with more than one name', nid)
        this.countEntry(nid)
        visitor.link(nameStart, nameEnd, depth, nid)
        continue
      }

      const child = this.parseInode(nid)
      if (!child) {
        state[nid] = NidState.whiteout
        continue
      }
      const childEntries = this.dirEntries
      this.countEntry(nid)
      if (this.inodes >= this.limits.maxInodes) fail(`more than ${this.limits.maxInodes} inodes`, nid)
      this.inodes++
      state[nid] = childEntries ? NidState.seen | NidState.dir | NidState.walking : NidState.seen
      visitor.inode(nameStart, nameEnd, depth, child)
      if (childEntries) {
        if (stack.length >= this.limits.maxDepth)
          fail(`directories nested deeper than ${this.limits.maxDepth}`, nid)
        stack.push({nid, parentNid: frame.nid, entries: childEntries, next: 0})
      }
    }
    return {header: this.header, inodeCount: this.inodes, entryCount: this.entries}
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
    // (SLOT_SIZE, not 2 ** SLOT_BITS: a power is a heap number, and so would be every offset
    // computed from it until the walk is compiled, and then every field set from those.)
    const off = this.header.metaStart + nid * SLOT_SIZE
    if (off < SUPER_OFFSET + SUPER_SIZE) fail('inode overlaps the header or superblock', nid)
    this.img.need(off, COMPACT_INODE_SIZE, 'inode', nid)
    return off
  }

  /**
   * Reads inode `nid` into the view (and a directory's entries into `dirEntries`). Returns
   * null for a real overlay whiteout (char device 0:0): composefs's own, skipped like upstream.
   */
  private parseInode(nid: number): InodeView | null {
    const img = this.img
    const off = this.inodeOffset(nid)
    // inodeOffset checked the compact part, and the extended one is checked before it is read.
    const dv = img.dv
    const format = dv.getUint16(off, true)
    const extended = (format >> I_VERSION_BIT) & 1
    const layout = (format >> I_DATALAYOUT_BIT) & DATALAYOUT_MASK
    const node = this.view
    node.reset(nid)
    this.dirEntries = null
    let size: number
    let u: number
    let xattrIcount: number
    let isize: number
    if (extended) {
      isize = EXTENDED_INODE_SIZE
      img.need(off, isize, 'extended inode', nid)
      xattrIcount = dv.getUint16(off + Extended.xattrIcount, true)
      node.mode = dv.getUint16(off + Extended.mode, true)
      size = u64At(dv, off + Extended.size)
      if (!Number.isSafeInteger(size)) fail('inode size out of range', nid)
      u = dv.getUint32(off + Extended.u, true)
      node.uid = dv.getUint32(off + Extended.uid, true)
      node.gid = dv.getUint32(off + Extended.gid, true)
      const mtime = i64At(dv, off + Extended.mtime)
      if (!Number.isSafeInteger(mtime)) fail('inode mtime out of range', nid)
      node.mtimeSec = mtime
      node.mtimeNsec = dv.getUint32(off + Extended.mtimeNsec, true)
      node.nlink = dv.getUint32(off + Extended.nlink, true)
    } else {
      isize = COMPACT_INODE_SIZE
      xattrIcount = dv.getUint16(off + Compact.xattrIcount, true)
      node.mode = dv.getUint16(off + Compact.mode, true)
      node.nlink = dv.getUint16(off + Compact.nlink, true)
      size = dv.getUint32(off + Compact.size, true)
      u = dv.getUint32(off + Compact.u, true)
      node.uid = dv.getUint16(off + Compact.uid, true)
      node.gid = dv.getUint16(off + Compact.gid, true)
      node.mtimeSec = this.header.buildTimeSec
      node.mtimeNsec = this.header.buildTimeNsec
    }
    const type = node.mode & S_IFMT
    if (((VALID_TYPES >> (type >> 12)) & 1) === 0) fail(`invalid file mode 0${node.mode.toString(8)}`, nid)
    if (type === S_IFCHR || type === S_IFBLK) node.rdev = u
    if (size > this.limits.maxFileSize) fail(`file size ${size} too large`, nid)
    node.size = size

    if (type === S_IFCHR && node.rdev === 0) return null

    const xattrSize = xattrIcount === 0 ? 0 : XATTR_IBODY_HEADER_SIZE + (xattrIcount - 1) * XATTR_ENTRY_SIZE
    img.need(off, isize + xattrSize, 'inode xattrs', nid)
    const tailOff = off + isize + xattrSize

    if (layout !== Layout.flatPlain && layout !== Layout.flatInline && layout !== Layout.chunkBased) {
      fail(`unsupported data layout ${layout}`, nid)
    }
    const dataOff = u * BLOCK_SIZE

    if (type === S_IFDIR) {
      if (layout === Layout.chunkBased) fail('chunk-based directory', nid)
      this.countData(nid, size)
      const data = new DataLocator(img, nid, size, layout, dataOff, tailOff)
      this.dirEntries = readDirectory(this.img, nid, data, this.limits.maxNameLength)
    } else if (type === S_IFLNK) {
      if (layout === Layout.chunkBased) fail('chunk-based symlink', nid)
      if (size > this.limits.maxSymlinkLength)
        fail(`symlink target longer than ${this.limits.maxSymlinkLength}`, nid)
      this.countData(nid, size)
      this.readSymlink(node, nid, size, layout, dataOff, tailOff)
    } else if (type === S_IFREG && size > 0) {
      if (layout === Layout.chunkBased) {
        // Content lives in an object; the chunk map holds only null addresses (not read).
      } else {
        if (size > this.limits.maxInlineContent)
          fail(`inline content of ${size} bytes is over the limit`, nid)
        this.countData(nid, size)
        node.content = new DataLocator(img, nid, size, layout, dataOff, tailOff).view('file content')
      }
    }

    if (xattrIcount > 0) this.xattrReader.read(node, nid, off + isize, xattrSize)
    // (An escaped whiteout xattr has just made a regular file a character device.)
    if (node.type === S_IFREG) checkRedirect(img, node, nid)
    return node
  }

  /** A symlink's target: a range of the image when in one piece (the usual inline tail), else a copy. */
  private readSymlink(
    node: InodeView,
    nid: number,
    size: number,
    layout: number,
    dataOff: number,
    tailOff: number,
  ): void {
    const img = this.img
    const at = onePiece(img, nid, size, layout, dataOff, tailOff, 'symlink target')
    if (at >= 0) {
      if (img.bytes.subarray(at, at + size).indexOf(0) >= 0) fail('NUL byte in a symlink target', nid)
      node.payload = img.buf
      node.payloadStart = at
      node.payloadEnd = at + size
      return
    }
    const target = new DataLocator(img, nid, size, layout, dataOff, tailOff).view('symlink target')
    if (target.includes(0)) fail('NUL byte in a symlink target', nid)
    node.payload = target
    node.payloadStart = 0
    node.payloadEnd = target.length
  }
}

/** Each byte's two lower-case hex digits as a little-endian u16 (the first digit in the low byte). */
const HEX_PAIR = new Uint16Array(256).map((_, b) => HEX_DIGITS[b >> 4]! | (HEX_DIGITS[b & 15]! << 8))

/**
 * A file's redirect holds no NUL (upstream would silently cut there; a NUL means damage). And
 * when it names a content address (xx/yyyy…) and the metacopy xattr carries a digest, both
 * must name the same object: overlayfs opens the redirect and checks the digest, so a mismatch
 * could only be a broken or hostile image. The common case, a redirect that spells the digest,
 * passes both with one comparison, two digits at a time, and is noted on the view (the dump
 * then copies the digest's hex from the redirect).
 */
function checkRedirect(img: ImageBuffer, node: InodeView, nid: number): void {
  const {payload, digest} = node
  if (payload === null) return
  const p = node.payloadStart
  const end = node.payloadEnd
  if (
    payload === img.buf &&
    digest === img.buf &&
    end - p === 2 * DIGEST_SIZE + 1 &&
    img.bytes[p + 2] === SLASH &&
    spellsDigest(img, p, node.digestStart)
  ) {
    node.redirectSpellsDigest = true
    return
  }
  for (let i = p; i < end; i++) if (payload[i] === 0) fail('NUL byte in a redirect', nid)
  if (digest === null) return
  const path = payload.toString('latin1', p, end)
  if (!isObjectPath(path)) return
  const hex = digest.toString('hex', node.digestStart, node.digestStart + DIGEST_SIZE)
  if (path !== hex.slice(0, 2) + '/' + hex.slice(2))
    fail(`a file redirects to object ${path} but its fs-verity digest is ${hex}`, nid)
}

/** Whether the image holds at `p` the object path ("xx/yyyy…") of the digest at `d` (all in bounds). */
function spellsDigest(img: ImageBuffer, p: number, d: number): boolean {
  const {dv, bytes} = img
  if (dv.getUint16(p, true) !== HEX_PAIR[bytes[d]!]) return false
  for (let i = 1; i < DIGEST_SIZE; i++) {
    if (dv.getUint16(p + 1 + 2 * i, true) !== HEX_PAIR[bytes[d + i]!]) return false
  }
  return true
}

/** Walks a composefs image. Throws InvalidInputError on anything malformed. */
export function walkImage(image: Buffer, visitor: WalkVisitor, opts: ReadOptions = {}): WalkResult {
  return new Walker(image, opts).walk(visitor)
}
