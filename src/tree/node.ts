// The in-memory filesystem tree that every part of cfsboot shares: the tree scanner and the
// dump parser build it, the image writer serialises it, the image reader rebuilds it.
//
// Names, xattr keys, symlink targets and payloads are "byte strings": JavaScript strings in
// which every character is one byte (latin1). Linux names are bytes, not UTF-8, and this keeps
// them exact while letting plain `<` comparison give the same order as C's strcmp.
// Convert at the edges with the 'latin1' encoding (readdir's and readlink's own, or
// `buf.toString('latin1')`, and `Buffer.from(s, 'latin1')` back).

export const S_IFMT = 0o170000
export const S_IFSOCK = 0o140000
export const S_IFLNK = 0o120000
export const S_IFREG = 0o100000
export const S_IFBLK = 0o060000
export const S_IFDIR = 0o040000
export const S_IFCHR = 0o020000
export const S_IFIFO = 0o010000

export const DIGEST_SIZE = 32

export interface Xattr {
  /** Full name, e.g. "security.capability" (byte string). */
  key: string
  value: Buffer
}

export class FsNode {
  name: string | null = null
  parent: FsNode | null = null
  /** Children by name; directories only. Order is irrelevant: the writer sorts. */
  children: Map<string, FsNode> | null = null
  /** Set on a hardlink: this entry is another name for `linkTo`'s inode. */
  linkTo: FsNode | null = null

  mode = 0
  nlink = 1
  uid = 0
  gid = 0
  rdev = 0
  /** File size in bytes; at most 2^53 (the format's own limit for external files). */
  size = 0
  mtimeSec = 0
  mtimeNsec = 0
  /** Symlink target, or for a regular file the object path relative to the objects dir ("ab/cdef…"). */
  payload: string | null = null
  /** Inline content of a small regular file (stored in the image, not as an object). */
  content: Buffer | null = null
  /** fs-verity SHA-256 digest of the file's content. */
  digest: Buffer | null = null
  xattrs: Xattr[] = []

  constructor(mode = 0) {
    this.mode = mode
    if ((mode & S_IFMT) === S_IFDIR) this.children = new Map()
  }

  get type(): number {
    return this.mode & S_IFMT
  }

  isDir(): boolean {
    return this.type === S_IFDIR
  }

  isReg(): boolean {
    return this.type === S_IFREG
  }

  isSymlink(): boolean {
    return this.type === S_IFLNK
  }

  /** The node that holds the inode data (follows hardlinks; throws on a cycle). */
  target(): FsNode {
    let n: FsNode = this
    while (n.linkTo) {
      n = n.linkTo
      if (n === this) throw new Error('hardlink cycle')
    }
    return n
  }

  addChild(name: string, child: FsNode): void {
    if (!this.children) throw new Error(`not a directory: ${this.name}`)
    this.children.set(name, child)
    child.name = name
    child.parent = this
  }

  getXattr(key: string): Buffer | undefined {
    for (const x of this.xattrs) if (x.key === key) return x.value
    return undefined
  }

  /** Set (or replace) an xattr. */
  setXattr(key: string, value: Buffer): void {
    const i = this.xattrs.findIndex((x) => x.key === key)
    if (i >= 0) this.xattrs[i] = {key, value}
    else this.xattrs.push({key, value})
  }

  /** Children sorted by name in byte order (strcmp), as the image stores them. */
  sortedChildren(): FsNode[] {
    if (!this.children) return []
    return [...this.children.values()].sort((a, b) => cmpBytes(a.name!, b.name!))
  }

  /** Path from the root, as a byte string ("/" for the root). */
  path(): string {
    const parts: string[] = []
    for (let n: FsNode | null = this; n && n.parent; n = n.parent) parts.push(n.name!)
    return '/' + parts.reverse().join('/')
  }
}

/** strcmp order for byte strings. */
export function cmpBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** What an object path must look like: the fs-verity digest as "xx/" + 62 lower-case hex digits. */
const OBJECT_PATH = /^[0-9a-f]{2}\/[0-9a-f]{62}$/

/** Whether a path (relative to an objects dir) is a content address, as objectPath makes them. */
export function isObjectPath(path: string): boolean {
  return OBJECT_PATH.test(path)
}

/** The lower-case hex digits as bytes, for spelling bytes out without making strings. */
export const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1')

/** Spells src[start, end) in lower-case hex into `out` at `pos`; returns the position after it. */
export function writeHex(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) {
    const b = src[i]!
    out[pos++] = HEX_DIGITS[b >> 4]!
    out[pos++] = HEX_DIGITS[b & 15]!
  }
  return pos
}

/** Where objectPath spells a path out; 2 + 1 + 62 bytes for a 32-byte digest. */
let pathScratch = Buffer.alloc(1 + 2 * DIGEST_SIZE)

/**
 * Object path for a digest: "ab/cdef…" (the layout of composefs objects dirs). The path is
 * spelt out in a scratch buffer and made into one flat string: a tree keeps one per file, and
 * slices of a hex string joined by "/" held ~150 bytes each (the hex string, the slices and
 * their join) against 88 (measured on a 26k-file tree: 4.0 MB against 2.3 MB).
 */
export function objectPath(digest: Uint8Array): string {
  if (digest.length === 0) return '/'
  const length = 1 + 2 * digest.length
  if (pathScratch.length < length) pathScratch = Buffer.alloc(length)
  pathScratch[writeHex(pathScratch, 0, digest, 0, 1)] = 0x2f // "/"
  writeHex(pathScratch, 3, digest, 1, digest.length)
  return pathScratch.toString('latin1', 0, length)
}

/** Walk every node (hardlink entries included) depth-first, parents before children. */
export function* walk(root: FsNode): Generator<FsNode> {
  const stack: FsNode[] = [root]
  while (stack.length) {
    const n = stack.pop()!
    yield n
    if (n.children) for (const c of n.children.values()) stack.push(c)
  }
}
