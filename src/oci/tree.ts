// Layers → one in-memory tree, with the OCI image-spec's rules for applying changesets:
//
// - An entry replaces what its path held in a lower layer; a directory over a directory keeps
//   the children and takes the new metadata (mode, owner, mtime, xattrs).
// - `.wh.NAME` deletes NAME (and everything under it) as lower layers left it; the opaque
//   marker `.wh..wh..opq` deletes every child that came from a lower layer. Entries of the same
//   layer survive either (the spec lets them appear in any order within a layer).
// - A hardlink names a path already in the tree (this layer or a lower one) that is not a
//   directory; it shares that file's inode. Replacing one name later breaks the link, as a
//   copy-up would.
// - The tree is never resolved through a symlink: an entry whose parent is not a directory
//   is refused (node-tar's "write through a symlink" class of attacks has nothing to write
//   to here, but refusing keeps the tree what an unpacker that refuses would make).
//
// finish() then decides hardlink ownership exactly as the directory scanner does: the first
// name in sorted depth-first order owns the inode and later names become `linkTo` entries, so
// the image is byte for byte the one built from the image unpacked to a directory.

import {InvalidInputError} from '../errors.js'
import {FsNode, objectPath, S_IFDIR} from '../tree/node.js'
import {resolveHardlinks} from '../tree/hardlinks.js'
import type {LayerEntry} from './layers.js'

export interface AssembledTree {
  root: FsNode
  /** Regular-file inodes (each once), sorted depth-first like the scanner's `files`. */
  files: FsNode[]
}

export class LayerTree {
  readonly root = new FsNode(S_IFDIR | 0o755)
  /** The layer each entry came from (for whiteouts and opaque directories). */
  private readonly layerOf = new Map<FsNode, number>()
  /** Names of one inode share a group number. */
  private readonly group = new Map<FsNode, number>()
  private groups = 0

  apply(entries: readonly LayerEntry[], layer: number): void {
    for (const e of entries) this.applyOne(e, layer)
  }

  private parentOf(path: string, create: boolean): {dir: FsNode; name: string} | null {
    const parts = path.split('/')
    const name = parts.pop()!
    let dir = this.root
    for (const p of parts) {
      let next = dir.children!.get(p)
      if (!next) {
        if (!create) return null
        // A parent the layer did not list: made as container unpackers make it (mkdir -p).
        next = new FsNode(S_IFDIR | 0o755)
        dir.addChild(p, next)
      } else if (!next.isDir())
        throw new InvalidInputError(
          `layer: "${path}" lies below "${next.path().slice(1)}", which is not a directory`,
        )
      dir = next
    }
    return {dir, name}
  }

  private lookup(path: string): FsNode | null {
    if (path === '') return this.root
    const at = this.parentOf(path, false)
    return at?.dir.children!.get(at.name) ?? null
  }

  private removeLower(dir: FsNode, name: string, layer: number): void {
    const old = dir.children!.get(name)
    if (old && (this.layerOf.get(old) ?? -1) < layer) dir.children!.delete(name)
  }

  private applyOne(e: LayerEntry, layer: number): void {
    if (e.kind === 'whiteout') {
      const at = this.parentOf(e.path, false)
      if (at) this.removeLower(at.dir, at.name, layer)
      return
    }
    if (e.kind === 'opaque') {
      const dir = this.lookup(e.path)
      if (dir?.isDir()) for (const name of [...dir.children!.keys()]) this.removeLower(dir, name, layer)
      return
    }
    if (e.path === '') {
      setMeta(this.root, e)
      return
    }
    const {dir, name} = this.parentOf(e.path, true)!
    const old = dir.children!.get(name)
    if (e.kind === 'dir' && old?.isDir()) {
      setMeta(old, e)
      this.layerOf.set(old, layer)
      return
    }
    let node: FsNode
    if (e.kind === 'hardlink') {
      const target = this.lookup(e.target!)
      if (!target)
        throw new InvalidInputError(`layer: hardlink "${e.path}" to "${e.target}", which does not exist`)
      if (target.isDir()) throw new InvalidInputError(`layer: hardlink "${e.path}" to a directory`)
      if (target === old) return // a link to itself: nothing changes
      node = cloneNode(target)
      let g = this.group.get(target)
      if (g === undefined) this.group.set(target, (g = this.groups++))
      this.group.set(node, g)
    } else {
      node = new FsNode(e.mode)
      setMeta(node, e)
      node.size = e.size
      node.rdev = e.rdev
      if (e.kind === 'symlink') node.payload = e.target!
      if (e.content) node.content = e.content
      if (e.digest) {
        node.digest = Buffer.from(e.digest, 'hex')
        node.payload = objectPath(node.digest)
      }
    }
    if (old) dir.children!.delete(name)
    dir.addChild(name, node)
    this.layerOf.set(node, layer)
  }

  /** The final tree: hardlinks resolved the way the directory scanner resolves them. */
  finish(): AssembledTree {
    const files: FsNode[] = []
    resolveHardlinks(
      this.root,
      (n) => this.group.get(n),
      (node) => {
        if (node.isReg()) files.push(node)
      },
    )
    return {root: this.root, files}
  }
}

function setMeta(n: FsNode, e: LayerEntry): void {
  n.mode = e.mode
  n.uid = e.uid
  n.gid = e.gid
  n.mtimeSec = e.mtimeSec
  n.mtimeNsec = e.mtimeNsec
  n.xattrs = e.xattrs.map((x) => ({key: x.key, value: x.value}))
}

function cloneNode(t: FsNode): FsNode {
  const n = new FsNode(t.mode)
  n.uid = t.uid
  n.gid = t.gid
  n.rdev = t.rdev
  n.size = t.size
  n.mtimeSec = t.mtimeSec
  n.mtimeNsec = t.mtimeNsec
  n.payload = t.payload
  n.content = t.content
  n.digest = t.digest
  n.xattrs = t.xattrs.map((x) => ({key: x.key, value: x.value}))
  return n
}
