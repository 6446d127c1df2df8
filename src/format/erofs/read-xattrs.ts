// The xattrs of one inode in a composefs image (inline entries, then references into the shared
// xattr area), turned back into what the tree meant: composefs's overlayfs xattrs become
// payloads and digests, escaped `trusted.overlay.overlay.*` ones are unescaped, the rest kept.

import {DIGEST_SIZE, FsNode, S_IFCHR, S_IFMT, S_IFREG} from '../../tree/node.js'
import {fail, type ImageBuffer} from './image-header.js'
import {
  OVERLAY_ESCAPE_PREFIX,
  OVERLAY_PREFIX,
  OverlayXattr,
  XATTR_ENTRY_SIZE,
  XATTR_IBODY_HEADER_SIZE,
  XATTR_PREFIXES,
} from './layout.js'
import {noNul} from './read-data.js'
import {putXattr} from './xattr-space.js'
import type {ReaderLimits} from './layout.js'

/** Reads xattrs for one image; counts them against the whole tree's limit. */
export class XattrReader {
  /** Xattrs read so far in the tree. */
  private entries = 0

  constructor(
    private readonly img: ImageBuffer,
    private readonly limits: ReaderLimits,
    /** Byte offset of the shared xattr area. */
    private readonly xattrStart: number,
  ) {}

  read(node: FsNode, nid: number, start: number, xattrSize: number): void {
    const img = this.img
    const end = start + xattrSize
    if (xattrSize < XATTR_IBODY_HEADER_SIZE) fail('xattr header', nid)
    const sharedCount = img.u8(start + 4, 'xattr header', nid)
    let pos = start + XATTR_IBODY_HEADER_SIZE + sharedCount * 4
    if (pos > end) fail('shared xattr count larger than the xattr area', nid)
    const budget = {used: 0}

    // Inline entries; like upstream, fewer than 5 trailing bytes are padding.
    while (end - pos > XATTR_ENTRY_SIZE) {
      const entryLen = this.readEntry(node, nid, pos, end, budget)
      pos += Math.ceil(entryLen / 4) * 4
    }
    for (let i = 0; i < sharedCount; i++) {
      const idx = img.u32(start + XATTR_IBODY_HEADER_SIZE + i * 4, 'shared xattr reference', nid)
      const entryOff = this.xattrStart + idx * 4
      this.readEntry(node, nid, entryOff, img.length, budget)
    }
  }

  /** Reads one xattr entry at `off` that must end before `end`; returns its unpadded length. */
  private readEntry(node: FsNode, nid: number, off: number, end: number, budget: {used: number}): number {
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
    if (++this.entries > this.limits.maxXattrEntries)
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
        // The object path without its leading '/', read as one string.
        const from = value.length > 1 && value[0] === 0x2f ? 1 : 0
        const payload = noNul(value.toString('latin1', from), 'redirect', nid)
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
    // Same accounting and replacement rule as upstream (the last xattr fills the hole). The
    // value is a view, not a copy: shared xattrs (an SELinux label on every inode) cost no memory each.
    budget.used = putXattr(node.xattrs, budget.used, {key, value}, this.limits.maxXattrSpace)
    if (budget.used < 0) fail('too many or too large xattrs', nid)
  }
}
