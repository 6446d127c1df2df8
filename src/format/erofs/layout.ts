// The on-disk layout of a composefs image: a small composefs header, then an EROFS filesystem
// (superblock at 1024, inodes right after, shared xattrs, then whole data blocks).
// Only constants and field offsets live here; writer.ts and reader.ts share them.
// All integers are little-endian.

import {NAME_MAX, PATH_MAX, XATTR_NAME_MAX, XATTR_SIZE_MAX} from '../../tree/limits.js'

export const BLOCK_SIZE = 4096
export const BLOCK_BITS = 12
/** Inodes start on 32-byte slots; a nid is the slot number counted from meta_blkaddr. */
export const SLOT_SIZE = 32
export const SLOT_BITS = 5

/** composefs header, at offset 0 (EROFS leaves the first 1024 bytes to the user). */
export const CFS_MAGIC = 0xd078629a
export const CFS_VERSION = 1
export const CFS_FLAG_HAS_ACL = 1
export const CfsHeader = {magic: 0, version: 4, flags: 8, composefsVersion: 12} as const

export const SUPER_OFFSET = 1024
export const SUPER_SIZE = 128
export const EROFS_MAGIC = 0xe0f5e1e2
export const FEATURE_COMPAT_MTIME = 0x2
export const FEATURE_COMPAT_XATTR_FILTER = 0x4
export const Super = {
  magic: 0,
  checksum: 4,
  featureCompat: 8,
  blkszbits: 12,
  sbExtslots: 13,
  rootNid: 14,
  inos: 16,
  buildTime: 24,
  buildTimeNsec: 32,
  blocks: 36,
  metaBlkaddr: 40,
  xattrBlkaddr: 44,
  uuid: 48,
  volumeName: 64,
  featureIncompat: 80,
} as const

/** i_format: bit 0 = version (0 compact, 1 extended), bits 1-3 = data layout. */
export const Layout = {
  flatPlain: 0,
  compressedFull: 1,
  flatInline: 2,
  compressedCompact: 3,
  chunkBased: 4,
} as const
export const I_VERSION_BIT = 0
export const I_DATALAYOUT_BIT = 1

export const COMPACT_INODE_SIZE = 32
export const Compact = {
  format: 0,
  xattrIcount: 2,
  mode: 4,
  nlink: 6,
  size: 8,
  u: 16, // raw_blkaddr | rdev | chunk format (u16)
  ino: 20,
  uid: 24,
  gid: 26,
} as const

export const EXTENDED_INODE_SIZE = 64
export const Extended = {
  format: 0,
  xattrIcount: 2,
  mode: 4,
  size: 8,
  u: 16,
  ino: 20,
  uid: 24,
  gid: 28,
  mtime: 32,
  mtimeNsec: 40,
  nlink: 44,
} as const

/** Chunk-based files: low 5 bits of the chunk format are log2(chunk size) - 12. */
export const CHUNK_FORMAT_BLKBITS_MASK = 0x1f
export const NULL_ADDR = 0xffffffff
/** composefs writes external (object-backed) files as at most this many null chunk pointers. */
export const MAX_NONINLINE_CHUNKS = 1024

export const XATTR_IBODY_HEADER_SIZE = 12
export const XATTR_ENTRY_SIZE = 4
export const XATTR_FILTER_SEED = 0x25bbe08f
export const XATTR_FILTER_DEFAULT = 0xffffffff
export const XATTR_LONG_PREFIX = 0x80

/**
 * Upstream's estimate of the xattr space an inode needs (lcfs_node_set_xattr), which bounds
 * what external input may set: the inline xattr header once, plus per xattr two entry headers
 * less one byte (room for worst-case alignment) and the key and value bytes. xattr-space.ts
 * is the one implementation of that bookkeeping.
 */
export const XattrSpace = {
  header: XATTR_IBODY_HEADER_SIZE,
  perEntry: 2 * XATTR_ENTRY_SIZE - 1,
} as const

/** Short xattr name prefixes by index (index 0: the full name is stored). */
export const XATTR_PREFIXES: readonly string[] = [
  '',
  'user.',
  'system.posix_acl_access',
  'system.posix_acl_default',
  'trusted.',
  'lustre.',
  'security.',
]
/** Prefixes the writer uses, in the order it tries them (upstream never writes 'lustre.'). */
export const WRITER_XATTR_PREFIXES: readonly [string, number][] = [
  ['user.', 1],
  ['system.posix_acl_access', 2],
  ['system.posix_acl_default', 3],
  ['trusted.', 4],
  ['security.', 6],
]

export const DIRENT_SIZE = 12
export const FileType = {unknown: 0, reg: 1, dir: 2, chr: 3, blk: 4, fifo: 5, sock: 6, symlink: 7} as const

/** Limits of the composefs format and of our parsers (named in one place, as the reader enforces them). */
export const Limits = {
  /** Inline content is capped by upstream at this many bytes. */
  inlineContentMax: 5000,
  /** Files at most this big are inlined when building from a directory tree. */
  recommendedInlineContentMax: 64,
  /** Total xattr space per inode accepted from external input (upstream: UINT16_MAX / 2). */
  externalXattrMax: 0x7fff,
  /** Total xattr space per inode accepted in an image (upstream's reader: UINT16_MAX). */
  imageXattrMax: 0xffff,
  /** Linux XATTR_NAME_MAX. */
  xattrNameMax: XATTR_NAME_MAX,
  /** Linux XATTR_SIZE_MAX. */
  xattrValueMax: XATTR_SIZE_MAX,
  /** Linux PATH_MAX: symlink targets and payloads must be shorter. */
  pathMax: PATH_MAX,
  /** Largest external file: 1024 chunks of 2^43 bytes. */
  maxFileSize: 2 ** 53,
} as const

/**
 * What the image reader (reader.ts, `ReaderLimits`) accepts unless its caller says otherwise.
 * Images may be hostile: every count the reader walks has a cap here.
 */
export const ReaderDefaults = Object.freeze({
  /** Directory nesting: PATH_MAX allows at most PATH_MAX / 2 levels of "/x". */
  maxDepth: Limits.pathMax / 2,
  /** Distinct inodes in the tree. */
  maxInodes: 1 << 21,
  /** Directory entries (names, hardlinks included) in the tree. */
  maxEntries: 1 << 21,
  /** Xattrs in the whole tree (shared ones counted once per inode that uses them). */
  maxXattrEntries: 1 << 22,
  maxNameLength: NAME_MAX,
  /** Symlink targets and redirect payloads: shorter than PATH_MAX, as upstream. */
  maxSymlinkLength: Limits.pathMax - 1,
  maxPayloadLength: Limits.pathMax - 1,
  maxInlineContent: Limits.inlineContentMax,
  maxXattrNameLength: Limits.xattrNameMax,
  maxXattrSpace: Limits.imageXattrMax,
  maxFileSize: Limits.maxFileSize,
})

/** Limits the reader enforces (defaults and their reasons: ReaderDefaults above); callers
 * may lower (or raise) them through the reader's `ReadOptions.limits`. */
export type ReaderLimits = {[K in keyof typeof ReaderDefaults]: number}

export const OVERLAY_PREFIX = 'trusted.overlay.'
export const OVERLAY_ESCAPE_PREFIX = 'trusted.overlay.overlay.'
export const OverlayXattr = {
  metacopy: 'trusted.overlay.metacopy',
  redirect: 'trusted.overlay.redirect',
  opaque: 'trusted.overlay.opaque',
  escapedWhiteout: 'trusted.overlay.overlay.whiteout',
  escapedWhiteouts: 'trusted.overlay.overlay.whiteouts',
  escapedOpaque: 'trusted.overlay.overlay.opaque',
  userWhiteout: 'user.overlay.whiteout',
  userWhiteouts: 'user.overlay.whiteouts',
  userOpaque: 'user.overlay.opaque',
} as const

/** fs-verity hash algorithm number for SHA-256 (in the metacopy xattr). */
export const FSVERITY_HASH_ALG_SHA256 = 1
