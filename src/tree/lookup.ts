// Path lookup inside an FsNode tree (an image's tree), resolving symlinks the way the kernel
// would inside a chroot: absolute targets start again at the root, and ".." stops at the root.

import {FsNode} from './node.js'

const MAX_SYMLINKS = 40

export function lookupPath(root: FsNode, path: string, follow = true): FsNode | null {
  let hops = 0
  const resolve = (start: FsNode, parts: string[], followLast: boolean): FsNode | null => {
    let dir = start
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!
      if (part === '' || part === '.') continue
      if (part === '..') {
        dir = dir.parent ?? dir
        continue
      }
      const child = dir.children?.get(part)
      if (!child) return null
      let node = child.target()
      const last = i === parts.length - 1
      if (node.isSymlink() && (!last || followLast)) {
        if (++hops > MAX_SYMLINKS) return null
        const target = node.payload ?? ''
        const next = resolve(target.startsWith('/') ? root : dir, target.split('/'), true)
        if (!next) return null
        node = next
      }
      if (last) return node
      if (!node.isDir()) return null
      dir = node
    }
    return dir
  }
  return resolve(root, path.split('/'), follow)
}
