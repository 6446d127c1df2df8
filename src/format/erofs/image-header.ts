// The fixed start of a composefs image, read from hostile bytes: the composefs header, the
// EROFS superblock, and the bounds-checked view (ImageBuffer) every other read goes through.
// Every violation is an InvalidInputError with one line: `image: <what> at nid N`.

import {InvalidInputError} from '../../errors.js'
import {
  BLOCK_BITS,
  BLOCK_SIZE,
  CFS_MAGIC,
  CFS_VERSION,
  CfsHeader,
  EROFS_MAGIC,
  Super,
  SUPER_OFFSET,
  SUPER_SIZE,
} from './layout.js'

/** The newest composefs format version this reader understands. */
export const MAX_COMPOSEFS_VERSION = 1

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

export function fail(what: string, nid?: number): never {
  throw new InvalidInputError(nid === undefined ? `image: ${what}` : `image: ${what} at nid ${nid}`)
}

/** Bounds checks over the image buffer; every read of image bytes goes through `need`. */
export class ImageBuffer {
  /**
   * The same bytes for the walk's hot reads: a DataView's getters and a plain Uint8Array's
   * subarray/indexOf are builtins, several times cheaper than Buffer's readUInt32LE, subarray
   * and indexOf (JavaScript that checks its arguments) until the JIT has compiled the walk,
   * which is most of a dump's time. Callers check bounds first.
   */
  readonly dv: DataView
  readonly bytes: Uint8Array

  constructor(readonly buf: Buffer) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.length)
    this.bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length)
  }

  get length(): number {
    return this.buf.length
  }

  /** Throws unless [off, off+len) lies inside the buffer. */
  need(off: number, len: number, what: string, nid?: number): void {
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0) fail(what, nid)
    if (off + len > this.buf.length) fail(`${what} beyond the end of the image`, nid)
  }

  /** Whether [off, off+len) lies inside the buffer (need's test, without a message). */
  holds(off: number, len: number): boolean {
    return (
      Number.isSafeInteger(off) &&
      Number.isSafeInteger(len) &&
      off >= 0 &&
      len >= 0 &&
      off + len <= this.buf.length
    )
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

  /** A u64 that must fit a JavaScript number exactly (read as two halves: no BigInt to allocate). */
  u64(off: number, what: string, nid?: number): number {
    this.need(off, 8, what, nid)
    const v = u64At(this.dv, off)
    if (!Number.isSafeInteger(v)) fail(`${what} out of range`, nid)
    return v
  }

  /** A signed 64-bit time that must fit a JavaScript number exactly. */
  i64(off: number, what: string, nid?: number): number {
    this.need(off, 8, what, nid)
    const v = i64At(this.dv, off)
    if (!Number.isSafeInteger(v)) fail(`${what} out of range`, nid)
    return v
  }

  slice(off: number, len: number, what: string, nid?: number): Buffer {
    this.need(off, len, what, nid)
    return this.buf.subarray(off, off + len)
  }
}

/**
 * The u64 at `off` (in bounds), exact when the caller finds it a safe integer. A high word of 0,
 * as in every size, count and time before 2106, gives a small integer: a product with 2 ** 32 is
 * a heap number, and a walk whose fields once held one deoptimizes all that reads them.
 */
export function u64At(dv: DataView, off: number): number {
  const hi = dv.getUint32(off + 4, true)
  const lo = dv.getUint32(off, true)
  return hi === 0 ? lo : hi * 2 ** 32 + lo
}

/** The i64 at `off` (in bounds): exact whenever the result is a safe integer; beyond, it rounds to one that is not. */
export function i64At(dv: DataView, off: number): number {
  const hi = dv.getInt32(off + 4, true)
  const lo = dv.getUint32(off, true)
  return hi === 0 ? lo : hi * 2 ** 32 + lo
}

/** ImageInfo plus where the inodes and the shared xattrs start (byte offsets). */
export type ImageHeader = ImageInfo & {metaStart: number; xattrStart: number}

/** Parses and checks the composefs header and the EROFS superblock. */
export function parseHeader(img: ImageBuffer): ImageHeader {
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
