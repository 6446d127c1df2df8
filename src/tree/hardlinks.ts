// The hardlink rule every tree source follows (the directory scanner and the container-layer
// importer), so that the same files give the same image whichever way they were read.

import {cmpBytes, FsNode} from './node.js'

/**
 * Walks the tree depth-first with names in byte order. The first name of an inode in that order
 * owns it; every later name becomes a `linkTo` entry to the owner (nlink counted), so which name
 * owns an inode never depends on the order a directory was listed in. `inodeOf` names a node's
 * inode (undefined: not shared); `visit` sees every other node once, with its path relative to
 * the root ('' for the root itself), parents before children.
 */
export function resolveHardlinks<K>(
  root: FsNode,
  inodeOf: (n: FsNode) => K | undefined,
  visit: (n: FsNode, rel: string) => void,
): void {
  const owners = new Map<K, FsNode>()
  const stack: [FsNode, string][] = [[root, '']]
  while (stack.length) {
    const [node, rel] = stack.pop()!
    const key = inodeOf(node)
    const owner = key === undefined ? undefined : owners.get(key)
    if (owner) {
      const link = new FsNode(owner.mode)
      link.linkTo = owner
      owner.nlink++
      node.parent!.addChild(node.name!, link)
      continue
    }
    if (key !== undefined) owners.set(key, node)
    visit(node, rel)
    if (node.children) {
      const kids = [...node.children.values()].sort((a, b) => cmpBytes(b.name!, a.name!))
      for (const c of kids) stack.push([c, rel ? `${rel}/${c.name}` : c.name!])
    }
  }
}
