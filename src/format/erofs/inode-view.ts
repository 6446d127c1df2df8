// One inode of a composefs image as the walk (walk.ts) meets it: the fields of its dump line
// (dump/write.ts's DumpFields), with byte fields as ranges of the image rather than copies.

import {DIGEST_SIZE, S_IFCHR, S_IFMT, type Xattr} from '../../tree/node.js'

/**
 * The xattrs of an inode without any (shared, so never added to: see ownXattrs). An array of
 * the kind a list of xattrs becomes (a literal `[]` is a kind of its own, which code reading
 * both would meet late and deoptimize on).
 */
const NO_XATTRS: readonly Xattr[] = [{key: '', value: Buffer.alloc(0)}].slice(0, 0)

/**
 * One inode as the walk met it (the fields of its dump line, dump/write.ts's DumpFields). The
 * walk reuses one InodeView for every inode: a visitor copies what it keeps.
 */
export class InodeView {
  nid = 0
  mode = 0
  nlink = 0
  uid = 0
  gid = 0
  rdev = 0
  size = 0
  mtimeSec = 0
  mtimeNsec = 0
  /** Symlink target, or a regular file's object path: payload[payloadStart, payloadEnd), or null. */
  payload: Buffer | null = null
  payloadStart = 0
  payloadEnd = 0
  /** Inline content, or null. Like the symlink target, a view of the image when in one piece. */
  content: Buffer | null = null
  /** fs-verity digest: DIGEST_SIZE bytes of `digest` at digestStart, or null. */
  digest: Buffer | null = null
  digestStart = 0
  /**
   * The payload is the digest's object path ("xx/" and the rest of its hex digits), as checked
   * by the walk: printable as it is, and the digest's hex without converting it.
   */
  redirectSpellsDigest = false
  /** Ordinary xattrs in upstream's order (values are views of the image); NO_XATTRS until one is read. */
  xattrs: readonly Xattr[] = NO_XATTRS

  /**
   * A copy to keep once the walk has moved on (its byte fields still views of the image, its
   * xattr list shared: the walk makes a new one per inode). Of this class, so that code
   * printing both the walk's view and kept copies sees one kind of object.
   */
  copy(): InodeView {
    return Object.assign(new InodeView(), this)
  }

  /** The xattr list to add to: the inode's own, made on first use. */
  ownXattrs(): Xattr[] {
    if (this.xattrs === NO_XATTRS) this.xattrs = []
    return this.xattrs as Xattr[]
  }

  get digestEnd(): number {
    return this.digestStart + DIGEST_SIZE
  }

  get type(): number {
    return this.mode & S_IFMT
  }

  reset(nid: number): void {
    this.nid = nid
    this.rdev = 0
    this.payload = null
    this.content = null
    this.digest = null
    this.redirectSpellsDigest = false
    this.xattrs = NO_XATTRS
  }

  /** A composefs whiteout of the original tree: a character device 0:0. */
  makeWhiteout(): void {
    this.mode = S_IFCHR | (this.mode & ~S_IFMT)
    this.rdev = 0
    this.size = 0
    this.content = null
    this.payload = null
    this.digest = null
    this.redirectSpellsDigest = false
  }
}
