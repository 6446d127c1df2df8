// Turns an FsNode tree into the tree that a composefs image actually stores (the "W" tree the
// layout code works on). This is where composefs's overlayfs conventions are applied:
//   - a file whose content lives in the objects dir gets `trusted.overlay.metacopy` (carrying its
//     fs-verity digest) and `trusted.overlay.redirect` (the object's path), so overlayfs serves
//     the object's bytes under the file's name and can check them;
//   - the tree's own `trusted.overlay.*` xattrs are escaped to `trusted.overlay.overlay.*`, which
//     overlayfs shows to users without the extra prefix;
//   - whiteouts (char device 0:0) become escaped whiteouts, so they reach the user as whiteouts
//     instead of being interpreted by the composefs overlay mount itself;
//   - the root is opaque and gets whiteouts "00".."ff" so the objects dir's own fan-out
//     directories never show through in the mounted tree;
//   - every directory gets "." and ".." entries.
// The input tree is never modified. The rules follow upstream composefs so images are
// byte-identical to mkcomposefs's.

import {InvalidInputError} from '../../errors.js'
import {
  cmpBytes,
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
import {
  BLOCK_BITS,
  CHUNK_FORMAT_BLKBITS_MASK,
  FSVERITY_HASH_ALG_SHA256,
  Limits,
  MAX_NONINLINE_CHUNKS,
  OVERLAY_ESCAPE_PREFIX,
  OVERLAY_PREFIX,
  OverlayXattr,
} from './layout.js'
import {putXattr, xattrSpace} from './xattr-space.js'

export interface WXattr {
  key: string
  value: Buffer
  /** Offset in the shared xattr area, or -1 when stored inline in the inode. */
  sharedOffset: number
  /** The value as a byte string when it was made from one (no need to convert it back). */
  text: string | null
}

/** A node of the tree as it is laid out in the image. */
export class WNode {
  name = ''
  parent: WNode | null = null
  children: WNode[] = []
  linkTo: WNode | null = null

  mode = 0
  nlink = 1
  uid = 0
  gid = 0
  rdev = 0
  size = 0
  mtimeSec = 0
  mtimeNsec = 0
  payload: string | null = null
  content: Buffer | null = null
  digest: Buffer | null = null
  xattrs: WXattr[] = []
  /** Upstream's running estimate of the inode's xattr space; bounds what may be added. */
  xattrBudget = 0

  // Set by the layout pass.
  inodeNum = 0
  /** Placed in the inode order (orderInodes). */
  ordered = false
  nid = 0
  /** External files: log2 of the chunk size and the chunk count (layout pass). */
  chunkBits = 0
  chunkCount = 0
  /** Xattrs stored in the shared area (layout pass). */
  nShared = 0
  compact = false
  ipad = 0
  xattrSize = 0
  isize = 0
  nBlocks = 0
  tailSize = 0

  get type(): number {
    return this.mode & S_IFMT
  }

  target(): WNode {
    let n: WNode = this
    while (n.linkTo) {
      n = n.linkTo
      if (n === this) throw new InvalidInputError(`image: hardlink cycle at ${this.path()}`)
    }
    return n
  }

  lookup(name: string): WNode | undefined {
    // Children are kept sorted; binary search.
    let lo = 0
    let hi = this.children.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      const c = cmpBytes(name, this.children[mid]!.name)
      if (c === 0) return this.children[mid]
      if (c < 0) hi = mid
      else lo = mid + 1
    }
    return undefined
  }

  insertChild(name: string, child: WNode): void {
    let lo = 0
    let hi = this.children.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cmpBytes(name, this.children[mid]!.name) < 0) hi = mid
      else lo = mid + 1
    }
    child.name = name
    child.parent = this
    this.children.splice(lo, 0, child)
  }

  path(): string {
    const parts: string[] = []
    for (let n: WNode | null = this; n && n.parent && n.parent !== n; n = n.parent) parts.push(n.name)
    return '/' + parts.reverse().join('/')
  }

  /** Adds or replaces an xattr within the per-inode budget upstream applies to external input. */
  setXattr(key: string, value: Buffer, text: string | null = null): void {
    const used = putXattr(
      this.xattrs,
      this.xattrBudget,
      {key, value, sharedOffset: -1, text},
      Limits.externalXattrMax,
    )
    if (used < 0) throw new InvalidInputError(`image: too many or too large xattrs on ${this.path()}`)
    this.xattrBudget = used
  }
}

const VALID_TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFBLK, S_IFCHR, S_IFSOCK, S_IFIFO])

/** log2 of the chunk size composefs uses for an external file of this size, and the chunk count. */
export function chunking(size: number): {chunkBits: number; chunkCount: number} {
  // Bits needed for size-1: the smallest power of two >= size, but at least one block.
  let chunkBits = size <= 1 ? 0 : size <= 2 ** 32 ? 32 - Math.clz32(size - 1) : (size - 1).toString(2).length
  if (chunkBits < BLOCK_BITS) chunkBits = BLOCK_BITS
  if (chunkBits - BLOCK_BITS > CHUNK_FORMAT_BLKBITS_MASK) chunkBits = CHUNK_FORMAT_BLKBITS_MASK + BLOCK_BITS
  return {chunkBits, chunkCount: Math.ceil(size / 2 ** chunkBits)}
}

/** Copies the caller's tree; hardlinks are re-pointed into the copy. */
function cloneTree(root: FsNode): WNode {
  const map = new Map<FsNode, WNode>()
  const links: [WNode, FsNode][] = []
  const copy = (n: FsNode): WNode => {
    const w = new WNode()
    map.set(n, w)
    w.mode = n.mode
    w.nlink = n.nlink
    w.uid = n.uid
    w.gid = n.gid
    w.rdev = n.rdev
    // A symlink's size is its target's length, whatever the input claimed (as upstream does).
    w.size = (n.mode & S_IFMT) === S_IFLNK && n.payload !== null ? n.payload.length : n.size
    w.mtimeSec = n.mtimeSec
    w.mtimeNsec = n.mtimeNsec
    w.payload = n.payload
    w.content = n.content
    w.digest = n.digest
    for (const x of n.xattrs) w.xattrs.push({key: x.key, value: x.value, sharedOffset: -1, text: null})
    w.xattrBudget = xattrSpace(n.xattrs)
    if (n.linkTo) links.push([w, n.linkTo])
    return w
  }
  // Iterative copy: deep trees must not overflow the stack.
  const rootW = copy(root)
  const stack: [FsNode, WNode][] = [[root, rootW]]
  while (stack.length) {
    const [n, w] = stack.pop()!
    if (!n.children) continue
    const kids = [...n.children.entries()].sort((a, b) => cmpBytes(a[0], b[0]))
    for (const [name, c] of kids) {
      const cw = copy(c)
      cw.name = name
      cw.parent = w
      w.children.push(cw)
      stack.push([c, cw])
    }
  }
  for (const [w, target] of links) {
    const t = map.get(target)
    if (!t) throw new InvalidInputError(`image: hardlink ${w.path()} points outside the tree`)
    w.linkTo = t
  }
  rootW.parent = rootW
  return rootW
}

function validate(node: WNode): void {
  if (!node.linkTo && !VALID_TYPES.has(node.type)) {
    throw new InvalidInputError(`image: invalid file mode ${node.mode.toString(8)} at ${node.path()}`)
  }
  if (node.type === S_IFREG && node.size > 0 && !node.content) {
    if (node.size > Limits.maxFileSize || chunking(node.size).chunkCount > MAX_NONINLINE_CHUNKS) {
      throw new InvalidInputError(
        `image: file too large for composefs (${node.size} bytes) at ${node.path()}`,
      )
    }
  }
}

function metacopyValue(digest: Buffer | null): Buffer {
  if (!digest) return Buffer.alloc(0)
  // fsverity metacopy: version 0, length 36, flags 0, hash algorithm, then the digest.
  return Buffer.concat([Buffer.from([0, 4 + digest.length, 0, FSVERITY_HASH_ALG_SHA256]), digest])
}

const EMPTY = Buffer.alloc(0)

function addOverlayXattrs(node: WNode, version: number): void {
  for (const x of node.xattrs) {
    if (x.key.startsWith(OVERLAY_PREFIX)) x.key = OVERLAY_ESCAPE_PREFIX + x.key.slice(OVERLAY_PREFIX.length)
  }
  if (node.type === S_IFREG && node.size > 0 && !node.content) {
    node.setXattr(OverlayXattr.metacopy, metacopyValue(node.digest))
    if (node.payload) {
      const redirect = '/' + node.payload
      node.setXattr(OverlayXattr.redirect, Buffer.from(redirect, 'latin1'), redirect)
    }
  }
  if (node.type === S_IFCHR && node.rdev === 0) {
    // A whiteout in the source tree: store it escaped so it reaches the user as a whiteout.
    const parent = node.parent!
    node.size = 0
    node.mode = S_IFREG | (node.mode & ~S_IFMT)
    node.setXattr(OverlayXattr.escapedWhiteout, EMPTY)
    node.setXattr(OverlayXattr.userWhiteout, EMPTY)
    parent.setXattr(OverlayXattr.escapedWhiteouts, EMPTY)
    parent.setXattr(OverlayXattr.userWhiteouts, EMPTY)
    if (version >= 1) {
      parent.setXattr(OverlayXattr.escapedOpaque, Buffer.from('x'))
      parent.setXattr(OverlayXattr.userOpaque, Buffer.from('x'))
    }
  }
}

function rewrite(root: WNode, version: number): void {
  const stack: WNode[] = [root]
  while (stack.length) {
    const node = stack.pop()!
    validate(node)
    addOverlayXattrs(node, version)
    if (node.type !== S_IFDIR) continue
    if (!node.lookup('.')) {
      const dot = new WNode()
      dot.linkTo = node
      node.insertChild('.', dot)
    }
    if (!node.lookup('..')) {
      const dotdot = new WNode()
      dotdot.linkTo = node.parent
      node.insertChild('..', dotdot)
    }
    // Reverse so that siblings are processed in name order (the order of xattr side effects
    // on the parent does not change the result, but keeps this easy to compare with upstream).
    for (let i = node.children.length - 1; i >= 0; i--) {
      const c = node.children[i]!
      if (!c.linkTo) stack.push(c)
    }
  }
  root.setXattr(OverlayXattr.opaque, Buffer.from('y'))
  // Whiteouts for 00..ff at the root hide the objects dir's fan-out directories.
  const selinux = root.xattrs.find((x) => x.key === 'security.selinux')
  for (let i = 0; i < 256; i++) {
    const name = i.toString(16).padStart(2, '0')
    if (root.lookup(name)) continue
    const w = new WNode()
    w.mode = S_IFCHR | 0o644
    w.uid = root.uid
    w.gid = root.gid
    w.mtimeSec = root.mtimeSec
    w.mtimeNsec = root.mtimeNsec
    root.insertChild(name, w)
    if (selinux) w.setXattr(selinux.key, selinux.value)
  }
}

/** Whether the tree holds a whiteout, which needs format version 1 when allowed. */
function hasWhiteout(root: FsNode): boolean {
  const stack = [root]
  while (stack.length) {
    const n = stack.pop()!
    if ((n.mode & S_IFMT) === S_IFCHR && n.rdev === 0) return true
    if (n.children) for (const c of n.children.values()) if (!c.linkTo) stack.push(c)
  }
  return false
}

export function chooseVersion(root: FsNode, minVersion: number, maxVersion: number): number {
  if (minVersion > 1 || maxVersion > 1 || minVersion < 0 || maxVersion < 0) {
    throw new InvalidInputError(
      `unsupported composefs format version (min ${minVersion}, max ${maxVersion}; known: 0, 1)`,
    )
  }
  if (maxVersion < minVersion) maxVersion = minVersion
  if (minVersion < 1 && maxVersion >= 1 && hasWhiteout(root)) return 1
  return minVersion
}

/** The tree as stored in the image, ready for layout. */
export function prepareTree(root: FsNode, version: number): WNode {
  if ((root.mode & S_IFMT) !== S_IFDIR) throw new InvalidInputError('image: the root must be a directory')
  const w = cloneTree(root)
  rewrite(w, version)
  return w
}
