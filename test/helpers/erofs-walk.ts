// Locates structures inside a VALID composefs image (one our writer made), so tests can patch
// exactly the bytes they mean to break. No defensive checks: never use this on untrusted input.
import {
  BLOCK_SIZE,
  Compact,
  COMPACT_INODE_SIZE,
  DIRENT_SIZE,
  Extended,
  EXTENDED_INODE_SIZE,
  Layout,
  SLOT_SIZE,
  Super,
  SUPER_OFFSET,
  XATTR_ENTRY_SIZE,
  XATTR_IBODY_HEADER_SIZE,
} from '../../src/format/erofs/layout.js'

export interface InodeAt {
  nid: number
  offset: number
  extended: boolean
  layout: number
  mode: number
  size: number
  /** Offset of the inline tail (after the inode and its xattrs). */
  tailOffset: number
  /** Offset of the xattr area (valid when xattrSize > 0). */
  xattrOffset: number
  xattrSize: number
  /** Data block address (i_u). */
  blkaddr: number
}

export interface DirentAt {
  name: string
  nid: number
  /** Offset of the 12-byte dirent record. */
  offset: number
  /** Offset of the name bytes. */
  nameOffset: number
}

export function rootNid(image: Buffer): number {
  return image.readUInt16LE(SUPER_OFFSET + Super.rootNid)
}

export function inodeAt(image: Buffer, nid: number): InodeAt {
  const offset = image.readUInt32LE(SUPER_OFFSET + Super.metaBlkaddr) * BLOCK_SIZE + nid * SLOT_SIZE
  const format = image.readUInt16LE(offset)
  const extended = (format & 1) === 1
  const layout = (format >> 1) & 7
  const isize = extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE
  const icount = image.readUInt16LE(offset + (extended ? Extended.xattrIcount : Compact.xattrIcount))
  const xattrSize = icount === 0 ? 0 : XATTR_IBODY_HEADER_SIZE + (icount - 1) * XATTR_ENTRY_SIZE
  return {
    nid,
    offset,
    extended,
    layout,
    mode: image.readUInt16LE(offset + (extended ? Extended.mode : Compact.mode)),
    size: extended
      ? Number(image.readBigUInt64LE(offset + Extended.size))
      : image.readUInt32LE(offset + Compact.size),
    tailOffset: offset + isize + xattrSize,
    xattrOffset: offset + isize,
    xattrSize,
    blkaddr: image.readUInt32LE(offset + (extended ? Extended.u : Compact.u)),
  }
}

/** Every dirent of a directory, in on-disk order. */
export function direntsOf(image: Buffer, dirNid: number): DirentAt[] {
  const ino = inodeAt(image, dirNid)
  const pieces: [number, number][] = []
  const nBlocks = Math.ceil(ino.size / BLOCK_SIZE)
  const full = ino.layout === Layout.flatInline ? nBlocks - 1 : nBlocks
  for (let b = 0; b < full; b++)
    pieces.push([ino.blkaddr * BLOCK_SIZE + b * BLOCK_SIZE, Math.min(BLOCK_SIZE, ino.size - b * BLOCK_SIZE)])
  if (ino.layout === Layout.flatInline) pieces.push([ino.tailOffset, ino.size - full * BLOCK_SIZE])
  const out: DirentAt[] = []
  for (const [off, len] of pieces) {
    const count = image.readUInt16LE(off + 8) / DIRENT_SIZE
    for (let i = 0; i < count; i++) {
      const d = off + i * DIRENT_SIZE
      const nameoff = image.readUInt16LE(d + 8)
      let end = i + 1 < count ? image.readUInt16LE(d + DIRENT_SIZE + 8) : len
      if (i + 1 === count) {
        const z = image.subarray(off + nameoff, off + len).indexOf(0)
        if (z >= 0) end = nameoff + z
      }
      out.push({
        name: image.toString('latin1', off + nameoff, off + end),
        nid: image.readUInt32LE(d),
        offset: d,
        nameOffset: off + nameoff,
      })
    }
  }
  return out
}

/** The nid of the entry at `path` ("/a/b"). */
export function lookupNid(image: Buffer, path: string): number {
  let nid = rootNid(image)
  for (const part of path.split('/').filter(Boolean)) {
    const e = direntsOf(image, nid).find((d) => d.name === part)
    if (!e) throw new Error(`no ${part} in ${path}`)
    nid = e.nid
  }
  return nid
}

/** Every directory's nid (depth-first from the root). */
export function allDirectories(image: Buffer): number[] {
  const out: number[] = []
  const stack = [rootNid(image)]
  while (stack.length) {
    const nid = stack.pop()!
    out.push(nid)
    for (const d of direntsOf(image, nid)) {
      if (d.name === '.' || d.name === '..') continue
      if ((inodeAt(image, d.nid).mode & 0o170000) === 0o040000) stack.push(d.nid)
    }
  }
  return out
}
