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

/** XATTR_PREFIXES index of `trusted.`, with which images name composefs's overlay xattrs. */
const TRUSTED_INDEX = XATTR_PREFIXES.indexOf('trusted.')
/** The names after `trusted.` of the two overlay xattrs every external file has, as u32 words. */
const words = (s: string): number[] => {
  const b = Buffer.from(s, 'latin1')
  return [0, 4, 8, 12].map((o) => b.readUInt32LE(o))
}
const REDIRECT_WORDS = words(OverlayXattr.redirect.slice('trusted.'.length))
const METACOPY_WORDS = words(OverlayXattr.metacopy.slice('trusted.'.length))
const OverlayName = {other: 0, redirect: 1, metacopy: 2} as const

/**
 * Whether the 16 bytes at `at` are `overlay.redirect` or `overlay.metacopy` (compared four bytes
 * at a time: no string per xattr for the two every external file has).
 */
function overlayName(dv: DataView, at: number): number {
  // Both start with "overlay."; they differ in the last eight bytes.
  if (dv.getUint32(at, true) !== REDIRECT_WORDS[0] || dv.getUint32(at + 4, true) !== REDIRECT_WORDS[1])
    return OverlayName.other
  const w2 = dv.getUint32(at + 8, true)
  const w3 = dv.getUint32(at + 12, true)
  if (w2 === REDIRECT_WORDS[2] && w3 === REDIRECT_WORDS[3]) return OverlayName.redirect
  if (w2 === METACOPY_WORDS[2] && w3 === METACOPY_WORDS[3]) return OverlayName.metacopy
  return OverlayName.other
}

/** Reads xattrs for one image; counts them against the whole tree's limit. */
export class XattrReader {
  /** Xattrs read so far in the tree. */
  private entries = 0
  /** The estimated xattr space of the inode being read (putXattr's `used`). */
  private used = 0

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
    this.used = 0

    // Inline entries; like upstream, fewer than 5 trailing bytes are padding.
    while (end - pos > XATTR_ENTRY_SIZE) {
      const entryLen = this.readEntry(node, nid, pos, end)
      pos += Math.ceil(entryLen / 4) * 4
    }
    for (let i = 0; i < sharedCount; i++) {
      const idx = buf.readUInt32LE(start + XATTR_IBODY_HEADER_SIZE + i * 4)
      const entryOff = this.xattrStart + idx * 4
      this.readEntry(node, nid, entryOff, img.length)
    }
  }

  /** Reads one xattr entry at `off` that must end before `end`; returns its unpadded length. */
  private readEntry(node: InodeView, nid: number, off: number, end: number): number {
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
    // Every external file has these two, spelled with the `trusted.` prefix as upstream writes
    // them: recognised from the bytes (which hold no NUL then), without a string.
    const overlay =
      index === TRUSTED_INDEX && nameLen === 16 && node.type === S_IFREG
        ? overlayName(img.dv, nameStart)
        : OverlayName.other
    if (overlay === OverlayName.other)
      for (let i = nameStart; i < nameEnd; i++) if (buf[i] === 0) fail('invalid xattr name', nid)
    if (keyLength > this.limits.maxXattrNameLength)
      fail(`xattr name longer than ${this.limits.maxXattrNameLength}`, nid)
    if (++this.entries > this.limits.maxXattrEntries)
      fail(`more than ${this.limits.maxXattrEntries} xattrs`, nid)

    const key = overlay === OverlayName.other ? prefix + buf.toString('latin1', nameStart, nameEnd) : ''
    if (overlay === OverlayName.redirect || (key === OverlayXattr.redirect && node.type === S_IFREG)) {
      this.setRedirect(node, nid, nameEnd, off + len)
    } else if (overlay === OverlayName.metacopy || (key === OverlayXattr.metacopy && node.type === S_IFREG)) {
      this.setMetacopy(node, nameEnd, off + len)
    } else {
      this.applyXattr(node, nid, key, nameEnd, off + len)
    }
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
  private applyXattr(node: InodeView, nid: number, key: string, start: number, end: number): void {
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
    this.used = putXattr(node.ownXattrs(), this.used, {key, value}, this.limits.maxXattrSpace)
    if (this.used < 0) fail('too many or too large xattrs', nid)
  }
}
