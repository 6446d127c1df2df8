// The xattrs of one inode in a composefs image (inline entries, then references into the shared
// xattr area), turned back into what the tree meant: composefs's overlayfs xattrs become
// payloads and digests, escaped `trusted.overlay.overlay.*` ones are unescaped, the rest kept.

import {DIGEST_SIZE, S_IFREG} from '../../tree/node.js'
import {fail, type ImageBuffer} from './image-header.js'
import {
  OVERLAY_ESCAPE_PREFIX,
  OVERLAY_PREFIX,
  OverlayXattr,
  XATTR_ENTRY_SIZE,
  XATTR_IBODY_HEADER_SIZE,
  XATTR_PREFIXES,
} from './layout.js'
import type {InodeView} from './inode-view.js'
import {putXattr} from './xattr-space.js'
import type {ReaderLimits} from './layout.js'

const REDIRECT_NAME = Buffer.from(OverlayXattr.redirect.slice(OVERLAY_PREFIX.length), 'latin1')
const METACOPY_NAME = Buffer.from(OverlayXattr.metacopy.slice(OVERLAY_PREFIX.length), 'latin1')
const OVERLAY_PREFIX_BYTES = Buffer.from(OVERLAY_PREFIX, 'latin1')

/**
 * Where the part of an xattr name after OVERLAY_PREFIX (`trusted.overlay.`) starts, when the
 * full name (`prefix` + img[start, end)) has that prefix; else -1.
 */
function overlayNameStart(buf: Buffer, prefix: string, start: number, end: number): number {
  if (!OVERLAY_PREFIX.startsWith(prefix)) return -1
  const rest = OVERLAY_PREFIX_BYTES.length - prefix.length
  if (end - start < rest) return -1
  for (let i = 0; i < rest; i++) if (buf[start + i] !== OVERLAY_PREFIX_BYTES[prefix.length + i]) return -1
  return start + rest
}

function sameBytes(buf: Buffer, start: number, end: number, want: Buffer): boolean {
  if (end - start !== want.length) return false
  for (let i = 0; i < want.length; i++) if (buf[start + i] !== want[i]) return false
  return true
}

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

  read(node: InodeView, nid: number, start: number, xattrSize: number): void {
    const img = this.img
    const end = start + xattrSize
    if (xattrSize < XATTR_IBODY_HEADER_SIZE) fail('xattr header', nid)
    // parseInode checked that the inline area [start, end) lies in the image.
    const buf = img.buf
    const sharedCount = buf[start + 4]!
    let pos = start + XATTR_IBODY_HEADER_SIZE + sharedCount * 4
    if (pos > end) fail('shared xattr count larger than the xattr area', nid)
    const budget = {used: 0}

    // Inline entries; like upstream, fewer than 5 trailing bytes are padding.
    while (end - pos > XATTR_ENTRY_SIZE) {
      const entryLen = this.readEntry(node, nid, pos, end, budget)
      pos += Math.ceil(entryLen / 4) * 4
    }
    for (let i = 0; i < sharedCount; i++) {
      const idx = buf.readUInt32LE(start + XATTR_IBODY_HEADER_SIZE + i * 4)
      const entryOff = this.xattrStart + idx * 4
      this.readEntry(node, nid, entryOff, img.length, budget)
    }
  }

  /** Reads one xattr entry at `off` that must end before `end`; returns its unpadded length. */
  private readEntry(node: InodeView, nid: number, off: number, end: number, budget: {used: number}): number {
    const img = this.img
    // `end` is at most the image's length, so what lies before it can be read unchecked.
    if (off + XATTR_ENTRY_SIZE > end) fail('xattr entry beyond its area', nid)
    const buf = img.buf
    const nameLen = buf[off]!
    const index = buf[off + 1]!
    const valueLen = buf[off + 2]! | (buf[off + 3]! << 8)
    const len = XATTR_ENTRY_SIZE + nameLen + valueLen
    if (off + len > end) fail('xattr entry beyond its area', nid)
    const prefix = XATTR_PREFIXES[index]
    if (prefix === undefined) fail(`unknown xattr name prefix ${index}`, nid)
    const nameStart = off + XATTR_ENTRY_SIZE
    const nameEnd = nameStart + nameLen
    const keyLength = prefix.length + nameLen
    if (keyLength === 0) fail('invalid xattr name', nid)
    for (let i = nameStart; i < nameEnd; i++) if (buf[i] === 0) fail('invalid xattr name', nid)
    if (keyLength > this.limits.maxXattrNameLength)
      fail(`xattr name longer than ${this.limits.maxXattrNameLength}`, nid)
    if (++this.entries > this.limits.maxXattrEntries)
      fail(`more than ${this.limits.maxXattrEntries} xattrs`, nid)

    // Every external file has these two: recognised from the bytes, without a string.
    const overlayName = overlayNameStart(buf, prefix, nameStart, nameEnd)
    if (overlayName >= 0 && node.type === S_IFREG) {
      if (sameBytes(buf, overlayName, nameEnd, REDIRECT_NAME)) {
        this.setRedirect(node, nid, nameEnd, off + len)
        return len
      }
      if (sameBytes(buf, overlayName, nameEnd, METACOPY_NAME)) {
        this.setMetacopy(node, nameEnd, off + len)
        return len
      }
    }
    const key = prefix + buf.toString('latin1', nameStart, nameEnd)
    this.applyXattr(node, nid, key, nameEnd, off + len, budget)
    return len
  }

  /**
   * A file's redirect: the object path, without its leading '/', at img[start, end). Whether it
   * holds a NUL is checked with the digest, once the inode is read (walk.ts, checkRedirect).
   */
  private setRedirect(node: InodeView, nid: number, start: number, end: number): void {
    const buf = this.img.buf
    const from = end - start > 1 && buf[start] === 0x2f ? start + 1 : start
    if (end - from > this.limits.maxPayloadLength) fail('redirect payload too long', nid)
    node.payload = buf
    node.payloadStart = from
    node.payloadEnd = end
  }

  /** A file's metacopy: a 4-byte header (version, length, flags, hash algorithm), then the digest. */
  private setMetacopy(node: InodeView, start: number, end: number): void {
    if (end - start !== 4 + DIGEST_SIZE) return
    node.digest = this.img.buf
    node.digestStart = start + 4
  }

  /**
   * Turns composefs's other overlayfs xattrs back into what the tree meant; stores the rest.
   * The value is img[start, end).
   */
  private applyXattr(
    node: InodeView,
    nid: number,
    key: string,
    start: number,
    end: number,
    budget: {used: number},
  ): void {
    const type = node.type
    if (key === OverlayXattr.escapedWhiteout && type === S_IFREG) {
      // A whiteout of the original tree, stored as an escaped one: make it a whiteout again.
      node.makeWhiteout()
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
    const value = this.img.buf.subarray(start, end)
    budget.used = putXattr(node.ownXattrs(), budget.used, {key, value}, this.limits.maxXattrSpace)
    if (budget.used < 0) fail('too many or too large xattrs', nid)
  }
}
