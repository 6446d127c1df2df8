// Works out the tree that a composefs image actually stores, from an FsNode tree, without
// copying or modifying it. This is where composefs's overlayfs conventions are applied:
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
// The result (ImageTree) lists the inodes in image order (breadth-first, names in byte order)
// and keeps only what differs from the FsNodes, in arrays indexed by inode: a copy of the tree
// cost more time and memory than the rest of the writer. Most inodes carry no xattrs or only the
// metacopy/redirect pair, which is derived from the node when needed (write-xattrs.ts) rather
// than stored. The rules follow upstream composefs so images are byte-identical to mkcomposefs's.

import {InvalidInputError} from '../../errors.js'
import {
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

/** What `ImageTree.external` says of an inode's xattrs when it has no list of its own. */
export const External = {
  /** No xattrs. */
  none: 0,
  /** Only trusted.overlay.metacopy. */
  metacopy: 1,
  /** trusted.overlay.metacopy and trusted.overlay.redirect. */
  redirect: 2,
} as const

/** An xattr list with upstream's running estimate of its space, which bounds what may be added. */
interface XattrList {
  list: WXattr[]
  budget: number
}

/** The inodes of the image and what the image stores differently from their FsNodes. */
export interface ImageTree {
  /** Format version of the image (composefs header). */
  version: number
  /** The node of each inode, in image order (breadth-first, names in byte order); 0 is the root. */
  nodes: FsNode[]
  /** Mode as stored (a whiteout becomes a regular file). */
  mode: Uint32Array
  /** Size as stored (a symlink's is its target's length, a whiteout's 0). */
  size: Float64Array
  /** Link count as stored, 32 bits (a directory's is 2 + its subdirectories). */
  nlink: Uint32Array
  /** Directories: entry names in byte order, "." and ".." included. */
  dirNames: (string[] | undefined)[]
  /** Directories: the inode of each entry of dirNames. */
  dirInodes: (Int32Array | undefined)[]
  /** Inodes with xattrs other than the metacopy/redirect pair: all of them, sorted by key. */
  xattrs: (WXattr[] | undefined)[]
  /** Inodes without a list in `xattrs`: External.none, .metacopy or .redirect. */
  external: Uint8Array
}

const VALID_TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFBLK, S_IFCHR, S_IFSOCK, S_IFIFO])

/** log2 of the chunk size composefs uses for an external file of this size. */
export function chunkBitsFor(size: number): number {
  // Bits needed for size-1: the smallest power of two >= size, but at least one block.
  let chunkBits = size <= 1 ? 0 : size <= 2 ** 32 ? 32 - Math.clz32(size - 1) : (size - 1).toString(2).length
  if (chunkBits < BLOCK_BITS) chunkBits = BLOCK_BITS
  if (chunkBits - BLOCK_BITS > CHUNK_FORMAT_BLKBITS_MASK) chunkBits = CHUNK_FORMAT_BLKBITS_MASK + BLOCK_BITS
  return chunkBits
}

/** The number of chunks of an external file of this size. */
export const chunkCountFor = (size: number): number => Math.ceil(size / 2 ** chunkBitsFor(size))

/** Bytes of a trusted.overlay.metacopy value before the digest (metacopyHeader). */
export const METACOPY_HEADER_SIZE = 4

/** The bytes before the digest in a metacopy value: version 0, the value's length, flags 0, the hash algorithm. */
export function metacopyHeader(digestLength: number): number[] {
  return [0, METACOPY_HEADER_SIZE + digestLength, 0, FSVERITY_HASH_ALG_SHA256]
}

/** The metacopy value of a file with this fs-verity digest (empty without one). */
export function metacopyValue(digest: Buffer | null): Buffer {
  if (!digest) return Buffer.alloc(0)
  return Buffer.concat([Buffer.from(metacopyHeader(digest.length)), digest])
}

/** The metacopy value as a byte string, without making the Buffer (for counting equal values). */
export function metacopyText(digest: Buffer | null): string {
  if (!digest) return ''
  return String.fromCharCode(...metacopyHeader(digest.length)) + digest.toString('latin1')
}

const EMPTY = Buffer.alloc(0)

/** Whether a node is a file whose content lives in the objects dir (composefs adds metacopy). */
const isExternal = (n: FsNode): boolean => (n.mode & S_IFMT) === S_IFREG && n.size > 0 && n.content === null
const isWhiteout = (n: FsNode): boolean => (n.mode & S_IFMT) === S_IFCHR && n.rdev === 0

function followLink(link: FsNode): FsNode {
  let n = link
  while (n.linkTo) {
    n = n.linkTo
    if (n === link) throw new InvalidInputError(`image: hardlink cycle at ${link.path()}`)
  }
  return n
}

/** What orderInodes finds, indexed by inode like ImageTree. */
interface InodeOrder {
  nodes: FsNode[]
  parents: number[]
  dirNames: (string[] | undefined)[]
  dirInodes: (Int32Array | undefined)[]
  /** Directories: 2 + their subdirectories (their stored link count). */
  dirLinks: number[]
  /** 1 for the whiteouts made for the root's 00..ff (not in the tree). */
  synthetic: Uint8Array
  /** Whether the tree holds a whiteout (which needs format version 1 when allowed). */
  hasWhiteout: boolean
}

/**
 * Breadth-first inode order and each directory's sorted entries ("." and ".." added), with
 * what the rest of the writer would otherwise walk the tree again for.
 */
function orderInodes(root: FsNode): InodeOrder {
  const nodes: FsNode[] = [root]
  const parents: number[] = [0]
  const dirNames: (string[] | undefined)[] = []
  const dirInodes: (Int32Array | undefined)[] = []
  const links: {dir: number; index: number; link: FsNode; name: string}[] = []
  const dirLinks: number[] = []
  const syntheticAt: number[] = []
  let hasWhiteout = isWhiteout(root)
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!
    if ((n.mode & S_IFMT) !== S_IFDIR) {
      // Every inode gets an entry: an array written only at scattered indexes turns into a
      // dictionary, and every later read of it into a hash lookup.
      dirNames.push(undefined)
      dirInodes.push(undefined)
      dirLinks.push(0)
      continue
    }
    const children = n.children ?? new Map<string, FsNode>()
    const names = Array.from(children.keys())
    if (!children.has('.')) names.push('.')
    if (!children.has('..')) names.push('..')
    if (i === 0) {
      // Whiteouts for 00..ff at the root hide the objects dir's fan-out directories.
      for (let b = 0; b < 256; b++) {
        const name = b.toString(16).padStart(2, '0')
        if (!children.has(name)) names.push(name)
      }
    }
    // Names are byte strings, so the default (UTF-16 code unit) order is strcmp's.
    names.sort()
    const inodes = new Int32Array(names.length)
    let subdirs = 0
    for (let k = 0; k < names.length; k++) {
      const name = names[k]!
      const c = children.get(name)
      if (c === undefined) {
        if (name === '.') inodes[k] = i
        else if (name === '..') inodes[k] = parents[i]!
        else {
          const w = new FsNode(S_IFCHR | 0o644)
          w.uid = n.uid
          w.gid = n.gid
          w.mtimeSec = n.mtimeSec
          w.mtimeNsec = n.mtimeNsec
          w.name = name
          w.parent = n
          syntheticAt.push(nodes.length)
          inodes[k] = nodes.length
          nodes.push(w)
          parents.push(i)
        }
      } else {
        if ((c.mode & S_IFMT) === S_IFDIR) subdirs++
        if (c.linkTo) {
          inodes[k] = -1
          links.push({dir: i, index: k, link: c, name})
        } else {
          if (isWhiteout(c)) hasWhiteout = true
          inodes[k] = nodes.length
          nodes.push(c)
          parents.push(i)
        }
      }
    }
    dirLinks.push(2 + subdirs)
    dirNames.push(names)
    dirInodes.push(inodes)
  }
  if (links.length > 0) {
    // Only the links' targets are looked up by node (a Map of every node cost a MiB of heap on a
    // large tree); looking up a node that was never a key costs no hash.
    const inodeOf = new Map<FsNode, number>()
    const targets = links.map((l) => followLink(l.link))
    for (const t of targets) inodeOf.set(t, -1)
    for (let i = 0; i < nodes.length; i++) if (inodeOf.has(nodes[i]!)) inodeOf.set(nodes[i]!, i)
    for (let k = 0; k < links.length; k++) {
      const {dir, index, link, name} = links[k]!
      const t = inodeOf.get(targets[k]!)!
      if (t < 0) throw new InvalidInputError(`image: hardlink ${link.path()} points outside the tree`)
      if ((nodes[t]!.mode & S_IFMT) === S_IFDIR && name !== '.' && name !== '..') {
        throw new InvalidInputError(`image: hardlink to a directory at ${link.path()}`)
      }
      dirInodes[dir]![index] = t
    }
  }
  const synthetic = new Uint8Array(nodes.length)
  for (const i of syntheticAt) synthetic[i] = 1
  return {
    nodes,
    parents,
    dirNames,
    dirInodes,
    dirLinks,
    synthetic,
    hasWhiteout,
  }
}

function validate(node: FsNode): void {
  if (!VALID_TYPES.has(node.mode & S_IFMT)) {
    throw new InvalidInputError(`image: invalid file mode ${node.mode.toString(8)} at ${node.path()}`)
  }
  if (isExternal(node)) {
    if (node.size > Limits.maxFileSize || chunkCountFor(node.size) > MAX_NONINLINE_CHUNKS) {
      throw new InvalidInputError(
        `image: file too large for composefs (${node.size} bytes) at ${node.path()}`,
      )
    }
  }
}

/** Adds or replaces an xattr within the per-inode budget upstream applies to external input. */
function setXattr(x: XattrList, node: FsNode, key: string, value: Buffer, text: string | null = null): void {
  const used = putXattr(x.list, x.budget, {key, value, sharedOffset: -1, text}, Limits.externalXattrMax)
  if (used < 0) throw new InvalidInputError(`image: too many or too large xattrs on ${node.path()}`)
  x.budget = used
}

/** The node's own xattrs as stored: its trusted.overlay.* escaped. */
function ownXattrs(node: FsNode): XattrList {
  const list: WXattr[] = []
  for (const x of node.xattrs) {
    const key = x.key.startsWith(OVERLAY_PREFIX)
      ? OVERLAY_ESCAPE_PREFIX + x.key.slice(OVERLAY_PREFIX.length)
      : x.key
    list.push({key, value: x.value, sharedOffset: -1, text: null})
  }
  return {list, budget: xattrSpace(node.xattrs)}
}

/**
 * The tree as stored in the image, ready for layout, in the lowest format version in
 * [minVersion, maxVersion] that holds it. The input tree is not modified.
 */
export function prepareTree(root: FsNode, minVersion: number, maxVersion: number): ImageTree {
  checkVersions(minVersion, maxVersion)
  if ((root.mode & S_IFMT) !== S_IFDIR) throw new InvalidInputError('image: the root must be a directory')
  const {nodes, parents, dirNames, dirInodes, dirLinks, synthetic, hasWhiteout} = orderInodes(root)
  const version = chooseVersion(hasWhiteout, minVersion, maxVersion)
  const count = nodes.length
  const mode = new Uint32Array(count)
  const size = new Float64Array(count)
  const nlink = new Uint32Array(count)
  const external = new Uint8Array(count)
  // Dense arrays (see orderInodes).
  const lists: (XattrList | undefined)[] = []
  const xattrs: (WXattr[] | undefined)[] = []
  for (let i = 0; i < count; i++) {
    lists.push(undefined)
    xattrs.push(undefined)
  }
  const listOf = (i: number): XattrList => (lists[i] ??= ownXattrs(nodes[i]!))

  for (let i = 0; i < count; i++) {
    const n = nodes[i]!
    const type = n.mode & S_IFMT
    mode[i] = n.mode
    nlink[i] = n.nlink
    // A symlink's size is its target's length, whatever the input claimed (as upstream does).
    size[i] = type === S_IFLNK && n.payload !== null ? n.payload.length : n.size
    if (synthetic[i] === 1) {
      const selinux = lists[0]!.list.find((x) => x.key === 'security.selinux')
      if (selinux) setXattr(listOf(i), n, selinux.key, selinux.value)
      continue
    }
    validate(n)
    if (type === S_IFDIR) nlink[i] = dirLinks[i]!
    if (i === 0 || n.xattrs.length > 0) listOf(i)
    const x = lists[i]
    if (isExternal(n)) {
      if (x) {
        setXattr(x, n, OverlayXattr.metacopy, metacopyValue(n.digest), metacopyText(n.digest))
        if (n.payload) {
          const redirect = '/' + n.payload
          setXattr(x, n, OverlayXattr.redirect, Buffer.from(redirect, 'latin1'), redirect)
        }
      } else {
        external[i] = n.payload ? External.redirect : External.metacopy
      }
    }
    if (isWhiteout(n)) {
      // A whiteout in the source tree: store it escaped so it reaches the user as a whiteout.
      size[i] = 0
      mode[i] = S_IFREG | (n.mode & ~S_IFMT)
      const own = listOf(i)
      setXattr(own, n, OverlayXattr.escapedWhiteout, EMPTY)
      setXattr(own, n, OverlayXattr.userWhiteout, EMPTY)
      const p = nodes[parents[i]!]!
      const parent = listOf(parents[i]!)
      setXattr(parent, p, OverlayXattr.escapedWhiteouts, EMPTY)
      setXattr(parent, p, OverlayXattr.userWhiteouts, EMPTY)
      if (version >= 1) {
        setXattr(parent, p, OverlayXattr.escapedOpaque, Buffer.from('x'))
        setXattr(parent, p, OverlayXattr.userOpaque, Buffer.from('x'))
      }
    }
    if (i === 0) setXattr(lists[0]!, n, OverlayXattr.opaque, Buffer.from('y'))
  }

  for (let i = 0; i < count; i++) {
    const x = lists[i]
    if (!x) continue
    if (x.list.length > 1) x.list.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    xattrs[i] = x.list
  }
  return {version, nodes, mode, size, nlink, dirNames, dirInodes, xattrs, external}
}

function checkVersions(minVersion: number, maxVersion: number): void {
  if (minVersion > 1 || maxVersion > 1 || minVersion < 0 || maxVersion < 0) {
    throw new InvalidInputError(
      `unsupported composefs format version (min ${minVersion}, max ${maxVersion}; known: 0, 1)`,
    )
  }
}

/** A tree with a whiteout needs format version 1, when allowed. */
function chooseVersion(hasWhiteout: boolean, minVersion: number, maxVersion: number): number {
  if (maxVersion < minVersion) maxVersion = minVersion
  if (minVersion < 1 && maxVersion >= 1 && hasWhiteout) return 1
  return minVersion
}
